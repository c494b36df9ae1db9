package sidecar

// Fault injection without gearmand: the real store, scheduler, forwarder
// and upstream connections against fakeUpstream, which drops connections
// mid-batch, refuses jobs, stalls, and lets tests act while a batch is
// on its way.

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/gearman/server"
	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
)

// faultTimeout is the upstream request timeout of fault tests.
const faultTimeout = 300 * time.Millisecond

// testClock is a settable clock for the forwarder and the listener.
type testClock struct{ ns atomic.Int64 }

func (c *testClock) Now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// faultRig is a sidecar whose one upstream is a fakeUpstream.
type faultRig struct {
	st      *store.Store
	fake    *fakeUpstream
	up      *Upstream
	fwd     *Forwarder
	srv     *server.Server
	handles *server.Handles
	sched   *scheduler.Scheduler
	clock   *testClock
	start   time.Time      // the clock's first reading: missed-run boundary
	bg      sync.WaitGroup // Run, and passes that outlived their bound
}

// newFaultRig returns a sidecar over a new store (opts may be nil) whose
// upstream connections run until cleanup, connected to a fake upstream
// that answers JOB_CREATED until its script is set.
func newFaultRig(t *testing.T, opts *store.Options) *faultRig {
	t.Helper()
	st := openStore(t, opts)
	fake := newFakeUpstream(t)
	up, err := NewUpstream(UpstreamConfig{Addrs: []string{fake.Addr()}, Timeout: faultTimeout,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	handles, err := server.NewHandles(st, testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{}
	start := time.Date(2026, 11, 22, 10, 0, 30, 0, time.UTC)
	clock.Set(start)
	fwd, err := NewForwarder(ForwarderConfig{Store: st, Upstream: up, Handles: handles, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: st, Handles: handles, Upstreams: fwd, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &faultRig{st: st, fake: fake, up: up, fwd: fwd, srv: srv, handles: handles, clock: clock, start: start,
		sched: scheduler.New(scheduler.Config{Store: st, Sink: fwd})}
	r.bg.Go(func() { up.Run(ctx) })
	// The fake closes first, so that a request stuck on it (a test that
	// found a hang) fails and frees the connection Run waits for.
	t.Cleanup(func() {
		cancel()
		fake.Close()
		r.bg.Wait()
	})
	r.waitUp(t)
	return r
}

// waitUp waits until the upstream connection is up.
func (r *faultRig) waitUp(t *testing.T) {
	t.Helper()
	waitUntil(t, 5*time.Second, "the upstream connection", func() bool { return r.up.Stats()[0].Up })
}

// tick runs one scheduler pass at now and returns its error. A pass
// still running after 10 upstream timeouts fails the test at once: that is
// a hang, not a slow pass. (It ends at cleanup, when the fake closes.)
func (r *faultRig) tick(t *testing.T, now time.Time) error {
	t.Helper()
	bound := 10 * faultTimeout
	done := make(chan error, 1)
	r.bg.Go(func() { done <- r.sched.Tick(context.Background(), now, r.start) })
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		t.Fatalf("Tick still running after %v (upstream timeout %v): hung", bound, faultTimeout)
		return nil
	}
}

// putDue stores n pending jobs due at due, with priorities and uniques
// varied (every other one has none, so it is forwarded with
// "gearsched:<handle>"); each job's data names it.
func (r *faultRig) putDue(t *testing.T, n int, due time.Time) []*store.Job {
	t.Helper()
	jobs := make([]*store.Job, n)
	for i := range jobs {
		id, handle, err := r.handles.Next()
		if err != nil {
			t.Fatal(err)
		}
		j := &store.Job{ID: id, Handle: handle, Function: "f", Priority: uint8(gearman.Priority(i % 3)),
			Due: due.UnixNano(), Data: []byte("job-" + strconv.FormatUint(id, 10))}
		if i%2 == 1 {
			j.Unique = "u-" + strconv.Itoa(i)
		}
		w := r.st.PutPending(j, "")
		if err := w.Wait(); err != nil {
			t.Fatal(err)
		}
		if !w.Created() {
			t.Fatalf("job %d was not stored", id)
		}
		jobs[i] = j
	}
	return jobs
}

// byJob groups the fake's submissions by the job's data.
func byJob(subs []fakeSubmission) map[string][]fakeSubmission {
	m := map[string][]fakeSubmission{}
	for _, s := range subs {
		m[s.Data] = append(m[s.Data], s)
	}
	return m
}

// checkDelivered checks that every job reached the fake, as the
// submission the forwarder makes of it (type, function, unique), every
// time with the same unique, at most max times, and returns how many
// submissions were duplicates.
func checkDelivered(t *testing.T, fake *fakeUpstream, jobs []*store.Job, max int) int {
	t.Helper()
	subs := fake.Submissions()
	got := byJob(subs)
	if len(got) != len(jobs) {
		t.Errorf("the fake received %d distinct jobs; want %d", len(got), len(jobs))
	}
	for _, j := range jobs {
		ss := got[string(j.Data)]
		if len(ss) == 0 {
			t.Errorf("job %s never reached the upstream: lost", j.Handle)
			continue
		}
		if len(ss) > max {
			t.Errorf("job %s reached the upstream %d times; want at most %d", j.Handle, len(ss), max)
		}
		want := forwardUnique(j.Unique, j.Handle)
		for _, s := range ss {
			if s.Unique != want || s.Function != j.Function || s.Type != bgType(j.Priority) {
				t.Errorf("job %s submitted as %s %q unique %q; want %s %q unique %q (a resubmission must coalesce)",
					j.Handle, s.Type, s.Function, s.Unique, bgType(j.Priority), j.Function, want)
			}
		}
	}
	return len(subs) - len(got)
}

// checkFired checks that none of jobs is pending any more and that the
// ledger records each under a handle the fake issued for it.
func checkFired(t *testing.T, r *faultRig, jobs []*store.Job) {
	t.Helper()
	issued := map[string]string{} // fake handle -> job data
	for _, s := range r.fake.Submissions() {
		if s.Handle != "" {
			issued[s.Handle] = s.Data
		}
	}
	for _, j := range jobs {
		if p, err := r.st.Scheduled(j.ID); err != nil || p != nil {
			t.Errorf("job %s still pending (%v) after it was forwarded", j.Handle, err)
		}
		e, err := r.st.FiredJob(j.ID)
		switch {
		case err != nil:
			t.Fatal(err)
		case e == nil:
			t.Errorf("job %s is not in the fire ledger", j.Handle)
		case e.Upstream != r.fake.Addr() || issued[e.UpstreamHandle] != string(j.Data):
			t.Errorf("job %s recorded as %s on %s; the fake issued that handle for %q", j.Handle,
				e.UpstreamHandle, e.Upstream, issued[e.UpstreamHandle])
		}
	}
}

// checkPending checks that each of jobs is still pending, due at due, and
// not in the ledger.
func checkPending(t *testing.T, st *store.Store, jobs []*store.Job, due time.Time) {
	t.Helper()
	for _, j := range jobs {
		p, err := st.Scheduled(j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if p == nil {
			t.Errorf("job %s is no longer pending", j.Handle)
		} else if p.Due != due.UnixNano() {
			t.Errorf("job %s due at %v; want %v", j.Handle, time.Unix(0, p.Due).UTC(), due)
		}
		if e, err := st.FiredJob(j.ID); err != nil || e != nil {
			t.Errorf("job %s in the fire ledger (%+v, %v) though it was not forwarded", j.Handle, e, err)
		}
	}
}

// checkNothingDue checks that the store holds no due entry at all.
func checkNothingDue(t *testing.T, st *store.Store) {
	t.Helper()
	due, ok, err := st.NextDue()
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Errorf("something is still due at %v", time.Unix(0, due).UTC())
	}
}

// TestFaultDisconnectMidBatch: upstream acknowledges the first 40 of a
// pipelined batch of 100 and drops the connection. Nothing is lost, every
// job ends up recorded as fired exactly once in the store, only jobs of
// the batch that were not acknowledged arrive twice, and a second copy
// carries the first one's unique so that gearmand coalesces it.
func TestFaultDisconnectMidBatch(t *testing.T) {
	const n, acked = 100, 40
	tests := []struct {
		name string
		// conn0 is the script for the first connection, by the
		// submission's number on it; later connections answer normally.
		conn0 func(n int) fakeAction
	}{
		{"closes before reading the rest", func(i int) fakeAction {
			if i < acked {
				return fakeAction{Kind: fakeReply}
			}
			return fakeAction{Kind: fakeClose}
		}},
		{"queues the whole batch, replies after 40 lost", func(i int) fakeAction {
			switch {
			case i < acked:
				return fakeAction{Kind: fakeReply}
			case i < n-1:
				return fakeAction{Kind: fakeSwallow}
			}
			return fakeAction{Kind: fakeClose}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newFaultRig(t, nil)
			r.fake.SetScript(func(s fakeSubmission) fakeAction {
				if s.Conn == 0 {
					return tt.conn0(s.N)
				}
				return fakeAction{Kind: fakeReply}
			})
			now := r.clock.Now()
			jobs := r.putDue(t, n, now.Add(-time.Minute))
			var errs []error
			for attempt := 0; ; attempt++ {
				if attempt == 5 {
					t.Fatalf("jobs still due after %d passes: %v", attempt, errs)
				}
				r.waitUp(t)
				err := r.tick(t, now)
				errs = append(errs, err)
				if _, ok, nerr := r.st.NextDue(); nerr != nil || !ok {
					break
				}
			}
			t.Logf("passes: %v", errs)
			if c := r.fake.Conns(); c < 2 {
				t.Errorf("the fake saw %d connections; the drop should have forced a reconnection", c)
			}
			dups := checkDelivered(t, r.fake, jobs, 2)
			checkFired(t, r, jobs)
			checkNothingDue(t, r.st)
			// Only the jobs without a JOB_CREATED may have come twice;
			// those acknowledged came once.
			counts := byJob(r.fake.Submissions())
			ack := 0
			for _, s := range r.fake.Submissions() {
				if s.Conn == 0 && s.Handle != "" {
					ack++
					if c := len(counts[s.Data]); c != 1 {
						t.Errorf("%s was acknowledged, yet submitted %d times", s.Data, c)
					}
				}
			}
			if ack != acked {
				t.Errorf("the fake acknowledged %d jobs on its first connection; want %d", ack, acked)
			}
			if dups > n-acked {
				t.Errorf("%d duplicate submissions; at most the %d unacknowledged jobs may come twice", dups, n-acked)
			}
			st := r.up.Stats()[0]
			if st.Failures != 1 {
				t.Errorf("upstream failures %d; want 1 (the dropped connection)", st.Failures)
			}
			t.Logf("%d jobs, %d acknowledged before the drop: %d submissions, %d duplicates", n, acked,
				len(r.fake.Submissions()), dups)
		})
	}
}

// TestFaultErrorForOneJob: upstream answers ERROR for the 5th job of a
// batch of 10. The other 9 are recorded as fired by that release, the
// refused one stays pending refusedRetry later, and is forwarded by a pass
// at that time, not before.
func TestFaultErrorForOneJob(t *testing.T) {
	r := newFaultRig(t, nil)
	r.fake.SetScript(func(s fakeSubmission) fakeAction {
		if s.Seq == 4 {
			return fakeAction{Kind: fakeRefuse, Code: "QUEUE_ERROR", Text: "queue full"}
		}
		return fakeAction{Kind: fakeReply}
	})
	now := r.clock.Now()
	jobs := r.putDue(t, 10, now.Add(-time.Minute))
	refused := jobs[4]
	others := append(append([]*store.Job(nil), jobs[:4]...), jobs[5:]...)

	if err := r.tick(t, now); err != nil {
		t.Fatalf("a pass with one refusal: %v", err)
	}
	checkFired(t, r, others)
	retryAt := now.Add(refusedRetry)
	checkPending(t, r.st, []*store.Job{refused}, retryAt)
	if s := r.fake.Submissions(); len(s) != 10 || s[4].Data != string(refused.Data) {
		t.Fatalf("the fake received %d submissions, the 5th %+v; want 10, the 5th %s", len(s), s[4], refused.Data)
	}
	if st := r.up.Stats()[0]; st.Refused != 1 || st.Submitted != 9 || st.Failures != 0 || !st.Up {
		t.Errorf("upstream stats %+v; want 9 submitted, 1 refused, no failure, up", st)
	}

	// Not before its time.
	r.clock.Set(retryAt.Add(-time.Millisecond))
	if err := r.tick(t, retryAt.Add(-time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got := len(r.fake.Submissions()); got != 10 {
		t.Errorf("a pass before the retry time submitted %d more jobs", got-10)
	}
	r.clock.Set(retryAt)
	if err := r.tick(t, retryAt); err != nil {
		t.Fatalf("the retry pass: %v", err)
	}
	checkDelivered(t, r.fake, jobs, 2)
	checkFired(t, r, jobs)
	checkNothingDue(t, r.st)
	if got := len(byJob(r.fake.Submissions())[string(refused.Data)]); got != 2 {
		t.Errorf("the refused job was submitted %d times; want 2", got)
	}
}

// TestFaultStalledReply: upstream reads a batch and answers nothing. The
// pass returns within a bound of the upstream timeout, nothing is recorded
// as fired, the connection counts as failed, and once upstream answers
// again the next pass forwards every job, each at most once more and with
// the same unique.
func TestFaultStalledReply(t *testing.T) {
	const n = 5
	tests := []struct {
		name  string
		conn0 func(release <-chan struct{}) fakeAction
		// wantFirst is how many submissions the fake records from the
		// stalled connection.
		wantFirst int
	}{
		{"swallows the batch", func(<-chan struct{}) fakeAction { return fakeAction{Kind: fakeSwallow} }, n},
		{"blocks on the first job until released", func(release <-chan struct{}) fakeAction {
			return fakeAction{Kind: fakeClose, Wait: release}
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newFaultRig(t, nil)
			release := make(chan struct{})
			r.fake.SetScript(func(s fakeSubmission) fakeAction {
				if s.Conn == 0 {
					return tt.conn0(release)
				}
				return fakeAction{Kind: fakeReply}
			})
			now := r.clock.Now()
			due := now.Add(-time.Minute)
			jobs := r.putDue(t, n, due)

			begin := time.Now()
			err := r.tick(t, now)
			took := time.Since(begin)
			if err == nil {
				t.Fatal("a pass whose batch got no reply succeeded")
			}
			t.Logf("stalled pass returned after %v: %v", took.Round(time.Millisecond), err)
			if took < faultTimeout/2 {
				t.Errorf("the pass gave up after %v, before the upstream timeout %v", took, faultTimeout)
			}
			checkPending(t, r.st, jobs, due)
			if st := r.up.Stats()[0]; st.Failures != 1 || st.Submitted != 0 {
				t.Errorf("upstream stats %+v; want 1 failure, nothing submitted", st)
			}
			waitUntil(t, 5*time.Second, "the stalled batch at the fake", func() bool {
				return len(r.fake.Submissions()) == tt.wantFirst
			})

			close(release)
			r.waitUp(t)
			if err := r.tick(t, now); err != nil {
				t.Fatalf("the pass after recovery: %v", err)
			}
			dups := checkDelivered(t, r.fake, jobs, 2)
			checkFired(t, r, jobs)
			checkNothingDue(t, r.st)
			for _, s := range r.fake.Submissions() {
				if s.Conn == 0 && s.Handle != "" {
					t.Errorf("the stalled connection answered %+v", s)
				}
			}
			after := 0
			for _, s := range r.fake.Submissions() {
				if s.Conn > 0 {
					after++
				}
			}
			if after != n {
				t.Errorf("%d submissions after recovery; want each of the %d jobs once", after, n)
			}
			t.Logf("%d jobs: %d submissions, %d duplicates", n, len(r.fake.Submissions()), dups)
		})
	}
}

// TestFaultLedgerCommitFails: upstream acknowledges a batch, then the
// commit recording it fails (the disk fails every commit until the test
// lifts it; the store retries each write alone before it gives up). The
// forwarder keeps the acknowledged batch, and its next pass commits it
// before it submits anything else: no acknowledged job is submitted again.
func TestFaultLedgerCommitFails(t *testing.T) {
	var failing atomic.Bool
	var failed atomic.Int32
	errDiskFull := errors.New("injected: disk full")
	r := newFaultRig(t, &store.Options{NoSync: true, BeforeCommit: func() error {
		if failing.Load() {
			failed.Add(1)
			return errDiskFull
		}
		return nil
	}})
	now := r.clock.Now()
	due := now.Add(-time.Minute)
	jobs := r.putDue(t, 10, due)
	// Arm the failure when the last job of the batch arrives: the next
	// commit is the one that records the batch.
	r.fake.SetScript(func(s fakeSubmission) fakeAction {
		if s.Seq == len(jobs)-1 {
			failing.Store(true)
		}
		return fakeAction{Kind: fakeReply}
	})

	err := r.tick(t, now)
	failing.Store(false) // the disk recovers
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("the pass whose commit failed returned %v; want the commit's error", err)
	}
	if failed.Load() == 0 {
		t.Fatal("the injected failure was not used")
	}
	checkPending(t, r.st, jobs, due)
	if r.fwd.unsaved == nil {
		t.Fatal("the forwarder dropped the acknowledged batch whose commit failed")
	}
	if st := r.up.Stats()[0]; st.Submitted != 10 || st.Failures != 0 {
		t.Errorf("upstream stats %+v; want 10 submitted, no failure", st)
	}
	// Acknowledged, not yet released: nothing recorded them as fired.
	if st := r.fwd.Stats(); st.AckLateness.Count != 10 || st.ReleaseLateness.Count != 0 {
		t.Errorf("lateness observed %d acknowledged, %d released; want 10, 0", st.AckLateness.Count, st.ReleaseLateness.Count)
	}

	// A job that falls due meanwhile must wait for the earlier commit.
	late := r.putDue(t, 1, due)
	err = r.tick(t, now)
	if !errors.Is(err, errRecovered) {
		t.Errorf("the pass after the failure returned %v; want %v", err, errRecovered)
	}
	if got := len(r.fake.Submissions()); got != len(jobs) {
		t.Errorf("the pass that recorded the earlier batch also submitted %d jobs", got-len(jobs))
	}
	checkFired(t, r, jobs)
	checkPending(t, r.st, late, due)
	if got := r.fwd.Stats().ReleaseLateness.Count; got != 10 {
		t.Errorf("released lateness observed %d times after the delayed commit; want 10", got)
	}

	if err := r.tick(t, now); err != nil {
		t.Fatal(err)
	}
	all := append(jobs, late...)
	checkDelivered(t, r.fake, all, 1)
	checkFired(t, r, all)
	checkNothingDue(t, r.st)
}

// heldClaim is a claim that stands for one holding row locks: the test
// knows whether it is still held.
type heldClaim struct {
	store.Claim
	held atomic.Bool
}

func (c *heldClaim) Release() { c.held.Store(false) }

// TestFaultRetriedCommitGivesUpItsClaim: the pass after a failed commit
// records the earlier batch only once it has given up its own claim. On a
// store that locks what a claim reads (PostgreSQL), that claim holds the
// very rows the record changes, since the failed commit left them due.
func TestFaultRetriedCommitGivesUpItsClaim(t *testing.T) {
	var failing atomic.Bool
	var claim heldClaim
	var committedUnderClaim atomic.Bool
	r := newFaultRig(t, &store.Options{NoSync: true, BeforeCommit: func() error {
		if claim.held.Load() {
			committedUnderClaim.Store(true)
		}
		if failing.Load() {
			return errors.New("injected: disk full")
		}
		return nil
	}})
	now := r.clock.Now()
	jobs := r.putDue(t, 3, now.Add(-time.Minute))
	r.fake.SetScript(func(s fakeSubmission) fakeAction {
		if s.Seq == len(jobs)-1 {
			failing.Store(true)
		}
		return fakeAction{Kind: fakeReply}
	})
	if err := r.tick(t, now); err == nil {
		t.Fatal("the pass whose commit failed succeeded")
	}
	failing.Store(false)
	if r.fwd.unsaved == nil {
		t.Fatal("no unsaved batch")
	}
	claim.held.Store(true)
	if err := r.fwd.Release(context.Background(), &claim, nil, nil); !errors.Is(err, errRecovered) {
		t.Fatalf("Release with an unsaved batch: %v, want %v", err, errRecovered)
	}
	if claim.held.Load() || committedUnderClaim.Load() {
		t.Error("the unsaved batch was committed while the pass's own claim was held")
	}
	checkFired(t, r, jobs)
}

// TestFaultCancelDuringRoundTrip: a due schedule occurrence, or a due
// one-shot job, is cancelled through the listener while its submission is
// on its way, before upstream answers JOB_CREATED. The cancel holds (the
// forwarder's commit does not bring the schedule or job back), nothing
// more is submitted for it, and the forwarder cancels the copy upstream
// took.
func TestFaultCancelDuringRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		req  server.ScheduleRequest
	}{
		{"recurring schedule", server.ScheduleRequest{Function: "f", Cron: "* * * * *", Priority: gearman.Normal,
			Data: []byte("every minute")}},
		{"one-shot job", server.ScheduleRequest{Function: "f", Unique: "once", Priority: gearman.Normal,
			Data: []byte("in ten seconds")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newFaultRig(t, nil)
			req := tt.req
			if req.Cron == "" {
				req.At = r.clock.Now().Add(10 * time.Second)
			}
			handle, next, err := r.srv.Schedule(req)
			if err != nil {
				t.Fatal(err)
			}
			id, ok := r.handles.Parse(handle)
			if !ok {
				t.Fatalf("handle %q", handle)
			}
			type result struct {
				ok  bool
				err error
			}
			cancelled := make(chan result, 1)
			r.fake.SetScript(func(s fakeSubmission) fakeAction {
				if s.Data == string(req.Data) && s.Seq == 0 {
					ok, err := r.srv.Cancel(handle)
					cancelled <- result{ok, err}
				}
				return fakeAction{Kind: fakeReply}
			})

			at := next.Add(time.Second)
			r.clock.Set(at)
			if err := r.tick(t, at); err != nil {
				t.Fatalf("the pass: %v", err)
			}
			select {
			case res := <-cancelled:
				if !res.ok || res.err != nil {
					t.Fatalf("Cancel(%s) during the round trip = %v, %v; want true", handle, res.ok, res.err)
				}
			default:
				t.Fatal("the occurrence never reached the fake")
			}
			subs := r.fake.Submissions()
			if len(subs) != 1 || subs[0].Handle == "" {
				t.Fatalf("the fake received %+v; want the one submission, acknowledged", subs)
			}
			wantUnique := req.Unique
			if req.Cron != "" {
				wantUnique = scheduler.OccurrenceUnique(&store.Schedule{Handle: handle}, next)
			}
			if subs[0].Unique != wantUnique || subs[0].Type != gearman.SubmitJobBg {
				t.Errorf("submitted as %s unique %q; want %s unique %q", subs[0].Type, subs[0].Unique,
					gearman.SubmitJobBg, wantUnique)
			}
			if got := r.fake.Cancels(); len(got) != 1 || got[0] != subs[0].Handle {
				t.Errorf("the fake got `cancel job` for %q; want [%s], the copy it took", got, subs[0].Handle)
			}
			if sc, err := r.st.GetSchedule(id); err != nil || sc != nil {
				t.Errorf("schedule after the cancel: %+v, %v; want none", sc, err)
			}
			if j, err := r.st.Scheduled(id); err != nil || j != nil {
				t.Errorf("pending job after the cancel: %+v, %v; want none", j, err)
			}
			if e, err := r.st.FiredJob(id); err != nil || e != nil {
				t.Errorf("the cancelled job is in the fire ledger: %+v, %v", e, err)
			}
			checkNothingDue(t, r.st)

			later := at.Add(10 * time.Minute)
			r.clock.Set(later)
			if err := r.tick(t, later); err != nil {
				t.Fatal(err)
			}
			if got := r.fake.Submissions(); len(got) != 1 {
				t.Errorf("after the cancel %d more submissions: %+v", len(got)-1, got[1:])
			}
			if sc, err := r.st.GetSchedule(id); err != nil || sc != nil {
				t.Errorf("schedule after a later pass: %+v, %v; want none", sc, err)
			}
		})
	}
}
