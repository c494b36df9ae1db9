package server

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
)

// commitGate holds the store's commits while it is shut, so a test can act
// between a write being queued and it being committed.
type commitGate struct {
	mu   sync.Mutex
	shut bool
	open chan struct{}
	held chan struct{} // one value each time a commit starts waiting
}

func newCommitGate() *commitGate { return &commitGate{held: make(chan struct{}, 1)} }

func (g *commitGate) hook() error {
	g.mu.Lock()
	shut, open := g.shut, g.open
	g.mu.Unlock()
	if shut {
		select {
		case g.held <- struct{}{}:
		default:
		}
		<-open
	}
	return nil
}

func (g *commitGate) close() {
	g.mu.Lock()
	g.shut, g.open = true, make(chan struct{})
	g.mu.Unlock()
}

func (g *commitGate) release() {
	g.mu.Lock()
	if g.shut {
		g.shut = false
		close(g.open)
	}
	g.mu.Unlock()
}

// awaitHeld waits until a commit is held at the gate.
func (g *commitGate) awaitHeld(t *testing.T) {
	t.Helper()
	select {
	case <-g.held:
	case <-time.After(testTimeout):
		t.Fatal("no commit reached the gate")
	}
}

// startGated starts a server whose store commits pass through a gate; it
// is released at cleanup so the server can stop.
func startGated(t *testing.T, cfg Config) (*testServer, *commitGate) {
	t.Helper()
	g := newCommitGate()
	st, err := store.Open(filepath.Join(t.TempDir(), "g.db"), store.Options{NoSync: true, BeforeCommit: g.hook})
	if err != nil {
		t.Fatal(err)
	}
	ts := serveStore(t, cfg, st)
	t.Cleanup(g.release) // runs before the server's cleanup
	return ts, g
}

// TestCancelOwnForegroundJob: a client cancels, on its own connection, the
// foreground job it waits for. It gets WORK_FAIL and the admin OK, and the
// server goes on serving everyone.
func TestCancelOwnForegroundJob(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	c, other := dialT(t, addr), dialT(t, addr)
	h := c.submit(gearman.SubmitJob, "f_own", "", "x")
	c.writeRaw([]byte("cancel job " + h + "\n"))
	c.expect(gearman.WorkFail, h)
	if line := c.readLine(); line != adminOK {
		t.Fatalf("cancel reply %q", line)
	}
	other.send(gearman.EchoReq, "alive")
	other.expect(gearman.EchoRes, "alive")
	c.sync()
}

// releaseHook is a scheduler.Sink that runs hook between the scheduler
// reading the due items and the sink committing their release.
type releaseHook struct {
	scheduler.Sink
	hook func()
}

func (r releaseHook) Release(ctx context.Context, claim store.Claim, jobs []*store.Job, occs []scheduler.Occurrence) error {
	r.hook()
	return r.Sink.Release(ctx, claim, jobs, occs)
}

// TestCancelDuringFireStaysCancelled: a recurring schedule cancelled after
// the scheduler read it as due, before the release committed, stays
// cancelled, and its occurrence does not run.
func TestCancelDuringFireStaysCancelled(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 30, 0, time.UTC)
	ts := startServer(t, Config{Now: func() time.Time { return now }}, filepath.Join(t.TempDir(), "s.db"))
	c, a, w := dialT(t, ts.addr), dialT(t, ts.addr), dialT(t, ts.addr)
	hs := c.submit(gearman.SubmitJobSched, "f_cf", "every-minute", "", "", "", "", "", "x")
	cancelled := false
	sink := releaseHook{Sink: ts.srv, hook: func() {
		if !cancelled {
			cancelled = true
			a.adminExpect("cancel job "+hs, adminOK)
		}
	}}
	sched := scheduler.New(scheduler.Config{Store: ts.st, Sink: sink})
	for _, at := range []time.Time{now.Add(30 * time.Second), now.Add(90 * time.Second)} {
		if err := sched.Tick(context.Background(), at, now); err != nil {
			t.Fatal(err)
		}
	}
	if !cancelled {
		t.Fatal("the schedule never fell due")
	}
	a.adminExpect("show schedules", ".\n")
	c.status(hs, "0", "0", "0", "0")
	w.canDo("f_cf")
	w.expectNoJob()
}

