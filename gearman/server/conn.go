package server

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store"
)

const (
	readBufferSize = 64 << 10
	// writeTimeout bounds a write to a peer that stopped reading.
	writeTimeout = 30 * time.Second
)

// ability is one CAN_DO registration.
type ability struct {
	fn      *function
	timeout time.Duration // CAN_DO_TIMEOUT; 0 = none
}

// pendingAck is a background submission whose JOB_CREATED waits for a
// durable write. Replies to a connection keep request order, so every later
// reply to it waits behind these.
type pendingAck struct {
	j *job // the job in memory it is for; nil for what the store alone holds
	w *store.Write
}

// conn is one client, worker or admin connection. The fields from clientID
// to listening are guarded by srv.mu; acks and scratch belong to the
// reader goroutine; the output fields have their own lock, wmu, so that any
// goroutine can queue packets to this connection. wmu is a leaf: nothing
// but appending bytes happens under it, so it may be taken under srv.mu
// and never the other way round.
type conn struct {
	srv *Server
	nc  net.Conn
	fd  int
	ip  string
	log *slog.Logger

	clientID   string
	abilities  []ability // in registration order; grabs scan newest first
	rotation   int       // round-robin offset into the scan order
	sleeping   bool
	noopSent   bool
	exceptions bool
	assigned   []*job // jobs this worker is running
	listening  []*job // fg jobs this client waits on

	acks    []pendingAck
	scratch []byte // an admin reply being built

	wmu   sync.Mutex
	out   []byte
	spare []byte
	flush chan struct{}
	// dispatching: the reader is handling input and writes the output
	// itself before it next blocks, saving the writer goroutine a wake-up
	// on every request/response round trip.
	dispatching bool
	writing     bool // a write to the socket is in progress
	closed      bool
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{
		srv:        s,
		nc:         nc,
		fd:         -1,
		clientID:   "-",
		exceptions: s.cfg.Exceptions,
		flush:      make(chan struct{}, 1),
	}
	if host, _, err := net.SplitHostPort(nc.RemoteAddr().String()); err == nil {
		c.ip = host
	}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) { c.fd = int(fd) })
		}
	}
	c.log = s.log.With("conn", c.fd, "remote", nc.RemoteAddr().String())
	return c
}

// serve runs the connection: this goroutine reads and dispatches, a second
// one writes. Both end when the peer goes, on a fatal protocol error, or at
// shutdown.
func (c *conn) serve() {
	s := c.srv
	s.mu.Lock()
	s.conns[c] = struct{}{}
	if s.ctx.Err() != nil {
		// Shutdown began before this connection was registered and may
		// already have closed the others: close it too.
		c.nc.Close()
	}
	s.mu.Unlock()

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()

	err := c.readLoop()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.log.Info("closing connection", "err", err)
	}
	c.settleAcks()
	s.mu.Lock()
	s.dropConn(c)
	delete(s.conns, c)
	s.mu.Unlock()

	c.wmu.Lock()
	c.closed = true
	c.wmu.Unlock()
	c.signal()
	<-writerDone
	c.nc.Close()
}

func (c *conn) readLoop() error {
	dec := gearman.NewDecoder(bufio.NewReaderSize(c.nc, readBufferSize), c.srv.cfg.MaxPacketSize)
	var words [][]byte
	for {
		if len(c.acks) > 0 && !dec.Buffered() {
			// Nothing more pipelined: wait for the durable writes and
			// acknowledge them before blocking on the network.
			c.settleAcks()
		}
		if !dec.Buffered() {
			c.flushInline()
		}
		pkt, line, err := dec.Next()
		c.wmu.Lock()
		c.dispatching = true
		c.wmu.Unlock()
		if line != nil {
			words, err = gearman.SplitAdminLine(line, words)
			if err != nil {
				return err
			}
			c.settleAcks()
			c.srv.admin(c, words)
			continue
		}
		var malformed *gearman.MalformedError
		switch {
		case err == nil:
			if !c.srv.dispatch(c, pkt) {
				return nil
			}
		case errors.As(err, &malformed):
			c.log.Info("malformed packet", "err", err)
			c.replyError(gearman.CodeInvalidPacket, err.Error())
		case errors.Is(err, gearman.ErrTooLarge):
			c.replyError(gearman.CodeArgumentTooLarge, txtPacketTooLarge)
			return err
		default:
			return err
		}
	}
}

