package gearman

import (
	"hash/fnv"
	"math"
	"strconv"
	"time"

	"github.com/gearsched/gearsched/store"
)

// uniqueKey is the key a job is coalesced under within its function: the
// unique itself, or for the unique "-" a digest of the payload. Empty means
// the job never coalesces. A NUL starts digest keys because a unique sent
// on the wire cannot contain one.
func uniqueKey(unique string, data []byte) string {
	switch {
	case unique == "":
		return ""
	case unique == "-":
		if len(data) == 0 {
			return ""
		}
		h := fnv.New64a()
		h.Write(data)
		return "\x00-" + string(h.Sum(nil))
	}
	return unique
}

// holdUnique indexes a new job under its unique key, so that a submission
// with the same key coalesces onto it.
func (f *function) holdUnique(j *job) {
	if key := uniqueKey(j.Unique, j.Data); key != "" {
		j.uniqKey = key
		f.uniques[key] = j
	}
}

// lookupUnique finds the live job that a submission coalesces onto.
func (f *function) lookupUnique(unique, data []byte) *job {
	var j *job
	switch {
	case len(unique) == 0:
		return nil
	case len(unique) == 1 && unique[0] == '-':
		if len(data) == 0 {
			return nil
		}
		j = f.uniques[uniqueKey("-", data)]
		if j != nil && string(j.Data) != string(data) {
			return nil // digest collision: not the same payload
		}
	default:
		j = f.uniques[string(unique)]
	}
	if j == nil || j.ignore {
		return nil
	}
	return j
}

// submit handles every SUBMIT_JOB* packet.
func (s *Server) submit(c *conn, p *Packet, sub Submission) {
	fnName, unique := p.Args[0], p.Args[1]
	var reducer, data []byte
	var when int64
	scheduled := false // an epoch job due in the future: it waits in the store
	switch {
	case sub.Sched:
		s.submitSched(c, p)
		return
	case sub.Epoch:
		var ok bool
		if when, ok = parseEpoch(p.Args[2]); !ok {
			c.replyError(errInvalidArgument, txtBadEpoch)
			return
		}
		data = p.Args[3]
		scheduled = when > s.cfg.Now().Unix()
	case sub.Reduce:
		reducer, data = p.Args[2], p.Args[4]
		if len(reducer) > maxReducerSize {
			c.replyError(errArgumentTooLarge, "Reducer name too large")
			return
		}
	default:
		data = p.Args[2]
	}
	if len(unique) > MaxUniqueSize {
		c.replyError(errArgumentTooLarge, txtUniqueTooLarge)
		return
	}
	due := when * int64(time.Second)
	var kind uint8
	if s.cfg.Forwarder != nil {
		// A sidecar holds every submission in the store until the
		// forwarder has it acknowledged upstream.
		if s.cfg.Passthrough && scheduled {
			kind, due = store.JobPassthrough, s.cfg.Now().UnixNano()
		} else if !scheduled {
			due = s.cfg.Now().UnixNano()
		}
		scheduled = true
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		c.replyError(errQueueError, txtShuttingDown)
		return
	}
	f := s.funcs[string(fnName)]
	if f == nil {
		f = s.function(string(fnName))
	}
	if j := f.lookupUnique(unique, data); j != nil {
		s.coalesce(c, j, sub.Background)
		return
	}
	if sub.Background && s.coalesceStored(c, f, unique) {
		return
	}
	if limit := f.maxQueue[sub.Priority]; limit > 0 && f.total+s.pending[f.name] >= limit {
		c.replyError(errQueueError, txtQueueFull)
		return
	}
	id, err := s.newID()
	if err != nil {
		c.replyError(errQueueError, err.Error())
		return
	}
	j := &job{
		Job: store.Job{
			ID:       id,
			Handle:   s.handleFor(id),
			Function: f.name,
			Unique:   string(unique),
			Reducer:  string(reducer),
			Priority: uint8(sub.Priority),
			Due:      due,
			Data:     append([]byte(nil), data...),
			Kind:     kind,
		},
		fn: f,
	}
	// While a scheduled job is being written it is indexed by unique, so
	// a concurrent submission coalesces onto it; after that the store's
	// index answers.
	f.holdUnique(j)
	if kind == store.JobPassthrough {
		j.When = when
	}
	if scheduled {
		j.bg, j.scheduled, j.state = true, true, statePersisting
		j.batch = s.store.PutScheduled(&j.Job)
		c.acks = append(c.acks, pendingAck{j: j, batch: j.batch})
		return
	}
	s.jobs[j.Handle] = j
	f.total++
	if !sub.Background {
		s.listen(c, j)
		s.enqueue(j)
		c.send(JobCreated, j.Handle)
		return
	}
	// Acknowledge only once durable; the connection goes on reading
	// meanwhile, so pipelined submissions share one commit.
	j.bg = true
	j.state = statePersisting
	j.batch = s.store.Put(&j.Job)
	c.acks = append(c.acks, pendingAck{j: j, batch: j.batch})
}