// TestReloadDuringFire: a SIGHUP reload that changes a schedule's spec
// after the scheduler read it, before the release committed, is kept.
func TestReloadDuringFire(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 30, 0, time.UTC)
	ts := startServer(t, Config{Now: func() time.Time { return now }}, filepath.Join(t.TempDir(), "s.db"))
	def := func(spec, data string) []*store.Schedule {
		return []*store.Schedule{{Name: "n", Source: store.SourceFile, Spec: spec, Zone: "UTC", Function: "f_rl",
			Data: []byte(data), Priority: 1, Missed: scheduler.MissedOnce, MissedCap: 10, CatchUp: int64(time.Hour),
			Overlap: scheduler.OverlapAllow, Enabled: true}}
	}
	if _, err := scheduler.Sync(ts.st, def("* * * * *", "x"), now, ts.srv.handles.Next); err != nil {
		t.Fatal(err)
	}
	reloaded := false
	sink := releaseHook{Sink: ts.srv, hook: func() {
		if !reloaded {
			reloaded = true
			if _, err := scheduler.Sync(ts.st, def("0 * * * *", "x"), now.Add(30*time.Second), ts.srv.handles.Next); err != nil {
				t.Error(err)
			}
		}
	}}
	sched := scheduler.New(scheduler.Config{Store: ts.st, Sink: sink})
	if err := sched.Tick(context.Background(), now.Add(30*time.Second), now); err != nil {
		t.Fatal(err)
	}
	all, err := ts.st.Schedules()
	if err != nil || len(all) != 1 {
		t.Fatalf("schedules %v %v", all, err)
	}
	if all[0].Spec != "0 * * * *" {
		t.Errorf("spec after the reload is %q, want the reloaded 0 * * * *", all[0].Spec)
	}
	if next := time.Unix(0, all[0].Next).UTC(); !next.Equal(time.Date(2026, 6, 1, 13, 0, 0, 0, time.UTC)) {
		t.Errorf("next run %v, want 13:00 by the reloaded spec", next)
	}
}

// TestFireDuringReload: an occurrence fired while a reload was reading the
// schedules (here: allocating a new schedule's handle) fires once.
func TestFireDuringReload(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 30, 0, time.UTC)
	ts := startServer(t, Config{Now: func() time.Time { return now }}, filepath.Join(t.TempDir(), "s.db"))
	mk := func(name, data string) *store.Schedule {
		return &store.Schedule{Name: name, Source: store.SourceFile, Spec: "* * * * *", Zone: "UTC", Function: "f_fr",
			Data: []byte(data), Priority: 1, Missed: scheduler.MissedOnce, MissedCap: 10, CatchUp: int64(time.Hour),
			Overlap: scheduler.OverlapAllow, Enabled: true}
	}
	if _, err := scheduler.Sync(ts.st, []*store.Schedule{mk("a", "v1")}, now, ts.srv.handles.Next); err != nil {
		t.Fatal(err)
	}
	sched := scheduler.New(scheduler.Config{Store: ts.st, Sink: ts.srv})
	due := now.Add(30 * time.Second)
	fired := false
	newID := func() (uint64, string, error) {
		if !fired { // the reload has read the schedules: fire meanwhile
			fired = true
			if err := sched.Tick(context.Background(), due, now); err != nil {
				t.Error(err)
			}
		}
		return ts.srv.handles.Next()
	}
	if _, err := scheduler.Sync(ts.st, []*store.Schedule{mk("b", "v1"), mk("a", "v2")}, due, newID); err != nil {
		t.Fatal(err)
	}
	if !fired {
		t.Fatal("the reload allocated no handle")
	}
	if err := sched.Tick(context.Background(), due.Add(time.Second), now); err != nil {
		t.Fatal(err)
	}
	w := dialT(t, ts.addr)
	w.canDo("f_fr")
	var got []string
	for {
		w.send(gearman.GrabJobUniq)
		p := w.recv()
		if p.Type == gearman.NoJob {
			break
		}
		got = append(got, p.Args[2])
		w.send(gearman.WorkComplete, p.Args[0], "")
	}
	if want := "a@" + strconv.FormatInt(due.Unix(), 10); len(got) != 1 || got[0] != want {
		t.Errorf("occurrences run %q, want [%s] once", got, want)
	}
}

