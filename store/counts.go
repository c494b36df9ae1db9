package store

import (
	"encoding/binary"
	"maps"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// counts mirrors in memory how many pending jobs (trigger jobs aside) and
// how many schedules each function has, as committed, so that `status`,
// maxqueue and lookups by unique read them without a transaction. Only the
// committer changes them, after each commit.
type counts struct {
	mu        sync.Mutex
	pending   map[string]int
	schedules map[string]int
	// early holds the pending-job deltas of releases that a transaction
	// has applied and handed out (see Store.Fire) but not yet committed:
	// a released job is counted as ready by its taker at once, so it must
	// stop counting as pending at once too, or `status` counts it twice
	// until the sync. The commit moves them into pending; a failure
	// withdraws them.
	early map[string]int
}

// load reads the counts of a freshly opened database: pending jobs from
// their bucket, schedules (few: they are configuration) by counting, but
// for the damaged ones, which go to damaged.
func (c *counts) load(tx *bolt.Tx, damaged damageFunc) error {
	c.pending, c.schedules, c.early = map[string]int{}, map[string]int{}, map[string]int{}
	err := tx.Bucket(bucketCounts).ForEach(func(k, v []byte) error {
		if len(v) == 8 {
			c.pending[countsFunction(k)] = int(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	if err != nil {
		return err
	}
	all, err := allSchedules(tx, damaged)
	for _, sc := range all {
		c.schedules[sc.Function]++
	}
	return err
}

// apply adds the deltas of a committed transaction, and takes back its
// early deltas, which the committed ones now include.
func (c *counts) apply(t *txn) {
	if len(t.pending) == 0 && len(t.schedules) == 0 && len(t.early) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	addCounts(c.pending, t.pending)
	addCounts(c.schedules, t.schedules)
	addEarly(c.early, t.early, -1)
	t.early = nil
}

// releaseEarly shows function's count one pending job smaller before the
// transaction commits (see early).
func (t *txn) releaseEarly(function string) {
	if t.early == nil {
		t.early = map[string]int{}
	}
	t.early[function]--
	c := t.counts
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.early[function]--; c.early[function] == 0 {
		delete(c.early, function)
	}
}

// withdraw takes back the early deltas of a transaction that failed.
func (c *counts) withdraw(t *txn) {
	if len(t.early) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	addEarly(c.early, t.early, -1)
	t.early = nil
}

// addCounts adds deltas to m, dropping the entries that reach 0.
func addCounts(m, deltas map[string]int) {
	for fn, d := range deltas {
		if n := m[fn] + d; n > 0 {
			m[fn] = n
		} else {
			delete(m, fn)
		}
	}
}

// addEarly adds sign times each delta to the early deltas m.
func addEarly(m, deltas map[string]int, sign int) {
	for fn, d := range deltas {
		if n := m[fn] + sign*d; n != 0 {
			m[fn] = n
		} else {
			delete(m, fn)
		}
	}
}

// countsKey is function's key in the counts bucket. bbolt takes no empty
// key, but "" is a valid function name (gearmand serves it), so it is
// stored as a single NUL, which no function name contains: NUL separates
// a packet's arguments, and checkFunction refuses it.
func countsKey(function string) []byte {
	if function == "" {
		return []byte{0}
	}
	return []byte(function)
}

// countsFunction is the function whose counts key is k.
func countsFunction(k []byte) string {
	if len(k) == 1 && k[0] == 0 {
		return ""
	}
	return string(k)
}

// addPending changes function's durable count of pending jobs by delta.
func addPending(t *txn, function string, delta int) error {
	t.pending[function] += delta
	b, key := t.bucket(bucketCounts), countsKey(function)
	var n int64
	if v := b.Get(key); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	n += int64(delta)
	if n <= 0 {
		return b.Delete(key)
	}
	return b.Put(key, binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// PendingCount returns how many jobs of function wait for their due time
// (trigger jobs, the sidecar's own, are not counted).
func (s *Store) PendingCount(function string) int {
	s.counts.mu.Lock()
	defer s.counts.mu.Unlock()
	return max(s.counts.pending[function]+s.counts.early[function], 0)
}

// PendingCounts returns how many jobs wait for their due time, by function.
func (s *Store) PendingCounts() map[string]int {
	s.counts.mu.Lock()
	defer s.counts.mu.Unlock()
	m := maps.Clone(s.counts.pending)
	for fn, d := range s.counts.early {
		if n := m[fn] + d; n > 0 {
			m[fn] = n
		} else {
			delete(m, fn)
		}
	}
	return m
}

// ScheduleCounts returns how many recurring schedules each function has.
func (s *Store) ScheduleCounts() map[string]int { return s.counts.copyOf(s.counts.schedules) }

// copyOf returns a copy of m, one of c's maps.
func (c *counts) copyOf(m map[string]int) map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(m)
}

// Functions returns, sorted, the functions that have pending jobs or
// schedules.
func (s *Store) Functions() []string {
	s.counts.mu.Lock()
	defer s.counts.mu.Unlock()
	fns := make([]string, 0, len(s.counts.pending)+len(s.counts.schedules))
	for fn := range s.counts.pending {
		fns = append(fns, fn)
	}
	for fn := range s.counts.schedules {
		if _, dup := s.counts.pending[fn]; !dup {
			fns = append(fns, fn)
		}
	}
	slices.Sort(fns)
	return fns
}