// txtBadEpoch answers an unparsable or out-of-range SUBMIT_JOB_EPOCH time.
const txtBadEpoch = "Epoch must be decimal unix seconds"

// maxEpoch is the latest SUBMIT_JOB_EPOCH time accepted: due times are
// kept in int64 nanoseconds, which end in April 2262.
const maxEpoch = math.MaxInt64 / int64(time.Second)

// parseEpoch reads SUBMIT_JOB_EPOCH's time. Empty and "0" mean now, as in
// gearmand; anything else must be a decimal number of seconds from 0 to
// maxEpoch (gearmand runs garbage at once, silently).
func parseEpoch(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, true
	}
	digits := b
	if digits[0] == '-' { // in the past: runs now, as in gearmand
		digits = digits[1:]
	}
	for _, ch := range digits {
		if ch < '0' || ch > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	return v, err == nil && v <= maxEpoch
}

// coalesce attaches a submission to the live job j with the same unique.
// The new payload, priority and time are ignored, as in gearmand.
func (s *Server) coalesce(c *conn, j *job, background bool) {
	if !background {
		s.listen(c, j)
		c.send(JobCreated, j.Handle)
		return
	}
	if !j.bg {
		// A bg submission onto a fg job makes it a bg job: it must now
		// survive its clients leaving, and a restart.
		j.bg = true
		j.batch = s.store.Put(&j.Job)
	}
	if len(c.acks) == 0 && isDone(j.batch) && j.batch.Err() == nil {
		c.send(JobCreated, j.Handle)
		return
	}
	c.acks = append(c.acks, pendingAck{j: j, batch: j.batch})
}

func isDone(b *store.Batch) bool {
	select {
	case <-b.Done():
		return true
	default:
		return false
	}
}

func (s *Server) listen(c *conn, j *job) {
	j.listeners = append(j.listeners, c)
	c.listening = append(c.listening, j)
}

// settle finishes a background submission once its write is committed:
// the job enters its queue, or is forgotten if the write failed.
func (s *Server) settle(j *job) {
	err := j.batch.Err()
	if j.scheduled {
		s.settleScheduled(j, err)
		return
	}
	if j.state != statePersisting {
		if err != nil && j.state != stateDone {
			j.bg = false // the fg job stays, but nothing is stored
		}
		return
	}
	switch {
	case err != nil:
		s.forget(j)
	case j.ignore: // cancelled while being written
		s.store.Delete(j.ID)
		s.forget(j)
	default:
		s.enqueue(j)
	}
}

// enqueue appends j to its queue and wakes sleeping workers.
func (s *Server) enqueue(j *job) {
	j.state = stateQueued
	f := j.fn
	f.queue[j.Priority].pushBack(j)
	s.wake(f)
}

// wake sends NOOP to f's sleeping workers that have not had one, at most
// WorkerWakeup of them, starting at a rotating position.
func (s *Server) wake(f *function) {
	n := len(f.workers)
	if n == 0 || s.draining {
		return
	}
	woken := 0
	for i := range n {
		c := f.workers[(f.wakeStart+i)%n]
		if !c.sleeping || c.noopSent {
			continue
		}
		c.noopSent = true
		c.send(Noop)
		woken++
		if s.cfg.WorkerWakeup > 0 && woken >= s.cfg.WorkerWakeup {
			break
		}
	}
	f.wakeStart = (f.wakeStart + 1) % n
}

