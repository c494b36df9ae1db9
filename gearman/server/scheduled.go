package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
)

// Defaults of schedules made by SUBMIT_JOB_SCHED, which carries no policy.
const (
	schedMissed  = scheduler.MissedOnce
	schedCatchUp = time.Hour
)

// errDraining refuses releases while the server shuts down; the
// scheduler offers them again after the restart.
var errDraining = errors.New("server: server is shutting down")

// submitSched turns SUBMIT_JOB_SCHED into a recurring schedule evaluated
// in the server's schedule zone. Its occurrences are NORMAL background
// jobs with the schedule's function and data.
func (s *Server) submitSched(c *conn, p *gearman.Packet) {
	fnName, unique, data := string(p.Args[0]), string(p.Args[1]), p.Args[7]
	if len(fnName) > store.MaxFunctionSize {
		c.replyError(gearman.CodeArgumentTooLarge, txtFunctionTooLarge)
		return
	}
	if len(unique) > gearman.MaxUniqueSize {
		c.replyError(gearman.CodeArgumentTooLarge, txtUniqueTooLarge)
		return
	}
	spec, err := scheduler.SchedSpec(scheduler.SchedFields{
		Minute: string(p.Args[2]), Hour: string(p.Args[3]), DayOfMonth: string(p.Args[4]),
		Month: string(p.Args[5]), DayOfWeek: string(p.Args[6]),
	}, s.cfg.SchedCronWeekdays)
	var sched scheduler.Schedule
	if err == nil {
		sched, err = scheduler.ParseCron(spec, s.schedLoc)
	}
	if err != nil {
		c.replyError(gearman.CodeInvalidArgument, err.Error())
		return
	}
	now := s.cfg.Now()
	next := sched.Next(now)

	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		c.replyError(gearman.CodeQueueError, txtShuttingDown)
		return
	}
	s.function(fnName).count.submitted++
	s.mu.Unlock()
	id, handle, err := s.handles.TryNext()
	if err != nil {
		c.replyError(gearman.CodeQueueError, err.Error())
		return
	}
	// A schedule holding (function, unique) already answers for this
	// one: the store decides that in the transaction that would write it.
	sc := newSchedule(id, handle, store.SourceProtocol, spec, s.schedLoc, fnName, unique,
		append([]byte(nil), data...), gearman.Normal, now, next)
	c.acks = append(c.acks, pendingAck{w: s.store.PutSchedule(sc, "")})
}

// newSchedule is a recurring schedule made over the wire (SUBMIT_JOB_SCHED
// or the control function): it carries no policy, so it gets the SCHED
// defaults.
func newSchedule(id uint64, handle, source, spec string, zone *time.Location, function, unique string,
	data []byte, prio gearman.Priority, now, next time.Time) *store.Schedule {
	return &store.Schedule{
		ID: id, Handle: handle, Source: source, Spec: spec, Zone: zone.String(),
		Function: function, Unique: unique, Data: data, Priority: uint8(prio),
		Missed: schedMissed, CatchUp: int64(schedCatchUp), Overlap: scheduler.OverlapAllow, Enabled: true,
		Created: now.UnixNano(), Next: next.UnixNano(), FireAt: next.UnixNano(),
	}
}

