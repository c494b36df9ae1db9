package gearman

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

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
var errDraining = errors.New("gearman: server is shutting down")

// settleScheduled finishes a scheduled submission once its write commits:
// the store's indexes take over from the in-memory entry.
func (s *Server) settleScheduled(j *job, err error) {
	if j.state != statePersisting {
		return
	}
	j.state = stateDone
	s.unindex(j)
	if err != nil {
		return
	}
	if j.Due > 0 {
		s.pending[j.Function]++
	}
	if s.cfg.Wake != nil {
		s.cfg.Wake(j.Due)
	}
}

// coalesceStored answers a background submission whose (function, unique)
// belongs to a job or schedule waiting in the store: JOB_CREATED with its
// handle, as for a live job.
func (s *Server) coalesceStored(c *conn, f *function, unique []byte) bool {
	if len(unique) == 0 || string(unique) == "-" || s.pending[f.name]+s.schedFns[f.name] == 0 {
		return false
	}
	id, err := s.store.LookupUnique(f.name, string(unique))
	if err != nil || id == 0 {
		return false
	}
	handle := s.storedHandle(id)
	if handle == "" {
		return false
	}
	if len(c.acks) > 0 {
		c.acks = append(c.acks, ackOnly(handle, store.Committed()))
	} else {
		c.send(JobCreated, handle)
	}
	return true
}

// storedHandle returns the handle of the pending job or schedule id.
func (s *Server) storedHandle(id uint64) string {
	h, _ := s.storedItem(id)
	return h
}

// storedItem returns the handle and next due time (unix ns) of the pending
// job or schedule id, or "".
func (s *Server) storedItem(id uint64) (string, int64) {
	if j, err := s.store.Scheduled(id); err == nil && j != nil {
		return j.Handle, j.Due
	}
	if sc, err := s.store.GetSchedule(id); err == nil && sc != nil {
		return sc.Handle, sc.Next
	}
	return "", 0
}

// storedID extracts the id from a handle this server issued.
func (s *Server) storedID(handle []byte) (uint64, bool) {
	prefix := s.cfg.HandlePrefix + ":"
	if !strings.HasPrefix(string(handle), prefix) {
		return 0, false
	}
	id, err := strconv.ParseUint(string(handle[len(prefix):]), 10, 64)
	return id, err == nil && id > 0
}

// storedKnown reports whether handle names a job waiting for its time or a
// recurring schedule: GET_STATUS says known=1, running=0 for them.
func (s *Server) storedKnown(handle []byte) bool {
	id, ok := s.storedID(handle)
	return ok && s.storedHandle(id) == string(handle)
}

// cancelStored cancels a pending scheduled job, or deletes a schedule made
// by SUBMIT_JOB_SCHED. Schedules from the schedules file are changed by
// editing the file.
func (s *Server) cancelStored(handle string) bool {
	id, ok := s.storedID([]byte(handle))
	if !ok {
		return false
	}
	if j, err := s.store.CancelScheduled(id); err != nil {
		s.log.Error("cancel of a scheduled job failed", "handle", handle, "err", err)
		return false
	} else if j != nil {
		s.pending[j.Function]--
		return true
	}
	sc, err := s.store.GetSchedule(id)
	if err != nil || sc == nil || sc.Source == store.SourceFile {
		return false
	}
	if _, err := s.store.DeleteSchedule(id); err != nil {
		s.log.Error("cancel of a schedule failed", "handle", handle, "err", err)
		return false
	}
	s.schedFns[sc.Function]--
	return true
}

// submitSched turns SUBMIT_JOB_SCHED into a recurring schedule evaluated
// in the server's schedule zone. Its occurrences are NORMAL background
// jobs with the schedule's function and data.
func (s *Server) submitSched(c *conn, p *Packet) {
	fnName, unique, data := string(p.Args[0]), string(p.Args[1]), p.Args[7]
	if len(unique) > MaxUniqueSize {
		c.replyError(errArgumentTooLarge, txtUniqueTooLarge)
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
		c.replyError(errInvalidArgument, err.Error())
		return
	}
	now := s.cfg.Now()
	next := sched.Next(now)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		c.replyError(errQueueError, txtShuttingDown)
		return
	}
	f := s.function(fnName)
	if unique != "" && s.coalesceStored(c, f, []byte(unique)) {
		return
	}
	id, err := s.newID()
	if err != nil {
		c.replyError(errQueueError, err.Error())
		return
	}
	sc := s.newSchedule(id, store.SourceProtocol, spec, s.schedLoc, fnName, unique,
		append([]byte(nil), data...), Normal, now, next)
	s.schedFns[fnName]++
	b := s.store.PutSchedule(sc)
	c.acks = append(c.acks, ackOnly(sc.Handle, b))
}

