package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// ErrDamaged is wrapped by every error that comes from a damaged database
// rather than from a refused or failed write: a record that does not
// decode or fails its checksum, an index entry without its record, bbolt
// panicking on a damaged page. `gearsched check` lists the damage and
// `gearsched salvage` copies what is readable to a new database.
var ErrDamaged = errors.New("database damaged (run gearsched check, then gearsched salvage)")

var (
	errCorrupt  = fmt.Errorf("store: corrupt record: %w", ErrDamaged)
	errChecksum = fmt.Errorf("store: record fails its checksum: %w", ErrDamaged)
)

// panicError turns a panic recovered around bbolt into an error. bbolt
// panics (or, with debug.SetPanicOnFault, faults into a panic) when it
// follows a damaged page, so a panic here means the file is damaged.
func panicError(r any) error {
	return fmt.Errorf("store: bbolt panicked: %v: %w", r, ErrDamaged)
}

// Records are sealed with a CRC-32C of their bytes, so that damage inside
// a value (a flipped bit in a payload decodes fine) is found instead of
// being run as another job. bbolt checksums only its meta pages.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sealSize is the length of a seal.
const sealSize = 4

// seal appends the checksum of b[start:].
func seal(b []byte, start int) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// unseal checks the seal at the end of b and returns what it covers.
func unseal(b []byte) ([]byte, error) {
	if len(b) < sealSize {
		return nil, errCorrupt
	}
	body := b[:len(b)-sealSize]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(body):]) {
		return nil, errChecksum
	}
	return body, nil
}
