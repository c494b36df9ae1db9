package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store"
)

// testTimeout bounds every read and write a test makes.
const testTimeout = 5 * time.Second

// testPrefix is the handle prefix of test servers: handles are "H:t:<n>".
const testPrefix = "H:t"

// testServer is an in-process server on 127.0.0.1 over its own store.
type testServer struct {
	srv    *Server
	st     *store.Store
	addr   string
	served chan error
	once   sync.Once
}

// startServer opens the store at dbPath, starts a server on it and
// registers its shutdown with t.Cleanup.
func startServer(t *testing.T, cfg Config, dbPath string) *testServer {
	t.Helper()
	st, err := store.Open(dbPath, store.Options{NoSync: true})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return serveStore(t, cfg, st)
}

// serveStore starts a server over st, which it closes at shutdown.
func serveStore(t *testing.T, cfg Config, st *store.Store) *testServer {
	t.Helper()
	return serveWrapped(t, cfg, st, nil)
}

// serveWrapped is serveStore with the listener wrapped by wrap, if not
// nil.
func serveWrapped(t *testing.T, cfg Config, st *store.Store, wrap func(net.Listener) net.Listener) *testServer {
	t.Helper()
	cfg.Store = st
	if cfg.HandlePrefix == "" {
		cfg.HandlePrefix = testPrefix
	}
	srv, err := New(cfg)
	if err != nil {
		st.Close()
		t.Fatalf("NewServer: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close()
		t.Fatalf("listen: %v", err)
	}
	ts := &testServer{srv: srv, st: st, addr: ln.Addr().String(), served: make(chan error, 1)}
	if wrap != nil {
		ln = wrap(ln)
	}
	go func() { ts.served <- srv.Serve(ln) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down at once (running jobs are cut short and stay
// in the store) and closes the store. It may be called more than once.
func (ts *testServer) stop(t *testing.T) {
	ts.once.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		ts.srv.Shutdown(ctx)
		select {
		case err := <-ts.served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(testTimeout):
			t.Errorf("Serve did not return after Shutdown")
		}
		if err := ts.st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
}

// newTestServer starts a server over a fresh store in t.TempDir() and
// returns its address; t.Cleanup shuts it down and closes the store.
func newTestServer(t *testing.T, cfg Config) (addr string) {
	t.Helper()
	return startServer(t, cfg, filepath.Join(t.TempDir(), "gearsched.db")).addr
}

// pkt is a received packet with its arguments copied out.
type pkt struct {
	Magic gearman.Magic
	Type  gearman.Type
	Args  []string
}

func (p pkt) String() string { return fmt.Sprintf("%s %s %q", p.Magic, p.Type, p.Args) }

// tconn is a test connection: a Client whose every operation has a
// deadline and fails the test on error.
type tconn struct {
	*gearman.Client
	nc    net.Conn // for raw writes
	t     *testing.T
	syncs int
}

func dialT(t *testing.T, addr string) *tconn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &tconn{Client: gearman.NewClient(nc), nc: nc, t: t}
}

// in returns c for use by (sub)test t, so failures end the right test.
func (c *tconn) in(t *testing.T) *tconn {
	d := *c
	d.t = t
	return &d
}

// readLine reads one admin reply line, terminator included.
func (c *tconn) readLine() string {
	c.t.Helper()
	c.deadline()
	line, err := c.Client.ReadLine()
	if err != nil {
		c.t.Fatalf("read line: %v (read %q)", err, line)
	}
	return line
}

func (c *tconn) deadline() { c.SetDeadline(time.Now().Add(testTimeout)) }

func (c *tconn) send(typ gearman.Type, args ...string) {
	c.t.Helper()
	c.deadline()
	if err := c.Send(typ, toBytes(args)...); err != nil {
		c.t.Fatalf("send %s: %v", typ, err)
	}
}

func (c *tconn) writeRaw(b []byte) {
	c.t.Helper()
	c.deadline()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *tconn) recv() pkt {
	c.t.Helper()
	c.deadline()
	p, err := c.Recv()
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return pkt{Magic: p.Magic, Type: p.Type, Args: argStrings(p)}
}

// expect reads the next packet and requires it to be exactly typ(args),
// with response magic.
func (c *tconn) expect(typ gearman.Type, args ...string) pkt {
	c.t.Helper()
	p := c.recv()
	if p.Magic != gearman.MagicRes || p.Type != typ || !slices.Equal(p.Args, args) {
		c.t.Fatalf("got %s, want RES %s %q", p, typ, args)
	}
	return p
}

func (c *tconn) expectType(typ gearman.Type) pkt {
	c.t.Helper()
	p := c.recv()
	if p.Magic != gearman.MagicRes || p.Type != typ {
		c.t.Fatalf("got %s, want RES %s", p, typ)
	}
	return p
}

func (c *tconn) expectError(code, text string) {
	c.t.Helper()
	c.expect(gearman.Error, code, text)
}

// sync proves that the server has processed everything sent before it and
// that nothing was queued to this connection meanwhile: the ECHO_RES is the
// next packet.
func (c *tconn) sync() {
	c.t.Helper()
	c.syncs++
	tok := "sync-" + strconv.Itoa(c.syncs)
	c.send(gearman.EchoReq, tok)
	c.expect(gearman.EchoRes, tok)
}

// expectClosed requires the server to close the connection.
func (c *tconn) expectClosed() {
	c.t.Helper()
	c.deadline()
	p, err := c.Recv()
	switch {
	case err == nil:
		c.t.Fatalf("got %s, want the connection closed", pkt{p.Magic, p.Type, argStrings(p)})
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
	default:
		c.t.Fatalf("want the connection closed, got %v", err)
	}
}

func (c *tconn) admin(cmd string) string {
	c.t.Helper()
	c.deadline()
	r, err := c.Admin(cmd)
	if err != nil {
		c.t.Fatalf("admin %q: %v (read %q)", cmd, err, r)
	}
	return r
}

func (c *tconn) adminExpect(cmd, want string) {
	c.t.Helper()
	if got := c.admin(cmd); got != want {
		c.t.Errorf("admin %q:\n got %q\nwant %q", cmd, got, want)
	}
}

func (c *tconn) trySubmit(typ gearman.Type, fn, unique string, rest ...string) (string, error) {
	c.deadline()
	return c.Submit(typ, fn, unique, toBytes(rest)...)
}

// submit submits a job; rest is the epoch or the reducer and aggregator,
// then the data.
func (c *tconn) submit(typ gearman.Type, fn, unique string, rest ...string) string {
	c.t.Helper()
	h, err := c.trySubmit(typ, fn, unique, rest...)
	if err != nil {
		c.t.Fatalf("submit %s %s %q: %v", typ, fn, unique, err)
	}
	if !strings.HasPrefix(h, testPrefix+":") {
		c.t.Fatalf("handle %q lacks prefix %s", h, testPrefix)
	}
	return h
}

func (c *tconn) submitError(code, text string, typ gearman.Type, fn, unique string, rest ...string) {
	c.t.Helper()
	h, err := c.trySubmit(typ, fn, unique, rest...)
	var se *gearman.ServerError
	if !errors.As(err, &se) || se.Code != code || se.Text != text {
		c.t.Fatalf("submit %s %s %q: handle %q err %v, want ERROR %s %q", typ, fn, unique, h, err, code, text)
	}
}

// canDo registers functions and waits until the server has them.
func (c *tconn) canDo(fns ...string) {
	c.t.Helper()
	for _, f := range fns {
		c.send(gearman.CanDo, f)
	}
	c.sync()
}

func (c *tconn) grab(typ gearman.Type) pkt {
	c.t.Helper()
	c.send(typ)
	return c.recv()
}

// grabJob grabs with GRAB_JOB and returns the handle and data.
func (c *tconn) grabJob() (handle, data string) {
	c.t.Helper()
	p := c.grab(gearman.GrabJob)
	if p.Type != gearman.JobAssign {
		c.t.Fatalf("GRAB_JOB: got %s, want JOB_ASSIGN", p)
	}
	return p.Args[0], p.Args[2]
}

func (c *tconn) expectNoJob() {
	c.t.Helper()
	c.send(gearman.GrabJob)
	c.expect(gearman.NoJob)
}

// sleep sends PRE_SLEEP and waits for the NOOP that must come.
func (c *tconn) sleepUntilNoop() {
	c.t.Helper()
	c.send(gearman.PreSleep)
	c.expect(gearman.Noop)
}

func (c *tconn) status(handle string, want ...string) {
	c.t.Helper()
	c.send(gearman.GetStatus, handle)
	c.expect(gearman.StatusRes, append([]string{handle}, want...)...)
}

func (c *tconn) statusUnique(unique string, want ...string) {
	c.t.Helper()
	c.send(gearman.GetStatusUnique, unique)
	c.expect(gearman.StatusResUnique, append([]string{unique}, want...)...)
}

// waitFor polls cond, each poll a round trip to the server, until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // poll interval
	}
}

// adminRow returns the row of a list command that starts with name+"\t".
func adminRow(t *testing.T, c *tconn, cmd, name string) string {
	t.Helper()
	for _, row := range strings.Split(c.admin(cmd), "\n") {
		if strings.HasPrefix(row, name+"\t") {
			return row
		}
	}
	t.Fatalf("%s: no row for %q", cmd, name)
	return ""
}

// functionNames returns the functions `status` lists, in its order.
func functionNames(t *testing.T, c *tconn) []string {
	t.Helper()
	var names []string
	for _, row := range strings.Split(c.admin("status"), "\n") {
		if name, _, ok := strings.Cut(row, "\t"); ok {
			names = append(names, name)
		}
	}
	return names
}

func handleNum(t *testing.T, h string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(strings.TrimPrefix(h, testPrefix+":"), 10, 64)
	if err != nil {
		t.Fatalf("handle %q: %v", h, err)
	}
	return n
}

// ---------------------------------------------------------------------------

func TestEcho(t *testing.T) {
	t.Parallel()
	c := dialT(t, newTestServer(t, Config{}))
	for _, data := range []string{"ping", "ping\x00with-nul", "", "\x00", "\x00\x00tail\x00", strings.Repeat("x\x00", 40000)} {
		c.send(gearman.EchoReq, data)
		c.expect(gearman.EchoRes, data)
	}
}

func TestForegroundJobCycle(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	cases := []struct {
		name   string
		submit gearman.Type
		reduce bool
		grab   gearman.Type
		want   gearman.Type
	}{
		{"GRAB_JOB", gearman.SubmitJob, false, gearman.GrabJob, gearman.JobAssign},
		{"GRAB_JOB_UNIQ", gearman.SubmitJob, false, gearman.GrabJobUniq, gearman.JobAssignUniq},
		{"GRAB_JOB_ALL plain", gearman.SubmitJob, false, gearman.GrabJobAll, gearman.JobAssignUniq},
		{"GRAB_JOB_ALL reduce", gearman.SubmitReduceJob, true, gearman.GrabJobAll, gearman.JobAssignAll},
		{"GRAB_JOB_UNIQ reduce", gearman.SubmitReduceJob, true, gearman.GrabJobUniq, gearman.JobAssignUniq},
		{"GRAB_JOB reduce", gearman.SubmitReduceJob, true, gearman.GrabJob, gearman.JobAssign},
		{"HIGH", gearman.SubmitJobHigh, false, gearman.GrabJobUniq, gearman.JobAssignUniq},
		{"LOW", gearman.SubmitJobLow, false, gearman.GrabJob, gearman.JobAssign},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fn, unique, data := fmt.Sprintf("f_basic%d", i), fmt.Sprintf("u%d", i), "pay\x00load"
			client, worker := dialT(t, addr), dialT(t, addr)
			var h string
			if tc.reduce {
				h = client.submit(tc.submit, fn, unique, "myreducer", "", data)
			} else {
				h = client.submit(tc.submit, fn, unique, data)
			}
			worker.send(gearman.SetClientID, "my-worker-1")
			worker.canDo(fn)
			switch tc.want {
			case gearman.JobAssign:
				worker.send(tc.grab)
				worker.expect(gearman.JobAssign, h, fn, data)
			case gearman.JobAssignUniq:
				worker.send(tc.grab)
				worker.expect(gearman.JobAssignUniq, h, fn, unique, data)
			case gearman.JobAssignAll:
				worker.send(tc.grab)
				worker.expect(gearman.JobAssignAll, h, fn, unique, "myreducer", data)
			}
			worker.expectNoJob()

			client.status(h, "1", "1", "0", "0")
			client.statusUnique(unique, "1", "1", "0", "0", "1")

			// WORK_DATA, WORK_WARNING and WORK_STATUS reach the client
			// unchanged, in order; the worker gets no reply.
			worker.send(gearman.WorkData, h, "d\x001")
			worker.send(gearman.WorkWarning, h, "w1\x00")
			worker.send(gearman.WorkStatus, h, "3", "10")
			worker.sync()
			client.expect(gearman.WorkData, h, "d\x001")
			client.expect(gearman.WorkWarning, h, "w1\x00")
			client.expect(gearman.WorkStatus, h, "3", "10")
			client.status(h, "1", "1", "3", "10")
			client.statusUnique(unique, "1", "1", "3", "10", "1")

			worker.send(gearman.WorkComplete, h, "res\x00ult")
			worker.sync()
			client.expect(gearman.WorkComplete, h, "res\x00ult")
			client.status(h, "0", "0", "0", "0")
			client.statusUnique(unique, "0", "0", "0", "0", "0")
			worker.expectNoJob()
		})
	}
}

