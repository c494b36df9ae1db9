package server

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store"
)

// TestRefusalInRequestOrder: a pipelined background submission refused at
// once is answered after the submissions before it, which wait for their
// writes, not ahead of them.
func TestRefusalInRequestOrder(t *testing.T) {
	t.Parallel()
	c := dialT(t, newTestServer(t, Config{}))
	u65 := strings.Repeat("u", 65)
	tests := []struct {
		name       string
		typ        gearman.Type
		args       []string
		code, text string
	}{
		{"unique too large", gearman.SubmitJobBg, []string{"ro", u65, "x"}, gearman.CodeArgumentTooLarge, txtUniqueTooLarge},
		{"bad epoch", gearman.SubmitJobEpoch, []string{"ro", "", "soon", "x"}, gearman.CodeInvalidArgument, txtBadEpoch},
		{"reducer too large", gearman.SubmitReduceJobBackground, []string{"ro", "", strings.Repeat("r", 600), "", "x"},
			gearman.CodeArgumentTooLarge, "Reducer name too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := c.in(t)
			// One write, so the refused one is read while the first
			// still waits for its commit.
			var b []byte
			b = gearman.AppendPacketString(b, gearman.MagicReq, gearman.SubmitJobBg, "ro", "", "first")
			b = gearman.AppendPacketString(b, gearman.MagicReq, tt.typ, tt.args...)
			b = gearman.AppendPacketString(b, gearman.MagicReq, gearman.SubmitJobBg, "ro", "", "last")
			c.writeRaw(b)
			c.expectType(gearman.JobCreated)
			c.expectError(tt.code, tt.text)
			c.expectType(gearman.JobCreated)
		})
	}
}

// TestEmptyFunctionName: "" is a function name, as in gearmand: a
// background job for it is stored and handed to a worker that registered
// "", and a future epoch job for it is stored, counted, and still counted
// after a restart.
func TestEmptyFunctionName(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	cfg := Config{Now: func() time.Time { return now }}
	path := filepath.Join(t.TempDir(), "empty.db")
	ts := startServer(t, cfg, path)
	c, w := dialT(t, ts.addr), dialT(t, ts.addr)

	h := c.submit(gearman.SubmitJobBg, "", "", "bg data")
	w.canDo("")
	w.send(gearman.GrabJobUniq)
	w.expect(gearman.JobAssignUniq, h, "", "", "bg data")
	w.send(gearman.WorkComplete, h, "")
	w.sync()

	later := strconv.FormatInt(now.Unix()+3600, 10)
	e := c.submit(gearman.SubmitJobEpoch, "", "later", later, "epoch data")
	c.status(e, "1", "0", "0", "0")
	if again := c.submit(gearman.SubmitJobEpoch, "", "later", later, "other"); again != e {
		t.Errorf("resubmission with the same unique got %s, want %s", again, e)
	}
	if n := ts.st.PendingCount(""); n != 1 {
		t.Errorf("PendingCount(\"\") = %d, want 1", n)
	}
	// status: the pending job counts in TOTAL, and the worker is there.
	if row := adminRow(t, c, "status", ""); row != "\t1\t0\t1" {
		t.Errorf("status row %q, want %q", row, "\t1\t0\t1")
	}

	ts.stop(t)
	ts = startServer(t, cfg, path)
	c = dialT(t, ts.addr)
	if n := ts.st.PendingCount(""); n != 1 {
		t.Errorf("after a restart PendingCount(\"\") = %d, want 1", n)
	}
	c.status(e, "1", "0", "0", "0")
	if row := adminRow(t, c, "status", ""); row != "\t1\t0\t0" {
		t.Errorf("status row after a restart %q, want %q", row, "\t1\t0\t0")
	}
}

// TestFunctionTooLongInBurst: a function name longer than the store can
// key, in the middle of bursts of good submissions pipelined on several
// connections at once, gets ERROR ARGUMENT_TOO_LARGE whatever the
// submission, on the job server and on a sidecar's listener; every other
// submission gets JOB_CREATED.
func TestFunctionTooLongInBurst(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name      string
		upstreams Upstreams
	}{{"job server", nil}, {"sidecar", noUpstreams{}}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			functionTooLongInBurst(t, mode.upstreams)
		})
	}
}

