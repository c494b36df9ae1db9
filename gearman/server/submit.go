package server

import (
	"hash/fnv"
	"math"
	"strconv"
	"time"

	"github.com/gearsched/gearsched/gearman"
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

// holdUnique indexes a live job under its unique key, so that a submission
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

// submission is what a SUBMIT_* packet other than SUBMIT_JOB_SCHED asks
// for.
type submission struct {
	gearman.Submission
	function, unique, reducer, data []byte
	when                            int64 // SUBMIT_JOB_EPOCH's time, unix seconds
}

// parseSubmission reads a submit packet's arguments. When they are
// unusable it answers the ERROR itself and returns false.
func (s *Server) parseSubmission(c *conn, p *gearman.Packet, kind gearman.Submission) (submission, bool) {
	sub := submission{Submission: kind, function: p.Args[0], unique: p.Args[1]}
	switch {
	case kind.Epoch:
		var ok bool
		if sub.when, ok = parseEpoch(p.Args[2]); !ok {
			c.refuse(gearman.CodeInvalidArgument, txtBadEpoch)
			return sub, false
		}
		sub.data = p.Args[3]
	case kind.Reduce:
		sub.reducer, sub.data = p.Args[2], p.Args[4]
		if len(sub.reducer) > maxReducerSize {
			c.refuse(gearman.CodeArgumentTooLarge, "Reducer name too large")
			return sub, false
		}
	default:
		sub.data = p.Args[2]
	}
	if len(sub.function) > store.MaxFunctionSize {
		c.refuse(gearman.CodeArgumentTooLarge, txtFunctionTooLarge)
		return sub, false
	}
	if len(sub.unique) > gearman.MaxUniqueSize {
		c.refuse(gearman.CodeArgumentTooLarge, txtUniqueTooLarge)
		return sub, false
	}
	return sub, true
}

// future reports whether an epoch submission is due after now: it waits in
// the store until then.
func (sub *submission) future(now time.Time) bool { return sub.Epoch && sub.when > now.Unix() }

// record is the stored form of a submission with the given id.
func (s *Server) record(sub *submission, id uint64, handle string, due int64) *store.Job {
	return &store.Job{
		ID:       id,
		Handle:   handle,
		Function: string(sub.function),
		Unique:   string(sub.unique),
		Reducer:  string(sub.reducer),
		Priority: uint8(sub.Priority),
		Due:      due,
		Data:     append([]byte(nil), sub.data...),
	}
}

// submit handles the SUBMIT_* packets of the job server.
func (s *Server) submit(c *conn, p *gearman.Packet) {
	kind, _ := gearman.SubmitKind(p.Type)
	if kind.Sched {
		s.submitSched(c, p)
		return
	}
	sub, ok := s.parseSubmission(c, p, kind)
	if !ok {
		return
	}
	future := sub.future(s.cfg.Now())

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		c.refuse(gearman.CodeQueueError, txtShuttingDown)
		return
	}
	f := s.function(string(sub.function))
	if j := f.lookupUnique(sub.unique, sub.data); j != nil {
		f.count.submitted++
		s.coalesce(c, j, sub.Background)
		return
	}
	if limit := f.maxQueue[sub.Priority]; limit > 0 && f.total+s.store.PendingCount(f.name) >= limit {
		c.refuse(gearman.CodeQueueError, txtQueueFull)
		return
	}
	f.count.submitted++
	id, handle, err := s.handles.TryNext()
	if err != nil {
		c.refuse(gearman.CodeQueueError, err.Error())
		return
	}
	if future {
		// It waits in the store only, never in memory: the store's
		// unique index coalesces it, and a foreground submission never
		// attaches to it.
		w := s.store.PutPending(s.record(&sub, id, handle, sub.when*int64(time.Second)), "")
		c.acks = append(c.acks, pendingAck{w: w})
		return
	}
	j := &job{Job: *s.record(&sub, id, handle, 0), fn: f}
	f.holdUnique(j)
	s.jobs[j.Handle] = j
	f.total++
	if !sub.Background {
		s.listen(c, j)
		s.enqueue(j)
		c.send(gearman.JobCreated, j.Handle)
		return
	}
	// Acknowledge only once durable; the connection goes on reading
	// meanwhile, so pipelined submissions share one commit.
	j.bg = true
	j.state = statePersisting
	j.write = s.store.Put(&j.Job)
	c.acks = append(c.acks, pendingAck{j: j, w: j.write})
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
		c.send(gearman.JobCreated, j.Handle)
		return
	}
	if !j.bg {
		// A bg submission onto a fg job makes it a bg job: it must now
		// survive its clients leaving, and a restart.
		j.bg = true
		j.write = s.store.Put(&j.Job)
	}
	if len(c.acks) == 0 && isDone(j.write) && j.write.Created() {
		c.send(gearman.JobCreated, j.Handle)
		return
	}
	c.acks = append(c.acks, pendingAck{j: j, w: j.write})
}

func isDone(w *store.Write) bool {
	select {
	case <-w.Done():
		return true
	default:
		return false
	}
}

func (s *Server) listen(c *conn, j *job) {
	j.listeners = append(j.listeners, c)
	c.listening = append(c.listening, j)
}

// settle finishes a background submission of j once its write w is
// committed, and returns the handle to acknowledge it with: j's, or that
// of the pending job or schedule that held j's unique in the store.
func (s *Server) settle(j *job, w *store.Write) (string, error) {
	if err := w.Err(); err != nil {
		switch {
		case j.state == statePersisting:
			s.forget(j)
		case j.state != stateDone && j.write == w:
			j.bg = false // the fg job stays, but nothing is stored
		}
		return "", err
	}
	if !w.Created() {
		// A pending job or schedule holds the unique: the submission
		// coalesced onto it, and nothing of j is stored. Foreground
		// clients that attached to j meanwhile keep it as their job.
		if j.write == w {
			j.bg = false
		}
		if j.state == statePersisting {
			if len(j.listeners) > 0 && !j.ignore {
				s.enqueue(j)
			} else {
				s.forget(j)
			}
		}
		return s.handles.Format(w.Holder().ID), nil
	}
	if j.state == statePersisting {
		if j.ignore { // cancelled while being written
			s.store.Delete(j.ID)
			s.forget(j)
		} else {
			s.enqueue(j)
		}
	}
	return j.Handle, nil
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
		c.send(gearman.Noop)
		woken++
		if s.cfg.WorkerWakeup > 0 && woken >= s.cfg.WorkerWakeup {
			break
		}
	}
	f.wakeStart = (f.wakeStart + 1) % n
}
