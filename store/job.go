package store

import (
	"encoding/binary"
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

	// The fields below are used by the sidecar only; a job with Kind
	// JobPlain and no Upstream encodes exactly as before they existed.

	// Kind says what the sidecar does with the job when it is due.
	Kind uint8
	// When is a passthrough job's own time (unix seconds), forwarded as
	// SUBMIT_JOB_EPOCH's argument while the job itself is due at once.
	When int64
	// Upstream pins a trigger job to the server that holds its epoch jobs.
	Upstream string
	// Watch lists the upstream handles of the epoch jobs a trigger job
	// wakes, so it can be cancelled once they were taken.
	Watch []string
}

// Kinds of job for the sidecar.
const (
	JobPlain       uint8 = 0 // submitted upstream as a background job when due
	JobPassthrough uint8 = 1 // forwarded upstream as SUBMIT_JOB_EPOCH at once
	JobTrigger     uint8 = 2 // a trigger job that wakes upstream epoch jobs
)

// Record versions: 2 adds the sidecar trailer, so that a binary that
// predates it refuses such a record instead of running a trigger job as a
// job; plain jobs stay version 1. The recordSealed bit marks a record that
// ends with a seal (see seal); binaries that predate seals refuse them the
// same way, and records written before them still decode, unchecked.
const (
	recordVersion        = 1
	recordVersionTrailer = 2
	recordSealed         = 0x80
)

func (j *Job) encodedSize() int {
	n := 1 + 1 + binary.MaxVarintLen64
	for _, s := range []int{len(j.Handle), len(j.Function), len(j.Unique), len(j.Reducer), len(j.Data), len(j.Upstream)} {
		n += binary.MaxVarintLen64 + s
	}
	for _, w := range j.Watch {
		n += binary.MaxVarintLen64 + len(w)
	}
	return n + 1 + 2*binary.MaxVarintLen64 + sealSize
}

// appendTo appends j's encoding: version, priority, when, then the handle,
// function, unique, reducer and data, each prefixed by its length, the
// sidecar trailer if any, and the seal.
func (j *Job) appendTo(b []byte) []byte {
	start := len(b)
	version := byte(recordVersion)
	if j.hasTrailer() {
		version = recordVersionTrailer
	}
	b = append(b, version|recordSealed, j.Priority)
	b = binary.AppendVarint(b, j.Due)
	for _, s := range []string{j.Handle, j.Function, j.Unique, j.Reducer} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(j.Data)))
	b = append(b, j.Data...)
	if !j.hasTrailer() {
		return seal(b, start)
	}
	// Sidecar trailer: kind, when, upstream, then the watched handles.
	b = append(b, j.Kind)
	b = binary.AppendVarint(b, j.When)
	b = binary.AppendUvarint(b, uint64(len(j.Upstream)))
	b = append(b, j.Upstream...)
	b = binary.AppendUvarint(b, uint64(len(j.Watch)))
	for _, w := range j.Watch {
		b = binary.AppendUvarint(b, uint64(len(w)))
		b = append(b, w...)
	}
	return seal(b, start)
}

func (j *Job) hasTrailer() bool {
	return j.Kind != JobPlain || j.Upstream != "" || j.When != 0 || len(j.Watch) > 0
}

// readBytes reads one length-prefixed field.
func readBytes(b []byte) (field, rest []byte, ok bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return nil, b, false
	}
	return b[n : n+int(l)], b[n+int(l):], true
}

// decodeTrailer reads the sidecar fields after the data.
func (j *Job) decodeTrailer(b []byte) error {
	j.Kind = b[0]
	when, n := binary.Varint(b[1:])
	if n <= 0 {
		return errCorrupt
	}
	j.When, b = when, b[1+n:]
	up, b, ok := readBytes(b)
	if !ok {
		return errCorrupt
	}
	j.Upstream = string(up)
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) {
		return errCorrupt
	}
	b = b[n:]
	j.Watch = make([]string, 0, count)
	for range count {
		var w []byte
		if w, b, ok = readBytes(b); !ok {
			return errCorrupt
		}
		j.Watch = append(j.Watch, string(w))
	}
	if len(b) != 0 {
		return errCorrupt
	}
	return nil
}

func decodeJob(id uint64, b []byte) (*Job, error) {
	if len(b) == 0 {
		return nil, errCorrupt
	}
	version := b[0]
	if version&recordSealed != 0 {
		var err error
		if b, err = unseal(b); err != nil {
			return nil, err
		}
		version &^= recordSealed
	}
	if len(b) < 2 || (version != recordVersion && version != recordVersionTrailer) {
		return nil, errCorrupt
	}
	trailer := version == recordVersionTrailer
	j := &Job{ID: id, Priority: b[1]}
	b = b[2:]
	due, n := binary.Varint(b)
	if n <= 0 {
		return nil, errCorrupt
	}
	j.Due, b = due, b[n:]
	var fields [5][]byte
	for i := range fields {
		var ok bool
		if fields[i], b, ok = readBytes(b); !ok {
			return nil, errCorrupt
		}
	}
	j.Handle, j.Function, j.Unique, j.Reducer = string(fields[0]), string(fields[1]), string(fields[2]), string(fields[3])
	j.Data = append([]byte(nil), fields[4]...)
	switch {
	case trailer && len(b) > 0:
		if err := j.decodeTrailer(b); err != nil {
			return nil, err
		}
	case len(b) > 0:
		return nil, errCorrupt
	}
	return j, nil
}

// Jobs calls fn for every job that is ready to run (not waiting for its
// due time) in ID order, which is submission order. It reads one consistent
// snapshot; fn must not write to the store.
//
// A damaged record (one that does not decode or fails its seal, or has a
// priority no job has) is logged and skipped rather than failing the
// whole read: refusing to start would hold up every other job for one,
// and the record stays in the file for `gearsched salvage` to report. It
// is never handed to fn, so it cannot run as another job. A damaged page
// that bbolt cannot walk fails the read with ErrDamaged: what is behind it
// is unknown.
func (s *Store) Jobs(fn func(*Job) error) error {
	return s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				s.damaged(string(bucketJobs), k, errCorrupt)
				return nil
			}
			j, err := decodeJob(binary.BigEndian.Uint64(k), v)
			if err == nil && j.Priority > 2 {
				err = fmt.Errorf("priority %d: %w", j.Priority, errCorrupt)
			}
			if err != nil {
				s.damaged(string(bucketJobs), k, err)
				return nil
			}
			return fn(j)
		})
	})
}
