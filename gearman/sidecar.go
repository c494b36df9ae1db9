package gearman

import (
	"context"
	"time"
)

// Errors a sidecar answers to what only a job server serves.
const (
	txtSidecarForeground = "gearsched sidecar takes background and scheduled jobs only: submit foreground jobs to the job server directly"
	txtSidecarWorker     = "gearsched sidecar serves no workers: connect workers to the job server directly"
)

// sidecarPacket answers the packets a sidecar treats differently from a
// job server; it returns false for the ones handled as usual.
func (s *Server) sidecarPacket(c *conn, p *Packet) bool {
	if sub, ok := SubmitKind(p.Type); ok {
		if sub.Background && !sub.Reduce {
			return false
		}
		c.settleAcks()
		c.replyError(errInvalidCommand, txtSidecarForeground)
		return true
	}
	switch p.Type {
	case CanDo, CanDoTimeout, CantDo, ResetAbilities, PreSleep, GrabJob, GrabJobUniq, GrabJobAll,
		WorkStatus, WorkData, WorkWarning, WorkComplete, WorkFail, WorkException:
		c.settleAcks()
		c.replyError(errInvalidCommand, txtSidecarWorker)
		return true
	case GetStatus:
		c.settleAcks()
		s.sidecarStatus(c, p.Args[0])
		return true
	}
	return false
}

// sidecarStatus answers GET_STATUS for one of the sidecar's handles: a job
// still held here is known and not running; a forwarded one is reported as
// the upstream server that took it reports it (unknown if that server is
// unreachable or has forgotten it).
func (s *Server) sidecarStatus(c *conn, handle []byte) {
	known, running, num, den := s.storedKnown(handle), false, "0", "0"
	if !known {
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		st, ok, err := s.cfg.Forwarder.upstreamStatus(ctx, string(handle))
		cancel()
		if err != nil {
			c.log.Info("GET_STATUS: upstream unreachable", "handle", string(handle), "err", err)
		}
		if ok {
			known, running, num, den = st.Known, st.Running, orZero(st.Numerator), orZero(st.Denominator)
		}
	}
	c.write(func(b []byte) []byte {
		return appendStatus(b, StatusRes, handle, boolDigit(known), boolDigit(running), num, den)
	})
}

// showUpstreams answers `show upstreams` (sidecar only): one row per
// upstream server, then ".".
func (s *Server) showUpstreams(c *conn) {
	c.write(func(b []byte) []byte {
		return append(s.cfg.Forwarder.appendUpstreamRows(b), ".\n"...)
	})
}