// peek returns the job a grab on f would get, reaping cancelled and
// abandoned jobs it finds at the queue heads.
func (s *Server) peek(f *function) *job {
	for p := range f.queue {
		l := &f.queue[p]
		for l.head != nil && l.head.ignore {
			j := l.head
			l.remove(j)
			s.forget(j)
		}
		if l.head != nil {
			return l.head
		}
	}
	return nil
}

// grab hands c the next job, scanning its functions newest registration
// first, each function's best priority first (gearmand 1.1.20's order).
func (s *Server) grab(c *conn, t Type) {
	c.sleeping, c.noopSent = false, false
	n := len(c.abilities)
	if s.draining {
		n = 0
	}
	for k := range n {
		a := c.abilities[n-1-(c.rotation+k)%n]
		j := s.peek(a.fn)
		if j == nil {
			continue
		}
		if s.cfg.RoundRobin {
			c.rotation = (c.rotation + k + 1) % n
		}
		a.fn.queue[j.Priority].remove(j)
		s.assign(c, j, a.timeout)
		c.write(func(b []byte) []byte { return appendAssign(b, t, j) })
		return
	}
	c.send(NoJob)
}

func appendAssign(b []byte, t Type, j *job) []byte {
	start := len(b)
	switch {
	case t == GrabJob:
		b = appendHeader(b, MagicRes, JobAssign)
		b = appendFields(b, j.Handle, j.Function)
	case t == GrabJobAll && j.Reducer != "":
		b = appendHeader(b, MagicRes, JobAssignAll)
		b = appendFields(b, j.Handle, j.Function, j.Unique, j.Reducer)
	default:
		b = appendHeader(b, MagicRes, JobAssignUniq)
		b = appendFields(b, j.Handle, j.Function, j.Unique)
	}
	b = append(b, j.Data...)
	return finishPacket(b, start)
}

// appendFields appends NUL-terminated fields.
func appendFields(b []byte, fields ...string) []byte {
	for _, f := range fields {
		b = append(b, f...)
		b = append(b, 0)
	}
	return b
}

func (s *Server) assign(c *conn, j *job, timeout time.Duration) {
	j.state = stateRunning
	j.worker = c
	c.assigned = append(c.assigned, j)
	j.fn.running++
	j.assignGen++
	if timeout > 0 {
		gen := j.assignGen
		j.timer = time.AfterFunc(timeout, func() { s.timedOut(j, gen) })
	}
}

// timedOut requeues a job whose CAN_DO_TIMEOUT ran out, unless the timer
// belongs to an assignment that already ended.
func (s *Server) timedOut(j *job, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j.state != stateRunning || j.assignGen != gen || j.timer == nil {
		return
	}
	j.timer = nil
	j.worker.log.Info("job timed out; requeueing", "handle", j.Handle, "function", j.Function)
	s.requeue(j)
}

func (s *Server) stopTimer(j *job) {
	if j.timer != nil {
		j.timer.Stop()
		j.timer = nil
	}
}

// workResult handles WORK_* packets from the worker that owns the job.
func (s *Server) workResult(c *conn, p *Packet) {
	handle := p.Args[0]
	j := s.jobs[string(handle)]
	if j == nil || j.state != stateRunning || j.worker != c {
		switch p.Type {
		case WorkData, WorkWarning:
			c.replyError(errJobNotFound, txtDataNotFound)
		case WorkException:
			c.replyError(errJobNotFound, txtExceptionMissing)
		case WorkFail:
			if len(handle) > MaxHandleSize {
				c.replyError(errArgumentTooLarge, txtHandleTooLarge)
				return
			}
			fallthrough
		default:
			c.replyError(errJobNotFound, txtWorkNotFound)
		}
		return
	}
	switch p.Type {
	case WorkStatus:
		j.num, j.den = string(p.Args[1]), string(p.Args[2])
		s.forward(j, p)
	case WorkData, WorkWarning:
		s.forward(j, p)
	case WorkComplete:
		s.forward(j, p)
		s.finish(j)
	case WorkFail:
		s.failListeners(j)
		s.finish(j)
	case WorkException:
		for _, l := range j.listeners {
			if l.exceptions {
				l.sendBytes(WorkException, p.Args...)
			} else {
				l.send(WorkFail, j.Handle)
			}
		}
		s.finish(j)
	}
}