func TestWorkFailForwarded(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	client, worker := dialT(t, addr), dialT(t, addr)
	h := client.submit(gearman.SubmitJob, "wf", "", "x")
	worker.canDo("wf")
	if got, _ := worker.grabJob(); got != h {
		t.Fatalf("grabbed %s, want %s", got, h)
	}
	worker.send(gearman.WorkFail, h)
	worker.sync()
	client.expect(gearman.WorkFail, h)
	client.status(h, "0", "0", "0", "0")
}

func TestBackgroundJob(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	submitter, worker, late := dialT(t, addr), dialT(t, addr), dialT(t, addr)
	h := submitter.submit(gearman.SubmitJobBg, "bgf", "bgu", "bgdata")
	submitter.status(h, "1", "0", "0", "0")
	worker.canDo("bgf")
	if got, data := worker.grabJob(); got != h || data != "bgdata" {
		t.Fatalf("grabbed %s %q", got, data)
	}
	// No listener: WORK_DATA and WORK_WARNING are dropped, WORK_STATUS is
	// only stored. None of them is an error.
	worker.send(gearman.WorkData, h, "d1")
	worker.send(gearman.WorkWarning, h, "w1")
	worker.send(gearman.WorkStatus, h, "7", "9")
	worker.sync()
	submitter.sync()
	submitter.status(h, "1", "1", "7", "9")

	// A fg client coalescing onto the running bg job gets only what is
	// sent after it attached.
	if got := late.submit(gearman.SubmitJob, "bgf", "bgu", "ignored"); got != h {
		t.Fatalf("fg coalesce onto bg job: %s, want %s", got, h)
	}
	late.statusUnique("bgu", "1", "1", "7", "9", "1")
	worker.send(gearman.WorkStatus, h, "8", "9")
	worker.send(gearman.WorkComplete, h, "done")
	worker.sync()
	late.expect(gearman.WorkStatus, h, "8", "9")
	late.expect(gearman.WorkComplete, h, "done")
	submitter.sync() // the bg submitter is told nothing
	submitter.status(h, "0", "0", "0", "0")
	submitter.adminExpect("show jobs", ".\n")
}

