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
			if k := lastKey(t.bucket(b)); len(k) == 8 {
				first = max(first, binary.BigEndian.Uint64(k)+1)
			}
		}
		r.first = first
		return meta.Put(keyNextID, binary.BigEndian.AppendUint64(nil, first+n))
	})
	return r
}

// lastKey returns the last key of an id-keyed bucket. It does not call
// Cursor.Last, which in bbolt 1.5 loops forever on a bucket of several
// pages whose every key was deleted earlier in the same transaction (its
// leaves stay empty until the commit rebalances them): the committer, and
// every write, would hang. A seek past the largest id and a step back do
// not loop; on such a bucket they may find nothing, which is right, or
// miss a key, which the stored high-water mark covers.
func lastKey(b bucket) []byte {
	c := b.Cursor()
	if k, _ := c.Seek([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}); k != nil {
		return k
	}
	k, _ := c.Prev()
	return k
}
