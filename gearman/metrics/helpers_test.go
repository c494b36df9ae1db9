package metrics

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/gearman/server"
	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// testTimeout bounds every network operation of a test.
const testTimeout = 5 * time.Second

// rig is an in-process job server over a real store, listening on
// 127.0.0.1, with its scheduler (ticked by the test) and its metrics.
type rig struct {
	st    *store.Store
	srv   *server.Server
	sched *scheduler.Scheduler
	addr  string
	clock *testClock
	m     *Metrics
}

// testClock is a settable clock for the server.
type testClock struct{ ns atomic.Int64 }

func (c *testClock) Now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// rigStart is the test clock's first reading.
var rigStart = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// newRig starts a job server whose metrics have at most maxFunctions
// function labels (0: the default). Everything stops at cleanup.
func newRig(t testing.TB, maxFunctions int) *rig {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "m.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{}
	clock.Set(rigStart)
	srv, err := server.New(server.Config{Store: st, HandlePrefix: "H:m", Now: clock.Now})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		srv.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		st.Close()
	})
	sched := scheduler.New(scheduler.Config{Store: st, Sink: srv})
	m, err := New(Config{Store: st, Server: srv, Scheduler: sched, MaxFunctions: maxFunctions, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{st: st, srv: srv, sched: sched, addr: ln.Addr().String(), clock: clock, m: m}
}

// tick releases what is due at the clock's time.
func (r *rig) tick(t testing.TB) {
	t.Helper()
	if err := r.sched.Tick(context.Background(), r.clock.Now(), rigStart); err != nil {
		t.Fatal(err)
	}
}

// client is a Gearman connection whose failures end the test.
type client struct {
	*gearman.Client
	t testing.TB
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cl, err := gearman.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	cl.SetDeadline(time.Now().Add(testTimeout))
	return &client{Client: cl, t: t}
}

func (c *client) submit(typ gearman.Type, fn, unique string, args ...string) string {
	c.t.Helper()
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	h, err := c.Submit(typ, fn, unique, bs...)
	if err != nil {
		c.t.Fatalf("submit %s %q: %v", typ, fn, err)
	}
	return h
}

// send sends a packet.
func (c *client) send(typ gearman.Type, args ...string) {
	c.t.Helper()
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	if err := c.Send(typ, bs...); err != nil {
		c.t.Fatal(err)
	}
}

// do sends a packet and returns the reply.
func (c *client) do(typ gearman.Type, args ...string) *gearman.Packet {
	c.t.Helper()
	c.send(typ, args...)
	p, err := c.Recv()
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// sync waits until the server has handled everything sent before: the
// ECHO_RES must be the next packet.
func (c *client) sync() {
	c.t.Helper()
	if p := c.do(gearman.EchoReq, "sync"); p.Type != gearman.EchoRes {
		c.t.Fatalf("got %s, want ECHO_RES", p.Type)
	}
}

// register registers the worker for fns and waits until the server has
// them.
func (c *client) register(fns ...string) {
	c.t.Helper()
	for _, fn := range fns {
		c.send(gearman.CanDo, fn)
	}
	c.sync()
}

// grab takes the next job and returns its handle.
func (c *client) grab() string {
	c.t.Helper()
	p := c.do(gearman.GrabJob)
	if p.Type != gearman.JobAssign {
		c.t.Fatalf("GRAB_JOB: got %s, want JOB_ASSIGN", p.Type)
	}
	return string(p.Args[0])
}

// scrape fetches the page and parses it.
func scrape(t testing.TB, m *Metrics) (page string, fams map[string]*dto.MetricFamily) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	page = rec.Body.String()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(page))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, page)
	}
	return page, fams
}

// find returns the series of family name whose labels include want, or
// nil.
func find(fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		if containsAll(got, want) {
			return m
		}
	}
	return nil
}

func containsAll(got, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// value returns a counter's or gauge's value; the series must exist.
func value(t testing.TB, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	m := find(fams, name, labelMap(labels))
	switch {
	case m == nil:
		t.Fatalf("no series %s%v", name, labels)
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("%s%v is neither a counter nor a gauge", name, labels)
	return 0
}

// histogram returns a histogram series; it must exist.
func histogram(t testing.TB, fams map[string]*dto.MetricFamily, name string, labels ...string) *dto.Histogram {
	t.Helper()
	m := find(fams, name, labelMap(labels))
	if m == nil || m.Histogram == nil {
		t.Fatalf("no histogram %s%v", name, labels)
	}
	return m.Histogram
}

// labelMap reads name, value pairs.
func labelMap(kv []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// labelValues returns the values label takes in family name, sorted.
func labelValues(fams map[string]*dto.MetricFamily, name, label string) []string {
	var vs []string
	if f := fams[name]; f != nil {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == label && !slices.Contains(vs, l.GetValue()) {
					vs = append(vs, l.GetValue())
				}
			}
		}
	}
	slices.Sort(vs)
	return vs
}
