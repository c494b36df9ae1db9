package store

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// Request keys make a client's request idempotent: the sidecar's control
// function is run again by gearmand when its worker's connection drops
// before the result, and the second run must find what the first made. A
// key lives as long as its record is known: while the job is pending or
// the schedule exists, and, once the job was forwarded, as long as the
// fire ledger remembers it.

// rememberRequest records that request made record id; an empty request is
// no request.
func rememberRequest(t *txn, request string, id uint64) error {
	if request == "" {
		return nil
	}
	if err := t.bucket(bucketRequests).Put([]byte(request), idKey(id)); err != nil {
		return err
	}
	return t.bucket(bucketRequestOf).Put(idKey(id), []byte(request))
}

// forgetRequest removes the request key of record id, if it has one.
func forgetRequest(t *txn, id uint64) error {
	of := t.bucket(bucketRequestOf)
	key := of.Get(idKey(id))
	if key == nil {
		return nil
	}
	if err := t.bucket(bucketRequests).Delete(key); err != nil {
		return err
	}
	return of.Delete(idKey(id))
}

// requestHolder returns the record request made, while it is known: a
// pending job, a schedule, or a job the fire ledger remembers.
func requestHolder(tx *bolt.Tx, request string) (Holder, bool, error) {
	v := tx.Bucket(bucketRequests).Get([]byte(request))
	if len(v) != 8 {
		return Holder{}, false, nil
	}
	id := binary.BigEndian.Uint64(v)
	if h, ok, err := pendingHolder(tx, id); err != nil || ok {
		return h, ok, err
	}
	if rec := tx.Bucket(bucketFired).Get(idKey(id)); rec != nil {
		f, err := decodeFired(id, rec)
		if err != nil {
			return Holder{}, false, err
		}
		return Holder{ID: id, Due: f.Due}, true, nil
	}
	return Holder{}, false, nil
}