// newSchedule is a recurring schedule made over the wire (SUBMIT_JOB_SCHED
// or the control function): it carries no policy, so it gets the SCHED
// defaults.
func (s *Server) newSchedule(id uint64, source, spec string, zone *time.Location, function, unique string,
	data []byte, prio Priority, now, next time.Time) *store.Schedule {
	return &store.Schedule{
		ID: id, Handle: s.handleFor(id), Source: source, Spec: spec, Zone: zone.String(),
		Function: function, Unique: unique, Data: data, Priority: uint8(prio),
		Missed: schedMissed, CatchUp: int64(schedCatchUp), Overlap: scheduler.OverlapAllow, Enabled: true,
		Created: now.UnixNano(), Next: next.UnixNano(), FireAt: next.UnixNano(),
	}
}

// ackOnly is an acknowledgement that answers JOB_CREATED handle (or the
// error) once b commits, for a submission that created no job in memory.
func ackOnly(handle string, b *store.Batch) pendingAck {
	return pendingAck{j: &job{Job: store.Job{Handle: handle}, state: stateDone, batch: b}, batch: b}
}

// Release implements scheduler.Sink: due one-shot jobs and schedule
// occurrences become ready jobs. The store records them as fired in the
// same commit that makes them ready, and only then are they queued, so a
// crash can neither lose nor repeat one; sleeping workers get NOOP at once.
func (s *Server) Release(ctx context.Context, jobs []*store.Job, occs []scheduler.Occurrence) error {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
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
		id, err := s.newID()
		if err != nil {
			s.mu.Unlock()
			return err
		}
		sc := o.Schedule
		socc[i].Job = &store.Job{ID: id, Handle: s.handleFor(id), Function: sc.Function, Unique: o.Unique,
			Priority: sc.Priority, Data: sc.Data}
		sc.LastHandle = socc[i].Job.Handle
	}
	s.mu.Unlock()

	moved, err := s.store.Fire(ids, socc)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rec := range moved {
		s.pending[rec.Function]--
		s.admit(rec)
	}
	for _, o := range socc {
		if o.Job != nil {
			s.admit(o.Job)
		}
	}
	return nil
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
	j := &job{Job: *rec, fn: s.function(rec.Function), bg: true, batch: store.Committed()}
	if key := uniqueKey(j.Unique, j.Data); key != "" {
		// A scheduled submission still being written may hold the key
		// for a moment; a live job keeps it.
		if old := j.fn.uniques[key]; old == nil || old.scheduled {
			j.uniqKey = key
			j.fn.uniques[key] = j
		}
	}
	s.jobs[j.Handle] = j
	j.fn.total++
	s.enqueue(j)
}

