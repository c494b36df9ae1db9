package server

import (
	"bytes"
	"strconv"
	"time"

	"github.com/gearsched/gearsched/gearman"
)

// handler serves one packet type. settle says whether the connection's
// pending acknowledgements are sent first: every packet with a reply is
// answered in request order, while the ones without (worker registrations
// and results) may pass them.
type handler struct {
	serve  func(s *Server, c *conn, p *gearman.Packet)
	settle bool
}

// jobServerHandlers is the job server's dispatch table; sidecarHandlers
// (sidecar.go) is the sidecar listener's.
var jobServerHandlers = func() (h [gearman.MaxType + 1]handler) {
	for t := range h {
		h[t] = handler{(*Server).notExpected, true}
	}
	for t := range h {
		switch kind, ok := gearman.SubmitKind(gearman.Type(t)); {
		case !ok:
		case kind.Background && !kind.Sched:
			h[t] = handler{(*Server).submit, false}
		default:
			h[t] = handler{(*Server).submit, true}
		}
	}
	h[gearman.EchoReq] = handler{(*Server).echo, true}
	h[gearman.OptionReq] = handler{(*Server).option, true}
	h[gearman.GetStatus] = handler{(*Server).getStatus, true}
	h[gearman.GetStatusUnique] = handler{(*Server).getStatusUnique, true}
	h[gearman.PreSleep] = handler{(*Server).preSleep, true}
	for _, t := range []gearman.Type{gearman.GrabJob, gearman.GrabJobUniq, gearman.GrabJobAll} {
		h[t] = handler{(*Server).grab, true}
	}
	h[gearman.CanDo] = handler{(*Server).canDo, false}
	h[gearman.CanDoTimeout] = handler{(*Server).canDo, false}
	h[gearman.CantDo] = handler{(*Server).cantDo, false}
	h[gearman.ResetAbilities] = handler{(*Server).resetAbilities, false}
	h[gearman.SetClientID] = handler{(*Server).setClientID, false}
	for _, t := range []gearman.Type{gearman.WorkStatus, gearman.WorkData, gearman.WorkWarning, gearman.WorkComplete, gearman.WorkFail, gearman.WorkException} {
		h[t] = handler{(*Server).workResult, false}
	}
	return h
}()

// dispatch serves one binary packet from c. It returns false when the
// connection must be closed.
func (s *Server) dispatch(c *conn, p *gearman.Packet) bool {
	if p.Magic != gearman.MagicReq {
		c.settleAcks()
		c.replyError(gearman.CodeInvalidMagic, txtRequestMagic)
		return true
	}
	h := &s.handlers[p.Type]
	if h.settle {
		c.settleAcks()
	}
	h.serve(s, c, p)
	return true
}

// notExpected answers response types, the unused type 5 and ALL_YOURS.
func (s *Server) notExpected(c *conn, p *gearman.Packet) {
	c.replyError(gearman.CodeInvalidCommand, txtNotExpected)
}

func (s *Server) echo(c *conn, p *gearman.Packet) { c.sendBytes(gearman.EchoRes, p.Args[0]) }

func (s *Server) option(c *conn, p *gearman.Packet) {
	if !bytes.EqualFold(p.Args[0], []byte("exceptions")) {
		c.replyError(gearman.CodeUnknownOption, txtUnknownOption)
		return
	}
	s.mu.Lock()
	c.exceptions = true
	s.mu.Unlock()
	c.sendBytes(gearman.OptionRes, p.Args[0])
}

