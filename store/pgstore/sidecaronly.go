package pgstore

import (
	"errors"
	"io"

	"github.com/gearsched/gearsched/store"
)

// A PostgreSQL store serves sidecars only: gearsched's job server keeps
// bbolt (Gearman scales job servers by running several). What only a job
// server asks of its store is refused here, and the mode is fixed.

// ErrSidecarOnly is what a job server's request gets from this store.
var ErrSidecarOnly = errors.New("pgstore: a PostgreSQL store serves sidecars (--upstream) only")

// Mode is always "sidecar".
func (s *Store) Mode() (string, error) { return "sidecar", nil }

// SetMode accepts "sidecar" only.
func (s *Store) SetMode(mode string) error {
	if mode != "sidecar" {
		return ErrSidecarOnly
	}
	return nil
}

// Put refuses: a sidecar holds no ready jobs.
func (s *Store) Put(*store.Job) *store.Write {
	w, done := store.NewWrite()
	done(false, store.Holder{}, ErrSidecarOnly)
	return w
}

// Delete does nothing: a sidecar holds no ready jobs.
func (s *Store) Delete(uint64) {}

// Finish does nothing: a sidecar learns no outcomes (gearmand runs the
// jobs).
func (s *Store) Finish(uint64, store.Outcome) {}

// Jobs finds no ready jobs: a sidecar holds none.
func (s *Store) Jobs(func(*store.Job) error) error { return nil }

// Fire refuses: a sidecar forwards due work (Claim, Forwarded).
func (s *Store) Fire(int64, []uint64, []store.Occurrence, func(*store.Job)) (moved, fired []*store.Job, err error) {
	return nil, nil, ErrSidecarOnly
}

// Backup refuses: back PostgreSQL up with its own tools (pg_dump,
// continuous archiving), which see every sidecar's state at once.
func (s *Store) Backup(io.Writer, func(int64)) (int64, error) {
	return 0, errors.New("pgstore: back the PostgreSQL database up with pg_dump or its WAL archiving, not through gearsched")
}

// Stats reports nothing of bbolt's committer: PostgreSQL has its own
// statistics views.
func (s *Store) Stats() (store.Stats, error) { return store.Stats{}, nil }