func TestPriorityOrder(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	for _, tc := range []struct {
		name            string
		low, norm, high gearman.Type
	}{
		{"bg", gearman.SubmitJobLowBg, gearman.SubmitJobBg, gearman.SubmitJobHighBg},
		{"fg", gearman.SubmitJobLow, gearman.SubmitJob, gearman.SubmitJobHigh},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fn := "pri_" + tc.name
			client, worker, adm := dialT(t, addr), dialT(t, addr), dialT(t, addr)
			for _, s := range []struct {
				t    gearman.Type
				data string
			}{{tc.low, "l1"}, {tc.norm, "n1"}, {tc.high, "h1"}, {tc.low, "l2"}, {tc.norm, "n2"}, {tc.high, "h2"}} {
				client.submit(s.t, fn, "", s.data)
			}
			if row := adminRow(t, adm, "prioritystatus", fn); row != fn+"\t2\t2\t2\t0" {
				t.Errorf("prioritystatus row %q", row)
			}
			worker.canDo(fn)
			var got []string
			for range 6 {
				_, data := worker.grabJob()
				got = append(got, data)
			}
			if want := []string{"h1", "h2", "n1", "n2", "l1", "l2"}; !slices.Equal(got, want) {
				t.Errorf("order %q, want %q", got, want)
			}
			worker.expectNoJob()
			if row := adminRow(t, adm, "prioritystatus", fn); row != fn+"\t0\t0\t0\t1" {
				t.Errorf("prioritystatus row %q", row)
			}
		})
	}
}

func TestFunctionScanOrder(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		roundRobin bool
		want       []string
	}{
		{"LIFO", false, []string{"o2-1", "o2-2", "o2-3", "o1-1", "o1-2", "o1-3"}},
		{"round-robin", true, []string{"o2-1", "o1-1", "o2-2", "o1-2", "o2-3", "o1-3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := newTestServer(t, Config{RoundRobin: tc.roundRobin})
			client, worker := dialT(t, addr), dialT(t, addr)
			for i := 1; i <= 3; i++ {
				client.submit(gearman.SubmitJobBg, "f_o1", "", fmt.Sprintf("o1-%d", i))
				client.submit(gearman.SubmitJobBg, "f_o2", "", fmt.Sprintf("o2-%d", i))
			}
			worker.canDo("f_o1", "f_o2")
			var got []string
			for range 6 {
				_, data := worker.grabJob()
				got = append(got, data)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("order %q, want %q", got, tc.want)
			}
		})
	}
	// Priority counts within one function only: LOW on the newest
	// registration before HIGH on an older one.
	t.Run("priority per function", func(t *testing.T) {
		t.Parallel()
		addr := newTestServer(t, Config{})
		client, worker := dialT(t, addr), dialT(t, addr)
		client.submit(gearman.SubmitJobHighBg, "f_x1", "", "x1-high")
		client.submit(gearman.SubmitJobLowBg, "f_x2", "", "x2-low")
		worker.canDo("f_x1", "f_x2")
		if _, data := worker.grabJob(); data != "x2-low" {
			t.Errorf("first job %q, want x2-low", data)
		}
	})
}

// sub is one submission in the coalescing table.
type sub struct {
	t      gearman.Type
	fn, u  string
	data   string
	expect string // prioritystatus row expected afterwards, if set
}

func TestCoalescing(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	u64 := strings.Repeat("k", 64)
	u64b := strings.Repeat("k", 63) + "j"
	cases := []struct {
		name          string
		first, second sub
		same          bool
	}{
		{"same function and unique", sub{t: gearman.SubmitJobBg, fn: "c", u: "u", data: "A"}, sub{t: gearman.SubmitJobBg, fn: "c", u: "u", data: "B"}, true},
		{"same unique fg", sub{t: gearman.SubmitJob, fn: "c", u: "u", data: "A"}, sub{t: gearman.SubmitJob, fn: "c", u: "u", data: "B"}, true},
		{"empty unique never", sub{t: gearman.SubmitJobBg, fn: "c", data: "A"}, sub{t: gearman.SubmitJobBg, fn: "c", data: "A"}, false},
		{"empty unique fg never", sub{t: gearman.SubmitJob, fn: "c", data: "A"}, sub{t: gearman.SubmitJob, fn: "c", data: "A"}, false},
		{"dash identical data", sub{t: gearman.SubmitJobBg, fn: "c", u: "-", data: "same"}, sub{t: gearman.SubmitJob, fn: "c", u: "-", data: "same"}, true},
		{"dash different data", sub{t: gearman.SubmitJobBg, fn: "c", u: "-", data: "one"}, sub{t: gearman.SubmitJobBg, fn: "c", u: "-", data: "two"}, false},
		{"dash empty data", sub{t: gearman.SubmitJobBg, fn: "c", u: "-"}, sub{t: gearman.SubmitJobBg, fn: "c", u: "-"}, false},
		{"other function", sub{t: gearman.SubmitJobBg, fn: "c", u: "u", data: "A"}, sub{t: gearman.SubmitJobBg, fn: "c2", u: "u", data: "A"}, false},
		{"64-byte unique (D4)", sub{t: gearman.SubmitJobBg, fn: "c", u: u64, data: "A"}, sub{t: gearman.SubmitJob, fn: "c", u: u64, data: "B"}, true},
		{"uniques differing in byte 64", sub{t: gearman.SubmitJobBg, fn: "c", u: u64, data: "A"}, sub{t: gearman.SubmitJobBg, fn: "c", u: u64b, data: "B"}, false},
		{"bg onto fg", sub{t: gearman.SubmitJob, fn: "c", u: "u", data: "A"}, sub{t: gearman.SubmitJobLowBg, fn: "c", u: "u", data: "B", expect: "0\t1\t0"}, true},
		{"priority of coalesced ignored", sub{t: gearman.SubmitJobBg, fn: "c", u: "u", data: "A"}, sub{t: gearman.SubmitJobHigh, fn: "c", u: "u", data: "B", expect: "0\t1\t0"}, true},
		{"epoch onto bg", sub{t: gearman.SubmitJobLowBg, fn: "c", u: "u", data: "A"}, sub{t: gearman.SubmitJobEpoch, fn: "c", u: "u", data: "B", expect: "0\t0\t1"}, true},
		{"reduce onto plain", sub{t: gearman.SubmitJobBg, fn: "c", u: "u", data: "A"}, sub{t: gearman.SubmitReduceJob, fn: "c", u: "u", data: "B"}, true},
	}
	doSubmit := func(c *tconn, s sub) string {
		c.t.Helper()
		switch s.t {
		case gearman.SubmitJobEpoch:
			return c.submit(s.t, s.fn, s.u, "0", s.data)
		case gearman.SubmitReduceJob, gearman.SubmitReduceJobBackground:
			return c.submit(s.t, s.fn, s.u, "red", "", s.data)
		}
		return c.submit(s.t, s.fn, s.u, s.data)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Fresh function names per case.
			tc.first.fn += fmt.Sprint("_", i)
			tc.second.fn += fmt.Sprint("_", i)
			c1, c2, worker := dialT(t, addr), dialT(t, addr), dialT(t, addr)
			h1 := doSubmit(c1, tc.first)
			h2 := doSubmit(c2, tc.second)
			if (h1 == h2) != tc.same {
				t.Fatalf("handles %s and %s; same = %v, want %v", h1, h2, h1 == h2, tc.same)
			}
			if tc.second.expect != "" {
				if row := adminRow(t, c1, "prioritystatus", tc.first.fn); row != tc.first.fn+"\t"+tc.second.expect+"\t0" {
					t.Errorf("prioritystatus row %q, want HIGH/NORMAL/LOW %q", row, tc.second.expect)
				}
			}
			// One execution per job; a coalesced job keeps the first
			// payload.
			fns := []string{tc.first.fn}
			if tc.second.fn != tc.first.fn {
				fns = append(fns, tc.second.fn)
			}
			worker.canDo(fns...)
			n := 0
			for {
				p := worker.grab(gearman.GrabJob)
				if p.Type == gearman.NoJob {
					break
				}
				if p.Type != gearman.JobAssign {
					t.Fatalf("grab: %s", p)
				}
				if n == 0 && tc.same && p.Args[2] != tc.first.data {
					t.Errorf("coalesced job runs with %q, want the first payload %q", p.Args[2], tc.first.data)
				}
				n++
			}
			if want := map[bool]int{true: 1, false: 2}[tc.same]; n != want {
				t.Errorf("%d executions, want %d", n, want)
			}
		})
	}
}

