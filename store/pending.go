package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"
)

// Kinds of entries in the due index.
const (
	KindJob      byte = 1 // a one-shot job in sched
	KindSchedule byte = 2 // a recurring schedule's next fire
)

// DueItem is one entry of the due index with its record: a one-shot job
// (Job set) or a recurring schedule (Schedule set).
type DueItem struct {
	Due      int64 // unix ns
	ID       uint64
	Job      *Job
	Schedule *Schedule
}

func dueKey(due int64, id uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(max(due, 0)))
	binary.BigEndian.PutUint64(k[8:], id)
	return k
}

func idKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

func uniqKey(function, unique string) []byte {
	return append(append([]byte(function), 0), unique...)
}

// indexed reports whether a unique takes part in coalescing with pending
// jobs and schedules: "-" asks gearmand to coalesce by payload, which is
// done for live jobs only.
func indexed(unique string) bool { return unique != "" && unique != "-" }

// pendingKey is j's key in the unique index. A trigger job's includes its
// upstream, since each server holding epoch jobs for a second gets its own
// trigger; it can never equal a client's key, whose unique has no NUL.
func pendingKey(j *Job) []byte {
	k := uniqKey(j.Function, j.Unique)
	if j.Kind == JobTrigger {
		k = append(append(k, 0), j.Upstream...)
	}
	return k
}

// counted reports whether j counts as a pending job of its function in
// `status`; trigger jobs are the sidecar's own.
func counted(j *Job) bool { return j.Kind != JobTrigger }

// PutPending queues j to wait until j.Due, indexed by due time and by
// (function, unique). If a pending job or schedule holds that key already,
// or request (a client request's idempotency key; may be empty) made a
// record that is still known, nothing is written and the write's Holder
// names that record. A job the store cannot hold (see MaxFunctionSize) is
// refused at once with an error wrapping ErrInvalid.
func (s *Store) PutPending(j *Job, request string) *Write {
	if err := errors.Join(checkJob(j, true), checkRequest(request)); err != nil {
		return doneWrite(err)
	}
	return s.create(j.Function, j.Unique, request, func(t *txn) (Holder, error) {
		return Holder{ID: j.ID, Due: j.Due}, putPending(t, j)
	}, j.ID)
}

// create queues a write that runs put unless a record holds (function,
// unique) or request, and remembers request for the new record id.
func (s *Store) create(function, unique, request string, put func(*txn) (Holder, error), id uint64) *Write {
	w := &Write{}
	return s.queue(op{w: w, fn: func(t *txn) error {
		h, held, err := findHolder(t.tx, function, unique, request)
		if err != nil || held {
			w.holder = h
			return err
		}
		if w.holder, err = put(t); err != nil {
			return err
		}
		w.created = true
		return rememberRequest(t, request, id)
	}}, w)
}

// findHolder returns the record that request made, if it is still known,
// else the pending job or schedule holding (function, unique).
func findHolder(tx *bolt.Tx, function, unique, request string) (Holder, bool, error) {
	if request != "" {
		if h, ok, err := requestHolder(tx, request); err != nil || ok {
			return h, ok, err
		}
	}
	return heldBy(tx, function, unique)
}

// heldBy returns the pending job or schedule that holds (function, unique).
func heldBy(tx *bolt.Tx, function, unique string) (Holder, bool, error) {
	if !indexed(unique) {
		return Holder{}, false, nil
	}
	v := tx.Bucket(bucketUniq).Get(uniqKey(function, unique))
	if len(v) != 8 {
		return Holder{}, false, nil
	}
	return pendingHolder(tx, binary.BigEndian.Uint64(v))
}

// pendingHolder describes record id if it is a pending job or a schedule.
func pendingHolder(tx *bolt.Tx, id uint64) (Holder, bool, error) {
	if v := tx.Bucket(bucketSched).Get(idKey(id)); v != nil {
		j, err := decodeJob(id, v)
		if err != nil {
			return Holder{}, false, fmt.Errorf("store: scheduled job %d: %w", id, err)
		}
		return Holder{ID: id, Due: j.Due}, true, nil
	}
	sc, err := getSchedule(tx, id)
	if err != nil || sc == nil {
		return Holder{}, false, err
	}
	return Holder{ID: id, Due: sc.Next}, true, nil
}

func putPending(t *txn, j *Job) error {
	if err := t.bucket(bucketSched).Put(idKey(j.ID), j.appendTo(nil)); err != nil {
		return err
	}
	if err := t.bucket(bucketDue).Put(dueKey(j.Due, j.ID), []byte{KindJob}); err != nil {
		return err
	}
	if indexed(j.Unique) {
		if err := t.bucket(bucketUniq).Put(pendingKey(j), idKey(j.ID)); err != nil {
			return err
		}
	}
	if !counted(j) {
		return nil
	}
	return addPending(t, j.Function, 1)
}