func (s *Server) setClientID(c *conn, p *gearman.Packet) {
	id := p.Args[0]
	if len(id) > maxClientID {
		id = id[:maxClientID]
	}
	s.mu.Lock()
	c.clientID = string(id)
	s.mu.Unlock()
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

// canDo serves CAN_DO and CAN_DO_TIMEOUT.
func (s *Server) canDo(c *conn, p *gearman.Packet) {
	var timeout time.Duration
	if p.Type == gearman.CanDoTimeout {
		timeout = parseTimeout(c, p.Args[1])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.function(string(p.Args[0]))
	c.abilities = append(c.abilities, ability{fn: f, timeout: timeout})
	f.workers = append(f.workers, c)
}

func (s *Server) cantDo(c *conn, p *gearman.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.funcs[string(p.Args[0])]
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

func (s *Server) resetAbilities(c *conn, _ *gearman.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropAbilities(c)
}

// dropAbilities removes all of c's registrations.
func (s *Server) dropAbilities(c *conn) {
	for _, a := range c.abilities {
		a.fn.removeWorker(c)
	}
	clear(c.abilities)
	c.abilities = c.abilities[:0]
}

// preSleep marks c asleep, or wakes it at once when a grab would succeed.
func (s *Server) preSleep(c *conn, _ *gearman.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
			c.send(gearman.Noop)
			return
		}
	}
}

// getStatus answers GET_STATUS: a job in memory as it is, a job waiting
// for its time or a schedule as known and not running.
func (s *Server) getStatus(c *conn, p *gearman.Packet) {
	handle := p.Args[0]
	s.mu.Lock()
	if j := s.jobs[string(handle)]; j != nil && !j.ignore {
		running, num, den := boolDigit(j.state == stateRunning), orZero(j.num), orZero(j.den)
		s.mu.Unlock()
		c.write(func(b []byte) []byte { return appendStatus(b, gearman.StatusRes, handle, "1", running, num, den) })
		return
	}
	s.mu.Unlock()
	known := s.pendingKnown(handle)
	c.write(func(b []byte) []byte {
		return appendStatus(b, gearman.StatusRes, handle, boolDigit(known), "0", "0", "0")
	})
}

// pendingKnown reports whether handle names a job waiting for its time or
// a schedule. It reads the store: call it without s.mu.
func (s *Server) pendingKnown(handle []byte) bool {
	id, ok := s.handles.Parse(string(handle))
	if !ok {
		return false
	}
	_, known, err := s.store.Lookup(id)
	if err != nil {
		s.log.Error("GET_STATUS: reading the store failed", "handle", string(handle), "err", err)
	}
	return known
}

// getStatusUnique looks the unique up across all functions, as gearmand
// does, and adds the number of waiting fg clients; then among the jobs
// waiting for their time and the schedules.
func (s *Server) getStatusUnique(c *conn, p *gearman.Packet) {
	unique := p.Args[0]
	if len(unique) == 0 || len(unique) > gearman.MaxUniqueSize {
		c.write(func(b []byte) []byte {
			return appendStatus(b, gearman.StatusResUnique, unique, "0", "0", "0", "0", "0")
		})
		return
	}
	s.mu.Lock()
	var j *job
	for _, f := range s.funcs {
		if j = f.uniques[string(unique)]; j != nil {
			break
		}
	}
	if j != nil && !j.ignore {
		running, num, den := boolDigit(j.state == stateRunning), orZero(j.num), orZero(j.den)
		waiting := strconv.Itoa(len(j.listeners))
		s.mu.Unlock()
		c.write(func(b []byte) []byte {
			return appendStatus(b, gearman.StatusResUnique, unique, "1", running, num, den, waiting)
		})
		return
	}
	s.mu.Unlock()
	_, known, err := s.store.FindUnique(string(unique))
	if err != nil {
		s.log.Error("GET_STATUS_UNIQUE: reading the store failed", "unique", string(unique), "err", err)
	}
	c.write(func(b []byte) []byte {
		return appendStatus(b, gearman.StatusResUnique, unique, boolDigit(known), "0", "0", "0", "0")
	})
}

func appendStatus(b []byte, t gearman.Type, key []byte, fields ...string) []byte {
	start := len(b)
	b = gearman.AppendHeader(b, gearman.MagicRes, t)
	b = append(b, key...)
	for _, f := range fields {
		b = append(b, 0)
		b = append(b, f...)
	}
	return gearman.FinishPacket(b, start)
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