// Release implements scheduler.Sink: due one-shot jobs and schedule
// occurrences become ready jobs. The store records them as fired in one
// commit, and each is queued, and sleeping workers get NOOP, as soon as
// that commit has decided it, before its fsync (see store.Store.Fire): a
// worker may grab a job while its release is still being synced. A crash
// in between leaves the job waiting on disk, so it runs again after the
// restart: at least once, never lost. An occurrence whose schedule was
// cancelled or redefined since the scheduler read it is not stored, and so
// never runs; nor does a job cancelled before the commit. The claim holds
// nothing on a bbolt store (the job server's), so Fire commits on its own.
func (s *Server) Release(ctx context.Context, _ store.Claim, jobs []*store.Job, occs []scheduler.Occurrence) error {
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	if draining {
		return errDraining
	}
	ids := make([]uint64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	socc := make([]store.Occurrence, len(occs))
	for i, o := range occs {
		socc[i].Schedule = o.Schedule
		if !o.Fire {
			continue
		}
		id, handle, err := s.handles.Next()
		if err != nil {
			return err
		}
		sc := o.Schedule
		// Due is the occurrence's fire time (its jitter included), from
		// which its lateness is measured.
		socc[i].Job = &store.Job{ID: id, Handle: handle, Function: sc.Function, Unique: o.Unique,
			Priority: sc.Priority, Due: o.At.Add(scheduler.JitterFor(sc)).UnixNano(), Data: sc.Data}
		sc.LastHandle = handle
	}
	now := s.cfg.Now()
	moved, fired, err := s.store.Fire(now.UnixNano(), ids, socc, s.admitReleased)
	if err != nil {
		return err
	}
	for _, rec := range moved {
		s.stats.released.ObserveLateness(now, rec.Due)
	}
	for _, rec := range fired {
		s.stats.released.ObserveLateness(now, rec.Due)
	}
	return nil
}

// admitReleased queues a job the store is releasing; it runs on the
// store's committer, which may offer a job twice (see store.Store.Fire).
// Taking s.mu there is safe: s.mu is never held while waiting for the
// store.
func (s *Server) admitReleased(rec *store.Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobs[rec.Handle] == nil {
		s.admit(rec)
	}
}

// Live implements scheduler.Sink: whether the job is queued or running.
func (s *Server) Live(ctx context.Context, handle string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[handle]
	return j != nil && !j.ignore && j.state != stateDone, nil
}

// admit queues a stored background job that is ready to run: restored at
// start-up, or released by the scheduler.
func (s *Server) admit(rec *store.Job) {
	j := &job{Job: *rec, fn: s.function(rec.Function), bg: true, write: s.committed}
	if key := uniqueKey(j.Unique, j.Data); key != "" && j.fn.uniques[key] == nil {
		j.uniqKey = key // a live job with the key keeps it
		j.fn.uniques[key] = j
	}
	s.jobs[j.Handle] = j
	j.fn.total++
	s.enqueue(j)
}

// showSchedules answers `show schedules`: one tab-separated row per pending
// scheduled job and per recurring schedule (handle, function, unique or
// name, next run in RFC 3339 UTC, spec, zone), in due order, then ".".
// Rows are read from the store page by page, never all at once. A
// function name (`show schedules FUNCTION`) lists only its rows.
func (s *Server) showSchedules(c *conn, function string) {
	var b []byte
	// Each page is written before the next is read, so a listing of
	// millions of rows holds one page in memory, and a slow reader slows
	// the listing down instead of growing the output buffer. It stops when
	// the peer goes away.
	flush := func() bool {
		c.queue(b)
		b = b[:0]
		return c.out.drain(0)
	}
	listed := map[uint64]bool{}
	err := s.store.ForEachDue(func(it store.DueItem) bool {
		if it.Job != nil {
			if function != "" && it.Job.Function != function {
				return true
			}
			b = appendScheduleRow(b, it.Job.Handle, it.Job.Function, it.Job.Unique, it.Due, "once", "UTC")
		} else {
			sc := it.Schedule
			listed[sc.ID] = true
			if function != "" && sc.Function != function {
				return true
			}
			b = appendScheduleRow(b, sc.Handle, sc.Function, scheduleLabel(sc), it.Due, sc.Spec, sc.Zone)
		}
		if len(b) > 64<<10 {
			return flush()
		}
		return true
	})
	if err == nil {
		var all []*store.Schedule
		if all, err = s.store.Schedules(); err == nil {
			for _, sc := range all { // disabled or finished: not in the due index
				if !listed[sc.ID] && (function == "" || sc.Function == function) {
					b = appendScheduleRow(b, sc.Handle, sc.Function, scheduleLabel(sc), 0, sc.Spec, sc.Zone)
				}
			}
		}
	}
	if err != nil {
		s.log.Error("show schedules failed", "err", err)
	}
	b = append(b, ".\n"...)
	flush()
}

func scheduleLabel(sc *store.Schedule) string {
	if sc.Name != "" {
		return sc.Name
	}
	return sc.Unique
}

func appendScheduleRow(b []byte, handle, function, label string, due int64, spec, zone string) []byte {
	next := "-"
	if due > 0 {
		next = time.Unix(0, due).UTC().Format(time.RFC3339)
	}
	for i, f := range [...]string{handle, function, label, next, spec, zone} {
		if i > 0 {
			b = append(b, '\t')
		}
		b = append(b, f...)
	}
	return append(b, '\n')
}

// Schedule stores req durably and returns its handle and next run. A
// request whose (function, unique) a job or schedule holds already, or
// whose Request key made one, coalesces onto it, as a background
// submission would.
func (s *Server) Schedule(req ScheduleRequest) (handle string, next time.Time, err error) {
	now := s.cfg.Now()
	var cron scheduler.Schedule
	if req.Cron != "" {
		if req.Zone == nil {
			req.Zone = time.UTC
		}
		if cron, err = scheduler.ParseCron(req.Cron, req.Zone); err != nil {
			return "", time.Time{}, &InvalidError{err}
		}
		next = cron.Next(now)
	} else if next = req.At; next.Before(now) {
		next = now
	}
	if len(req.Unique) > gearman.MaxUniqueSize {
		return "", time.Time{}, &InvalidError{fmt.Errorf("unique longer than %d bytes", gearman.MaxUniqueSize)}
	}
	if len(req.Function) > store.MaxFunctionSize {
		return "", time.Time{}, fmt.Errorf("function name longer than %d bytes", store.MaxFunctionSize)
	}

	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return "", time.Time{}, ErrShuttingDown
	}
	f := s.function(req.Function)
	f.count.submitted++
	if j := f.lookupUnique([]byte(req.Unique), req.Data); j != nil {
		handle, due, w := j.Handle, j.Due, j.write
		s.mu.Unlock()
		if w != nil {
			err = w.Wait()
		}
		return handle, time.Unix(0, due), err
	}
	s.mu.Unlock()
	id, handle, err := s.handles.Next()
	if err != nil {
		return "", time.Time{}, err
	}
	var w *store.Write
	if req.Cron != "" {
		w = s.store.PutSchedule(newSchedule(id, handle, store.SourceControl, req.Cron, req.Zone, f.name, req.Unique,
			req.Data, req.Priority, now, next), req.Request)
	} else {
		w = s.store.PutPending(&store.Job{ID: id, Handle: handle, Function: f.name, Unique: req.Unique,
			Priority: uint8(req.Priority), Due: next.UnixNano(), Data: req.Data}, req.Request)
	}
	if err := w.Wait(); err != nil {
		return "", time.Time{}, err
	}
	h := w.Holder()
	if w.Created() && s.cfg.Wake != nil {
		s.cfg.Wake(h.Due)
	}
	return s.handles.Format(h.ID), time.Unix(0, h.Due), nil
}

