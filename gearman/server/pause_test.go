package server

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
)

// TestPauseResumeAdmin: `pause job` keeps a SUBMIT_JOB_SCHED schedule
// from firing; `resume job` lets it fire the run that fell due meanwhile
// (policy once). One-shot jobs and unknown handles are refused.
func TestPauseResumeAdmin(t *testing.T) {
	t.Parallel()
	clock := newSetClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	now := clock.Now()
	ts := startServer(t, Config{Now: clock.Now}, filepath.Join(t.TempDir(), "p.db"))
	sched := scheduler.New(scheduler.Config{Store: ts.st, Sink: ts.srv})
	start := now
	tick := func(at time.Time) {
		t.Helper()
		if err := sched.Tick(context.Background(), at, start); err != nil {
			t.Fatal(err)
		}
	}
	c, w, a := dialT(t, ts.addr), dialT(t, ts.addr), dialT(t, ts.addr)
	hs := c.submit(gearman.SubmitJobSched, "f_p", "daily", "0", "3", "", "", "", "d") // 03:00 UTC
	hj := c.submit(gearman.SubmitJobEpoch, "f_p", "one", strconv.FormatInt(now.Add(time.Hour).Unix(), 10), "x")

	a.adminExpect("pause job "+hs, adminOK)
	a.adminExpect("pause job "+hs, adminOK) // already paused: no change
	a.adminExpect("pause job "+hj, adminNotSchedule)
	a.adminExpect("resume job "+hj, adminNotSchedule)
	a.adminExpect("pause job H:nowhere:1", adminUnknownJob)
	a.adminExpect("pause job "+testPrefix+":999999", adminUnknownJob)
	a.adminExpect("pause job", adminIncompleteArgs+"pause\r\n")
	c.status(hs, "1", "0", "0", "0") // a paused schedule is still known

	w.canDo("f_p")
	next := time.Date(2026, 6, 2, 3, 0, 0, 0, time.UTC)
	tick(next.Add(time.Minute))
	w.send(gearman.GrabJobUniq)
	if p := w.expectType(gearman.JobAssignUniq); p.Args[0] != hj {
		t.Fatalf("assigned %v, want only the one-shot job %s", p, hj)
	}
	w.send(gearman.WorkComplete, hj, "")
	w.expectNoJob()
	if rows := a.admin("show schedules"); !strings.Contains(rows, hs+"\tf_p\tdaily\t-\t") {
		t.Errorf("show schedules lists the paused schedule as %q, want no next run", rows)
	}

	// Resumed at 03:30: 03:00 fell in the pause, within the catch-up
	// window (1 h for SUBMIT_JOB_SCHED).
	now = next.Add(30 * time.Minute)
	clock.Set(now)
	a.adminExpect("resume job "+hs, adminOK)
	tick(now)
	w.send(gearman.GrabJobUniq)
	occ := w.expectType(gearman.JobAssignUniq)
	if want := "daily@" + strconv.FormatInt(next.Unix(), 10); occ.Args[2] != want {
		t.Errorf("after the resume assigned unique %q, want the missed run %q", occ.Args[2], want)
	}
	w.send(gearman.WorkComplete, occ.Args[0], "")
	w.expectNoJob()
}

// TestRunOutcomeRecorded: a released job's run records when it was due,
// released and taken, by which worker, and how it ended.
func TestRunOutcomeRecorded(t *testing.T) {
	t.Parallel()
	clock := newSetClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	due := clock.Now().Add(time.Minute)
	ts := startServer(t, Config{Now: clock.Now}, filepath.Join(t.TempDir(), "o.db"))
	sched := scheduler.New(scheduler.Config{Store: ts.st, Sink: ts.srv})
	c, w := dialT(t, ts.addr), dialT(t, ts.addr)
	h := c.submit(gearman.SubmitJobEpoch, "f_o", "o1", strconv.FormatInt(due.Unix(), 10), "x")
	now := due.Add(2 * time.Second) // released 2 s late
	clock.Set(now)
	if err := sched.Tick(context.Background(), now, due.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	w.send(gearman.SetClientID, "worker-7")
	w.canDo("f_o")
	w.send(gearman.GrabJob)
	w.expect(gearman.JobAssign, h, "f_o", "x")
	w.send(gearman.WorkFail, h)
	w.sync()
	id := handleNum(t, h)
	var run store.Run
	waitFor(t, "the run's outcome", func() bool {
		runs, err := ts.st.Runs(id)
		if err != nil || len(runs) != 1 {
			t.Fatalf("runs of %s: %v, %v", h, runs, err)
		}
		run = runs[0]
		return run.Result != ""
	})
	want := store.Run{Item: id, ID: id, Handle: h, Function: "f_o", Due: due.UnixNano(), Released: now.UnixNano(),
		Outcome: store.Outcome{Result: store.ResultFailed, Worker: "127.0.0.1 worker-7", Assigned: now.UnixNano(),
			Ended: now.UnixNano(), Attempts: 1}}
	if run != want {
		t.Errorf("run = %+v\nwant %+v", run, want)
	}
}

// setClock is a clock the test sets while the server's goroutines read it.
type setClock struct{ ns atomic.Int64 }

func newSetClock(t time.Time) *setClock {
	c := &setClock{}
	c.Set(t)
	return c
}

func (c *setClock) Now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *setClock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }
