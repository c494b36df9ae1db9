package server

import (
	"context"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/scheduler"
)

// functionStats returns the server's entry for name.
func functionStats(t *testing.T, srv *Server, name string) FunctionStats {
	t.Helper()
	for _, fs := range srv.AppendFunctionStats(nil) {
		if fs.Name == name {
			return fs
		}
	}
	t.Fatalf("no FunctionStats for %q", name)
	return FunctionStats{}
}

// TestFunctionCounters: each function counts its submissions, completions,
// failures and retries, and reports its queued and running jobs by
// priority; `drop function` keeps the counters.
func TestFunctionCounters(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{}, filepath.Join(t.TempDir(), "s.db"))
	c, w, a := dialT(t, ts.addr), dialT(t, ts.addr), dialT(t, ts.addr)

	h1 := c.submit(gearman.SubmitJobBg, "f", "u", "x")
	if again := c.submit(gearman.SubmitJobBg, "f", "u", "x"); again != h1 { // coalesced: counted too
		t.Fatalf("coalesced submission got %s, want %s", again, h1)
	}
	c.submit(gearman.SubmitJobHighBg, "f", "", "x")
	c.submit(gearman.SubmitJobLowBg, "f", "", "x")
	c.submit(gearman.SubmitJobBg, "f", "", "x")
	fs := functionStats(t, ts.srv, "f")
	if fs.Submitted != 5 || fs.Queued != [gearman.NumPriorities]int{1, 2, 1} {
		t.Errorf("after 5 submissions: submitted %d, queued %v; want 5, [1 2 1]", fs.Submitted, fs.Queued)
	}

	w.canDo("f")
	hHigh, _ := w.grabJob()
	w.send(gearman.WorkComplete, hHigh, "done")
	hNormal, _ := w.grabJob()
	w.send(gearman.WorkFail, hNormal)
	hNormal2, _ := w.grabJob()
	w.send(gearman.WorkException, hNormal2, "boom")
	w.grabJob() // the LOW job: running when the worker leaves
	w.sync()
	fs = functionStats(t, ts.srv, "f")
	if fs.Running != [gearman.NumPriorities]int{0, 0, 1} || fs.Workers != 1 {
		t.Errorf("running %v, workers %d; want [0 0 1], 1", fs.Running, fs.Workers)
	}
	w.Close()
	waitFor(t, "the running job to be requeued", func() bool { return functionStats(t, ts.srv, "f").Retried == 1 })

	w2 := dialT(t, ts.addr)
	w2.canDo("f")
	h, _ := w2.grabJob()
	w2.send(gearman.WorkComplete, h, "")
	w2.Close()
	waitFor(t, "the worker to leave", func() bool { return functionStats(t, ts.srv, "f").Workers == 0 })
	a.adminExpect("drop function f", adminOK)
	fs = functionStats(t, ts.srv, "f")
	want := FunctionStats{Name: "f", Submitted: 5, Completed: 2, Failed: 2, Retried: 1}
	if fs != want {
		t.Errorf("after drop function:\n got %+v\nwant %+v", fs, want)
	}
	c.submit(gearman.SubmitJobBg, "f", "", "x") // the same counters again
	if got := functionStats(t, ts.srv, "f").Submitted; got != 6 {
		t.Errorf("submitted after re-creating f: %d, want 6", got)
	}
}

// TestCancelCounters: cancels are counted by what they removed.
func TestCancelCounters(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{}, filepath.Join(t.TempDir(), "s.db"))
	c, a := dialT(t, ts.addr), dialT(t, ts.addr)
	live := c.submit(gearman.SubmitJobBg, "f", "", "x")
	pending := c.submit(gearman.SubmitJobEpoch, "f", "", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10), "x")
	sched := c.submit(gearman.SubmitJobSched, "f", "s", "0", "3", "", "", "", "x")
	for _, h := range []string{live, pending, sched, "H:t:999"} {
		a.admin("cancel job " + h)
	}
	st := ts.srv.Stats()
	if st.CancelledLive != 1 || st.CancelledPending != 1 || st.CancelledSchedules != 1 {
		t.Errorf("cancelled live %d, pending %d, schedules %d; want 1 each", st.CancelledLive, st.CancelledPending, st.CancelledSchedules)
	}
	if got := functionStats(t, ts.srv, "f").Submitted; got != 3 {
		t.Errorf("submitted %d, want 3 (EPOCH and SCHED included)", got)
	}
}

// TestLatenessObserved: a scheduled job released 3 s after its due time
// and handed out 5 s after it is observed as 3 s late into ready and 5 s
// late to a worker, once: a retry is not a first hand-out. Jobs that were
// never scheduled are not observed.
func TestLatenessObserved(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(start.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	ts := startServer(t, Config{Now: now}, filepath.Join(t.TempDir(), "s.db"))
	sched := scheduler.New(scheduler.Config{Store: ts.st, Sink: ts.srv})
	c, w := dialT(t, ts.addr), dialT(t, ts.addr)
	due := start.Add(time.Minute)
	c.submit(gearman.SubmitJobEpoch, "f", "", strconv.FormatInt(due.Unix(), 10), "x")
	c.submit(gearman.SubmitJobBg, "g", "", "not scheduled")

	clock.Store(due.Add(3 * time.Second).UnixNano())
	if err := sched.Tick(context.Background(), now(), start); err != nil {
		t.Fatal(err)
	}
	clock.Store(due.Add(5 * time.Second).UnixNano())
	w.canDo("f", "g")
	w.grabJob()
	w.grabJob()
	w.Close() // both are requeued, then handed out again
	waitFor(t, "the jobs to be requeued", func() bool {
		return functionStats(t, ts.srv, "f").Retried == 1 && functionStats(t, ts.srv, "g").Retried == 1
	})
	w2 := dialT(t, ts.addr)
	w2.canDo("f", "g")
	w2.grabJob()
	w2.grabJob()

	st := ts.srv.Stats()
	if got := st.ReleaseLateness; got.Count != 1 || got.Sum != int64(3*time.Second) {
		t.Errorf("release lateness: %d observations summing %v; want one of 3s", got.Count, time.Duration(got.Sum))
	}
	if got := st.AssignLateness; got.Count != 1 || got.Sum != int64(5*time.Second) {
		t.Errorf("assign lateness: %d observations summing %v; want one of 5s", got.Count, time.Duration(got.Sum))
	}
}