func TestCoalescedForegroundListeners(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	c1, c2, worker := dialT(t, addr), dialT(t, addr), dialT(t, addr)
	h := c1.submit(gearman.SubmitJob, "cf", "same", "A-data")
	if h2 := c2.submit(gearman.SubmitJobLow, "cf", "same", "B-data"); h2 != h {
		t.Fatalf("coalesced handle %s, want %s", h2, h)
	}
	c1.statusUnique("same", "1", "0", "0", "0", "2")
	worker.canDo("cf")
	if got, data := worker.grabJob(); got != h || data != "A-data" {
		t.Fatalf("grabbed %s %q", got, data)
	}
	worker.expectNoJob()
	// Running jobs coalesce too.
	c3 := dialT(t, addr)
	if h3 := c3.submit(gearman.SubmitJob, "cf", "same", "C"); h3 != h {
		t.Fatalf("coalesce onto running job: %s, want %s", h3, h)
	}
	c1.statusUnique("same", "1", "1", "0", "0", "3")
	worker.send(gearman.WorkData, h, "part")
	worker.send(gearman.WorkComplete, h, "R:A-data")
	worker.sync()
	for _, c := range []*tconn{c1, c2, c3} {
		c.expect(gearman.WorkData, h, "part")
		c.expect(gearman.WorkComplete, h, "R:A-data")
	}
	// Only live jobs coalesce: the same unique now makes a new job.
	h4 := c1.submit(gearman.SubmitJob, "cf", "same", "again")
	if h4 == h {
		t.Fatalf("finished job %s reused", h)
	}
	if _, data := worker.grabJob(); data != "again" {
		t.Errorf("new job runs with %q", data)
	}
}

func TestUniqueTooLarge(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	c, adm := dialT(t, addr), dialT(t, addr)
	u65 := strings.Repeat("u", 65)
	c.submitError(gearman.CodeArgumentTooLarge, txtUniqueTooLarge, gearman.SubmitJob, "ut", u65, "x")
	c.submitError(gearman.CodeArgumentTooLarge, txtUniqueTooLarge, gearman.SubmitJobBg, "ut", u65, "x")
	c.submitError(gearman.CodeArgumentTooLarge, txtUniqueTooLarge, gearman.SubmitJobHighBg, "ut", u65+"more", "x")
	c.submitError(gearman.CodeArgumentTooLarge, txtUniqueTooLarge, gearman.SubmitJobEpoch, "ut", u65, "0", "x")
	c.submitError(gearman.CodeArgumentTooLarge, txtUniqueTooLarge, gearman.SubmitReduceJob, "ut", u65, "r", "", "x")
	c.submitError(gearman.CodeArgumentTooLarge, txtUniqueTooLarge, gearman.SubmitReduceJobBackground, "ut", u65, "r", "", "x")
	c.sync()
	adm.adminExpect("show jobs", ".\n")
	// D4: REDUCE checks the unique, not the reducer, against 64.
	h := c.submit(gearman.SubmitReduceJob, "ut", "short", strings.Repeat("r", 100), "", "x")
	adm.adminExpect("show jobs", h+"\t0\t0\t0\n.\n")
	c.statusUnique(strings.Repeat("u", 64), "0", "0", "0", "0", "0")
	c.statusUnique(u65+u65, "0", "0", "0", "0", "0") // D10: answered, zeros
	c.status(strings.Repeat("H", 72), "0", "0", "0", "0")
}

// TestBackgroundOntoForegroundSurvives: a bg submission that coalesces onto
// a fg job keeps the job when the fg client leaves (D7).
func TestBackgroundOntoForegroundSurvives(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	fg, bg, worker, probe := dialT(t, addr), dialT(t, addr), dialT(t, addr), dialT(t, addr)
	h := fg.submit(gearman.SubmitJob, "d7", "u7", "payload")
	if got := bg.submit(gearman.SubmitJobBg, "d7", "u7", "other"); got != h {
		t.Fatalf("bg coalesce: %s, want %s", got, h)
	}
	probe.adminExpect("show jobs", h+"\t0\t0\t1\n.\n") // now stored
	fg.Close()
	waitFor(t, "the fg client to be detached", func() bool {
		probe.send(gearman.GetStatusUnique, "u7")
		p := probe.expectType(gearman.StatusResUnique)
		return p.Args[1] == "1" && p.Args[5] == "0"
	})
	worker.canDo("d7")
	if got, data := worker.grabJob(); got != h || data != "payload" {
		t.Fatalf("grabbed %s %q, want %s", got, data, h)
	}

	// Without a bg submission the job is abandoned with its last client.
	fg2 := dialT(t, addr)
	h2 := fg2.submit(gearman.SubmitJob, "d7", "u8", "x")
	probe.statusUnique("u8", "1", "0", "0", "0", "1")
	fg2.Close()
	waitFor(t, "the abandoned job to be forgotten", func() bool {
		probe.send(gearman.GetStatusUnique, "u8")
		return probe.expectType(gearman.StatusResUnique).Args[1] == "0"
	})
	probe.status(h2, "0", "0", "0", "0")
	worker.expectNoJob()
	probe.adminExpect("show jobs", h+"\t0\t0\t1\n.\n")
}

func TestExceptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		cfg       Config
		option    string // sent by the first client; "" for none
		firstGets gearman.Type
	}{
		{"option", Config{}, "exceptions", gearman.WorkException},
		{"option case-insensitive", Config{}, "EXCEPTIONS", gearman.WorkException},
		{"none", Config{}, "", gearman.WorkFail},
		{"Config.Exceptions", Config{Exceptions: true}, "", gearman.WorkException},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := newTestServer(t, tc.cfg)
			c1, c2, worker := dialT(t, addr), dialT(t, addr), dialT(t, addr)
			if tc.option != "" {
				c1.send(gearman.OptionReq, tc.option)
				c1.expect(gearman.OptionRes, tc.option)
			}
			h := c1.submit(gearman.SubmitJob, "ex", "eu", "x")
			c2.submit(gearman.SubmitJob, "ex", "eu", "x")
			worker.canDo("ex")
			worker.grabJob()
			worker.send(gearman.WorkException, h, "boom\x00!")
			worker.sync()
			check := func(c *tconn, gets gearman.Type) {
				t.Helper()
				if gets == gearman.WorkException {
					c.expect(gearman.WorkException, h, "boom\x00!")
				} else {
					c.expect(gearman.WorkFail, h) // the handle exactly, no NUL (D17)
				}
			}
			check(c1, tc.firstGets)
			second := gearman.WorkFail
			if tc.cfg.Exceptions {
				second = gearman.WorkException
			}
			check(c2, second)
			c1.status(h, "0", "0", "0", "0") // the exception ended the job
			worker.expectNoJob()
		})
	}
	t.Run("unknown option", func(t *testing.T) {
		t.Parallel()
		c := dialT(t, newTestServer(t, Config{}))
		for _, opt := range []string{"foo", "exceptions\x00", "", "exception"} {
			c.send(gearman.OptionReq, opt)
			c.expectError(gearman.CodeUnknownOption, txtUnknownOption)
		}
		c.sync()
	})
}

// TestWorkFromNonOwner: WORK_* for a job this connection does not run gets
// the JOB_NOT_FOUND errors gearmand sends, and leaves the job alone.
func TestWorkFromNonOwner(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	client, owner, other := dialT(t, addr), dialT(t, addr), dialT(t, addr)
	running := client.submit(gearman.SubmitJob, "wn", "", "r")
	queued := client.submit(gearman.SubmitJob, "wn", "", "q")
	owner.canDo("wn")
	if h, _ := owner.grabJob(); h != running {
		t.Fatalf("grabbed %s, want %s", h, running)
	}
	cases := []struct {
		t          gearman.Type
		args       []string
		code, text string
	}{
		{gearman.WorkStatus, []string{"1", "2"}, gearman.CodeJobNotFound, txtWorkNotFound},
		{gearman.WorkComplete, []string{"res"}, gearman.CodeJobNotFound, txtWorkNotFound},
		{gearman.WorkFail, nil, gearman.CodeJobNotFound, txtWorkNotFound},
		{gearman.WorkData, []string{"d"}, gearman.CodeJobNotFound, txtDataNotFound},
		{gearman.WorkWarning, []string{"w"}, gearman.CodeJobNotFound, txtDataNotFound},
		{gearman.WorkException, []string{"e"}, gearman.CodeJobNotFound, txtExceptionMissing},
	}
	for _, h := range []string{running, queued, "H:t:999999", ""} {
		for _, tc := range cases {
			other.send(tc.t, append([]string{h}, tc.args...)...)
			other.expectError(tc.code, tc.text)
		}
	}
	// Exact texts and sizes, as gearmand sends them (docs/gearmand-differences.md, ERROR replies).
	for text, size := range map[string]int{txtWorkNotFound: 48, txtDataNotFound: 42, txtExceptionMissing: 69} {
		if n := len(gearman.CodeJobNotFound) + 1 + len(text); n != size {
			t.Errorf("ERROR %s %q: payload %d bytes, want %d", gearman.CodeJobNotFound, text, n, size)
		}
	}
	long := strings.Repeat("H", 64)
	other.send(gearman.WorkFail, long)
	other.expectError(gearman.CodeArgumentTooLarge, txtHandleTooLarge)
	other.send(gearman.WorkFail, long[:63])
	other.expectError(gearman.CodeJobNotFound, txtWorkNotFound)
	// The owner also cannot report on the queued job.
	owner.send(gearman.WorkComplete, queued, "x")
	owner.expectError(gearman.CodeJobNotFound, txtWorkNotFound)

	client.sync() // no packet reached the client
	client.status(running, "1", "1", "0", "0")
	client.status(queued, "1", "0", "0", "0")
	owner.send(gearman.WorkComplete, running, "real")
	owner.sync()
	client.expect(gearman.WorkComplete, running, "real")
}

