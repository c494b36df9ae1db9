package store

import (
	"encoding/binary"
	"fmt"
)

// keyNextID is the meta key of the job-id high-water mark.
var keyNextID = []byte("next_id")

// Reservation is a block of job ids being reserved durably.
type Reservation struct {
	w     *Write
	first uint64 // set by the committer
}

// Wait blocks until the block is durable and returns its first id.
func (r *Reservation) Wait() (first uint64, err error) {
	if err := r.w.Wait(); err != nil {
		return 0, fmt.Errorf("store: reserve job ids: %w", err)
	}
	return r.first, nil
}

// Ready reports whether Wait would return at once.
func (r *Reservation) Ready() bool {
	select {
	case <-r.w.Done():
		return true
	default:
		return false
	}
}

// ReserveIDs queues the durable reservation of n job ids. IDs start at 1
// and are never handed out twice, across restarts too, so a handle never
// names two jobs (gearmand restarts its counter at 1). The reservation
// joins the next group commit, so it costs no fsync of its own.
func (s *Store) ReserveIDs(n uint64) *Reservation {
	r := &Reservation{}
	r.w = s.update(func(t *txn) error {
		meta := t.bucket(bucketMeta)
		first := uint64(1)
		if v := meta.Get(keyNextID); len(v) == 8 {
			first = binary.BigEndian.Uint64(v)
		}
		// Never hand out an ID at or below one already stored.
		for _, b := range [][]byte{bucketJobs, bucketSched, bucketSchedules} {
			if k, _ := t.bucket(b).Cursor().Last(); len(k) == 8 {
				first = max(first, binary.BigEndian.Uint64(k)+1)
			}
		}
		r.first = first
		return meta.Put(keyNextID, binary.BigEndian.AppendUint64(nil, first+n))
	})
	return r
}
