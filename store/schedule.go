package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Sources of schedules.
const (
	SourceProtocol = "protocol" // SUBMIT_JOB_SCHED
	SourceFile     = "file"     // the schedules file, keyed by Name
	SourceControl  = "control"  // the sidecar's control function
)

// Schedule is a recurring schedule from one of the Sources. Schedules not
// from the file are indexed by (function, unique) like pending jobs.
//
// Its fields have two owners. The definition (everything down to Created)
// is written by whoever made the schedule: SUBMIT_JOB_SCHED, the control
// function, the schedules file. The timing state (Next, Last, LastHandle,
// FireAt) is advanced by the firing path. Gen counts the definition writes
// that change when the schedule fires; an advance planned from an older
// Gen is refused (see Fire and Forwarded).
type Schedule struct {
	ID       uint64 `json:"id"`
	Handle   string `json:"handle"`
	Name     string `json:"name,omitempty"`
	Source   string `json:"source"`
	Spec     string `json:"spec"`
	Zone     string `json:"zone"`
	Function string `json:"function"`
	Unique   string `json:"unique,omitempty"`
	Data     []byte `json:"data,omitempty"`
	Priority uint8  `json:"priority"`

	Missed    string `json:"missed"`      // skip, once or all
	MissedCap int    `json:"missed_cap"`  // with all: at most this many
	CatchUp   int64  `json:"catch_up_ns"` // missed runs older than this are dropped
	Overlap   string `json:"overlap"`     // allow or skip
	Jitter    int64  `json:"jitter_ns"`   // delay-only, deterministic
	Enabled   bool   `json:"enabled"`
	// Paused keeps the schedule's place (Next) but fires nothing, until
	// it is resumed; see SetPaused.
	Paused bool `json:"paused,omitempty"`
	// ResumedAt is when it was last resumed (unix ns): its occurrences due
	// before then fell in the pause, and its missed-run policy decides
	// which of them run.
	ResumedAt int64 `json:"resumed_ns,omitempty"`
	Created   int64 `json:"created_ns"`

	Gen uint64 `json:"gen"`

	Next       int64  `json:"next_ns"` // nominal next occurrence; 0 = none
	Last       int64  `json:"last_ns"` // last occurrence fired or skipped
	LastHandle string `json:"last_handle,omitempty"`
	// FireAt is Next plus jitter: the key in the due index.
	FireAt int64 `json:"fire_at_ns"`
}

// timingOf is what decides when a schedule fires.
func timingOf(sc *Schedule) [7]any {
	return [7]any{sc.Spec, sc.Zone, sc.Jitter, sc.Enabled, sc.Paused, sc.Next, sc.FireAt}
}

// Active reports whether the schedule fires: enabled, not paused, with a
// next run. Only active schedules are in the due index.
func (sc *Schedule) Active() bool { return sc.Enabled && !sc.Paused && sc.Next > 0 }

// encodeSchedule is sc's record: its JSON, then a NUL and the seal of the
// JSON. JSON never holds a raw NUL, so the NUL tells a sealed record from
// one written before seals, which is the JSON alone.
func encodeSchedule(sc *Schedule) ([]byte, error) {
	v, err := json.Marshal(sc)
	if err != nil {
		return nil, err
	}
	return seal(append(v, 0), 0), nil
}

// decodeSchedule reads the record of schedule id.
func decodeSchedule(id uint64, v []byte) (*Schedule, error) {
	if n := len(v) - sealSize - 1; n >= 0 && v[n] == 0 {
		body, err := unseal(v)
		if err != nil {
			return nil, fmt.Errorf("store: schedule %d: %w", id, err)
		}
		v = body[:n]
	}
	sc := new(Schedule)
	if err := json.Unmarshal(v, sc); err != nil {
		return nil, fmt.Errorf("store: schedule %d: %w: %w", id, err, errCorrupt)
	}
	if sc.ID != id {
		return nil, fmt.Errorf("store: schedule %d holds the record of %d: %w", id, sc.ID, errCorrupt)
	}
	return sc, nil
}

func getSchedule(tx *bolt.Tx, id uint64) (*Schedule, error) {
	v := tx.Bucket(bucketSchedules).Get(idKey(id))
	if v == nil {
		return nil, nil
	}
	return decodeSchedule(id, v)
}

