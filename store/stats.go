package store

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/gearsched/gearsched/gearman/stats"
)

// commitStats is what the committer measures about its transactions. Only
// the committer writes it, with atomics, so that Stats reads it at any
// time without touching the write path's lock.
type commitStats struct {
	commits    atomic.Uint64
	errors     atomic.Uint64
	writes     atomic.Uint64
	duration   *stats.Histogram // ns per commit, fsync included
	batch      *stats.Histogram // writes per commit
	checkpoint *stats.Histogram // ns per checkpoint
}

func newCommitStats() *commitStats {
	return &commitStats{
		duration:   stats.NewHistogram(stats.CommitBounds),
		batch:      stats.NewHistogram(stats.BatchBounds),
		checkpoint: stats.NewHistogram(stats.CommitBounds),
	}
}

// record counts one transaction of writes writes that took d.
func (c *commitStats) record(writes int, d time.Duration, err error) {
	c.duration.ObserveDuration(d)
	c.batch.Observe(int64(writes))
	if err != nil {
		c.errors.Add(1)
		return
	}
	c.commits.Add(1)
	c.writes.Add(uint64(writes))
}

// Stats describes the store's commits and its file.
type Stats struct {
	Commits      uint64 // transactions committed
	CommitErrors uint64 // transactions that failed; their writes were refused
	Writes       uint64 // writes in the committed transactions
	// CommitDuration is the time of every transaction, failed ones
	// included, in nanoseconds; CommitWrites the writes in each.
	CommitDuration, CommitWrites stats.HistogramSnapshot
	// CheckpointDuration is the time of every checkpoint (the journal's
	// writes committed to the database file, see journal.go) in
	// nanoseconds: writes queued meanwhile wait for it.
	CheckpointDuration stats.HistogramSnapshot
	QueuedWrites       int   // writes waiting for the next transaction
	FileSize           int64 // the database file's size in bytes
	// FreeBytes is space inside the file that bbolt will reuse before it
	// grows the file: what `gearsched compact` would give back.
	FreeBytes int64
}

// Stats returns the store's counters and the database's size. It never
// waits for a commit.
func (s *Store) Stats() (Stats, error) {
	st := Stats{
		Commits:            s.stats.commits.Load(),
		CommitErrors:       s.stats.errors.Load(),
		Writes:             s.stats.writes.Load(),
		CommitDuration:     s.stats.duration.Snapshot(),
		CommitWrites:       s.stats.batch.Snapshot(),
		CheckpointDuration: s.stats.checkpoint.Snapshot(),
		QueuedWrites:       s.QueuedWrites(),
		FreeBytes:          int64(s.db.Stats().FreeAlloc),
	}
	fi, err := os.Stat(s.db.Path())
	if err != nil {
		return st, fmt.Errorf("store: size of %s: %w", s.db.Path(), err)
	}
	st.FileSize = fi.Size()
	return st, nil
}
