package server

import (
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store"
)

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
func (s *Server) grab(c *conn, p *gearman.Packet) {
	t := p.Type
	s.mu.Lock()
	defer s.mu.Unlock()
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
	c.send(gearman.NoJob)
}

func appendAssign(b []byte, t gearman.Type, j *job) []byte {
	start := len(b)
	switch {
	case t == gearman.GrabJob:
		b = gearman.AppendHeader(b, gearman.MagicRes, gearman.JobAssign)
		b = appendFields(b, j.Handle, j.Function)
	case t == gearman.GrabJobAll && j.Reducer != "":
		b = gearman.AppendHeader(b, gearman.MagicRes, gearman.JobAssignAll)
		b = appendFields(b, j.Handle, j.Function, j.Unique, j.Reducer)
	default:
		b = gearman.AppendHeader(b, gearman.MagicRes, gearman.JobAssignUniq)
		b = appendFields(b, j.Handle, j.Function, j.Unique)
	}
	b = append(b, j.Data...)
	return gearman.FinishPacket(b, start)
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
	now := s.cfg.Now()
	j.state = stateRunning
	j.worker = c
	j.assignedAt = now.UnixNano()
	c.assigned = append(c.assigned, j)
	j.fn.running++
	j.fn.runningBy[j.Priority]++
	if j.Due != 0 && j.retries == 0 { // a scheduled job's first hand-out
		s.stats.assigned.ObserveLateness(now, j.Due)
	}
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
func (s *Server) workResult(c *conn, p *gearman.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	handle := p.Args[0]
	j := s.runningOn(c, handle)
	if j == nil {
		switch p.Type {
		case gearman.WorkData, gearman.WorkWarning:
			c.replyError(gearman.CodeJobNotFound, txtDataNotFound)
		case gearman.WorkException:
			c.replyError(gearman.CodeJobNotFound, txtExceptionMissing)
		case gearman.WorkFail:
			if len(handle) > gearman.MaxHandleSize {
				c.replyError(gearman.CodeArgumentTooLarge, txtHandleTooLarge)
				return
			}
			fallthrough
		default:
			c.replyError(gearman.CodeJobNotFound, txtWorkNotFound)
		}
		return
	}
	s.applyResult(j, p)
}

// runningOn returns the job with that handle if c is running it.
func (s *Server) runningOn(c *conn, handle []byte) *job {
	j := s.jobs[string(handle)]
	if j == nil || j.state != stateRunning || j.worker != c {
		return nil
	}
	return j
}

// bareHandleResult serves a malformed WORK_COMPLETE, WORK_DATA,
// WORK_WARNING or WORK_EXCEPTION whose whole payload is the handle of a job
// c is running, as that handle with empty data, and reports whether it did.
// Anything else stays malformed: the caller answers ERROR INVALID_PACKET.
//
// Perl's Gearman::Worker sends a result, data, warning or exception that
// is false in Perl ("0" or "") as the handle alone, without the NUL that
// ends it, and its work loop dies on the ERROR it does not expect; gearmand
// 1.1.20 closes its connection and requeues the job (D20). Only the server
// knows which handles c runs, so the protocol package stays strict and merely hands over the payload of the
// malformed packet (MalformedError.Payload), rather than decoding these
// types leniently for everyone; and only a payload that names such a job
// is rescued, so a short packet of any other kind, a handle c does not run
// or an unknown one is still reported as malformed. The rescue reuses the
// decoder's packet, so it allocates nothing beyond the error itself, and
// well-formed packets never come here.
func (s *Server) bareHandleResult(c *conn, p *gearman.Packet, payload []byte) bool {
	switch p.Type {
	case gearman.WorkComplete, gearman.WorkData, gearman.WorkWarning, gearman.WorkException:
	default:
		return false // WORK_FAIL is the handle alone when well-formed
	}
	if p.Magic != gearman.MagicReq {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.runningOn(c, payload)
	if j == nil {
		return false
	}
	// Malformed, these types have no NUL at all: payload is the handle.
	p.Args = append(p.Args[:0], payload, payload[len(payload):])
	s.applyResult(j, p)
	return true
}

// applyResult applies a WORK_* packet to j, which its sender is running.
func (s *Server) applyResult(j *job, p *gearman.Packet) {
	switch p.Type {
	case gearman.WorkStatus:
		j.num, j.den = string(p.Args[1]), string(p.Args[2])
		s.forward(j, p)
	case gearman.WorkData, gearman.WorkWarning:
		s.forward(j, p)
	case gearman.WorkComplete:
		j.fn.count.completed++
		s.forward(j, p)
		s.finish(j, store.ResultCompleted)
	case gearman.WorkFail:
		j.fn.count.failed++
		s.failListeners(j)
		s.finish(j, store.ResultFailed)
	case gearman.WorkException:
		j.fn.count.failed++
		for _, l := range j.listeners {
			if l.exceptions {
				l.sendBytes(gearman.WorkException, p.Args...)
			} else {
				l.send(gearman.WorkFail, j.Handle)
			}
		}
		s.finish(j, store.ResultException)
	}
}

// forward copies a WORK_* packet unchanged to every waiting client.
func (s *Server) forward(j *job, p *gearman.Packet) {
	for _, l := range j.listeners {
		l.sendBytes(p.Type, p.Args...)
	}
}

func (s *Server) failListeners(j *job) {
	for _, l := range j.listeners {
		l.send(gearman.WorkFail, j.Handle)
	}
}

// finish ends a running job with result (a store.Result): its record is
// deleted, with how it ended for its run, and it is forgotten.
func (s *Server) finish(j *job, result string) {
	s.stopTimer(j)
	if j.bg {
		s.store.Finish(j.ID, s.outcome(j, j.worker, result, j.retries+1))
	}
	j.worker.assigned = removeJob(j.worker.assigned, j)
	j.worker = nil
	j.fn.running--
	j.fn.runningBy[j.Priority]--
	s.forget(j)
	s.jobEnded()
}

// requeue puts back a job whose worker left or timed out, at the tail of its
// priority, unless its attempts are used up or nobody wants it any more.
func (s *Server) requeue(j *job) {
	s.stopTimer(j)
	last := j.worker // for the run record, should this be the last attempt
	if j.worker != nil {
		j.worker.assigned = removeJob(j.worker.assigned, j)
		j.worker = nil
	}
	j.fn.running--
	j.fn.runningBy[j.Priority]--
	j.retries++
	j.num, j.den = "", ""
	switch {
	case s.cfg.JobRetries > 0 && j.retries >= s.cfg.JobRetries:
		s.log.Info("job failed: retries exhausted", "handle", j.Handle, "function", j.Function, "attempts", j.retries)
		j.fn.count.failed++
		s.failListeners(j)
		if j.bg {
			s.store.Finish(j.ID, s.outcome(j, last, store.ResultRetriesExhausted, j.retries))
		}
		s.forget(j)
	case j.ignore || (!j.bg && len(j.listeners) == 0):
		s.forget(j)
	default:
		j.fn.count.retried++
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

// cancelLive cancels a job in memory, as `cancel job` does: waiting clients
// get WORK_FAIL, the stored record is deleted, and a queued job is dropped
// when it reaches the head of its queue. A running job is not stopped. It
// reports false when no live job has that handle.
func (s *Server) cancelLive(handle string) bool {
	j := s.jobs[handle]
	if j == nil || j.ignore {
		return false
	}
	s.failListeners(j)
	for _, l := range j.listeners {
		l.listening = removeJob(l.listening, j)
	}
	j.listeners = nil
	if j.bg && j.state != statePersisting {
		s.store.Finish(j.ID, s.outcome(j, j.worker, store.ResultCancelled, j.retries))
		j.bg = false
	}
	j.ignore = true
	s.unindex(j)
	return true
}

// outcome describes how background job j ended after attempts
// assignments, for its run record (see store.Run); called with s.mu held.
// The worker c that ran it last, if any, is named by address and client
// id.
func (s *Server) outcome(j *job, c *conn, result string, attempts int) store.Outcome {
	o := store.Outcome{Result: result, Ended: s.cfg.Now().UnixNano(), Assigned: j.assignedAt, Attempts: attempts}
	if c != nil {
		o.Worker = c.ip
		if c.clientID != "-" {
			o.Worker += " " + c.clientID
		}
	}
	return o
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
	s.dropAbilities(c)
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