// putSchedule writes sc and keeps its due entry, unique entry and count
// in step with the version it replaces.
func putSchedule(t *txn, sc *Schedule) error {
	old, err := getSchedule(t.tx, sc.ID)
	if err != nil {
		return err
	}
	if old == nil {
		t.schedules[sc.Function]++
	} else {
		if err := unindexSchedule(t, old); err != nil {
			return err
		}
		if old.Function != sc.Function {
			t.schedules[old.Function]--
			t.schedules[sc.Function]++
		}
	}
	v, err := encodeSchedule(sc)
	if err != nil {
		return err
	}
	if err := t.bucket(bucketSchedules).Put(idKey(sc.ID), v); err != nil {
		return err
	}
	if sc.Active() {
		if err := t.bucket(bucketDue).Put(dueKey(sc.FireAt, sc.ID), []byte{KindSchedule}); err != nil {
			return err
		}
	}
	if indexed(sc.Unique) && sc.Source != SourceFile {
		return t.bucket(bucketUniq).Put(uniqKey(sc.Function, sc.Unique), idKey(sc.ID))
	}
	return nil
}

func unindexSchedule(t *txn, sc *Schedule) error {
	if sc.Active() {
		if err := t.bucket(bucketDue).Delete(dueKey(sc.FireAt, sc.ID)); err != nil {
			return err
		}
	}
	if indexed(sc.Unique) && sc.Source != SourceFile {
		u := t.bucket(bucketUniq)
		if v := u.Get(uniqKey(sc.Function, sc.Unique)); len(v) == 8 && binary.BigEndian.Uint64(v) == sc.ID {
			return u.Delete(uniqKey(sc.Function, sc.Unique))
		}
	}
	return nil
}

// defineSchedule writes a definition of sc: a new schedule starts at
// generation 1, and a write that changes when an existing one fires moves
// it to the next generation, so that advances planned before it are
// refused.
func defineSchedule(t *txn, sc *Schedule) error {
	old, err := getSchedule(t.tx, sc.ID)
	if err != nil {
		return err
	}
	sc.Gen = NextGen(old, sc)
	return putSchedule(t, sc)
}

// advanceSchedule applies the firing path's plan to the schedule as it is
// now: its timing state moves to the plan's, and the definition stays. It
// is refused (applied false) when the schedule is gone, which gone
// reports, or when its generation moved on since the plan was made.
func advanceSchedule(t *txn, plan *Schedule) (applied, gone bool, err error) {
	cur, err := getSchedule(t.tx, plan.ID)
	if err != nil || cur == nil {
		return false, cur == nil, err
	}
	adv, ok := Advanced(cur, plan)
	if !ok {
		return false, false, nil
	}
	return true, false, putSchedule(t, &adv)
}

func deleteSchedule(t *txn, sc *Schedule) error {
	if err := unindexSchedule(t, sc); err != nil {
		return err
	}
	if err := removeRunsOf(t, sc.ID); err != nil {
		return err
	}
	t.schedules[sc.Function]--
	return t.bucket(bucketSchedules).Delete(idKey(sc.ID))
}

// PutSchedule stores a new schedule unless a pending job or schedule holds
// its (function, unique), or request (a client request's idempotency key;
// may be empty) made a record that is still known: then nothing is written
// and the write's Holder names that record. A schedule the store cannot
// hold (see MaxFunctionSize) is refused at once with an error wrapping
// ErrInvalid.
func (s *Store) PutSchedule(sc *Schedule, request string) *Write {
	if err := errors.Join(checkSchedule(sc), checkRequest(request)); err != nil {
		return doneWrite(err)
	}
	return s.create(sc.Function, sc.Unique, request, func(t *txn) (Holder, error) {
		return Holder{ID: sc.ID, Due: sc.Next}, defineSchedule(t, sc)
	}, sc.ID)
}

// ScheduleEditor is a view of the schedules inside one write
// transaction, in which the schedules file is applied (see EditSchedules):
// what it reads cannot change before what it writes is committed. Each
// store has its own; *ScheduleEdit is this one's.
type ScheduleEditor interface {
	// Schedules returns every schedule, in id order, as it is in this
	// transaction.
	Schedules() ([]*Schedule, error)
	// Put writes a definition of a schedule, new or replacing the one
	// with its id (see ScheduleEdit.Put).
	Put(sc *Schedule) error
	// Delete removes schedule id, if there is one.
	Delete(id uint64) error
}

