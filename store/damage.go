package store

import "fmt"

// panicError turns a panic recovered around bbolt into an error. bbolt
// panics (or, with debug.SetPanicOnFault, faults into a panic) when it
// follows a damaged page, so a panic here means the file is damaged.
func panicError(r any) error {
	return fmt.Errorf("store: bbolt panicked, the database may be damaged: %v", r)
}
