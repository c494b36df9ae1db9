package store

import "errors"

// Another store (package pgstore) answers its writes and id reservations
// with this package's Write and Reservation, so that the job server, the
// sidecar and the scheduler take either store through one interface. It
// completes them itself, once what they wrote is committed or failed.

// NewWrite returns a write that is not done yet, and the function that
// completes it, to be called once: created says whether the write stored
// its record, holder names the record that holds its key (the one
// created, or the one found), err is its failure (nil: it is durable).
func NewWrite() (*Write, func(created bool, holder Holder, err error)) {
	w := &Write{b: newBatch()}
	return w, func(created bool, holder Holder, err error) {
		w.created, w.holder, w.err = created, holder, err
		close(w.b.done)
	}
}

// NewReservation returns a reservation of job ids that is not done yet,
// and the function that completes it, to be called once with the first id
// of the block reserved, or with the error that kept it from being
// reserved.
func NewReservation() (*Reservation, func(first uint64, err error)) {
	w, done := NewWrite()
	r := &Reservation{w: w}
	return r, func(first uint64, err error) {
		r.first = first
		done(false, Holder{}, err)
	}
}

// CheckPending refuses, with an error wrapping ErrInvalid, a pending job
// or request key this store could not hold: another store applies the
// same limits, so that a job is accepted or refused alike on either.
func CheckPending(j *Job, request string) error {
	return errors.Join(checkJob(j, true), checkRequest(request))
}

// CheckSchedule refuses, with an error wrapping ErrInvalid, a schedule or
// request key this store could not hold (see CheckPending).
func CheckSchedule(sc *Schedule, request string) error {
	return errors.Join(checkSchedule(sc), checkRequest(request))
}

// NextGen is the generation of definition sc written over old (nil: a new
// schedule), by the rule of this store's writes: a new schedule starts at
// 1, and a change of when it fires moves to the next generation, so that
// advances planned before it are refused.
func NextGen(old, sc *Schedule) uint64 {
	switch {
	case old == nil:
		return 1
	case timingOf(old) != timingOf(sc):
		return old.Gen + 1
	}
	return old.Gen
}

// Advanced is cur with plan's timing state (the firing path's advance),
// its definition kept; ok is false when plan is stale (cur's generation
// moved on since the plan was made). See Forwarded.
func Advanced(cur, plan *Schedule) (adv Schedule, ok bool) {
	if cur.Gen != plan.Gen {
		return Schedule{}, false
	}
	adv = *cur
	adv.Next, adv.FireAt, adv.Last, adv.LastHandle = plan.Next, plan.FireAt, plan.Last, plan.LastHandle
	adv.Enabled = cur.Enabled && plan.Enabled // a spec that no longer parses is disabled
	return adv, true
}
