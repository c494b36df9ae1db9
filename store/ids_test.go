package store

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestReserveIDsAfterEmptyingABucket: a transaction that deletes every
// record of a bucket spanning many pages, then reserves ids, commits.
// bbolt 1.5's Cursor.Last loops forever on such a bucket (its every leaf
// is empty until the commit rebalances it), which would hang the
// committer, and every write with it.
func TestReserveIDsAfterEmptyingABucket(t *testing.T) {
	var armed atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	s, _ := openTemp(t, Options{NoSync: true, BeforeCommit: func() error {
		if armed.CompareAndSwap(true, false) {
			close(entered)
			<-release
		}
		return nil
	}})
	const n = 3000 // tens of leaf pages
	var last *Write
	for id := uint64(1); id <= n; id++ {
		last = s.Put(&Job{ID: id, Function: "f", Data: []byte("payload")})
	}
	waitBatch(t, last)
	// Hold the committer in one commit, so that the deletes and the
	// reservation queued meanwhile share the next transaction.
	armed.Store(true)
	held := s.ReserveIDs(1)
	<-entered
	for id := uint64(1); id <= n; id++ {
		s.Delete(id)
	}
	r := s.ReserveIDs(1)
	close(release)
	waitBatch(t, held.w)
	select {
	case <-r.w.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the commit that emptied the jobs bucket and reserved ids never finished")
	}
	if first, err := r.Wait(); err != nil || first <= n {
		t.Errorf("reserved id %d, %v; want one above %d", first, err, n)
	}
}
