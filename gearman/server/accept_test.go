package server

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store"
)

// failingListener fails its next Accept calls with an error, as accept
// does when the process is out of file descriptors.
type failingListener struct {
	net.Listener
	failures atomic.Int32
	err      error
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: l.err}
	}
	return l.Listener.Accept()
}

func countLogs(h *logRecords, substr string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if strings.Contains(r.Message, substr) {
			n++
		}
	}
	return n
}

// TestAcceptOutOfDescriptors: accept failing with EMFILE and its kin does
// not end Serve: it backs off, warns once, and serves the next connection.
func TestAcceptOutOfDescriptors(t *testing.T) {
	t.Parallel()
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED} {
		t.Run(errno.Error(), func(t *testing.T) {
			logs := &logRecords{}
			st, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			var fl *failingListener
			ts := serveWrapped(t, Config{Logger: slog.New(logs)}, st, func(ln net.Listener) net.Listener {
				fl = &failingListener{Listener: ln, err: os.NewSyscallError("accept", errno)}
				fl.failures.Store(5)
				return fl
			})
			c := dialT(t, ts.addr)
			c.send(gearman.EchoReq, "after the failures")
			c.expect(gearman.EchoRes, "after the failures")
			select {
			case err := <-ts.served:
				t.Fatalf("Serve returned %v", err)
			default:
			}
			if n := countLogs(logs, "accepting connections fails"); n != 1 {
				t.Errorf("%d warnings for 5 failed accepts within a second, want 1", n)
			}
		})
	}
}

// TestAcceptErrorKinds: only a passing lack of resources is retried; any
// other accept error ends Serve.
func TestAcceptErrorKinds(t *testing.T) {
	bad := errors.New("listener broken")
	if temporary(&net.OpError{Op: "accept", Err: bad}) {
		t.Fatal("an arbitrary error counted as temporary")
	}
	if !temporary(&net.OpError{Op: "accept", Err: os.NewSyscallError("accept", syscall.EMFILE)}) {
		t.Fatal("EMFILE not counted as temporary")
	}
}

// TestMaxConnections: above the limit a connection is told why and
// closed; once one closes, the next is served.
func TestMaxConnections(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{MaxConnections: 2}, filepath.Join(t.TempDir(), "s.db"))
	a, b := dialT(t, ts.addr), dialT(t, ts.addr)
	a.sync()
	b.sync()
	over := dialT(t, ts.addr)
	p := over.recv()
	if p.Type != gearman.Error || p.Args[0] != gearman.CodeQueueError || !strings.Contains(p.Args[1], "max-connections") {
		t.Fatalf("connection over the limit got %s, want ERROR QUEUE_ERROR naming --max-connections", p)
	}
	over.expectClosed()
	a.Close()
	waitFor(t, "the closed connection to be released", func() bool { return ts.srv.open.Load() < 2 })
	c := dialT(t, ts.addr)
	c.sync()
	if st := ts.srv.Stats(); st.Refused != 1 || st.Accepted != 3 || st.Connections != 2 {
		t.Errorf("Stats: refused %d, accepted %d, open %d; want 1, 3, 2", st.Refused, st.Accepted, st.Connections)
	}
}
