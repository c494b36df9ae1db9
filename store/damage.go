package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// ErrDamaged is wrapped by every error that comes from a damaged database
// rather than from a refused or failed write: a record that does not
// decode or fails its checksum, an index entry without its record, bbolt
// panicking on a damaged page. `gearsched check` lists the damage and
// `gearsched salvage` copies what is readable to a new database.
var ErrDamaged = errors.New("database damaged")

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

// protect runs fn, which reads through bbolt, turning a panic (bbolt on a
// damaged page, or a fault outside the mapped file, which
// debug.SetPanicOnFault makes a panic for the while) into an error
// wrapping ErrDamaged.
func protect(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = panicError(r)
		}
	}()
	return fn()
}

// damagedError refuses a damaged database, naming the first of what is
// wrong and what to do.
func damagedError(path string, damage []Damage) error {
	var b strings.Builder
	for i, d := range damage {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(damage)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(d.String())
	}
	return fmt.Errorf("store: %s: %w: %s. Run `gearsched check --db %s` for the full list, then "+
		"`gearsched salvage %s NEW.db` and serve NEW.db", path, ErrDamaged, b.String(), path, path)
}

// checkOnOpen checks a database file before bbolt maps it (see Open).
// verified says the file was checked in full, so that bbolt's own check
// may run: no page id it follows leaves the file.
func checkOnOpen(path string, f *os.File, limit int64, log *slog.Logger) (verified bool, err error) {
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	if fi.Size() == 0 {
		return false, nil // new: bbolt writes it
	}
	raw, err := openRaw(f, fi.Size())
	if err != nil {
		return false, damagedError(path, append(raw.notes, Damage{Why: err.Error()}))
	}
	if raw.fileDamage() {
		return false, damagedError(path, raw.notes)
	}
	if d := raw.freelistDamage(); d != nil { // bbolt reads it as it opens
		return false, damagedError(path, []Damage{*d})
	}
	for _, d := range raw.notes { // one meta page bad: bbolt reads the other
		log.Warn("store: "+d.String(), "db", path)
	}
	if limit == 0 {
		limit = DefaultVerifyLimit
	}
	if limit < 0 || fi.Size() > limit {
		return false, nil
	}
	cat := scan(raw, nil)
	if !cat.sound {
		return false, damagedError(path, cat.damage)
	}
	for _, d := range cat.damage {
		log.Error("store: damage found; serving what is whole: run gearsched check, then gearsched salvage",
			"db", path, "damage", d.String())
	}
	return true, nil
}

// damageFunc receives a damaged record that a read skips.
type damageFunc func(bucket string, key []byte, err error)

// damaged logs a damaged record that a read skips, once per record and
// process: the scheduler meets a damaged pending job every second.
func (s *Store) damaged(bucket string, key []byte, err error) {
	id := bucket + "\x00" + string(key)
	s.damageMu.Lock()
	seen := s.reported[id]
	s.reported[id] = true
	s.damageMu.Unlock()
	if !seen {
		s.log.Error("store: damaged record skipped; run gearsched check, then gearsched salvage",
			"db", s.db.Path(), "bucket", bucket, "key", formatKey(bucket, key), "err", err)
	}
}

// view runs fn on the database as the committer has it: reads go to the
// committer, which serves them on its open transaction once the writes
// queued before them are durable (see journal.go), so that they see every
// acknowledged write. fn must only read, and must not be called from the
// committer itself.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	return s.await(op{read: fn})
}

// snapshot checkpoints (everything acknowledged reaches the database
// file), then runs fn in a bbolt read transaction of its own, which does
// not hold up the committer: for long reads such as a backup.
func (s *Store) snapshot(fn func(tx *bolt.Tx) error) error {
	if err := s.await(op{checkpoint: true}); err != nil {
		return err
	}
	return protect(func() error { return s.db.View(fn) })
}

// await queues a read or checkpoint op for the committer and waits for
// its result.
func (s *Store) await(o op) error {
	o.done = make(chan error, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.ops = append(s.ops, o)
	s.mu.Unlock()
	s.signal()
	return <-o.done
}

// markBadDue remembers a due-index key whose record is damaged.
func (s *Store) markBadDue(k []byte) {
	s.damageMu.Lock()
	s.badDue[string(k)] = true
	s.damageMu.Unlock()
}

// badDueKey reports whether markBadDue remembered k.
func (s *Store) badDueKey(k []byte) bool {
	s.damageMu.Lock()
	defer s.damageMu.Unlock()
	return s.badDue[string(k)]
}