func TestWorkerDisconnectRequeues(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	client, adm := dialT(t, addr), dialT(t, addr)
	other := client.submit(gearman.SubmitJob, "rq", "", "other") // ahead in the queue
	h := client.submit(gearman.SubmitJob, "rq", "", "payload")
	w1 := dialT(t, addr)
	w1.canDo("rq")
	if got, _ := w1.grabJob(); got != other {
		t.Fatalf("w1 got %s", got)
	}
	if got, _ := w1.grabJob(); got != h {
		t.Fatalf("w1 got %s", got)
	}
	w1.send(gearman.WorkStatus, h, "1", "2")
	w1.sync()
	client.expect(gearman.WorkStatus, h, "1", "2")
	w1.Close()

	w2 := dialT(t, addr)
	w2.canDo("rq")
	w2.send(gearman.PreSleep)
	w2.expect(gearman.Noop) // the requeued jobs are runnable
	client.sync()           // the client is told nothing
	adm.adminExpect("show jobs", other+"\t1\t0\t0\n"+h+"\t1\t0\t0\n.\n")
	client.status(h, "1", "0", "0", "0") // progress reset
	// Requeued at the tail in the order the worker held them.
	got := map[string]string{}
	for range 2 {
		gh, data := w2.grabJob()
		got[gh] = data
	}
	if got[h] != "payload" || got[other] != "other" {
		t.Fatalf("w2 got %q", got)
	}
	w2.send(gearman.WorkComplete, h, "from-w2")
	w2.send(gearman.WorkComplete, other, "other-done")
	w2.sync()
	results := map[string]string{}
	for range 2 {
		p := client.expectType(gearman.WorkComplete)
		results[p.Args[0]] = p.Args[1]
	}
	if results[h] != "from-w2" || results[other] != "other-done" {
		t.Errorf("client got %q", results)
	}
	adm.adminExpect("show jobs", ".\n")
}

func TestWorkerDisconnectRequeuesBackground(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	client := dialT(t, addr)
	h := client.submit(gearman.SubmitJobBg, "rqb", "u", "payload")
	w1 := dialT(t, addr)
	w1.canDo("rqb")
	w1.grabJob()
	w1.Close()
	w2 := dialT(t, addr)
	w2.canDo("rqb")
	w2.sleepUntilNoop()
	client.adminExpect("show jobs", h+"\t1\t0\t1\n.\n")
	if got, data := w2.grabJob(); got != h || data != "payload" {
		t.Fatalf("w2 got %s %q", got, data)
	}
}

func TestJobRetries(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{JobRetries: 2})
	client, adm := dialT(t, addr), dialT(t, addr)
	h := client.submit(gearman.SubmitJob, "rt", "", "x")

	w1 := dialT(t, addr)
	w1.canDo("rt")
	w1.grabJob()
	w1.Close()

	w2 := dialT(t, addr)
	w2.canDo("rt")
	w2.sleepUntilNoop()
	adm.adminExpect("show jobs", h+"\t1\t0\t0\n.\n")
	if got, _ := w2.grabJob(); got != h {
		t.Fatalf("second attempt got %s, want %s", got, h)
	}
	w2.Close()

	client.expect(gearman.WorkFail, h) // the second death used up the attempts
	client.status(h, "0", "0", "0", "0")
	adm.adminExpect("show jobs", ".\n")
	adm.adminExpect("status", "rt\t0\t0\t0\n.\n")
	w3 := dialT(t, addr)
	w3.canDo("rt")
	w3.expectNoJob()
}

func TestJobRetriesBackground(t *testing.T) {
	t.Parallel()
	dbPath := filepath.Join(t.TempDir(), "db")
	ts := startServer(t, Config{JobRetries: 1}, dbPath)
	client := dialT(t, ts.addr)
	h := client.submit(gearman.SubmitJobBg, "rb", "u", "x")
	w1 := dialT(t, ts.addr)
	w1.canDo("rb")
	w1.grabJob()
	w1.Close()
	waitFor(t, "the job to be dropped", func() bool {
		client.send(gearman.GetStatus, h)
		return client.expectType(gearman.StatusRes).Args[1] == "0"
	})
	ts.stop(t)
	// The stored record went with it.
	ts2 := startServer(t, Config{}, dbPath)
	dialT(t, ts2.addr).adminExpect("show jobs", ".\n")
}

func TestCanDoTimeout(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	client, adm := dialT(t, addr), dialT(t, addr)
	h := client.submit(gearman.SubmitJob, "to", "", "slow")
	wA, wB := dialT(t, addr), dialT(t, addr)

	// wC's timer is armed first and cancelled by PRE_SLEEP.
	hc := client.submit(gearman.SubmitJob, "to_c", "", "c")
	wC := dialT(t, addr)
	wC.send(gearman.CanDoTimeout, "to_c", "1000")
	if got, _ := wC.grabJob(); got != hc {
		t.Fatalf("wC got %s", got)
	}
	wC.send(gearman.PreSleep)
	wC.sync()

	wA.send(gearman.CanDoTimeout, "to", "1000")
	wA.sync()
	start := time.Now()
	if got, _ := wA.grabJob(); got != h {
		t.Fatalf("wA got %s", got)
	}
	wB.canDo("to")
	if el := awaitRequeue(t, wB, start); el < 900*time.Millisecond {
		t.Errorf("requeued after %v, before the 1000 ms timeout", el)
	}
	adm.adminExpect("show jobs", h+"\t1\t0\t0\n"+hc+"\t0\t0\t0\n.\n")
	client.status(h, "1", "0", "0", "0")
	client.status(hc, "1", "1", "0", "0") // PRE_SLEEP stopped wC's timer
	if got, data := wB.grabJob(); got != h || data != "slow" {
		t.Fatalf("wB got %s %q", got, data)
	}
	// The first worker's late result is refused and lost.
	wA.send(gearman.WorkComplete, h, "late")
	wA.expectError(gearman.CodeJobNotFound, txtWorkNotFound)
	client.sync()
	wB.send(gearman.WorkComplete, h, "on time")
	wB.sync()
	client.expect(gearman.WorkComplete, h, "on time")
	wC.send(gearman.WorkComplete, hc, "c done")
	wC.sync()
	client.expect(gearman.WorkComplete, hc, "c done")
}

// TestCanDoTimeoutFloor: timeouts under 1000 ms are raised to 1000 ms; 0,
// negative and unparsable values mean no timeout.
func TestCanDoTimeoutFloor(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	client, w, sleeper := dialT(t, addr), dialT(t, addr), dialT(t, addr)
	h := client.submit(gearman.SubmitJobBg, "fl", "", "x")
	for _, v := range []string{"0", "-1", "abc", strings.Repeat("9", 25)} {
		w.send(gearman.CanDoTimeout, "none", v)
	}
	w.send(gearman.CanDoTimeout, "fl", "1")
	w.sync()
	start := time.Now()
	if got, _ := w.grabJob(); got != h {
		t.Fatalf("got %s", got)
	}
	sleeper.canDo("fl")
	if el := awaitRequeue(t, sleeper, start); el < 900*time.Millisecond {
		t.Errorf("a 1 ms timeout requeued after %v, want the 1000 ms floor", el)
	}
	if got := adminRow(t, client, "status", "none"); got != "none\t0\t0\t4" {
		t.Errorf("status row %q, want 4 registrations (D10: no drop)", got)
	}
}

func TestPreSleep(t *testing.T) {
	t.Parallel()
	t.Run("NOOP on submit", func(t *testing.T) {
		t.Parallel()
		addr := newTestServer(t, Config{})
		client, worker := dialT(t, addr), dialT(t, addr)
		worker.canDo("ps")
		worker.expectNoJob()
		worker.send(gearman.PreSleep)
		worker.sync() // no NOOP yet: nothing queued
		client.submit(gearman.SubmitJob, "other", "", "x")
		worker.sync() // not for a function of this worker
		client.submit(gearman.SubmitJob, "ps", "", "x")
		worker.expect(gearman.Noop)
		client.submit(gearman.SubmitJob, "ps", "", "y")
		worker.sync() // one NOOP per sleep
		worker.grabJob()
	})
	t.Run("immediate NOOP", func(t *testing.T) {
		t.Parallel()
		addr := newTestServer(t, Config{})
		client, worker := dialT(t, addr), dialT(t, addr)
		client.submit(gearman.SubmitJobBg, "ps", "", "x")
		worker.canDo("ps")
		worker.send(gearman.PreSleep)
		worker.expect(gearman.Noop)
	})
	t.Run("bg submit", func(t *testing.T) {
		t.Parallel()
		addr := newTestServer(t, Config{})
		client, worker := dialT(t, addr), dialT(t, addr)
		worker.canDo("ps")
		worker.send(gearman.PreSleep)
		worker.sync()
		client.submit(gearman.SubmitJobBg, "ps", "", "x")
		worker.expect(gearman.Noop)
	})
	for _, tc := range []struct {
		wakeup, woken int
	}{{0, 2}, {1, 1}, {2, 2}} {
		t.Run(fmt.Sprintf("WorkerWakeup=%d", tc.wakeup), func(t *testing.T) {
			t.Parallel()
			addr := newTestServer(t, Config{WorkerWakeup: tc.wakeup})
			client := dialT(t, addr)
			sleepers := []*tconn{dialT(t, addr), dialT(t, addr)}
			for _, w := range sleepers {
				w.canDo("ww")
				w.send(gearman.PreSleep)
				w.sync()
			}
			client.submit(gearman.SubmitJob, "ww", "", "x")
			// Any NOOP was queued before JOB_CREATED was sent, so it
			// arrives before the ECHO_RES.
			woken := 0
			for _, w := range sleepers {
				w.send(gearman.EchoReq, "probe")
				switch p := w.recv(); p.Type {
				case gearman.Noop:
					woken++
					w.expect(gearman.EchoRes, "probe")
				case gearman.EchoRes:
				default:
					t.Fatalf("got %s", p)
				}
			}
			if woken != tc.woken {
				t.Errorf("%d sleepers woken, want %d", woken, tc.woken)
			}
		})
	}
}

func TestMaxQueue(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	c, adm := dialT(t, addr), dialT(t, addr)
	// D11: the limit applies to a function that does not exist yet.
	adm.adminExpect("maxqueue mq 2", "OK\r\n")
	adm.adminExpect("status", "mq\t0\t0\t0\n.\n")
	h1 := c.submit(gearman.SubmitJobBg, "mq", "u1", "x")
	c.submit(gearman.SubmitJob, "mq", "u2", "x")
	c.submitError(gearman.CodeQueueError, txtQueueFull, gearman.SubmitJobBg, "mq", "u3", "x")
	c.submitError(gearman.CodeQueueError, txtQueueFull, gearman.SubmitJobHigh, "mq", "", "x")
	c.submitError(gearman.CodeQueueError, txtQueueFull, gearman.SubmitJobEpoch, "mq", "", "", "x")
	// Coalescing is still accepted when full.
	if h := c.submit(gearman.SubmitJobLowBg, "mq", "u1", "y"); h != h1 {
		t.Errorf("coalesced onto %s, want %s", h, h1)
	}
	adm.adminExpect("status", "mq\t2\t0\t0\n.\n")
	// Running jobs count too.
	w := dialT(t, addr)
	w.canDo("mq")
	w.grabJob()
	c.submitError(gearman.CodeQueueError, txtQueueFull, gearman.SubmitJobBg, "mq", "u3", "x")
	adm.adminExpect("maxqueue mq 0", "OK\r\n")
	c.submit(gearman.SubmitJobBg, "mq", "u3", "x")

	// Per-priority limits: HIGH, NORMAL, LOW; two numbers leave LOW
	// unlimited; the name is case-sensitive.
	for _, tc := range []struct {
		cmd  string
		fn   string
		subs []gearman.Type
		ok   []bool
	}{
		{"maxqueue mp 1 2 3", "mp",
			[]gearman.Type{gearman.SubmitJobBg, gearman.SubmitJobHighBg, gearman.SubmitJobBg, gearman.SubmitJobBg, gearman.SubmitJobLowBg, gearman.SubmitJobLowBg},
			[]bool{true, false, true, false, true, false}},
		{"maxqueue mp2 1 1", "mp2",
			[]gearman.Type{gearman.SubmitJobBg, gearman.SubmitJobBg, gearman.SubmitJobLowBg, gearman.SubmitJobLowBg, gearman.SubmitJobHighBg},
			[]bool{true, false, true, true, false}},
		{"maxqueue MP3 1", "mp3",
			[]gearman.Type{gearman.SubmitJobBg, gearman.SubmitJobBg},
			[]bool{true, true}},
		{"maxqueue mp4 x", "mp4",
			[]gearman.Type{gearman.SubmitJobBg, gearman.SubmitJobBg},
			[]bool{true, true}},
		{"maxqueue mp5", "mp5",
			[]gearman.Type{gearman.SubmitJobBg, gearman.SubmitJobBg},
			[]bool{true, true}},
	} {
		adm.adminExpect(tc.cmd, "OK\r\n")
		for i, st := range tc.subs {
			h, err := c.trySubmit(st, tc.fn, "", "x")
			var se *gearman.ServerError
			switch {
			case tc.ok[i] && err != nil:
				t.Errorf("%s: submission %d (%s): %v", tc.cmd, i, st, err)
			case !tc.ok[i] && (!errors.As(err, &se) || se.Code != gearman.CodeQueueError || se.Text != txtQueueFull):
				t.Errorf("%s: submission %d (%s): handle %q err %v, want queue full", tc.cmd, i, st, h, err)
			}
		}
	}
}

func TestEpoch(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	addr := newTestServer(t, Config{Now: func() time.Time { return now }})
	c, w := dialT(t, addr), dialT(t, addr)
	cases := []struct {
		name, when string
		code, text string // expected ERROR, "" for a job that runs now
	}{
		{"empty", "", "", ""},
		{"zero", "0", "", ""},
		{"past", "1000", "", ""},
		{"now", "1800000000", "", ""},
		{"negative", "-5", "", ""},
		{"abc", "abc", gearman.CodeInvalidArgument, "Epoch must be decimal unix seconds"},
		{"trailing garbage", "12x", gearman.CodeInvalidArgument, "Epoch must be decimal unix seconds"},
		{"space", " 1", gearman.CodeInvalidArgument, "Epoch must be decimal unix seconds"},
		{"after 2262", "9223372037", gearman.CodeInvalidArgument, "Epoch must be decimal unix seconds"},
		{"overflow", "99999999999999999999", gearman.CodeInvalidArgument, "Epoch must be decimal unix seconds"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, w := c.in(t), w.in(t)
			fn := fmt.Sprint("ep", i)
			w.canDo(fn)
			if tc.code != "" {
				c.submitError(tc.code, tc.text, gearman.SubmitJobEpoch, fn, "u", tc.when, "data")
				w.expectNoJob()
				return
			}
			h := c.submit(gearman.SubmitJobEpoch, fn, "u", tc.when, "data")
			w.send(gearman.GrabJobUniq)
			w.expect(gearman.JobAssignUniq, h, fn, "u", "data")
			w.send(gearman.WorkComplete, h, "")
			w.sync()
		})
	}
	// A future job waits in the store: known, not running, not handed out.
	t.Run("future", func(t *testing.T) {
		c, w := c.in(t), w.in(t)
		w.canDo("ep_future")
		h := c.submit(gearman.SubmitJobEpoch, "ep_future", "fu", "1800000060", "data")
		w.expectNoJob()
		c.send(gearman.GetStatus, h)
		c.expect(gearman.StatusRes, h, "1", "0", "0", "0")
		if again := c.submit(gearman.SubmitJobEpoch, "ep_future", "fu", "1800000999", "other"); again != h {
			t.Errorf("resubmission with the same unique got %s, want %s", again, h)
		}
	})
}

