package metrics

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/gearman/server"
	"github.com/gearsched/gearsched/gearman/sidecar"
	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
)

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// watchedQueues stands for the sidecar's queue watcher, which does not
// exist yet: the hook reports what it returns.
type watchedQueues int

func (w watchedQueues) WatchedQueues() int { return int(w) }

// TestSidecarMetrics: a sidecar in front of a job server and an address
// nothing listens on. (The upstream is gearsched's own job server, in
// process: the sidecar's tests in cmd/gearsched run it against the real
// gearmand; here only what the page says matters.) A job submitted to the
// sidecar is forwarded; the page shows each upstream's state and counters
// and both lateness stages of the sidecar, and none of the job server's
// worker-side series.
func TestSidecarMetrics(t *testing.T) {
	upstream, down := newRig(t, 0).addr, freeAddr(t)
	st, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	handles, err := server.NewHandles(st, "H:s")
	if err != nil {
		t.Fatal(err)
	}
	up, err := sidecar.NewUpstream(sidecar.UpstreamConfig{Addrs: []string{upstream, down}, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := sidecar.NewForwarder(sidecar.ForwarderConfig{Store: st, Upstream: up, Handles: handles})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: st, Handles: handles, Upstreams: fwd})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Go(func() { srv.Serve(ln) })
	bg.Go(func() { up.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		done, stop := context.WithCancel(context.Background())
		stop()
		srv.Shutdown(done)
		bg.Wait()
	})
	sched := scheduler.New(scheduler.Config{Store: st, Sink: fwd})
	m, err := New(Config{Store: st, Server: srv, Scheduler: sched, Forwarder: fwd, Watcher: watchedQueues(2)})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testTimeout)
	for !up.Stats()[0].Up { // a condition wait: Run dials in the background
		if time.Now().After(deadline) {
			t.Fatal("the upstream never came up")
		}
		time.Sleep(10 * time.Millisecond)
	}

	c := dial(t, ln.Addr().String())
	c.submit(gearman.SubmitJobBg, "f", "u1", "x") // held until forwarded
	start := time.Now()
	if err := sched.Tick(context.Background(), time.Now(), start); err != nil {
		t.Fatal(err)
	}
	if status, err := dial(t, upstream).Admin("status"); err != nil || !strings.Contains(status, "f\t1\t0\t0") {
		t.Fatalf("the upstream's status %q, %v; want the forwarded job queued", status, err)
	}

	_, fams := scrape(t, m)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"gearsched_upstream_up", []string{"upstream", upstream}, 1},
		{"gearsched_upstream_up", []string{"upstream", down}, 0},
		{"gearsched_upstream_forwarded_total", []string{"upstream", upstream}, 1},
		{"gearsched_upstream_forwarded_total", []string{"upstream", down}, 0},
		{"gearsched_upstream_refused_total", []string{"upstream", upstream}, 0},
		{"gearsched_upstream_late_total", []string{"upstream", upstream}, 0},
		{"gearsched_upstream_triggers_sent_total", []string{"upstream", upstream}, 0},
		{"gearsched_jobs_submitted_total", []string{"function", "f"}, 1},
		{"gearsched_scheduled_jobs_pending", []string{"function", "f"}, 0},
		{"gearsched_sidecar_watched_queues", nil, 2},
	} {
		if got := value(t, fams, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	for _, stage := range []string{"released", "acknowledged"} {
		if n := histogram(t, fams, "gearsched_lateness_seconds", "stage", stage).GetSampleCount(); n != 1 {
			t.Errorf("lateness %s: %d observations, want 1", stage, n)
		}
	}
	if find(fams, "gearsched_lateness_seconds", map[string]string{"stage": "assigned"}) != nil {
		t.Error("a sidecar reports lateness to workers")
	}
	for _, name := range []string{"gearsched_jobs_queued", "gearsched_jobs_running", "gearsched_workers", "gearsched_jobs_completed_total"} {
		if fams[name] != nil {
			t.Errorf("a sidecar reports %s", name)
		}
	}
}
