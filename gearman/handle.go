package gearman

import (
	"bytes"
	"strconv"
	"time"
)

// handle dispatches one binary packet from c. It returns false when the
// connection must be closed.
func (s *Server) handle(c *conn, p *Packet) bool {
	if p.Magic != MagicReq {
		c.settleAcks()
		c.replyError(errInvalidMagic, txtRequestMagic)
		return true
	}
	if s.cfg.Forwarder != nil && s.sidecarPacket(c, p) {
		return true
	}
	if sub, ok := SubmitKind(p.Type); ok {
		if !sub.Background || sub.Sched {
			c.settleAcks()
		}
		s.submit(c, p, sub)
		return true
	}
	switch p.Type {
	case CanDo, CantDo, ResetAbilities, SetClientID, CanDoTimeout,
		WorkStatus, WorkData, WorkWarning, WorkComplete, WorkFail, WorkException:
		// No reply to the sender: pending acknowledgements may wait.
	default:
		c.settleAcks()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	switch p.Type {
	case EchoReq:
		c.sendBytes(EchoRes, p.Args[0])
	case CanDo:
		s.canDo(c, string(p.Args[0]), 0)
	case CanDoTimeout:
		s.canDo(c, string(p.Args[0]), parseTimeout(c, p.Args[1]))
	case CantDo:
		s.cantDo(c, p.Args[0])
	case ResetAbilities:
		s.resetAbilities(c)
	case SetClientID:
		id := p.Args[0]
		if len(id) > maxClientID {
			id = id[:maxClientID]
		}
		c.clientID = string(id)
	case OptionReq:
		if bytes.EqualFold(p.Args[0], []byte("exceptions")) {
			c.exceptions = true
			c.sendBytes(OptionRes, p.Args[0])
		} else {
			c.replyError(errUnknownOption, txtUnknownOption)
		}
	case PreSleep:
		s.preSleep(c)
	case GrabJob, GrabJobUniq, GrabJobAll:
		s.grab(c, p.Type)
	case WorkStatus, WorkData, WorkWarning, WorkComplete, WorkFail, WorkException:
		s.workResult(c, p)
	case GetStatus:
		s.getStatus(c, p.Args[0])
	case GetStatusUnique:
		s.getStatusUnique(c, p.Args[0])
	default:
		// Response types, the unused 5, and ALL_YOURS.
		c.replyError(errInvalidCommand, txtNotExpected)
	}
	return true
}

// parseTimeout reads a CAN_DO_TIMEOUT value in milliseconds. gearmand's
// floor of 1 s is kept; 0, negative and unparsable values mean no timeout
// (gearmand drops the connection on a value over 20 characters instead).
func parseTimeout(c *conn, b []byte) time.Duration {
	ms, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		c.log.Info("CAN_DO_TIMEOUT value unusable; registering without a timeout", "value", string(b))
		return 0
	}
	if ms <= 0 {
		return 0
	}
	if ms > int64(365*24*time.Hour/time.Millisecond) {
		c.log.Info("CAN_DO_TIMEOUT over a year; registering without a timeout", "value", ms)
		return 0
	}
	return time.Duration(max(ms, 1000)) * time.Millisecond
}

func (s *Server) canDo(c *conn, name string, timeout time.Duration) {
	f := s.function(name)
	c.abilities = append(c.abilities, ability{fn: f, timeout: timeout})
	f.workers = append(f.workers, c)
}

func (s *Server) cantDo(c *conn, name []byte) {
	f := s.funcs[string(name)]
	if f == nil {
		return
	}
	kept := c.abilities[:0]
	for _, a := range c.abilities {
		if a.fn != f {
			kept = append(kept, a)
		}
	}
	clear(c.abilities[len(kept):])
	c.abilities = kept
	f.removeWorker(c)
}

func (s *Server) resetAbilities(c *conn) {
	for _, a := range c.abilities {
		a.fn.removeWorker(c)
	}
	clear(c.abilities)
	c.abilities = c.abilities[:0]
}

// preSleep marks c asleep, or wakes it at once when a grab would succeed.
func (s *Server) preSleep(c *conn) {
	for _, j := range c.assigned {
		s.stopTimer(j)
	}
	c.sleeping, c.noopSent = true, false
	if s.draining {
		return
	}
	for _, a := range c.abilities {
		if s.peek(a.fn) != nil {
			c.noopSent = true
			c.send(Noop)
			return
		}
	}
}

func (s *Server) getStatus(c *conn, handle []byte) {
	j := s.jobs[string(handle)]
	if j == nil || j.ignore {
		known := s.storedKnown(handle)
		c.write(func(b []byte) []byte {
			return appendStatus(b, StatusRes, handle, boolDigit(known), "0", "0", "0")
		})
		return
	}
	c.write(func(b []byte) []byte {
		return appendStatus(b, StatusRes, handle, "1", boolDigit(j.state == stateRunning), orZero(j.num), orZero(j.den))
	})
}

// getStatusUnique looks the unique up across all functions, as gearmand
// does, and adds the number of waiting fg clients.
func (s *Server) getStatusUnique(c *conn, unique []byte) {
	var j *job
	if len(unique) > 0 && len(unique) <= MaxUniqueSize {
		for _, f := range s.funcs {
			if j = f.uniques[string(unique)]; j != nil {
				break
			}
		}
	}
	if j == nil || j.ignore {
		c.write(func(b []byte) []byte {
			return appendStatus(b, StatusResUnique, unique, "0", "0", "0", "0", "0")
		})
		return
	}
	c.write(func(b []byte) []byte {
		return appendStatus(b, StatusResUnique, unique, "1", boolDigit(j.state == stateRunning),
			orZero(j.num), orZero(j.den), strconv.Itoa(len(j.listeners)))
	})
}

func appendStatus(b []byte, t Type, key []byte, fields ...string) []byte {
	start := len(b)
	b = appendHeader(b, MagicRes, t)
	b = append(b, key...)
	for _, f := range fields {
		b = append(b, 0)
		b = append(b, f...)
	}
	return finishPacket(b, start)
}

func boolDigit(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}