// removePending deletes a pending job's record and index entries and
// returns the record, or nil if it is not pending.
func removePending(t *txn, id uint64) (*Job, error) {
	v := t.bucket(bucketSched).Get(idKey(id))
	if v == nil {
		return nil, nil
	}
	j, err := decodeJob(id, v)
	if err != nil {
		return nil, fmt.Errorf("store: scheduled job %d: %w", id, err)
	}
	if err := t.bucket(bucketSched).Delete(idKey(id)); err != nil {
		return nil, err
	}
	if err := t.bucket(bucketDue).Delete(dueKey(j.Due, id)); err != nil {
		return nil, err
	}
	if indexed(j.Unique) {
		u := t.bucket(bucketUniq)
		if v := u.Get(pendingKey(j)); len(v) == 8 && binary.BigEndian.Uint64(v) == id {
			if err := u.Delete(pendingKey(j)); err != nil {
				return nil, err
			}
		}
	}
	if !counted(j) {
		return j, nil
	}
	return j, addPending(t, j.Function, -1)
}

// CancelResult says what Cancel did.
type CancelResult uint8

// Results of Cancel.
const (
	NotFound          CancelResult = iota // no pending job or schedule has that id
	CancelledJob                          // a pending job was removed
	CancelledSchedule                     // a schedule was removed
	FileSchedule                          // a schedules-file entry: changed by editing the file, so left alone
)

// Cancel removes pending job or schedule id, in one transaction, and the
// request key that made it.
func (s *Store) Cancel(id uint64) (CancelResult, error) {
	var res CancelResult
	err := s.update(func(t *txn) error {
		res = NotFound
		j, err := removePending(t, id)
		if err != nil {
			return err
		}
		if j != nil {
			res = CancelledJob
			return forgetRequest(t, id)
		}
		sc, err := getSchedule(t.tx, id)
		switch {
		case err != nil || sc == nil:
			return err
		case sc.Source == SourceFile:
			res = FileSchedule
			return nil
		}
		res = CancelledSchedule
		if err := deleteSchedule(t, sc); err != nil {
			return err
		}
		return forgetRequest(t, id)
	}).Wait()
	return res, err
}

// Occurrence is one firing of a recurring schedule: the job it releases
// (nil when the occurrence is skipped) and the schedule as planned after
// it, carrying the generation it was planned from.
type Occurrence struct {
	Job      *Job
	Schedule *Schedule
}

// Fire records a release in one transaction: the pending jobs ids move
// from waiting to ready, and each occurrence's job is stored as ready while
// its schedule advances. Because both happen in one commit, a crash either
// keeps an item waiting or has it ready: it never fires twice.
//
// It returns the jobs it moved and the occurrence jobs it stored. Ids no
// longer pending (cancelled meanwhile) are left out, and so are the
// occurrences of a schedule that was cancelled or changed since it was
// planned: its plan is stale, and the schedule stays as it is now. Each
// job moved or stored gets a run record (see Run) released at at (unix
// ns), in the same commit.
//
// ready, when not nil, is called on the committer with each job as it is
// moved or stored, before the commit is synced: the caller may hand the
// job out at once, a fsync earlier, since the transaction has decided it
// (a cancel applied before finds it gone, one applied after finds it
// ready). If the commit then fails, the job stays waiting and is released
// again: it may run twice, as after a crash. ready may see a job more than
// once, when a failed transaction is applied again; it must only take
// locks that are never held while waiting for the store, and do no I/O.
func (s *Store) Fire(at int64, ids []uint64, occs []Occurrence, ready func(*Job)) (moved, fired []*Job, err error) {
	err = s.update(func(t *txn) error {
		moved, fired = moved[:0], fired[:0]
		jobs := t.bucket(bucketJobs)
		for _, id := range ids {
			j, err := removePending(t, id)
			if err != nil {
				return err
			}
			if j == nil {
				continue
			}
			if err := jobs.Put(idKey(id), j.appendTo(nil)); err != nil {
				return err
			}
			if err := addRun(t, &Run{Item: id, ID: id, Handle: j.Handle, Function: j.Function, Due: j.Due, Released: at}); err != nil {
				return err
			}
			moved = append(moved, j)
			if ready != nil {
				if counted(j) {
					t.releaseEarly(j.Function)
				}
				ready(j)
			}
		}
		advanced := map[*Schedule]bool{}
		for _, o := range occs {
			ok, seen := advanced[o.Schedule]
			if !seen {
				applied, _, err := advanceSchedule(t, o.Schedule)
				if err != nil {
					return err
				}
				ok, advanced[o.Schedule] = applied, applied
			}
			if !ok || o.Job == nil {
				continue
			}
			if err := jobs.Put(idKey(o.Job.ID), o.Job.appendTo(nil)); err != nil {
				return err
			}
			run := &Run{Item: o.Schedule.ID, ID: o.Job.ID, Handle: o.Job.Handle, Function: o.Job.Function,
				Due: o.Job.Due, Released: at}
			if err := addRun(t, run); err != nil {
				return err
			}
			fired = append(fired, o.Job)
			if ready != nil {
				ready(o.Job)
			}
		}
		return nil
	}).Wait()
	return moved, fired, err
}

// Lookup returns the pending job or schedule id, if there is one.
func (s *Store) Lookup(id uint64) (h Holder, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) (err error) {
		h, ok, err = pendingHolder(tx, id)
		return err
	})
	return h, ok, err
}