// Cancel cancels a job, as the admin `cancel job` does: a job in memory
// (waiting foreground clients get WORK_FAIL), a job waiting for its time,
// or a schedule not from the schedules file. It reports whether there was
// one; the error says why one was not cancelled.
func (s *Server) Cancel(handle string) (bool, error) {
	s.mu.Lock()
	live := s.cancelLive(handle)
	s.mu.Unlock()
	if live {
		s.stats.cancelledLive.Add(1)
		return true, nil
	}
	id, ok := s.handles.Parse(handle)
	if !ok {
		return false, nil
	}
	res, err := s.store.Cancel(id)
	switch {
	case err != nil:
		s.log.Error("cancel failed", "handle", handle, "err", err)
		return false, err
	case res == store.FileSchedule:
		return false, ErrFileSchedule
	case res == store.CancelledJob:
		s.stats.cancelledPending.Add(1)
	case res == store.CancelledSchedule:
		s.stats.cancelledSchedules.Add(1)
	case res == store.NotFound:
		// A release the store applied before this cancel has queued the
		// job (see Release): cancel it there.
		s.mu.Lock()
		live = s.cancelLive(handle)
		s.mu.Unlock()
		if live {
			s.stats.cancelledLive.Add(1)
		}
		return live, nil
	}
	return true, nil
}

// Errors of Schedule, Cancel, Pause and Resume that callers tell apart:
// the HTTP API answers each with its own status.
var (
	// ErrFileSchedule refuses to cancel a schedule from the schedules file.
	ErrFileSchedule = errors.New("schedules file entries are removed by editing the file")
	// ErrShuttingDown refuses requests while the server drains.
	ErrShuttingDown = errors.New(txtShuttingDown)
)

// InvalidError is the error of a request that is wrong in itself, such as
// a bad cron spec or a unique too long, rather than one the server failed
// to carry out. Its text is the reason alone.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }
