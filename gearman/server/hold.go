package server

import (
	"context"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store"
)

// Errors a sidecar answers to what only a job server serves.
const (
	txtSidecarForeground = "gearsched sidecar takes background and scheduled jobs only: submit foreground jobs to the job server directly"
	txtSidecarWorker     = "gearsched sidecar serves no workers: connect workers to the job server directly"
)

// sidecarHandlers is the dispatch table of a sidecar's listener: it holds
// background and scheduled submissions until the forwarder has them
// upstream, answers GET_STATUS for them wherever they are, and refuses
// foreground jobs and workers.
var sidecarHandlers = func() (h [gearman.MaxType + 1]handler) {
	h = jobServerHandlers
	for t := range h {
		switch kind, ok := gearman.SubmitKind(gearman.Type(t)); {
		case !ok:
		case kind.Sched:
			h[t] = handler{(*Server).submitSched, true}
		case kind.Background && !kind.Reduce:
			h[t] = handler{(*Server).hold, false}
		default:
			h[t] = handler{(*Server).refuseForeground, true}
		}
	}
	for _, t := range []gearman.Type{gearman.CanDo, gearman.CanDoTimeout, gearman.CantDo, gearman.ResetAbilities, gearman.PreSleep, gearman.GrabJob, gearman.GrabJobUniq, gearman.GrabJobAll,
		gearman.WorkStatus, gearman.WorkData, gearman.WorkWarning, gearman.WorkComplete, gearman.WorkFail, gearman.WorkException} {
		h[t] = handler{(*Server).refuseWorker, true}
	}
	h[gearman.GetStatus] = handler{(*Server).sidecarStatus, true}
	return h
}()

func (s *Server) refuseForeground(c *conn, _ *gearman.Packet) {
	c.replyError(gearman.CodeInvalidCommand, txtSidecarForeground)
}

func (s *Server) refuseWorker(c *conn, _ *gearman.Packet) {
	c.replyError(gearman.CodeInvalidCommand, txtSidecarWorker)
}

// hold stores a background submission until the forwarder has it
// upstream: due now, or at its epoch time; with Passthrough a future epoch
// job is due now, to be forwarded as SUBMIT_JOB_EPOCH.
func (s *Server) hold(c *conn, p *gearman.Packet) {
	kind, _ := gearman.SubmitKind(p.Type)
	sub, ok := s.parseSubmission(c, p, kind)
	if !ok {
		return
	}
	now := s.cfg.Now()
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		c.refuse(gearman.CodeQueueError, txtShuttingDown)
		return
	}
	f := s.function(string(sub.function))
	full := f.maxQueue[sub.Priority] > 0 && s.store.PendingCount(f.name) >= f.maxQueue[sub.Priority]
	if !full {
		f.count.submitted++
	}
	s.mu.Unlock()
	if full {
		c.refuse(gearman.CodeQueueError, txtQueueFull)
		return
	}
	id, handle, err := s.handles.TryNext()
	if err != nil {
		c.refuse(gearman.CodeQueueError, err.Error())
		return
	}
	due := now.UnixNano()
	if sub.future(now) && !s.cfg.Passthrough {
		due = sub.when * int64(time.Second)
	}
	rec := s.record(&sub, id, handle, due)
	if sub.future(now) && s.cfg.Passthrough {
		rec.Kind, rec.When = store.JobPassthrough, sub.when
	}
	c.acks = append(c.acks, pendingAck{w: s.store.PutPending(rec, "")})
}

// sidecarStatus answers GET_STATUS for one of the sidecar's handles: a job
// still held here is known and not running; a forwarded one is reported as
// the upstream server that took it reports it (unknown if that server is
// unreachable or has forgotten it).
func (s *Server) sidecarStatus(c *conn, p *gearman.Packet) {
	handle := p.Args[0]
	known, running, num, den := s.pendingKnown(handle), false, "0", "0"
	if !known {
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		st, ok, err := s.cfg.Upstreams.Status(ctx, string(handle))
		cancel()
		if err != nil {
			c.log.Info("GET_STATUS: upstream unreachable", "handle", string(handle), "err", err)
		}
		if ok {
			known, running, num, den = st.Known, st.Running, orZero(st.Numerator), orZero(st.Denominator)
		}
	}
	c.write(func(b []byte) []byte {
		return appendStatus(b, gearman.StatusRes, handle, boolDigit(known), boolDigit(running), num, den)
	})
}
