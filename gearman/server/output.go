package server

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// What may wait for a peer. A peer that does not read its replies is a
// slow consumer: it is closed once, and logged once, before its output can
// grow past these bounds, so many such peers together stay within
// (connections × pendingHard) plus one packet each.
const (
	// pendingSoft is the queued output above which a connection's reader
	// reads no further request until the peer has read its replies: a peer
	// that pipelines requests without reading costs at most this much plus
	// one reply.
	pendingSoft = 1 << 20
	// pendingHard closes a connection whose queued output is past it when
	// more is added. Output that other goroutines produce for a connection
	// (NOOPs, forwarded WORK_* packets) cannot wait for its peer. Below the
	// bound any single packet is accepted, so one large job or result
	// always goes through.
	pendingHard = 2 << 20
	// writeTimeout bounds a write to a peer that stopped reading.
	writeTimeout = 30 * time.Second
	// spareKeep is the largest output buffer kept for reuse.
	spareKeep = 64 << 10
)

// errSlowConsumer ends a connection whose peer does not read its replies.
var errSlowConsumer = errors.New("server: the peer does not read its replies (slow consumer)")

// outbox is a connection's queued output. Any goroutine may add a reply;
// the connection's writer goroutine writes it, or the reader does when it
// is about to block, which saves the writer a wake-up per round trip. Its
// lock is a leaf: nothing but appending bytes happens under it, so it may
// be taken under the server's mutex.
type outbox struct {
	nc  net.Conn
	log *slog.Logger

	mu          sync.Mutex
	written     sync.Cond // signalled after every write
	buf, spare  []byte
	inflight    int  // bytes of the write in progress
	writing     bool // a write to the socket is in progress
	dispatching bool // the reader handles input and flushes before it next blocks
	closed      bool
	slow        bool      // closed as a slow consumer
	deadline    time.Time // when set, no write may last beyond it
	wake        chan struct{}
}

func newOutbox(nc net.Conn, log *slog.Logger) *outbox {
	o := &outbox{nc: nc, log: log, wake: make(chan struct{}, 1)}
	o.written.L = &o.mu
	return o
}

// add queues bytes for the peer: build appends one whole reply, which
// leaves in one write. build runs under the lock: it must only append.
func (o *outbox) add(build func([]byte) []byte) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	if pending := o.inflight + len(o.buf); pending > pendingHard {
		o.markSlow(pending)
		o.mu.Unlock()
		o.nc.Close()
		return
	}
	o.buf = build(o.buf)
	inline := o.dispatching
	o.mu.Unlock()
	if !inline {
		o.signal()
	}
}

// markSlow closes the outbox as a slow consumer's, logging it once;
// called with o.mu held. The caller closes the socket.
func (o *outbox) markSlow(pending int) {
	if !o.slow {
		o.slow = true
		o.log.Warn("closing a slow consumer: the peer does not read its replies", "pending_bytes", pending)
	}
	o.closed = true
	o.written.Broadcast()
}

// signal wakes the writer.
func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// run is the writer goroutine: it sends what other goroutines queue (NOOPs,
// forwarded WORK_* packets) and whatever the reader left, one write per
// wake-up, so each admin reply and the replies to pipelined requests leave
// in one flush. It returns once the outbox is closed.
func (o *outbox) run() {
	for range o.wake {
		for {
			wrote, more, closed := o.writeQueued()
			if closed {
				return
			}
			if !wrote || !more {
				break
			}
		}
	}
}

// dispatch marks that the reader is handling input: it flushes before it
// next blocks, so the writer need not be woken.
func (o *outbox) dispatch() {
	o.mu.Lock()
	o.dispatching = true
	o.mu.Unlock()
}

// flushInline writes the queued output from the reader goroutine, unless
// the writer goroutine is busy writing (it picks up what is left).
func (o *outbox) flushInline() {
	o.mu.Lock()
	o.dispatching = false
	o.mu.Unlock()
	if _, more, _ := o.writeQueued(); more {
		o.signal()
	}
}

// drain writes from the reader until no more than limit bytes wait,
// waiting for a write the writer has in progress. It reports false when
// the outbox closed instead: the peer stopped reading (a write timed out)
// or went away.
func (o *outbox) drain(limit int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for !o.closed && o.inflight+len(o.buf) > limit {
		if o.writing {
			o.written.Wait()
			continue
		}
		o.mu.Unlock()
		o.writeQueued()
		o.mu.Lock()
	}
	return !o.closed
}

// writeQueued takes the queued output and writes it, unless another write
// is in progress. It reports whether it wrote, whether more output queued
// meanwhile, and whether the outbox is closed.
func (o *outbox) writeQueued() (wrote, more, closed bool) {
	o.mu.Lock()
	if o.writing {
		// Whoever writes picks up what is left. Report a close all the
		// same: the writer goroutine must not wait for a wake-up that
		// already came.
		closed = o.closed
		o.mu.Unlock()
		return false, false, closed
	}
	buf := o.buf
	closed = o.closed
	if len(buf) == 0 {
		o.mu.Unlock()
		return false, false, closed
	}
	o.buf, o.spare, o.writing, o.inflight = o.spare[:0], nil, true, len(buf)
	deadline := time.Now().Add(writeTimeout)
	if !o.deadline.IsZero() && o.deadline.Before(deadline) {
		deadline = o.deadline
	}
	o.mu.Unlock()

	o.nc.SetWriteDeadline(deadline)
	_, err := o.nc.Write(buf)

	o.mu.Lock()
	o.writing, o.inflight = false, 0
	if cap(buf) <= spareKeep {
		o.spare = buf[:0]
	}
	if err != nil {
		// The peer is gone, or read nothing for writeTimeout: nothing
		// more will be read from it or written to it.
		if errors.Is(err, os.ErrDeadlineExceeded) && o.deadline.IsZero() { // not a shutdown's
			o.markSlow(len(buf) + len(o.buf))
		}
		o.closed = true
	}
	more, closed = len(o.buf) > 0, o.closed
	o.written.Broadcast()
	o.mu.Unlock()
	if err != nil {
		o.nc.Close()
	}
	return true, more, closed
}

// flushBefore writes what waits, giving up at deadline, a write in
// progress included: for a shutdown, which must not wait on slow peers.
func (o *outbox) flushBefore(deadline time.Time) {
	o.mu.Lock()
	o.deadline = deadline
	o.mu.Unlock()
	o.nc.SetWriteDeadline(deadline)
	o.drain(0)
}

// isClosed reports whether the outbox was closed, and whether as a slow
// consumer's.
func (o *outbox) isClosed() (closed, slow bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closed, o.slow
}

// close stops the writer once the connection is done.
func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.written.Broadcast()
	o.mu.Unlock()
	o.signal()
}