// TestBareHandleWorkResult: a WORK_COMPLETE, WORK_DATA, WORK_WARNING or
// WORK_EXCEPTION whose payload is the handle alone (no NUL, as Perl's
// Gearman::Worker sends a "0" or "" result) is read as that handle with
// empty data when the sender runs that job (D20); for any other handle it
// is malformed, as before.
func TestBareHandleWorkResult(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	bare := func(c *tconn, typ gearman.Type, payload string) {
		c.t.Helper()
		c.writeRaw(rawPacket(gearman.MagicReq, typ, payload))
	}
	invalid := func(c *tconn, typ gearman.Type) {
		c.t.Helper()
		c.expectError(gearman.CodeInvalidPacket, (&gearman.MalformedError{Type: typ, Want: typ.NArgs() - 1}).Error())
	}
	// run submits a job of fn for client and has a new worker grab it.
	run := func(t *testing.T, client *tconn, typ gearman.Type, fn, unique string) (worker *tconn, h string) {
		t.Helper()
		h = client.submit(typ, fn, unique, "x")
		worker = dialT(t, addr)
		worker.canDo(fn)
		if got, _ := worker.grabJob(); got != h {
			t.Fatalf("grabbed %s, want %s", got, h)
		}
		return worker, h
	}

	t.Run("own job", func(t *testing.T) {
		client := dialT(t, addr)
		worker, h := run(t, client, gearman.SubmitJob, "bh_own", "")
		bare(worker, gearman.WorkData, h)
		bare(worker, gearman.WorkWarning, h)
		worker.sync() // no reply
		client.expect(gearman.WorkData, h, "")
		client.expect(gearman.WorkWarning, h, "")
		client.status(h, "1", "1", "0", "0")
		bare(worker, gearman.WorkComplete, h)
		worker.sync()
		client.expect(gearman.WorkComplete, h, "")
		client.status(h, "0", "0", "0", "0")

		// The worker goes on: its next job is served as usual.
		h2 := client.submit(gearman.SubmitJob, "bh_own", "", "y")
		if got, _ := worker.grabJob(); got != h2 {
			t.Fatalf("next job %s, want %s", got, h2)
		}
		worker.send(gearman.WorkComplete, h2, "r")
		client.expect(gearman.WorkComplete, h2, "r")
	})

	t.Run("exception", func(t *testing.T) {
		plain, withExc := dialT(t, addr), dialT(t, addr)
		withExc.send(gearman.OptionReq, "exceptions")
		withExc.expect(gearman.OptionRes, "exceptions")
		worker, h := run(t, withExc, gearman.SubmitJob, "bh_exc", "u-exc")
		if h2 := plain.submit(gearman.SubmitJob, "bh_exc", "u-exc", "x"); h2 != h {
			t.Fatalf("coalesced submission got %s, want %s", h2, h)
		}
		bare(worker, gearman.WorkException, h)
		worker.sync()
		withExc.expect(gearman.WorkException, h, "")
		plain.expect(gearman.WorkFail, h)
		plain.status(h, "0", "0", "0", "0")
	})

	t.Run("background job", func(t *testing.T) {
		client := dialT(t, addr)
		worker, h := run(t, client, gearman.SubmitJobBg, "bh_bg", "u-bg")
		bare(worker, gearman.WorkComplete, h)
		worker.sync()
		client.status(h, "0", "0", "0", "0")
		worker.expectNoJob()
	})

	t.Run("not the sender's job", func(t *testing.T) {
		client := dialT(t, addr)
		other, running := run(t, client, gearman.SubmitJob, "bh_other", "")
		queued := client.submit(gearman.SubmitJobBg, "bh_nobody", "", "x")
		worker, mine := run(t, client, gearman.SubmitJob, "bh_mine", "")

		for _, tc := range []struct {
			name    string
			typ     gearman.Type
			payload string
		}{
			{"another connection's job", gearman.WorkComplete, running},
			{"a queued job", gearman.WorkComplete, queued},
			{"an unknown handle", gearman.WorkComplete, testPrefix + ":999999"},
			{"more than the handle", gearman.WorkComplete, mine + "x"},
			{"empty payload", gearman.WorkData, ""},
			{"WORK_STATUS", gearman.WorkStatus, mine},
		} {
			t.Run(tc.name, func(t *testing.T) {
				bare(worker.in(t), tc.typ, tc.payload)
				invalid(worker.in(t), tc.typ)
			})
		}
		// With RES magic the packet is not a request: as before, it is
		// reported malformed first.
		worker.writeRaw(rawPacket(gearman.MagicRes, gearman.WorkComplete, mine))
		invalid(worker, gearman.WorkComplete)
		worker.sync()

		client.status(running, "1", "1", "0", "0")
		client.status(queued, "1", "0", "0", "0")
		client.status(mine, "1", "1", "0", "0")
		other.send(gearman.WorkComplete, running, "r1")
		client.expect(gearman.WorkComplete, running, "r1")
		worker.send(gearman.WorkComplete, mine, "r2")
		client.expect(gearman.WorkComplete, mine, "r2")
	})
}