// ScheduleEdit is a view of the schedules inside one write transaction;
// see EditSchedules.
type ScheduleEdit struct{ t *txn }

// Schedules returns every schedule, in id order, as it is in this
// transaction.
func (e *ScheduleEdit) Schedules() ([]*Schedule, error) { return allSchedules(e.t.tx, e.t.damaged) }

// Put writes a definition of sc, new or replacing the one with its id. A
// change of when it fires (spec, zone, jitter, enabled, next run) moves it
// to a new generation. A schedule the store cannot hold is refused with an
// error wrapping ErrInvalid, and nothing is written.
func (e *ScheduleEdit) Put(sc *Schedule) error {
	if err := checkSchedule(sc); err != nil {
		return err
	}
	return defineSchedule(e.t, sc)
}

// Delete removes schedule id, if there is one.
func (e *ScheduleEdit) Delete(id uint64) error {
	sc, err := getSchedule(e.t.tx, id)
	if err != nil || sc == nil {
		return err
	}
	if err := deleteSchedule(e.t, sc); err != nil {
		return err
	}
	return forgetRequest(e.t, id)
}

// EditSchedules runs fn in one write transaction, with the schedules as
// they are then, and commits what it puts and deletes together: nothing
// can change a schedule between fn reading it and fn's writes. fn runs on
// the committer, so it must only compute: no I/O, no waiting on the store.
// It may run more than once, in transactions that roll back (see update),
// so it sets what it captures afresh each time.
func (s *Store) EditSchedules(fn func(ScheduleEditor) error) error {
	return s.update(func(t *txn) error { return fn(&ScheduleEdit{t: t}) }).Wait()
}

// GetSchedule returns the schedule with that id, or nil.
func (s *Store) GetSchedule(id uint64) (*Schedule, error) {
	var sc *Schedule
	err := s.view(func(tx *bolt.Tx) (err error) {
		sc, err = getSchedule(tx, id)
		return err
	})
	return sc, err
}

// Schedules returns every recurring schedule, in id order. Schedules are
// few (they are configuration, not jobs), so they are read whole.
// A damaged schedule is left out, and logged.
func (s *Store) Schedules() ([]*Schedule, error) {
	var all []*Schedule
	err := s.view(func(tx *bolt.Tx) (err error) {
		all, err = allSchedules(tx, s.damaged)
		return err
	})
	return all, err
}

// allSchedules reads every schedule but the damaged ones, which go to
// damaged.
func allSchedules(tx *bolt.Tx, damaged damageFunc) ([]*Schedule, error) {
	var all []*Schedule
	err := tx.Bucket(bucketSchedules).ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			damaged(string(bucketSchedules), k, errCorrupt)
			return nil
		}
		sc, err := decodeSchedule(binary.BigEndian.Uint64(k), v)
		if err != nil {
			damaged(string(bucketSchedules), k, err)
			return nil
		}
		all = append(all, sc)
		return nil
	})
	return all, err
}

// PauseResult says what SetPaused found.
type PauseResult uint8

// Results of SetPaused.
const (
	PauseNotFound PauseResult = iota // no schedule or pending job has that id
	PauseDone                        // the schedule is paused or resumed now (or was already)
	PauseJob                         // a pending one-shot job: only schedules pause
)

// SetPaused pauses or resumes schedule id in one transaction and returns
// it as it is then. A paused schedule keeps its next run but leaves the
// due index, so it fires nothing; resuming puts it back and sets
// ResumedAt to now (unix ns), so that the occurrences that fell due
// meanwhile count as missed. Either is a change of definition: the
// schedule moves to a new generation, so an advance planned before it
// (a firing in flight) is refused. Pausing a paused schedule, or resuming
// an active one, changes nothing.
func (s *Store) SetPaused(id uint64, paused bool, now int64) (PauseResult, *Schedule, error) {
	var res PauseResult
	var out *Schedule
	err := s.update(func(t *txn) error {
		res, out = PauseNotFound, nil
		sc, err := getSchedule(t.tx, id)
		switch {
		case err != nil:
			return err
		case sc == nil:
			if t.bucket(bucketSched).Get(idKey(id)) != nil {
				res = PauseJob
			}
			return nil
		}
		res, out = PauseDone, sc
		if sc.Paused == paused {
			return nil
		}
		sc.Paused = paused
		if !paused {
			sc.ResumedAt = now
		}
		return defineSchedule(t, sc)
	}).Wait()
	return res, out, err
}