// signal wakes the writer.
func (c *conn) signal() {
	select {
	case c.flush <- struct{}{}:
	default:
	}
}

// writeLoop sends what other goroutines queue (NOOPs, forwarded WORK_*
// packets) and whatever the reader left, one write per wake-up, so each
// admin reply and the replies to pipelined requests leave in one flush.
func (c *conn) writeLoop() {
	for range c.flush {
		for {
			wrote, more, closed := c.writeQueued()
			if closed {
				return
			}
			if !wrote || !more {
				break
			}
		}
	}
}

// flushInline writes the queued output from the reader goroutine, unless
// the writer goroutine is busy writing (it picks up what is left).
func (c *conn) flushInline() {
	c.wmu.Lock()
	c.dispatching = false
	c.wmu.Unlock()
	if _, more, _ := c.writeQueued(); more {
		c.signal()
	}
}

// writeQueued takes the queued output and writes it, unless another write
// is in progress. It reports whether it wrote, whether more output queued
// meanwhile, and whether the connection is closed.
func (c *conn) writeQueued() (wrote, more, closed bool) {
	c.wmu.Lock()
	if c.writing {
		c.wmu.Unlock()
		return false, false, false
	}
	buf := c.out
	closed = c.closed
	if len(buf) == 0 {
		c.wmu.Unlock()
		return false, false, closed
	}
	c.out, c.spare, c.writing = c.spare[:0], nil, true
	c.wmu.Unlock()

	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.nc.Write(buf); err != nil {
		// The reader notices the closed socket and cleans up.
		c.nc.Close()
		closed = true
	}
	c.wmu.Lock()
	c.writing = false
	if cap(buf) <= readBufferSize {
		c.spare = buf[:0]
	}
	more = len(c.out) > 0
	closed = closed || c.closed
	c.wmu.Unlock()
	return true, more, closed
}

// maxOutput bounds what may wait for a peer that does not read: past it the
// connection is closed rather than letting memory grow without limit.
func (c *conn) maxOutput() int { return 4*c.srv.cfg.MaxPacketSize + (1 << 20) }

// write queues bytes for the peer; build appends one whole reply, which
// leaves in one write. build runs under wmu: it must only append bytes.
func (c *conn) write(build func([]byte) []byte) {
	c.wmu.Lock()
	if c.closed {
		c.wmu.Unlock()
		return
	}
	c.out = build(c.out)
	queued := len(c.out)
	inline := c.dispatching
	c.wmu.Unlock()
	if queued > c.maxOutput() {
		c.log.Warn("peer is not reading its replies; closing", "queued_bytes", queued)
		c.nc.Close()
		return
	}
	if !inline {
		c.signal()
	}
}

// queue queues a reply built elsewhere.
func (c *conn) queue(reply []byte) {
	c.write(func(b []byte) []byte { return append(b, reply...) })
}

func (c *conn) send(t gearman.Type, args ...string) {
	c.write(func(b []byte) []byte { return gearman.AppendPacketString(b, gearman.MagicRes, t, args...) })
}

func (c *conn) sendBytes(t gearman.Type, args ...[]byte) {
	c.write(func(b []byte) []byte { return gearman.AppendPacket(b, gearman.MagicRes, t, args...) })
}

func (c *conn) replyError(code, text string) { c.send(gearman.Error, code, text) }

// settleAcks waits for the durable writes of this connection's pending
// background submissions and answers them in order. Called without srv.mu.
func (c *conn) settleAcks() {
	if len(c.acks) == 0 {
		return
	}
	for _, a := range c.acks {
		<-a.w.Done()
	}
	s := c.srv
	s.mu.Lock()
	for i, a := range c.acks {
		var handle string
		var err error
		if a.j != nil {
			handle, err = s.settle(a.j, a.w)
		} else if err = a.w.Err(); err == nil {
			h := a.w.Holder()
			handle = s.handles.Format(h.ID)
			if a.w.Created() && s.cfg.Wake != nil {
				s.cfg.Wake(h.Due)
			}
		}
		if err != nil {
			c.replyError(gearman.CodeQueueError, err.Error())
		} else {
			c.send(gearman.JobCreated, handle)
		}
		c.acks[i] = pendingAck{}
	}
	c.acks = c.acks[:0]
	s.mu.Unlock()
}

func (c *conn) String() string { return strconv.Itoa(c.fd) + " " + c.ip }