// noUpstreams is a sidecar's upstreams that never took a job.
type noUpstreams struct{}

func (noUpstreams) Status(context.Context, string) (gearman.JobStatus, bool, error) {
	return gearman.JobStatus{}, false, nil
}
func (noUpstreams) AppendRows(b []byte) []byte { return b }

func functionTooLongInBurst(t *testing.T, upstreams Upstreams) {
	now := time.Unix(1_800_000_000, 0)
	ts := startServer(t, Config{Now: func() time.Time { return now }, Upstreams: upstreams}, filepath.Join(t.TempDir(), "long.db"))
	later := strconv.FormatInt(now.Unix()+3600, 10)
	tooLong := strings.Repeat("f", store.MaxFunctionSize+1)
	longest := strings.Repeat("g", store.MaxFunctionSize)
	type submission struct {
		typ  gearman.Type
		args []string
		bad  bool
	}
	bad := []submission{
		{gearman.SubmitJobBg, []string{tooLong, "u", "x"}, true},
		{gearman.SubmitJobEpoch, []string{tooLong, "u", later, "x"}, true},
		{gearman.SubmitJobSched, []string{tooLong, "u", "0", "", "", "", "", "x"}, true},
		{gearman.SubmitJobEpoch, []string{longest, "u", later, "x"}, false}, // the longest name is stored
	}
	if upstreams == nil { // a sidecar refuses foreground jobs whatever their name
		bad = append(bad, submission{gearman.SubmitJob, []string{tooLong, "u", "x"}, true})
	}
	const perConn = 60
	conns := make([]*tconn, len(bad))
	bursts := make([][]submission, len(bad))
	for i := range conns {
		conns[i] = dialT(t, ts.addr)
		for n := range perConn {
			if n == perConn/2 {
				bursts[i] = append(bursts[i], bad[i])
			}
			fn := fmt.Sprint("burst", i)
			sub := submission{gearman.SubmitJobBg, []string{fn, fmt.Sprint("u", n), "x"}, false}
			if n%3 == 0 {
				sub = submission{gearman.SubmitJobEpoch, []string{fn, fmt.Sprint("e", n), later, "x"}, false}
			}
			bursts[i] = append(bursts[i], sub)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for i, c := range conns {
		wg.Go(func() {
			c.deadline()
			for _, sub := range bursts[i] {
				if err := c.Send(sub.typ, toBytes(sub.args)...); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, c := range conns {
		for n, sub := range bursts[i] {
			p := c.recv()
			switch {
			case sub.bad && (p.Type != gearman.Error || len(p.Args) != 2 ||
				p.Args[0] != gearman.CodeArgumentTooLarge || p.Args[1] != txtFunctionTooLarge):
				t.Errorf("connection %d, submission %d (%s, too long): got %s, want ERROR %s %q",
					i, n, sub.typ, p, gearman.CodeArgumentTooLarge, txtFunctionTooLarge)
			case !sub.bad && p.Type != gearman.JobCreated:
				t.Errorf("connection %d, submission %d (%s): got %s, want JOB_CREATED", i, n, sub.typ, p)
			}
		}
	}
	if n := ts.st.PendingCount(longest); n != 1 {
		t.Errorf("the longest function name has %d pending jobs, want 1", n)
	}
	if n := ts.st.PendingCount(tooLong); n != 0 {
		t.Errorf("the over-long function name has %d pending jobs", n)
	}
}

// TestScheduleFunctionTooLong: the control function's requests are held
// to the same limit.
func TestScheduleFunctionTooLong(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{}, filepath.Join(t.TempDir(), "control.db"))
	req := ScheduleRequest{Function: strings.Repeat("f", store.MaxFunctionSize+1), At: time.Now().Add(time.Hour)}
	if _, _, err := ts.srv.Schedule(req); err == nil || !strings.Contains(err.Error(), strconv.Itoa(store.MaxFunctionSize)) {
		t.Errorf("Schedule with an over-long function: %v, want an error naming the limit", err)
	}
	req.Function = req.Function[1:]
	if _, _, err := ts.srv.Schedule(req); err != nil {
		t.Errorf("Schedule with the longest function: %v", err)
	}
}
