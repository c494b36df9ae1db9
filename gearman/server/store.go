package server

import "github.com/gearsched/gearsched/store"

// Store is what the server keeps in its database: *store.Store (bbolt,
// the job server's and a lone sidecar's) and *pgstore.Store (several
// sidecars' shared PostgreSQL) are stores. A sidecar uses the first group
// and the read-only ones; the job server all of them.
//
// The counts (PendingCount, ScheduleCounts, Functions) are read under
// Server.mu, so they must answer from memory, never from disk or network.
type Store interface {
	IDSource

	// Held work: pending jobs and schedules (see store.Store).
	PutPending(j *store.Job, request string) *store.Write
	PutSchedule(sc *store.Schedule, request string) *store.Write
	Cancel(id uint64) (store.CancelResult, error)
	SetPaused(id uint64, paused bool, now int64) (store.PauseResult, *store.Schedule, error)
	Lookup(id uint64) (store.Holder, bool, error)
	FindUnique(unique string) (store.Holder, bool, error)
	Schedules() ([]*store.Schedule, error)
	ForEachDue(fn func(store.DueItem) bool) error
	NextDue() (due int64, ok bool, err error)

	// Counts, from memory.
	PendingCount(function string) int
	ScheduleCounts() map[string]int
	Functions() []string

	// The database's mode ("server" or "sidecar"), checked at start.
	Mode() (string, error)
	SetMode(mode string) error

	// Ready jobs: the job server's alone.
	Put(j *store.Job) *store.Write
	Delete(id uint64)
	Finish(id uint64, o store.Outcome)
	Jobs(fn func(*store.Job) error) error
	Fire(at int64, ids []uint64, occs []store.Occurrence, ready func(*store.Job)) (moved, fired []*store.Job, err error)
}
