package pgstore

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// countsEvery is how often the counts are read from the database: other
// sidecars change them too, so they are a recent reading, not exact.
const countsEvery = time.Second

// counts are the pending jobs (triggers left out, as in bbolt) and the
// schedules per function, as last read: the job server reads them under
// its mutex, where nothing may wait on the network.
type counts struct {
	mu        sync.Mutex
	pending   map[string]int
	schedules map[string]int
}

// refreshCounts reads the counts every countsEvery until ctx is done.
func (s *Store) refreshCounts(ctx context.Context) {
	t := time.NewTicker(countsEvery)
	defer t.Stop()
	for {
		if err := s.readCounts(ctx); err != nil && ctx.Err() == nil {
			s.log.Debug("pgstore: reading the counts failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// readCounts reads both counts once.
func (s *Store) readCounts(ctx context.Context) error {
	read := func(sql string) (map[string]int, error) {
		rows, _ := s.pool.Query(ctx, sql)
		m := map[string]int{}
		var fn string
		var n int
		_, err := pgx.ForEachRow(rows, []any{&fn, &n}, func() error { m[fn] = n; return nil })
		return m, err
	}
	pending, err := read(`SELECT function, count(*) FROM pending WHERE kind <> 2 GROUP BY function`)
	if err != nil {
		return err
	}
	schedules, err := read(`SELECT def->>'function', count(*) FROM schedules GROUP BY 1`)
	if err != nil {
		return err
	}
	s.counts.mu.Lock()
	s.counts.pending, s.counts.schedules = pending, schedules
	s.counts.mu.Unlock()
	return nil
}

// addPending counts a job this sidecar stored, until the next reading.
func (s *Store) addPending(function string) {
	s.counts.mu.Lock()
	defer s.counts.mu.Unlock()
	if s.counts.pending == nil {
		s.counts.pending = map[string]int{}
	}
	s.counts.pending[function]++
}

// PendingCount returns how many jobs of function wait, as last read.
func (s *Store) PendingCount(function string) int {
	s.counts.mu.Lock()
	defer s.counts.mu.Unlock()
	return s.counts.pending[function]
}

// PendingCounts returns the pending jobs by function, as last read.
func (s *Store) PendingCounts() map[string]int {
	s.counts.mu.Lock()
	defer s.counts.mu.Unlock()
	return maps.Clone(s.counts.pending)
}

// ScheduleCounts returns the schedules by function, as last read.
func (s *Store) ScheduleCounts() map[string]int {
	s.counts.mu.Lock()
	defer s.counts.mu.Unlock()
	return maps.Clone(s.counts.schedules)
}

// Functions returns, sorted, the functions with pending jobs or
// schedules, as last read.
func (s *Store) Functions() []string {
	s.counts.mu.Lock()
	defer s.counts.mu.Unlock()
	fns := slices.Collect(maps.Keys(s.counts.pending))
	for fn := range s.counts.schedules {
		if _, dup := s.counts.pending[fn]; !dup {
			fns = append(fns, fn)
		}
	}
	slices.Sort(fns)
	return fns
}