// FindUnique returns the pending job or schedule whose unique is unique,
// whatever its function: GET_STATUS_UNIQUE names none. It looks under each
// function that has pending jobs or schedules.
func (s *Store) FindUnique(unique string) (h Holder, ok bool, err error) {
	if !indexed(unique) {
		return Holder{}, false, nil
	}
	fns := s.Functions()
	err = s.view(func(tx *bolt.Tx) (err error) {
		for _, fn := range fns {
			if h, ok, err = heldBy(tx, fn, unique); err != nil || ok {
				return err
			}
		}
		return nil
	})
	return h, ok, err
}

// Scheduled returns the pending job with that id, or nil.
func (s *Store) Scheduled(id uint64) (*Job, error) {
	var j *Job
	err := s.view(func(tx *bolt.Tx) (err error) {
		if v := tx.Bucket(bucketSched).Get(idKey(id)); v != nil {
			j, err = decodeJob(id, v)
		}
		return err
	})
	return j, err
}

// NextDue returns the earliest due time in the index, passing over the
// entries whose record a read found damaged: they never fall due, or the
// scheduler would wake for them again and again.
func (s *Store) NextDue() (due int64, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) == 16 && !s.badDueKey(k) {
				due, ok = int64(binary.BigEndian.Uint64(k)), true
				return nil
			}
		}
		return nil
	})
	return due, ok, err
}

// DueItems returns up to max entries of the due index from the earliest,
// with due <= until, and their records: a cursor seek, never a scan of the
// pending set.
func (s *Store) DueItems(until int64, max int) ([]DueItem, error) {
	return s.dueItems(-1, 0, until, max)
}

// ForEachDue calls fn for every entry of the due index in due order, in
// pages so that no read transaction stays open long; fn returns false to
// stop.
func (s *Store) ForEachDue(fn func(DueItem) bool) error {
	var after int64 = -1
	var afterID uint64
	for {
		items, err := s.dueItems(after, afterID, math.MaxInt64, 1000)
		if err != nil || len(items) == 0 {
			return err
		}
		for _, it := range items {
			if !fn(it) {
				return nil
			}
		}
		last := items[len(items)-1]
		after, afterID = last.Due, last.ID
	}
}

// dueItems returns up to max entries strictly after (due, id), from the
// start when due < 0, with due <= until. An entry whose record is damaged
// or missing is logged and passed over (see NextDue); it does not count
// towards max, so fewer than max items means the range is exhausted.
func (s *Store) dueItems(due int64, id uint64, until int64, max int) ([]DueItem, error) {
	var items []DueItem
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		var k, v []byte
		if due < 0 {
			k, v = c.First()
		} else {
			k, v = seekAfter(c, due, id)
		}
		for ; k != nil && len(items) < max; k, v = c.Next() {
			if len(k) == 16 && int64(binary.BigEndian.Uint64(k)) > until {
				break
			}
			it, ok, err := s.dueEntry(tx, k, v)
			if err != nil {
				return err
			}
			if ok {
				items = append(items, it)
			}
		}
		return nil
	})
	return items, err
}

// dueEntry reads the record of one entry of the due index. ok is false for
// an entry that reads pass over: a malformed key, or a damaged record,
// which is reported and remembered.
func (s *Store) dueEntry(tx *bolt.Tx, k, v []byte) (it DueItem, ok bool, err error) {
	if len(k) != 16 {
		s.damaged(string(bucketDue), k, errCorrupt)
		return it, false, nil
	}
	it, err = loadItem(tx, int64(binary.BigEndian.Uint64(k)), binary.BigEndian.Uint64(k[8:]), v)
	if errors.Is(err, ErrDamaged) {
		s.markBadDue(k)
		s.damaged(string(bucketDue), k, err)
		return it, false, nil
	}
	return it, err == nil, err
}

// seekAfter moves c to the first entry of the due index after (due, id).
func seekAfter(c *bolt.Cursor, due int64, id uint64) (k, v []byte) {
	start := dueKey(due, id)
	if k, v = c.Seek(start); string(k) == string(start) {
		k, v = c.Next()
	}
	return k, v
}

func loadItem(tx *bolt.Tx, due int64, id uint64, kind []byte) (DueItem, error) {
	it := DueItem{Due: due, ID: id}
	if len(kind) != 1 {
		return it, fmt.Errorf("store: due entry %d: %w", id, errCorrupt)
	}
	var err error
	switch kind[0] {
	case KindJob:
		v := tx.Bucket(bucketSched).Get(idKey(id))
		if v == nil {
			return it, fmt.Errorf("store: due entry %d without its job: %w", id, errCorrupt)
		}
		it.Job, err = decodeJob(id, v)
	case KindSchedule:
		it.Schedule, err = getSchedule(tx, id)
		if err == nil && it.Schedule == nil {
			err = fmt.Errorf("store: due entry %d without its schedule: %w", id, errCorrupt)
		}
	default:
		err = fmt.Errorf("store: due entry %d of kind %d: %w", id, kind[0], errCorrupt)
	}
	return it, err
}
