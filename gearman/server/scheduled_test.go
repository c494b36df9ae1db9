package server

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/scheduler"
)

// TestScheduledJobs drives future EPOCH and SCHED submissions through the
// server, with the real scheduler ticked at chosen instants.
func TestScheduledJobs(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ts := startServer(t, Config{Now: func() time.Time { return now }}, filepath.Join(t.TempDir(), "s.db"))
	sched := scheduler.New(scheduler.Config{Store: ts.st, Sink: ts.srv})
	tick := func(at time.Time) {
		t.Helper()
		if err := sched.Tick(context.Background(), at, now); err != nil {
			t.Fatal(err)
		}
	}
	c, w, a := dialT(t, ts.addr), dialT(t, ts.addr), dialT(t, ts.addr)
	due := now.Add(time.Minute)
	epoch := strconv.FormatInt(due.Unix(), 10)

	h := c.submit(gearman.SubmitJobEpoch, "f_s", "u1", epoch, "payload")
	c.status(h, "1", "0", "0", "0")
	if row := adminRow(t, a, "status", "f_s"); row != "f_s\t1\t0\t0" {
		t.Errorf("status with a pending job: %q", row)
	}
	if row := adminRow(t, a, "prioritystatus", "f_s"); row != "f_s\t0\t1\t0\t0" {
		t.Errorf("prioritystatus with a pending job: %q", row)
	}
	if again := c.submit(gearman.SubmitJobBg, "f_s", "u1", "other"); again != h {
		t.Errorf("bg submission with a pending job's unique got %s, want %s", again, h)
	}
	a.adminExpect("drop function f_s", adminFunctionBusy)
	a.adminExpect("maxqueue f_s 1", adminOK)
	c.submitError(gearman.CodeQueueError, txtQueueFull, gearman.SubmitJobBg, "f_s", "u2", "x")
	a.adminExpect("maxqueue f_s 0", adminOK)
	if rows := strings.Split(strings.TrimSuffix(a.admin("show schedules"), "\n.\n"), "\n"); len(rows) != 1 ||
		rows[0] != h+"\tf_s\tu1\t"+due.Format(time.RFC3339)+"\tonce\tUTC" {
		t.Errorf("show schedules: %q", rows)
	}
	if got := a.admin("show schedules f_s"); !strings.HasPrefix(got, h+"\tf_s\t") || !strings.HasSuffix(got, "\n.\n") {
		t.Errorf("show schedules f_s: %q", got)
	}
	a.adminExpect("show schedules other_function", ".\n")

	w.canDo("f_s")
	w.expectNoJob()
	w.send(gearman.PreSleep)
	w.sync()
	tick(due.Add(-time.Nanosecond))
	w.sync() // no NOOP arrived before the due time
	tick(due)
	w.expect(gearman.Noop)
	w.send(gearman.GrabJobUniq)
	w.expect(gearman.JobAssignUniq, h, "f_s", "u1", "payload")
	c.status(h, "1", "1", "0", "0")
	w.send(gearman.WorkComplete, h, "")
	w.sync()

	// Cancel a pending job.
	h2 := c.submit(gearman.SubmitJobEpoch, "f_s", "u3", strconv.FormatInt(due.Add(48*time.Hour).Unix(), 10), "x")
	a.adminExpect("cancel job "+h2, adminOK)
	c.status(h2, "0", "0", "0", "0")
	a.adminExpect("cancel job "+h2, adminUnknownJob)
	if row := adminRow(t, a, "status", "f_s"); row != "f_s\t0\t0\t1" {
		t.Errorf("status after cancel: %q", row)
	}

	// SUBMIT_JOB_SCHED: every day at 03:00 in the server's zone (UTC).
	hs := c.submit(gearman.SubmitJobSched, "f_c", "s1", "0", "3", "", "", "", "sched-data")
	c.status(hs, "1", "0", "0", "0")
	if again := c.submit(gearman.SubmitJobSched, "f_c", "s1", "5", "4", "", "", "", "y"); again != hs {
		t.Errorf("SCHED with the same unique got %s, want %s", again, hs)
	}
	if _, err := c.trySubmit(gearman.SubmitJobSched, "f_c", "", "61", "", "", "", "", ""); err == nil ||
		!strings.Contains(err.Error(), `INVALID_ARGUMENT: cron spec "61 * * * *"`) {
		t.Errorf("SCHED with minute 61: %v, want ERROR INVALID_ARGUMENT naming the spec", err)
	}
	w.canDo("f_c")
	next := time.Date(2026, 6, 2, 3, 0, 0, 0, time.UTC)
	tick(next)
	w.send(gearman.GrabJobUniq)
	occ := w.expectType(gearman.JobAssignUniq)
	if occ.Args[2] != "s1@"+strconv.FormatInt(next.Unix(), 10) || occ.Args[3] != "sched-data" {
		t.Errorf("occurrence assigned as %v", occ)
	}
	w.send(gearman.WorkComplete, occ.Args[0], "")
	w.sync()
	a.adminExpect("cancel job "+hs, adminOK)
	c.status(hs, "0", "0", "0", "0")
	tick(next.Add(24 * time.Hour))
	w.expectNoJob()
}

// TestScheduledJobsSurviveRestart: pending jobs stay in the store across a
// restart, are counted again, and fire once.
func TestScheduledJobsSurviveRestart(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	db := filepath.Join(t.TempDir(), "r.db")
	cfg := Config{Now: func() time.Time { return now }}
	ts := startServer(t, cfg, db)
	c := dialT(t, ts.addr)
	epoch := strconv.FormatInt(now.Add(time.Hour).Unix(), 10)
	var hs []string
	for i := range 3 {
		hs = append(hs, c.submit(gearman.SubmitJobEpoch, "f_r", "r"+strconv.Itoa(i), epoch, "x"))
	}
	ts.stop(t)

	ts2 := startServer(t, cfg, db)
	a, w := dialT(t, ts2.addr), dialT(t, ts2.addr)
	if row := adminRow(t, a, "status", "f_r"); row != "f_r\t3\t0\t0" {
		t.Errorf("status after restart: %q", row)
	}
	a.status(hs[1], "1", "0", "0", "0")
	w.canDo("f_r")
	w.expectNoJob()
	sched := scheduler.New(scheduler.Config{Store: ts2.st, Sink: ts2.srv})
	sched.Tick(context.Background(), now.Add(2*time.Hour), now)
	for _, h := range hs {
		w.send(gearman.GrabJob)
		w.expect(gearman.JobAssign, h, "f_r", "x")
		w.send(gearman.WorkComplete, h, "")
	}
	w.expectNoJob()
	sched.Tick(context.Background(), now.Add(3*time.Hour), now)
	w.expectNoJob()
}
