package server

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store"
)

// readBufferSize is a connection's read buffer: a packet that fits is
// decoded in place.
const readBufferSize = 64 << 10

// ability is one CAN_DO registration.
type ability struct {
	fn      *function
	timeout time.Duration // CAN_DO_TIMEOUT; 0 = none
}

// pendingAck is a background submission whose JOB_CREATED waits for a
// durable write. Replies to a connection keep request order, so every later
// reply to it waits behind these; so does an ERROR refusing a later
// submission at once (w nil, code and text set).
type pendingAck struct {
	j *job // the job in memory it is for; nil for what the store alone holds
	w *store.Write

	code, text string
}

// conn is one client, worker or admin connection. The fields from clientID
// to listening are guarded by srv.mu; acks and scratch belong to the
// reader goroutine; out, the queued output, has its own leaf lock, so that
// any goroutine can queue packets to this connection.
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

	out *outbox
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{
		srv:        s,
		nc:         nc,
		fd:         -1,
		clientID:   "-",
		exceptions: s.cfg.Exceptions,
	}
	if host, _, err := net.SplitHostPort(nc.RemoteAddr().String()); err == nil {
		c.ip = host
	}
	if sc, ok := rawConn(nc).(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) { c.fd = int(fd) })
		}
	}
	c.log = s.log.With("conn", c.fd, "remote", nc.RemoteAddr().String())
	c.out = newOutbox(nc, c.log)
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
		c.out.run()
	}()

	err := c.readLoop()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, errSlowConsumer) {
		c.log.Info("closing connection", "err", err)
	}
	c.settleAcks()
	s.mu.Lock()
	s.dropConn(c)
	delete(s.conns, c)
	s.mu.Unlock()

	c.out.close()
	<-writerDone
	// Counted once the writer is done: until then it may still find the
	// peer not reading.
	if _, slow := c.out.isClosed(); slow {
		s.stats.slow.Add(1)
	}
	c.nc.Close()
}

func (c *conn) readLoop() error {
	dec := gearman.NewDecoder(bufio.NewReaderSize(c.nc, readBufferSize), c.srv.cfg.MaxPacketSize)
	var words [][]byte
	for {
		if closed, slow := c.out.isClosed(); closed {
			if slow {
				return errSlowConsumer
			}
			return net.ErrClosed
		}
		if len(c.acks) > 0 && !dec.Buffered() {
			// Nothing more pipelined: wait for the durable writes and
			// acknowledge them before blocking on the network.
			c.settleAcks()
		}
		if !dec.Buffered() {
			c.out.flushInline()
		}
		// A peer that sends requests without reading the replies is read
		// no further until it catches up.
		if !c.out.drain(pendingSoft) {
			continue // closed: reported at the top
		}
		pkt, line, err := dec.Next()
		c.out.dispatch()
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
			if c.srv.bareHandleResult(c, pkt, malformed.Payload) {
				continue
			}
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

// write queues bytes for the peer; build appends one whole reply, which
// leaves in one write. build runs under the output's lock: it must only
// append bytes.
func (c *conn) write(build func([]byte) []byte) { c.out.add(build) }

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

// refuse answers a submission with an ERROR in request order: behind the
// acknowledgements of earlier submissions that still wait for their
// writes, if there are any. Called by the reader goroutine.
func (c *conn) refuse(code, text string) {
	if len(c.acks) > 0 {
		c.acks = append(c.acks, pendingAck{code: code, text: text})
		return
	}
	c.replyError(code, text)
}

// settleAcks waits for the durable writes of this connection's pending
// background submissions and answers them in order. Called without srv.mu.
func (c *conn) settleAcks() {
	if len(c.acks) == 0 {
		return
	}
	for _, a := range c.acks {
		if a.w != nil {
			<-a.w.Done()
		}
	}
	s := c.srv
	s.mu.Lock()
	for i, a := range c.acks {
		var handle string
		var err error
		if a.w == nil {
			c.replyError(a.code, a.text)
			c.acks[i] = pendingAck{}
			continue
		}
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