// TestMalformedInput: bad input affects at most the connection it came on.
func TestMalformedInput(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{MaxPacketSize: 1 << 20})
	bystander, client, worker := dialT(t, addr), dialT(t, addr), dialT(t, addr)
	h := client.submit(gearman.SubmitJob, "mi", "", "x")
	worker.canDo("mi")
	worker.grabJob()

	t.Run("too few NULs", func(t *testing.T) {
		c := dialT(t, addr)
		var b []byte
		b = append(b, rawPacket(gearman.MagicReq, gearman.SubmitJob, "fnonly")...)
		b = gearman.AppendPacket(b, gearman.MagicReq, gearman.SubmitJob, []byte("tf"), []byte(""), []byte("\x00\x00"))
		b = append(b, rawPacket(gearman.MagicReq, gearman.WorkStatus, "H:t:1\x001")...)
		b = gearman.AppendPacket(b, gearman.MagicReq, gearman.EchoReq, []byte("still here"))
		c.writeRaw(b)
		if p := c.expectType(gearman.Error); p.Args[0] != gearman.CodeInvalidPacket || p.Args[1] == "" {
			t.Errorf("got %s, want ERROR %s", p, gearman.CodeInvalidPacket)
		}
		// The next packet's framing is intact although its NULs would
		// have completed the short one.
		h2 := c.expectType(gearman.JobCreated).Args[0]
		if p := c.expectType(gearman.Error); p.Args[0] != gearman.CodeInvalidPacket {
			t.Errorf("got %s, want ERROR %s", p, gearman.CodeInvalidPacket)
		}
		c.expect(gearman.EchoRes, "still here")
		c.send(gearman.GetStatus, h2)
		c.expect(gearman.StatusRes, h2, "1", "0", "0", "0")
		c.adminExpect("show unique jobs", "\n\n.\n")
		if fns := functionNames(t, c); !slices.Equal(fns, []string{"mi", "tf"}) {
			t.Errorf("functions %q, want [mi tf]", fns)
		}
	})

	closing := []struct {
		name string
		b    []byte
	}{
		{"bad magic", append([]byte("\x00REX"), gearman.AppendPacket(nil, gearman.MagicReq, gearman.EchoReq, []byte("x"))[4:]...)},
		{"type 0", rawPacket(gearman.MagicReq, 0, "")},
		{"type 43", rawPacket(gearman.MagicReq, 43, "")},
		{"type 99", rawPacket(gearman.MagicReq, 99, "abc")},
		{"type 0 RES", rawPacket(gearman.MagicRes, 0, "")},
	}
	for _, tc := range closing {
		t.Run(tc.name, func(t *testing.T) {
			c := dialT(t, addr)
			c.sync()
			c.writeRaw(tc.b)
			c.expectClosed()
			bystander.in(t).sync()
		})
	}

	for _, tc := range []struct {
		name string
		size uint32
	}{{"4 GiB header", 0xffffffff}, {"over MaxPacketSize", 1<<20 + 1}} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialT(t, addr)
			c.writeRaw(rawHeader(gearman.MagicReq, gearman.EchoReq, tc.size))
			c.expectError(gearman.CodeArgumentTooLarge, txtPacketTooLarge)
			c.expectClosed()
			bystander.in(t).sync()
		})
	}
	t.Run("at MaxPacketSize", func(t *testing.T) {
		c := dialT(t, addr)
		big := strings.Repeat("z", 1<<20)
		c.send(gearman.EchoReq, big)
		c.expect(gearman.EchoRes, big)
	})

	t.Run("RES magic", func(t *testing.T) {
		c := dialT(t, addr)
		for _, typ := range []gearman.Type{gearman.EchoReq, gearman.SubmitJob, gearman.CanDo, gearman.GrabJob, gearman.GetStatus, gearman.WorkComplete, gearman.Noop} {
			args := make([][]byte, typ.NArgs())
			for i := range args {
				args[i] = []byte("resmagic")
			}
			c.writeRaw(gearman.AppendPacket(nil, gearman.MagicRes, typ, args...))
			c.expectError(gearman.CodeInvalidMagic, txtRequestMagic)
		}
		c.sync()
		if fns := functionNames(t, c); slices.Contains(fns, "resmagic") {
			t.Errorf("RES-magic packets created function: %q", fns)
		}
	})

	t.Run("not expected", func(t *testing.T) {
		c := dialT(t, addr)
		types := []gearman.Type{5 /* unused */, gearman.Noop, gearman.JobCreated, gearman.NoJob, gearman.JobAssign, gearman.EchoRes, gearman.Error, gearman.StatusRes,
			gearman.AllYours, gearman.OptionRes, gearman.JobAssignUniq, gearman.JobAssignAll, gearman.StatusResUnique}
		for _, typ := range types {
			args := make([][]byte, typ.NArgs())
			for i := range args {
				args[i] = []byte("ne")
			}
			c.writeRaw(gearman.AppendPacket(nil, gearman.MagicReq, typ, args...))
			c.expectError(gearman.CodeInvalidCommand, txtNotExpected)
		}
		c.sync()
		if fns := functionNames(t, c); slices.Contains(fns, "ne") {
			t.Errorf("SUBMIT_JOB_SCHED created function: %q", fns)
		}
	})

	t.Run("disconnect mid-packet", func(t *testing.T) {
		bystander := bystander.in(t)
		for _, b := range [][]byte{
			gearman.AppendPacket(nil, gearman.MagicReq, gearman.SubmitJob, []byte("mid"), []byte(""), []byte("0123456789"))[:20],
			rawHeader(gearman.MagicReq, gearman.EchoReq, 100)[:7],
			[]byte("stat"),
		} {
			c := dialT(t, addr)
			c.writeRaw(b)
			c.Close()
		}
		bystander.sync()
		if fns := functionNames(t, bystander); slices.Contains(fns, "mid") {
			t.Errorf("half a packet created function: %q", fns)
		}
		bystander.statusUnique("", "0", "0", "0", "0", "0")
	})

	// The job in flight through all of this is untouched.
	worker.send(gearman.WorkComplete, h, "fine")
	worker.sync()
	client.expect(gearman.WorkComplete, h, "fine")
}

// TestPipelinedTextAndBinary: one write of text lines and a packet gets
// the answers in order, as gearmand does.
func TestPipelinedTextAndBinary(t *testing.T) {
	t.Parallel()
	c := dialT(t, newTestServer(t, Config{}))
	var b []byte
	b = append(b, "version\r\ngetpid\n"...)
	b = gearman.AppendPacket(b, gearman.MagicReq, gearman.EchoReq, []byte("ping\x00with-nul"))
	b = append(b, "status\n"...)
	c.writeRaw(b)
	for _, want := range []string{"OK gearsched " + Version + "\n", fmt.Sprintf("OK %d\n", os.Getpid())} {
		if line := c.readLine(); line != want {
			t.Fatalf("got %q, want %q", line, want)
		}
	}
	c.expect(gearman.EchoRes, "ping\x00with-nul")
	if line := c.readLine(); line != ".\n" {
		t.Fatalf("status: %q", line)
	}
}

// TestShutdownWhileConnecting: connections arriving while Shutdown runs
// are all closed, and none is served after Shutdown returns.
func TestShutdownWhileConnecting(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{}, filepath.Join(t.TempDir(), "db"))
	var (
		mu    sync.Mutex
		conns []net.Conn
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, nc := range conns {
			nc.Close()
		}
	})
	started := make(chan struct{}, 64)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				nc, err := net.DialTimeout("tcp", ts.addr, testTimeout)
				if err != nil {
					return // listener closed
				}
				mu.Lock()
				conns = append(conns, nc)
				mu.Unlock()
				select {
				case started <- struct{}{}:
				default:
				}
			}
		}()
	}
	for range 32 {
		<-started
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		ts.stop(t)
	}()
	select {
	case <-stopped:
	case <-time.After(testTimeout):
		// The cleanup closes the client connections, which lets it end.
		close(stop)
		t.Fatalf("Shutdown hangs on a connection accepted while it ran")
	}
	close(stop)
	wg.Wait()
	deadline := time.Now().Add(testTimeout)
	buf := make([]byte, 1)
	for _, nc := range conns {
		nc.SetDeadline(deadline)
		if _, err := nc.Read(buf); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a connection is still open after Shutdown returned (of %d)", len(conns))
		}
	}
}

// awaitRequeue puts w to sleep and waits for the NOOP that a timed-out job's
// requeue sends; it returns how long after start that came. A lower bound
// on it is a correctness check (a timer must not fire early), not a timing.
func awaitRequeue(t *testing.T, w *tconn, start time.Time) time.Duration {
	t.Helper()
	w.send(gearman.PreSleep)
	w.SetDeadline(time.Now().Add(3 * testTimeout))
	p, err := w.Recv()
	if err != nil || p.Type != gearman.Noop {
		t.Fatalf("waiting for the requeue NOOP: %v %v", p, err)
	}
	return time.Since(start)
}

// rawPacket builds a packet whose payload is exactly payload.
func rawPacket(m gearman.Magic, t gearman.Type, payload string) []byte {
	return gearman.AppendPacketString(nil, m, t, payload)
}

// rawHeader builds a header declaring size payload bytes, without payload.
func rawHeader(m gearman.Magic, t gearman.Type, size uint32) []byte {
	b := gearman.AppendHeader(nil, m, t)
	binary.BigEndian.PutUint32(b[8:], size)
	return b
}

func toBytes(args []string) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = []byte(a)
	}
	return out
}

func argStrings(p *gearman.Packet) []string {
	out := make([]string, len(p.Args))
	for i, a := range p.Args {
		out[i] = string(a)
	}
	return out
}

// TestShutdownFailsWaitingForegroundJobs: at shutdown a client waiting for
// a foreground job that will not run gets WORK_FAIL before the close; a
// client attached to a background job, which stays stored, gets only the
// close.
func TestShutdownFailsWaitingForegroundJobs(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{}, filepath.Join(t.TempDir(), "db"))
	fg, bg := dialT(t, ts.addr), dialT(t, ts.addr)
	h := fg.submit(gearman.SubmitJob, "f_down", "", "x")
	hb := bg.submit(gearman.SubmitJobBg, "f_down", "kept", "y")
	if again := bg.submit(gearman.SubmitJob, "f_down", "kept", "y"); again != hb {
		t.Fatalf("foreground attach to the background job got %s, want %s", again, hb)
	}
	ts.stop(t)
	fg.expect(gearman.WorkFail, h)
	fg.expectClosed()
	bg.expectClosed()
}
