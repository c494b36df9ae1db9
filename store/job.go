package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Job is the durable record of a background job: everything needed to
// requeue it after a restart under its original handle.
type Job struct {
	ID       uint64 // allocated by ReserveIDs; orders jobs by submission
	Handle   string
	Function string
	Unique   string
	Reducer  string
	Priority uint8 // 0 = HIGH, 1 = NORMAL, 2 = LOW
	Due      int64 // unix nanoseconds it runs at; 0 = at once
	Data     []byte
}

const recordVersion = 1

var errCorrupt = errors.New("store: corrupt job record")

func (j *Job) encodedSize() int {
	n := 1 + 1 + binary.MaxVarintLen64
	for _, s := range []int{len(j.Handle), len(j.Function), len(j.Unique), len(j.Reducer), len(j.Data)} {
		n += binary.MaxVarintLen64 + s
	}
	return n
}

// appendTo appends j's encoding: version, priority, when, then the handle,
// function, unique, reducer and data, each prefixed by its length.
func (j *Job) appendTo(b []byte) []byte {
	b = append(b, recordVersion, j.Priority)
	b = binary.AppendVarint(b, j.Due)
	for _, s := range []string{j.Handle, j.Function, j.Unique, j.Reducer} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(j.Data)))
	return append(b, j.Data...)
}

func decodeJob(id uint64, b []byte) (*Job, error) {
	if len(b) < 2 || b[0] != recordVersion {
		return nil, errCorrupt
	}
	j := &Job{ID: id, Priority: b[1]}
	b = b[2:]
	due, n := binary.Varint(b)
	if n <= 0 {
		return nil, errCorrupt
	}
	j.Due, b = due, b[n:]
	var fields [5][]byte
	for i := range fields {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return nil, errCorrupt
		}
		fields[i], b = b[n:n+int(l)], b[n+int(l):]
	}
	j.Handle, j.Function, j.Unique, j.Reducer = string(fields[0]), string(fields[1]), string(fields[2]), string(fields[3])
	j.Data = append([]byte(nil), fields[4]...)
	return j, nil
}

// Jobs calls fn for every job that is ready to run (not waiting for its
// due time) in ID order, which is submission order. It reads one consistent
// snapshot; fn must not write to the store.
func (s *Store) Jobs(fn func(*Job) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("store: job key of %d bytes: %w", len(k), errCorrupt)
			}
			id := binary.BigEndian.Uint64(k)
			j, err := decodeJob(id, v)
			if err != nil {
				return fmt.Errorf("store: job %d: %w", id, err)
			}
			return fn(j)
		})
	})
}

// ReserveIDs durably reserves n job IDs and returns the first. IDs start at
// 1 and are never handed out twice, across restarts too, so a handle never
// names two jobs (gearmand restarts its counter at 1).
func (s *Store) ReserveIDs(n uint64) (first uint64, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		first = 1
		if v := meta.Get(keyNextID); len(v) == 8 {
			first = binary.BigEndian.Uint64(v)
		}
		// Never hand out an ID at or below one already stored.
		for _, b := range [][]byte{bucketJobs, bucketSched, bucketSchedules} {
			if k, _ := tx.Bucket(b).Cursor().Last(); len(k) == 8 {
				first = max(first, binary.BigEndian.Uint64(k)+1)
			}
		}
		return meta.Put(keyNextID, binary.BigEndian.AppendUint64(nil, first+n))
	})
	if err != nil {
		return 0, fmt.Errorf("store: reserve %d job ids: %w", n, err)
	}
	return first, nil
}
