package server

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/gearsched/gearsched/gearman"
)

// Accepting connections.
const (
	// acceptBackoffMin and acceptBackoffMax bound the wait after a failed
	// accept, which doubles while accept keeps failing.
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
	// acceptReport spaces the warnings about failing accepts and refused
	// connections.
	acceptReport = 10 * time.Second
	// refuseTimeout bounds the write of the refusal to a connection over
	// MaxConnections.
	refuseTimeout = 100 * time.Millisecond
)

// Serve accepts connections on ln until Shutdown. It returns nil after
// Shutdown, and the accept error when the listener fails for good. When
// accept fails for want of resources (out of file descriptors, say) it
// waits, from 5 ms doubling to 1 s, and tries again: the connections it
// already serves go on, and it accepts again once descriptors are free.
func (s *Server) Serve(ln net.Listener) error {
	s.lnMu.Lock()
	if s.ctx.Err() != nil {
		s.lnMu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners = append(s.listeners, ln)
	s.lnMu.Unlock()
	var backoff time.Duration
	failing := reporter{every: acceptReport}
	refusing := reporter{every: acceptReport}
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return nil
			}
			if !temporary(err) {
				return fmt.Errorf("server: accept: %w", err)
			}
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			if n, ok := failing.due(time.Now()); ok {
				s.log.Warn("accepting connections fails; retrying", "err", err, "failures", n, "backoff", backoff)
			}
			select {
			case <-s.ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		if max := s.cfg.MaxConnections; max > 0 && s.open.Load() >= int64(max) {
			if n, ok := refusing.due(time.Now()); ok {
				s.log.Warn("refusing connections: --max-connections reached", "max", max, "refused", n)
			}
			s.stats.refused.Add(1)
			if s.cfg.TLS != nil {
				// A TLS client would read a plain ERROR packet as a
				// broken handshake: it only learns of the close.
				nc.Close()
			} else {
				refuse(nc, max)
			}
			continue
		}
		// Add under lnMu, where Shutdown cancels ctx before it waits, so
		// no Add can race with its wg.Wait.
		s.lnMu.Lock()
		if s.ctx.Err() != nil {
			s.lnMu.Unlock()
			nc.Close()
			return nil
		}
		s.wg.Add(1)
		s.lnMu.Unlock()
		s.open.Add(1)
		s.stats.accepted.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.open.Add(-1)
			if s.cfg.TLS != nil {
				if nc = s.handshake(nc); nc == nil {
					return
				}
			}
			s.newConn(nc).serve()
		}()
	}
}

// temporary reports whether an accept error is a lack of resources that
// passes, rather than a closed or broken listener.
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EPROTO, syscall.EINTR, syscall.EAGAIN} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// refuse tells a connection over the limit why it is closed, without
// waiting on it.
func refuse(nc net.Conn, max int) {
	nc.SetWriteDeadline(time.Now().Add(refuseTimeout))
	nc.Write(gearman.AppendPacketString(nil, gearman.MagicRes, gearman.Error, gearman.CodeQueueError,
		"Too many connections: the server's --max-connections is "+strconv.Itoa(max)))
	nc.Close()
}

// reporter rate-limits a warning about something that keeps happening: the
// first occurrence is reported, then one summary per interval.
type reporter struct {
	every time.Duration
	last  time.Time
	count int
}

// due counts one occurrence and reports whether to log now, with the
// occurrences since the last report.
func (r *reporter) due(now time.Time) (int, bool) {
	r.count++
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		return 0, false
	}
	n := r.count
	r.last, r.count = now, 0
	return n, true
}
