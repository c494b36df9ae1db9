package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store"
)

// stallConn is a server-side connection whose writes block while it is
// stalled, as writes to a peer that reads nothing block once the socket
// buffers are full. Each blocked write reports its size on started and
// returns what the test sends on result (nil lets it through).
type stallConn struct {
	net.Conn
	stalled atomic.Bool
	started chan int
	result  chan error
	closed  chan struct{}
	once    sync.Once
}

func (c *stallConn) Write(b []byte) (int, error) {
	if !c.stalled.Load() {
		return c.Conn.Write(b)
	}
	c.started <- len(b)
	select {
	case err := <-c.result:
		if err != nil {
			return 0, err
		}
		return c.Conn.Write(b)
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

func (c *stallConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// stallListener hands out stallConns and tells the test about each.
type stallListener struct {
	net.Listener
	conns chan *stallConn
}

func (l *stallListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &stallConn{Conn: nc, started: make(chan int, 64), result: make(chan error, 1), closed: make(chan struct{})}
	l.conns <- c
	return c, nil
}

// logRecords is a slog handler that keeps the records a test looks at.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecords) WithGroup(string) slog.Handler      { return h }

// slowConsumerLogs returns the pending_bytes of each slow-consumer warning.
func (h *logRecords) slowConsumerLogs() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []int64
	for _, r := range h.recs {
		if !strings.Contains(r.Message, "slow consumer") {
			continue
		}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "pending_bytes" {
				out = append(out, a.Value.Int64())
			}
			return true
		})
	}
	return out
}

func startStalling(t *testing.T) (*testServer, *stallListener, *logRecords) {
	t.Helper()
	logs := &logRecords{}
	st, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var sl *stallListener
	ts := serveWrapped(t, Config{Logger: slog.New(logs)}, st, func(ln net.Listener) net.Listener {
		sl = &stallListener{Listener: ln, conns: make(chan *stallConn, 16)}
		return sl
	})
	return ts, sl, logs
}

// TestPipelinedRepliesNotRead: a peer that pipelines requests and reads
// no reply is read no further once about pendingSoft of replies wait; it
// is closed, once, when a write times out; other clients are served
// meanwhile.
func TestPipelinedRepliesNotRead(t *testing.T) {
	t.Parallel()
	ts, sl, logs := startStalling(t)
	setup := dialT(t, ts.addr)
	<-sl.conns
	for i := range 2000 { // a `status` reply of about 60 KB
		setup.send(gearman.CanDo, "function-with-a-long-name-"+strconv.Itoa(i))
	}
	setup.sync()
	reply := len(setup.admin("status"))

	hog := dialT(t, ts.addr)
	hc := <-sl.conns
	hc.stalled.Store(true)
	hog.writeRaw(bytes.Repeat([]byte("status\n"), 200)) // 200 replies: 12 MB
	first := <-hc.started
	if limit := pendingSoft + 2*reply; first > limit {
		t.Errorf("first blocked write holds %d bytes: the server kept answering past %d", first, limit)
	}
	other := dialT(t, ts.addr)
	<-sl.conns
	other.send(gearman.EchoReq, "still served")
	other.expect(gearman.EchoRes, "still served")

	hc.result <- os.ErrDeadlineExceeded // the write timed out
	hog.expectClosed()
	waitFor(t, "the slow consumer's warning", func() bool { return len(logs.slowConsumerLogs()) > 0 })
	if n := len(logs.slowConsumerLogs()); n != 1 {
		t.Errorf("%d slow-consumer warnings, want 1", n)
	}
	// Counted once its connection's goroutines are done.
	waitFor(t, "the slow consumer to be counted", func() bool { return ts.srv.Stats().SlowConsumers == 1 })
}

// TestForwardedOutputNotRead: a foreground client that reads nothing while
// its worker streams WORK_DATA is closed as a slow consumer once its queued
// output passes pendingHard; the worker and the server go on.
func TestForwardedOutputNotRead(t *testing.T) {
	t.Parallel()
	ts, sl, logs := startStalling(t)
	client := dialT(t, ts.addr)
	cc := <-sl.conns
	worker := dialT(t, ts.addr)
	<-sl.conns
	h := client.submit(gearman.SubmitJob, "f_stream", "", "x")
	worker.canDo("f_stream")
	worker.send(gearman.GrabJob)
	worker.expectType(gearman.JobAssign)

	cc.stalled.Store(true)
	chunk := strings.Repeat("d", 64<<10)
	for i := 0; ; i++ {
		if i > 2*pendingHard/len(chunk) {
			t.Fatalf("%d chunks of %d bytes queued for a client that reads nothing, and it is still open", i, len(chunk))
		}
		worker.send(gearman.WorkData, h, chunk)
		worker.sync()
		if len(logs.slowConsumerLogs()) > 0 {
			break
		}
	}
	client.expectClosed()
	if got := logs.slowConsumerLogs(); len(got) != 1 || got[0] > pendingHard+int64(len(chunk))+64 {
		t.Errorf("slow-consumer warnings with pending bytes %v; want one, at most %d", got, pendingHard+len(chunk))
	}
	worker.send(gearman.WorkComplete, h, "done")
	worker.sync()
}

// TestWriterStopsWhileAnotherWrites: the outbox closes while another
// goroutine (a shutdown flushing it) is in the middle of a write; the
// writer goroutine, woken by the close, must stop rather than wait for a
// wake-up that already came.
func TestWriterStopsWhileAnotherWrites(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	sc := &stallConn{Conn: server, started: make(chan int, 1), result: make(chan error, 1), closed: make(chan struct{})}
	sc.stalled.Store(true)
	o := newOutbox(sc, slog.New(slog.DiscardHandler))
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); o.run() }()

	o.dispatch() // queue without waking the writer
	o.add(func(b []byte) []byte { return append(b, "reply"...) })
	flushed := make(chan struct{})
	go func() { defer close(flushed); o.drain(0) }() // another goroutine writes...
	<-sc.started                                     // ...and is blocked in the write
	o.close()
	select {
	case <-writerDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the writer goroutine did not stop after the close")
	}
	sc.result <- errors.New("peer gone")
	<-flushed
}