// forward copies a WORK_* packet unchanged to every waiting client.
func (s *Server) forward(j *job, p *Packet) {
	for _, l := range j.listeners {
		l.sendBytes(p.Type, p.Args...)
	}
}

func (s *Server) failListeners(j *job) {
	for _, l := range j.listeners {
		l.send(WorkFail, j.Handle)
	}
}

// finish ends a running job: its record is deleted and it is forgotten.
func (s *Server) finish(j *job) {
	s.stopTimer(j)
	j.worker.assigned = removeJob(j.worker.assigned, j)
	j.worker = nil
	j.fn.running--
	if j.bg {
		s.store.Delete(j.ID)
	}
	s.forget(j)
	s.jobEnded()
}

// requeue puts back a job whose worker left or timed out, at the tail of its
// priority, unless its attempts are used up or nobody wants it any more.
func (s *Server) requeue(j *job) {
	s.stopTimer(j)
	if j.worker != nil {
		j.worker.assigned = removeJob(j.worker.assigned, j)
		j.worker = nil
	}
	j.fn.running--
	j.retries++
	j.num, j.den = "", ""
	switch {
	case s.cfg.JobRetries > 0 && j.retries >= s.cfg.JobRetries:
		s.log.Info("job failed: retries exhausted", "handle", j.Handle, "function", j.Function, "attempts", j.retries)
		s.failListeners(j)
		if j.bg {
			s.store.Delete(j.ID)
		}
		s.forget(j)
	case j.ignore || (!j.bg && len(j.listeners) == 0):
		s.forget(j)
	default:
		s.enqueue(j)
	}
	s.jobEnded()
}

// forget removes a job from every index. Listeners are detached.
func (s *Server) forget(j *job) {
	if s.jobs[j.Handle] == j {
		delete(s.jobs, j.Handle)
	}
	s.unindex(j)
	for _, l := range j.listeners {
		l.listening = removeJob(l.listening, j)
	}
	j.listeners = nil
	j.fn.total--
	j.state = stateDone
}

// unindex stops j from taking part in coalescing.
func (s *Server) unindex(j *job) {
	if j.uniqKey != "" && j.fn.uniques[j.uniqKey] == j {
		delete(j.fn.uniques, j.uniqKey)
	}
	j.uniqKey = ""
}

// cancel implements `cancel job`: waiting clients get WORK_FAIL, the stored
// record is deleted, and a queued job is dropped when it reaches the head
// of its queue. A running job is not stopped.
func (s *Server) cancel(handle string) bool {
	j := s.jobs[handle]
	if j == nil || j.ignore {
		return s.cancelStored(handle)
	}
	s.failListeners(j)
	for _, l := range j.listeners {
		l.listening = removeJob(l.listening, j)
	}
	j.listeners = nil
	if j.bg && j.state != statePersisting {
		s.store.Delete(j.ID)
		j.bg = false
	}
	j.ignore = true
	s.unindex(j)
	return true
}

// dropConn undoes everything a closing connection held: its running jobs
// are requeued, fg jobs nobody else waits for are abandoned, and its
// registrations are removed.
func (s *Server) dropConn(c *conn) {
	for len(c.assigned) > 0 {
		j := c.assigned[len(c.assigned)-1]
		c.log.Info("worker left with a running job; requeueing", "handle", j.Handle, "function", j.Function)
		s.requeue(j)
	}
	for _, j := range c.listening {
		j.listeners = removeConn(j.listeners, c)
		if len(j.listeners) == 0 && !j.bg && j.state == stateQueued {
			j.ignore = true
			s.unindex(j)
		}
	}
	c.listening = nil
	s.resetAbilities(c)
}

func removeJob(js []*job, j *job) []*job {
	for i, x := range js {
		if x == j {
			last := len(js) - 1
			copy(js[i:], js[i+1:])
			js[last] = nil
			return js[:last]
		}
	}
	return js
}

func removeConn(cs []*conn, c *conn) []*conn {
	for i, x := range cs {
		if x == c {
			last := len(cs) - 1
			copy(cs[i:], cs[i+1:])
			cs[last] = nil
			return cs[:last]
		}
	}
	return cs
}