// showSchedules answers `show schedules`: one tab-separated row per pending
// scheduled job and per recurring schedule (handle, function, unique or
// name, next run in RFC 3339 UTC, spec, zone), in due order, then ".".
// Rows are read from the store page by page, never all at once.
func (s *Server) showSchedules(c *conn) {
	var b []byte
	// Each page is written before the next is read, so a listing of
	// millions of rows holds one page in memory, and a slow reader slows
	// the listing down instead of growing the output buffer.
	flush := func() {
		out := b
		c.write(func(dst []byte) []byte { return append(dst, out...) })
		c.flushInline()
		b = b[:0]
	}
	listed := map[uint64]bool{}
	err := s.store.ForEachDue(func(it store.DueItem) bool {
		if it.Job != nil {
			b = appendScheduleRow(b, it.Job.Handle, it.Job.Function, it.Job.Unique, it.Due, "once", "UTC")
		} else {
			sc := it.Schedule
			listed[sc.ID] = true
			b = appendScheduleRow(b, sc.Handle, sc.Function, scheduleLabel(sc), it.Due, sc.Spec, sc.Zone)
		}
		if len(b) > 64<<10 {
			flush()
		}
		return true
	})
	if err == nil {
		var all []*store.Schedule
		if all, err = s.store.Schedules(); err == nil {
			for _, sc := range all { // disabled or finished: not in the due index
				if !listed[sc.ID] {
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

// NewHandle allocates a job id and its handle, for schedules created
// outside the protocol (the schedules file).
func (s *Server) NewHandle() (uint64, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, err := s.newID()
	if err != nil {
		return 0, "", err
	}
	return id, s.handleFor(id), nil
}

// forgetPending drops jobs the forwarder handed upstream from the pending
// counts.
func (s *Server) forgetPending(removed []*store.Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range removed {
		if j.Kind != store.JobTrigger {
			s.pending[j.Function]--
		}
	}
}

// ScheduleRequest is a job to hold until its time, or a recurring
// schedule, as the sidecar's control function asks for one.
type ScheduleRequest struct {
	Function string
	Unique   string
	Data     []byte
	Priority Priority
	// At is a one-shot job's time; a past time means at once.
	At time.Time
	// Cron and Zone make a recurring schedule instead (Source control).
	Cron string
	Zone *time.Location
}

// Schedule stores req durably and returns its handle and next run. A
// one-shot request whose (function, unique) is held already coalesces onto
// that job or schedule, as a background submission would.
func (s *Server) Schedule(req ScheduleRequest) (handle string, next time.Time, err error) {
	now := s.cfg.Now()
	var cron scheduler.Schedule
	if req.Cron != "" {
		if req.Zone == nil {
			req.Zone = time.UTC
		}
		if cron, err = scheduler.ParseCron(req.Cron, req.Zone); err != nil {
			return "", time.Time{}, err
		}
		next = cron.Next(now)
	} else if next = req.At; next.Before(now) {
		next = now
	}
	if len(req.Unique) > MaxUniqueSize {
		return "", time.Time{}, fmt.Errorf("unique longer than %d bytes", MaxUniqueSize)
	}

	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return "", time.Time{}, errors.New(txtShuttingDown)
	}
	f := s.function(req.Function)
	if j := f.lookupUnique([]byte(req.Unique), req.Data); j != nil {
		handle, due, b := j.Handle, j.Due, j.batch
		s.mu.Unlock()
		return handle, time.Unix(0, due), b.Wait()
	}
	if req.Unique != "" && s.pending[f.name]+s.schedFns[f.name] > 0 {
		if id, err := s.store.LookupUnique(f.name, req.Unique); err == nil && id != 0 {
			if h, due := s.storedItem(id); h != "" {
				s.mu.Unlock()
				return h, time.Unix(0, due), nil
			}
		}
	}
	id, err := s.newID()
	if err != nil {
		s.mu.Unlock()
		return "", time.Time{}, err
	}
	handle = s.handleFor(id)
	if req.Cron != "" {
		sc := s.newSchedule(id, store.SourceControl, req.Cron, req.Zone, f.name, req.Unique, req.Data, req.Priority, now, next)
		s.schedFns[f.name]++
		s.mu.Unlock()
		if err := s.store.PutSchedule(sc).Wait(); err != nil {
			s.mu.Lock()
			s.schedFns[f.name]--
			s.mu.Unlock()
			return "", time.Time{}, err
		}
		if s.cfg.Wake != nil {
			s.cfg.Wake(sc.Next)
		}
		return handle, next, nil
	}
	j := &job{Job: store.Job{ID: id, Handle: handle, Function: f.name, Unique: req.Unique,
		Priority: uint8(req.Priority), Due: next.UnixNano(), Data: req.Data}, fn: f,
		bg: true, scheduled: true, state: statePersisting}
	f.holdUnique(j)
	j.batch = s.store.PutScheduled(&j.Job)
	s.mu.Unlock()
	err = j.batch.Wait()
	s.mu.Lock()
	s.settle(j)
	s.mu.Unlock()
	return handle, next, err
}

// Cancel cancels a held job or a schedule not from the schedules file, as
// the admin `cancel job` does; it reports whether there was one.
func (s *Server) Cancel(handle string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cancelStored(handle)
}
