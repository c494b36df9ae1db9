package store

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// DueCursor is a position in the due index: the entry (Due, ID) a listing
// stopped at. The zero DueCursor is the start of the index (ids start at
// 1, so no entry is (0, 0)).
type DueCursor struct {
	Due int64
	ID  uint64
}

// DuePage is one page of ListDue.
type DuePage struct {
	Items []DueItem
	// Next is where the following page starts, valid when More is set.
	Next DueCursor
	// More reports that the index has entries after Next.
	More bool
	// Scanned is how many index entries the page read, matching or not.
	Scanned int
}

// ListDue returns the pending jobs and active schedules after from, in due
// order: up to limit items for which match reports true (all when match
// is nil), reading at most scan entries of the index. It is a cursor seek
// and a walk of the page, never a scan of the pending set, so a page
// costs the same with ten million pending as with ten; a filter that
// matches rarely ends the page after scan entries with More set, so one
// page never walks the whole index either.
//
// Each entry read loads its record, since the index is keyed by time
// alone: a filter costs one record lookup per entry it passes over.
func (s *Store) ListDue(from DueCursor, limit, scan int, match func(*DueItem) bool) (DuePage, error) {
	var p DuePage
	err := s.view(func(tx *bolt.Tx) error {
		p = DuePage{}
		c := tx.Bucket(bucketDue).Cursor()
		var k, v []byte
		if from == (DueCursor{}) {
			k, v = c.First()
		} else {
			k, v = seekAfter(c, from.Due, from.ID)
		}
		for ; k != nil && len(p.Items) < limit && p.Scanned < scan; k, v = c.Next() {
			p.Scanned++
			if len(k) == 16 {
				p.Next = DueCursor{Due: int64(binary.BigEndian.Uint64(k)), ID: binary.BigEndian.Uint64(k[8:])}
			}
			// Listed as the scheduler reads: past a damaged record.
			it, ok, err := s.dueEntry(tx, k, v)
			if err != nil {
				return err
			}
			if ok && (match == nil || match(&it)) {
				p.Items = append(p.Items, it)
			}
		}
		p.More = k != nil
		return nil
	})
	return p, err
}