// TestConcurrentSchedSameUnique: SUBMIT_JOB_SCHED with one (function,
// unique) from eight connections at once makes one schedule; every
// submitter gets its handle.
func TestConcurrentSchedSameUnique(t *testing.T) {
	t.Parallel()
	ts, gate := startGated(t, Config{})
	warm := dialT(t, ts.addr)
	warm.submit(gearman.SubmitJobBg, "f_warm", "", "x") // ids reserved before the gate shuts
	gate.close()
	conns := make([]*tconn, 8)
	for i := range conns {
		conns[i] = dialT(t, ts.addr)
		conns[i].send(gearman.SubmitJobSched, "f_dup", "one", "0", "3", "", "", "", "x")
		if i == 0 {
			gate.awaitHeld(t)
		}
	}
	waitFor(t, "seven writes queued behind the first", func() bool { return ts.st.QueuedWrites() == len(conns)-1 })
	gate.release()
	handles := map[string]bool{}
	for _, c := range conns {
		handles[c.expectType(gearman.JobCreated).Args[0]] = true
	}
	if len(handles) != 1 {
		t.Errorf("eight submissions got %d handles: %v", len(handles), handles)
	}
	if rows := strings.Count(warm.admin("show schedules"), "\tf_dup\t"); rows != 1 {
		t.Errorf("%d schedules for (f_dup, one), want 1", rows)
	}
}

// TestForegroundBesideEpochBeingWritten: a foreground submission with the
// unique of a future epoch job whose write is still in flight is a
// separate job, and its client hears back.
func TestForegroundBesideEpochBeingWritten(t *testing.T) {
	t.Parallel()
	ts, gate := startGated(t, Config{})
	a, b, w := dialT(t, ts.addr), dialT(t, ts.addr), dialT(t, ts.addr)
	a.submit(gearman.SubmitJobBg, "f_warm", "", "x") // ids reserved before the gate shuts
	gate.close()
	a.send(gearman.SubmitJobEpoch, "f_fg", "u", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10), "later")
	gate.awaitHeld(t)
	hb := b.submit(gearman.SubmitJob, "f_fg", "u", "now")
	gate.release()
	ha := a.expectType(gearman.JobCreated).Args[0]
	if ha == hb {
		t.Fatalf("the foreground job was attached to the pending epoch job %s", ha)
	}
	w.canDo("f_fg")
	w.send(gearman.GrabJobUniq)
	w.expect(gearman.JobAssignUniq, hb, "f_fg", "u", "now")
	w.send(gearman.WorkComplete, hb, "done")
	b.expect(gearman.WorkComplete, hb, "done")
}

// TestNoStoreWaitUnderServerLock: while a commit is held, cancelling a
// pending job (admin and Server.Cancel) waits for it, but other
// connections are served meanwhile.
func TestNoStoreWaitUnderServerLock(t *testing.T) {
	t.Parallel()
	ts, gate := startGated(t, Config{})
	c, a, other := dialT(t, ts.addr), dialT(t, ts.addr), dialT(t, ts.addr)
	later := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	h1 := c.submit(gearman.SubmitJobEpoch, "f_lk", "u1", later, "x")
	h2 := c.submit(gearman.SubmitJobEpoch, "f_lk", "u2", later, "x")

	gate.close()
	a.writeRaw([]byte("cancel job " + h1 + "\n"))
	gate.awaitHeld(t)
	other.send(gearman.EchoReq, "admin cancel")
	other.expect(gearman.EchoRes, "admin cancel")
	gate.release()
	if line := a.readLine(); line != adminOK {
		t.Fatalf("cancel reply %q", line)
	}

	gate.close()
	done := make(chan bool)
	go func() {
		found, err := ts.srv.Cancel(h2)
		done <- found && err == nil
	}()
	gate.awaitHeld(t)
	other.send(gearman.EchoReq, "Server.Cancel")
	other.expect(gearman.EchoRes, "Server.Cancel")
	gate.release()
	if !<-done {
		t.Error("Server.Cancel found no pending job")
	}

	// Handles run out while the next block of ids waits for a held
	// commit: the submission is refused at once, nobody waits.
	gate.close()
	h := ts.srv.handles
	h.mu.Lock()
	h.next = h.limit // this block used up; the next one was reserved at start
	h.mu.Unlock()
	c.submit(gearman.SubmitJob, "f_lk", "", "switches to the reserved block")
	h.mu.Lock()
	h.next = h.limit // that one used up too; its successor waits at the gate
	h.mu.Unlock()
	gate.awaitHeld(t)
	c.submitError(gearman.CodeQueueError, errHandlesPending.Error(), gearman.SubmitJob, "f_lk", "", "x")
	other.send(gearman.EchoReq, "handles")
	other.expect(gearman.EchoRes, "handles")
	gate.release()
	h.mu.Lock()
	ahead := h.ahead
	h.mu.Unlock()
	if _, err := ahead.Wait(); err != nil {
		t.Fatal(err)
	}
	c.submit(gearman.SubmitJob, "f_lk", "", "after the commit")
}

// TestStatusUniqueOfPendingJob: GET_STATUS_UNIQUE knows a job waiting for
// its time, as GET_STATUS does.
func TestStatusUniqueOfPendingJob(t *testing.T) {
	t.Parallel()
	c := dialT(t, newTestServer(t, Config{}))
	h := c.submit(gearman.SubmitJobEpoch, "f_su", "pending-u", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10), "x")
	c.status(h, "1", "0", "0", "0")
	c.statusUnique("pending-u", "1", "0", "0", "0", "0")
}

// syncGate holds the store's commits after their writes are applied and
// before they are synced, while shut, and answers the held commit with
// the error it is given; while failing, every commit fails so.
type syncGate struct {
	mode    atomic.Int32 // gateOpen, gateShut or gateFailing
	held    chan struct{}
	proceed chan error
}

const (
	gateOpen int32 = iota
	gateShut
	gateFailing
)

var errInjected = errors.New("injected: the disk failed")

func (g *syncGate) hook() error {
	switch g.mode.Load() {
	case gateShut:
		g.held <- struct{}{}
		return <-g.proceed
	case gateFailing:
		return errInjected
	}
	return nil
}

// TestReleasedJobRunsBeforeItsSync: a due job is handed to a sleeping
// worker once its release is applied, before it is synced. If the sync
// then fails (as a crash would end it), the job is still waiting on disk
// and is released again, at least once; the job already in memory is not
// queued a second time.
func TestReleasedJobRunsBeforeItsSync(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	g := &syncGate{held: make(chan struct{}), proceed: make(chan error)}
	st, err := store.Open(filepath.Join(t.TempDir(), "g.db"), store.Options{NoSync: true, BeforeSync: g.hook})
	if err != nil {
		t.Fatal(err)
	}
	ts := serveStore(t, Config{Now: func() time.Time { return now }}, st)
	sched := scheduler.New(scheduler.Config{Store: ts.st, Sink: ts.srv})
	c, w, w2, a := dialT(t, ts.addr), dialT(t, ts.addr), dialT(t, ts.addr), dialT(t, ts.addr)
	due := now.Add(time.Minute)
	h := c.submit(gearman.SubmitJobEpoch, "f_early", "u", strconv.FormatInt(due.Unix(), 10), "x")
	w.canDo("f_early")
	w.send(gearman.PreSleep)
	w.sync()

	g.mode.Store(gateShut)
	ticked := make(chan error, 1)
	go func() { ticked <- sched.Tick(context.Background(), due, now) }()
	select {
	case <-g.held:
	case <-time.After(testTimeout):
		t.Fatal("the release never reached its sync")
	}
	// The release is applied, not synced: the worker is woken and gets it,
	// and `status` counts the job once, as queued, then as running.
	w.expect(gearman.Noop)
	if row := adminRow(t, a, "status", "f_early"); row != "f_early\t1\t0\t1" {
		t.Errorf("status of the job released, not synced: %q", row)
	}
	if got, _ := w.grabJob(); got != h {
		t.Fatalf("grabbed %s, want %s", got, h)
	}
	if row := adminRow(t, a, "status", "f_early"); row != "f_early\t1\t1\t1" {
		t.Errorf("status of the job taken, not synced: %q", row)
	}
	// The sync fails, and so does every retry.
	g.mode.Store(gateFailing)
	g.proceed <- errInjected
	if err := <-ticked; err == nil {
		t.Fatal("Tick succeeded with its release's sync failing")
	}
	// Not released on disk: still listed and counted as waiting, besides
	// the copy the worker runs.
	if got := a.admin("show schedules f_early"); !strings.HasPrefix(got, h+"\tf_early\t") {
		t.Fatalf("after the failed sync, show schedules: %q", got)
	}
	if row := adminRow(t, a, "status", "f_early"); row != "f_early\t2\t1\t1" {
		t.Errorf("status after the failed sync: %q", row)
	}
	// Released again: once durable it leaves the list, and the copy the
	// worker holds is the only one.
	g.mode.Store(gateOpen)
	if err := sched.Tick(context.Background(), due, now); err != nil {
		t.Fatal(err)
	}
	a.adminExpect("show schedules f_early", ".\n")
	w2.canDo("f_early")
	w2.expectNoJob()
	w.send(gearman.WorkComplete, h, "done")
	w.sync()
	c.status(h, "0", "0", "0", "0")
}

// TestCancelMeetsRelease: a cancel that looks in memory before a release
// is applied, and reaches the store after it, finds the job the release
// queued and cancels it there: it reports success and the job never runs.
func TestCancelMeetsRelease(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ts, gate := startGated(t, Config{Now: func() time.Time { return now }})
	sched := scheduler.New(scheduler.Config{Store: ts.st, Sink: ts.srv})
	c, w := dialT(t, ts.addr), dialT(t, ts.addr)
	due := now.Add(time.Minute)
	h := c.submit(gearman.SubmitJobEpoch, "f_meet", "u", strconv.FormatInt(due.Unix(), 10), "x")

	gate.close()
	ticked := make(chan error, 1)
	go func() { ticked <- sched.Tick(context.Background(), due, now) }()
	gate.awaitHeld(t) // the release, not applied yet
	cancelled := make(chan bool, 1)
	go func() {
		ok, err := ts.srv.Cancel(h)
		if err != nil {
			t.Errorf("Cancel: %v", err)
		}
		cancelled <- ok
	}()
	// The cancel missed the job in memory and waits for the store.
	deadline := time.Now().Add(testTimeout)
	for ts.st.QueuedWrites() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the cancel never reached the store")
		}
		time.Sleep(time.Millisecond)
	}
	gate.release()
	if err := <-ticked; err != nil {
		t.Fatal(err)
	}
	if !<-cancelled {
		t.Fatal("Cancel reported no job, and the release queued it")
	}
	w.canDo("f_meet")
	w.expectNoJob()
	c.status(h, "0", "0", "0", "0")
}
