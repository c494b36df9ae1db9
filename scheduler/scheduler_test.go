package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearsched/gearsched/store"
)

// recordingSink is the Sink contract at its simplest: it records what it
// is handed and marks it fired in the store, as the real sinks do.
type recordingSink struct {
	st     *store.Store
	nextID uint64
	live   map[string]bool
	fired  []string // "handle" for jobs, "unique" for occurrences
	skips  int
}

func (r *recordingSink) Release(ctx context.Context, claim store.Claim, jobs []*store.Job, occs []Occurrence) error {
	var ids []uint64
	for _, j := range jobs {
		ids = append(ids, j.ID)
		r.fired = append(r.fired, j.Handle)
	}
	var socc []store.Occurrence
	for _, o := range occs {
		so := store.Occurrence{Schedule: o.Schedule}
		if o.Fire {
			r.nextID++
			h := fmt.Sprintf("H:occ:%d", r.nextID)
			so.Job = &store.Job{ID: 1_000_000 + r.nextID, Handle: h, Function: o.Schedule.Function, Unique: o.Unique}
			o.Schedule.LastHandle = h
			r.fired = append(r.fired, o.Unique)
		} else {
			r.skips++
		}
		socc = append(socc, so)
	}
	_, _, err := r.st.Fire(0, ids, socc, nil)
	return err
}

func (r *recordingSink) Live(ctx context.Context, handle string) (bool, error) {
	return r.live[handle], nil
}

func newTest(t *testing.T) (*Scheduler, *recordingSink, *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sink := &recordingSink{st: st, live: map[string]bool{}}
	return New(Config{Store: st, Sink: sink, Batch: 3}), sink, st
}

var t0 = time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)

// tick runs one Tick and fails the test on error.
func tick(t *testing.T, s *Scheduler, now, missedBefore time.Time) {
	t.Helper()
	if err := s.Tick(context.Background(), now, missedBefore); err != nil {
		t.Fatal(err)
	}
}

func putSchedule(t *testing.T, st *store.Store, sc *store.Schedule) {
	t.Helper()
	if err := st.PutSchedule(sc, "").Wait(); err != nil {
		t.Fatal(err)
	}
}

func putPending(t *testing.T, st *store.Store, j *store.Job) {
	t.Helper()
	if err := st.PutPending(j, "").Wait(); err != nil {
		t.Fatal(err)
	}
}

func mustSchedule(t *testing.T, st *store.Store, id uint64) *store.Schedule {
	t.Helper()
	sc, err := st.GetSchedule(id)
	if err != nil || sc == nil {
		t.Fatalf("schedule %d: %v, %v", id, sc, err)
	}
	return sc
}

func TestOneShotNeverEarly(t *testing.T) {
	s, sink, st := newTest(t)
	for i, d := range []time.Duration{10 * time.Second, 10 * time.Second, 20 * time.Second, 10*time.Second + 1} {
		j := &store.Job{ID: uint64(i + 1), Handle: fmt.Sprintf("H:t:%d", i+1), Function: "f", Due: t0.Add(d).UnixNano()}
		if err := st.PutPending(j, "").Wait(); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	steps := []struct {
		at   time.Duration
		want string
	}{
		{0, ""},
		{10*time.Second - 1, ""},
		{10 * time.Second, "H:t:1 H:t:2"},
		{10*time.Second + 1, "H:t:1 H:t:2 H:t:4"},
		{19 * time.Second, "H:t:1 H:t:2 H:t:4"},
		{25 * time.Second, "H:t:1 H:t:2 H:t:4 H:t:3"},
	}
	for _, step := range steps {
		if err := s.Tick(ctx, t0.Add(step.at), t0); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(sink.fired, " "); got != step.want {
			t.Fatalf("at +%v fired %q, want %q", step.at, got, step.want)
		}
	}
	if _, ok, _ := st.NextDue(); ok {
		t.Error("index not empty after every job fired")
	}
	if counts := st.PendingCounts(); len(counts) != 0 {
		t.Errorf("pending counts left: %v", counts)
	}
}

func minutely(missed string, cap int, catchUp time.Duration) *store.Schedule {
	return &store.Schedule{
		ID: 7, Handle: "H:t:7", Name: "m", Source: "file", Spec: "* * * * *", Zone: "UTC", Function: "f",
		Missed: missed, MissedCap: cap, CatchUp: int64(catchUp), Overlap: OverlapAllow, Enabled: true,
		Next: t0.UnixNano(), FireAt: t0.UnixNano(),
	}
}

// TestMissedRunPolicies: the daemon was down from t0 (the schedule's next
// occurrence) until t0+10m30s; occurrences t0 … t0+10m fell due meanwhile.
func TestMissedRunPolicies(t *testing.T) {
	restart := t0.Add(10*time.Minute + 30*time.Second)
	for _, tc := range []struct {
		name string
		sc   *store.Schedule
		want []int // minutes after t0 that fire
	}{
		{"skip", minutely(MissedSkip, 0, time.Hour), nil},
		{"once", minutely(MissedOnce, 0, time.Hour), []int{10}},
		{"all capped", minutely(MissedAll, 3, time.Hour), []int{8, 9, 10}},
		{"all uncapped within window", minutely(MissedAll, 100, 5*time.Minute), []int{6, 7, 8, 9, 10}},
		{"once outside window", minutely(MissedOnce, 0, 10*time.Second), nil},
	} {
		// Of the 11 occurrences missed, those that do not fire are
		// counted as dropped.
		wantDropped := uint64(11 - len(tc.want))
		t.Run(tc.name, func(t *testing.T) {
			s, sink, st := newTest(t)
			if err := st.PutSchedule(tc.sc, "").Wait(); err != nil {
				t.Fatal(err)
			}
			if err := s.Tick(context.Background(), restart, restart); err != nil {
				t.Fatal(err)
			}
			if want := minuteUniques(tc.want); strings.Join(sink.fired, " ") != want {
				t.Errorf("fired %v, want %v", sink.fired, want)
			}
			if got := s.Stats().DroppedMissed; got != wantDropped {
				t.Errorf("Stats().DroppedMissed = %d, want %d", got, wantDropped)
			}
			sc := mustSchedule(t, st, 7)
			if next := time.Unix(0, sc.Next).UTC(); !next.Equal(t0.Add(11 * time.Minute)) {
				t.Errorf("next occurrence %v, want t0+11m", next)
			}
			if last := time.Unix(0, sc.Last).UTC(); !last.Equal(t0.Add(10 * time.Minute)) {
				t.Errorf("last occurrence %v, want t0+10m", last)
			}
			// Running normally afterwards: the next minute fires, once.
			checkEleventhMinute(t, s, sink, restart)
		})
	}
}

// minuteUniques returns the uniques of minutely's occurrences at the
// given minutes after t0, space-separated.
func minuteUniques(minutes []int) string {
	var u []string
	for _, m := range minutes {
		u = append(u, fmt.Sprintf("m@%d", t0.Add(time.Duration(m)*time.Minute).Unix()))
	}
	return strings.Join(u, " ")
}

// checkEleventhMinute checks that minutely, having caught up at t0+10m,
// fires its t0+11m occurrence once.
func checkEleventhMinute(t *testing.T, s *Scheduler, sink *recordingSink, missedBefore time.Time) {
	t.Helper()
	before := len(sink.fired)
	tick(t, s, t0.Add(11*time.Minute), missedBefore)
	tick(t, s, t0.Add(11*time.Minute+30*time.Second), missedBefore)
	if len(sink.fired) != before+1 {
		t.Errorf("the 11th minute fired %d times, want once", len(sink.fired)-before)
	}
}

func TestLateButNotMissedFires(t *testing.T) {
	// Due after the start but the loop got to it late: not a missed run.
	s, sink, st := newTest(t)
	putSchedule(t, st, minutely(MissedSkip, 0, 0))
	tick(t, s, t0.Add(3*time.Second), t0.Add(-time.Second))
	if len(sink.fired) != 1 {
		t.Fatalf("fired %v, want the t0 occurrence", sink.fired)
	}
}

func TestOverlapSkip(t *testing.T) {
	s, sink, st := newTest(t)
	sc := minutely(MissedOnce, 0, time.Hour)
	sc.Overlap = OverlapSkip
	sc.LastHandle = "H:prev:1"
	putSchedule(t, st, sc)
	sink.live["H:prev:1"] = true
	tick(t, s, t0, t0.Add(-time.Hour))
	if len(sink.fired) != 0 || sink.skips != 1 {
		t.Fatalf("fired %v with the previous run live (skips %d)", sink.fired, sink.skips)
	}
	if got := s.Stats().SkippedOverlap; got != 1 {
		t.Errorf("Stats().SkippedOverlap = %d, want 1", got)
	}
	sink.live["H:prev:1"] = false
	tick(t, s, t0.Add(time.Minute), t0.Add(-time.Hour))
	if len(sink.fired) != 1 {
		t.Fatalf("fired %v after the previous run ended", sink.fired)
	}
}

func TestJitterDelaysNeverAdvances(t *testing.T) {
	sc := minutely(MissedOnce, 0, time.Hour)
	sc.Jitter = int64(30 * time.Second)
	j := JitterFor(sc)
	if j < 0 || j >= 30*time.Second {
		t.Fatalf("jitter %v outside [0, 30s)", j)
	}
	if JitterFor(sc) != j {
		t.Error("jitter not deterministic")
	}
	s, sink, st := newTest(t)
	sc.FireAt = t0.Add(j).UnixNano()
	putSchedule(t, st, sc)
	if j > 0 {
		tick(t, s, t0.Add(j-1), t0.Add(-time.Hour))
		if len(sink.fired) != 0 {
			t.Fatalf("fired before its jittered time")
		}
	}
	tick(t, s, t0.Add(j), t0.Add(-time.Hour))
	if len(sink.fired) != 1 {
		t.Fatalf("did not fire at its jittered time %v", j)
	}
}

func TestOccurrenceUniqueBounded(t *testing.T) {
	sc := &store.Schedule{Name: strings.Repeat("n", 100)}
	u := OccurrenceUnique(sc, t0)
	if len(u) > MaxUnique {
		t.Errorf("unique of %d bytes", len(u))
	}
	if u != OccurrenceUnique(sc, t0) || u == OccurrenceUnique(sc, t0.Add(time.Minute)) {
		t.Error("unique not deterministic per occurrence")
	}
}

// TestRunWakesAtDueTime drives Run with a fake clock: nothing fires until
// the clock reaches the due time, then it fires without waiting longer.
func TestRunWakesAtDueTime(t *testing.T) {
	s, sink, st := newTest(t)
	clk := newManualClock(t0)
	s.clock = clk
	putPending(t, st, &store.Job{ID: 1, Handle: "H:t:1", Function: "f", Due: t0.Add(2500 * time.Millisecond).UnixNano()})
	done := make(chan error, 1)
	released := make(chan struct{}, 10)
	s.sink = notifySink{sink, released}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- s.Run(ctx) }()

	// The loop sleeps in steps of at most MaxSleep: 1 s, 1 s, then 0.5 s.
	for _, want := range []time.Duration{time.Second, time.Second, 500 * time.Millisecond} {
		d := clk.waitSleeper(t)
		if d != want {
			t.Fatalf("loop slept %v, want %v", d, want)
		}
		if len(sink.fired) != 0 {
			t.Fatalf("fired before the due time")
		}
		clk.advance(d)
	}
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("not released at the due time")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if strings.Join(sink.fired, " ") != "H:t:1" {
		t.Errorf("fired %v", sink.fired)
	}
}

type notifySink struct {
	*recordingSink
	ch chan struct{}
}

func (n notifySink) Release(ctx context.Context, claim store.Claim, jobs []*store.Job, occs []Occurrence) error {
	err := n.recordingSink.Release(ctx, claim, jobs, occs)
	if len(jobs)+len(occs) > 0 {
		n.ch <- struct{}{}
	}
	return err
}

// manualClock is a Clock the test drives. Advancing time moves its wall
// clock (Now) and its monotonic clock (Elapsed) together, as on a machine
// whose clock nobody touches; stepping moves the wall clock alone, as an
// NTP step or settimeofday does. Its times carry no monotonic reading, so
// Run can only learn of a step through Elapsed. Each sleep the loop asks
// for is handed to the test, which ends it.
type manualClock struct {
	mu      sync.Mutex
	wall    time.Time     // what Now returns
	mono    time.Duration // what Elapsed returns
	sleeps  chan sleepReq
	pending sleepReq // the sleep the test will end next; the test's goroutine only
}

type sleepReq struct {
	d  time.Duration
	ch chan time.Time
}

func newManualClock(at time.Time) *manualClock {
	return &manualClock{wall: at.Round(0), sleeps: make(chan sleepReq, 1)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wall
}

func (c *manualClock) Elapsed() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mono
}

func (c *manualClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.sleeps <- sleepReq{d, ch}
	return ch
}

func (c *manualClock) waitSleeper(t *testing.T) time.Duration {
	t.Helper()
	select {
	case c.pending = <-c.sleeps:
		return c.pending.d
	case <-time.After(5 * time.Second):
		t.Fatal("the loop never went to sleep")
	}
	return 0
}

// advance lets d pass on both clocks and ends the loop's pending sleep.
func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	c.wall = c.wall.Add(d)
	c.mono += d
	t := c.wall
	c.mu.Unlock()
	c.pending.ch <- t
}

// stepWall sets the wall clock forward (d > 0) or back (d < 0) by d and
// leaves the monotonic clock alone. The loop's sleep goes on: it notices
// the step when it next wakes up, as it would on a real machine.
func (c *manualClock) stepWall(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wall = c.wall.Add(d)
}

// clockRun is Run driven by a manualClock, one wake-up at a time. It
// notes the wall time at which each item reached the sink and checks, at
// every wake-up, that no occurrence unique was released twice and that
// nothing was released before its due time on the wall clock.
type clockRun struct {
	t      *testing.T
	clk    *manualClock
	sink   *recordingSink
	due    map[string]time.Time // due times of one-shot jobs, by handle
	seen   map[string]time.Time // what was released, and when
	n      int                  // how many of sink.fired are checked
	log    []string             // "item at hh:mm:ss", in release order
	cancel context.CancelFunc
	done   chan error
}

// startRun starts s.Run with clk and waits until the loop has looked at
// the index once and gone to sleep. The test's cleanup stops the loop.
func startRun(t *testing.T, s *Scheduler, clk *manualClock, sink *recordingSink, due map[string]time.Time) *clockRun {
	t.Helper()
	s.clock = clk
	ctx, cancel := context.WithCancel(context.Background())
	r := &clockRun{t: t, clk: clk, sink: sink, due: due, seen: map[string]time.Time{}, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(r.stop)
	r.clk.waitSleeper(t)
	r.check()
	return r
}

func (r *clockRun) stop() {
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Errorf("Run: %v", err)
	}
}

// wakeUp ends the loop's sleep as its timer would, both clocks moving by
// the sleep's length, and waits until the loop has handled the wake-up
// and gone to sleep again. Handing the sleep request over orders the
// loop's Release before the test's reading of the sink.
func (r *clockRun) wakeUp() {
	r.t.Helper()
	r.clk.advance(r.clk.pending.d)
	r.clk.waitSleeper(r.t)
	r.check()
}

// runUntil wakes the loop up until the wall clock reads until or later.
// The loop sleeps up to MaxSleep and less only when something falls due,
// so a few more wake-ups than one per MaxSleep mean it is spinning
// (sleeping 0 with work it does not release) and the test fails instead
// of hanging.
func (r *clockRun) runUntil(until time.Time) {
	r.t.Helper()
	limit := int(until.Sub(r.clk.Now())/MaxSleep) + 10
	for n := 0; r.clk.Now().Before(until); n++ {
		if n == limit {
			r.t.Fatalf("the loop is stuck at %s: %d wake-ups, the last after %v", clockOf(r.clk.Now()), n, r.clk.pending.d)
		}
		r.wakeUp()
	}
}

// check logs what the sink got since the last check, at the current wall
// time, and fails on a repeat or on anything early.
func (r *clockRun) check() {
	r.t.Helper()
	now := r.clk.Now()
	for _, item := range r.sink.fired[r.n:] {
		if at, ok := r.seen[item]; ok {
			r.t.Errorf("%s released again at %s (first at %s)", item, clockOf(now), clockOf(at))
		}
		r.seen[item] = now
		due, ok := r.due[item]
		if !ok {
			due = occurrenceTime(r.t, item)
		}
		if now.Before(due) {
			r.t.Errorf("%s released at %s, before its due time %s", item, clockOf(now), clockOf(due))
		}
		r.log = append(r.log, item+" at "+clockOf(now))
	}
	r.n = len(r.sink.fired)
}

// occurrenceTime reads the occurrence time out of a unique "name@unix".
func occurrenceTime(t *testing.T, unique string) time.Time {
	t.Helper()
	_, sec, ok := strings.Cut(unique, "@")
	n, err := strconv.ParseInt(sec, 10, 64)
	if !ok || err != nil {
		t.Fatalf("released %q: neither a known job nor an occurrence unique", unique)
	}
	return time.Unix(n, 0)
}

func clockOf(t time.Time) string { return t.UTC().Format(time.TimeOnly) }

// minuteAt is an expected release: the occurrence at t0 plus min minutes,
// released when the wall clock reads t0 plus at.
type minuteAt struct {
	min int
	at  time.Duration
}

func wantLog(name string, want []minuteAt) []string {
	var log []string
	for _, w := range want {
		log = append(log, fmt.Sprintf("%s@%d at %s", name, t0.Add(time.Duration(w.min)*time.Minute).Unix(), clockOf(t0.Add(w.at))))
	}
	return log
}

// TestRunWallClockJumpForward: the wall clock steps forward while the loop
// sleeps, and the monotonic clock does not. Beyond jumpThreshold the
// occurrences skipped over count as missed and follow the schedule's
// policy; up to it they are merely late and run. Afterwards the schedule
// runs on as usual: its next minute fires once, on time.
//
// The loop starts at t0-2s and sleeps 1 s, during which the wall clock
// steps; it wakes at t0-1s+step. Before Clock had Elapsed, Run took the
// monotonic difference from the time.Time values, which a fake clock's
// times do not carry: the jump was always 0, so every case here would
// have fired each skipped-over minute as current (skip: ten occurrences,
// not none).
func TestRunWallClockJumpForward(t *testing.T) {
	for _, tc := range []struct {
		name   string
		missed string
		cap    int
		step   time.Duration
		want   []minuteAt
	}{
		{"10m skip", MissedSkip, 0, 10 * time.Minute,
			[]minuteAt{{10, 10 * time.Minute}}},
		{"10m once", MissedOnce, 0, 10 * time.Minute,
			[]minuteAt{{9, 9*time.Minute + 59*time.Second}, {10, 10 * time.Minute}}},
		{"10m all capped at 3", MissedAll, 3, 10 * time.Minute,
			[]minuteAt{{7, 9*time.Minute + 59*time.Second}, {8, 9*time.Minute + 59*time.Second},
				{9, 9*time.Minute + 59*time.Second}, {10, 10 * time.Minute}}},
		// Below and at the threshold a step is not downtime: the minute
		// it stepped over is late, not missed, and runs even under skip.
		{"3s skip", MissedSkip, 0, 3 * time.Second,
			[]minuteAt{{0, 2 * time.Second}, {1, time.Minute}}},
		{"5s skip, at the threshold", MissedSkip, 0, 5 * time.Second,
			[]minuteAt{{0, 4 * time.Second}, {1, time.Minute}}},
		{"6s skip, past the threshold", MissedSkip, 0, 6 * time.Second,
			[]minuteAt{{1, time.Minute}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, sink, st := newTest(t)
			putSchedule(t, st, minutely(tc.missed, tc.cap, time.Hour))
			r := startRun(t, s, newManualClock(t0.Add(-2*time.Second)), sink, nil)
			if len(r.log) != 0 {
				t.Fatalf("released %v before t0", r.log)
			}
			r.clk.stepWall(tc.step)
			r.wakeUp()
			r.runUntil(t0.Add(tc.want[len(tc.want)-1].at))
			want := wantLog("m", tc.want)
			if strings.Join(r.log, "; ") != strings.Join(want, "; ") {
				t.Errorf("released\n  %v\nwant\n  %v", r.log, want)
			}
		})
	}
}

// TestRunWallClockStepBack: the wall clock steps back after the t0
// occurrence fired, so it reads t0 again later, and the monotonic clock
// reaches a one-shot job's due time (t0+30s, 32 s after the start) long
// before the wall clock does. The occurrence does not fire again and the
// job waits for the wall clock; then the next minute fires once, on time.
// The schedule catches up on everything (all, cap 100), so a step back
// mistaken for downtime or a replayed occurrence would show.
func TestRunWallClockStepBack(t *testing.T) {
	for _, tc := range []struct {
		name string
		step time.Duration
	}{
		{"10 minutes back", -10 * time.Minute},
		{"3 seconds back", -3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, sink, st := newTest(t)
			putSchedule(t, st, minutely(MissedAll, 100, time.Hour))
			jobDue := t0.Add(30 * time.Second)
			putPending(t, st, &store.Job{ID: 1, Handle: "H:t:1", Function: "f", Due: jobDue.UnixNano()})
			r := startRun(t, s, newManualClock(t0.Add(-2*time.Second)), sink, map[string]time.Time{"H:t:1": jobDue})
			r.runUntil(t0)
			if want := wantLog("m", []minuteAt{{0, 0}}); strings.Join(r.log, "; ") != want[0] {
				t.Fatalf("released %v by t0, want %v", r.log, want)
			}
			r.clk.stepWall(tc.step)
			slept := r.clk.pending.d
			r.wakeUp()
			if got := r.clk.Now(); !got.Equal(t0.Add(time.Second + tc.step)) {
				t.Fatalf("wall clock reads %s after the step (the loop slept %v, want 1s)", clockOf(got), slept)
			}
			r.runUntil(t0.Add(time.Minute))
			if mono := r.clk.Elapsed(); mono != time.Minute+2*time.Second-tc.step {
				t.Errorf("monotonic clock at %v, want %v", mono, time.Minute+2*time.Second-tc.step)
			}
			want := wantLog("m", []minuteAt{{0, 0}})
			want = append(want, "H:t:1 at "+clockOf(jobDue))
			want = append(want, wantLog("m", []minuteAt{{1, time.Minute}})...)
			if strings.Join(r.log, "; ") != strings.Join(want, "; ") {
				t.Errorf("released\n  %v\nwant\n  %v", r.log, want)
			}
		})
	}
}

// TestWakeFor: storing a job due after the loop's next look does not wake
// it; one due earlier does, and so does anything while the loop is awake.
func TestWakeFor(t *testing.T) {
	s, _, _ := newTest(t)
	for _, tc := range []struct {
		sleepUntil, due int64
		wakes           bool
	}{
		{1000, 2000, false},
		{1000, 1000, false},
		{1000, 999, true},
		{0, 2000, true}, // awake: it may have read the index before the job was stored
	} {
		s.sleepUntil.Store(tc.sleepUntil)
		s.WakeFor(tc.due)
		if woke := len(s.wake) == 1; woke != tc.wakes {
			t.Errorf("sleeping until %d, job due %d: woke %v, want %v", tc.sleepUntil, tc.due, woke, tc.wakes)
		}
		select {
		case <-s.wake:
		default:
		}
	}
}

// failingSink fails every release while failing is set.
type failingSink struct {
	notifySink
	failing chan bool // holds the current setting
	calls   chan struct{}
}

func (f failingSink) Release(ctx context.Context, claim store.Claim, jobs []*store.Job, occs []Occurrence) error {
	failing := <-f.failing
	f.failing <- failing
	f.calls <- struct{}{}
	if failing {
		return fmt.Errorf("upstream down")
	}
	return f.notifySink.Release(ctx, claim, jobs, occs)
}

// TestFailedReleaseWaits: after a failed release the loop sleeps MaxSleep
// instead of retrying the overdue items at once, new work does not wake
// it, and Wake (the sink recovering) does.
func TestFailedReleaseWaits(t *testing.T) {
	s, rec, st := newTest(t)
	clk := newManualClock(t0)
	s.clock = clk
	putPending(t, st, &store.Job{ID: 1, Handle: "H:t:1", Function: "f", Due: t0.UnixNano()})
	released := make(chan struct{}, 10)
	sink := failingSink{notifySink{rec, released}, make(chan bool, 1), make(chan struct{}, 10)}
	sink.failing <- true
	s.sink = sink
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	<-sink.calls
	if d := clk.waitSleeper(t); d != MaxSleep {
		t.Fatalf("after a failed release the loop slept %v, want %v", d, MaxSleep)
	}
	s.WakeFor(t0.UnixNano())
	if len(s.wake) != 0 {
		t.Fatal("new work woke the loop during a failure backoff")
	}
	<-sink.failing
	sink.failing <- false
	s.Wake()
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("Wake after recovery did not release the overdue job")
	}
	if strings.Join(rec.fired, " ") != "H:t:1" {
		t.Errorf("fired %v", rec.fired)
	}
	if got := s.Stats().ReleaseErrors; got != 1 {
		t.Errorf("Stats().ReleaseErrors = %d, want 1", got)
	}
}

// countingHandler counts log records by message.
type countingHandler struct {
	mu   sync.Mutex
	msgs map[string][]slog.Record
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs[r.Message] = append(h.msgs[r.Message], r.Clone())
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// TestOverdueJobsLoggedOnce: jobs that fell due while gearsched was down
// are reported in one line per Tick, with their number, not one per job.
func TestOverdueJobsLoggedOnce(t *testing.T) {
	s, sink, st := newTest(t) // releases in batches of 3
	logs := &countingHandler{msgs: map[string][]slog.Record{}}
	s.log = slog.New(logs)
	for i := range 7 {
		putPending(t, st, &store.Job{ID: uint64(i + 1), Handle: fmt.Sprintf("H:t:%d", i+1), Function: "f",
			Due: t0.Add(time.Duration(i) * time.Second).UnixNano()})
	}
	tick(t, s, t0.Add(time.Hour), t0.Add(time.Hour))
	if len(sink.fired) != 7 {
		t.Fatalf("released %d jobs, want 7", len(sink.fired))
	}
	recs := logs.msgs["released jobs that fell due while gearsched was down"]
	if len(recs) != 1 {
		t.Fatalf("%d summary lines, want 1 (log: %v)", len(recs), logs.msgs)
	}
	var jobs int64
	recs[0].Attrs(func(a slog.Attr) bool {
		if a.Key == "jobs" {
			jobs = a.Value.Int64()
		}
		return true
	})
	if jobs != 7 {
		t.Errorf("summary counts %d jobs, want 7", jobs)
	}
}

// sizesSink records the size of each release.
type sizesSink struct {
	*recordingSink
	sizes []int
}

func (s *sizesSink) Release(ctx context.Context, claim store.Claim, jobs []*store.Job, occs []Occurrence) error {
	s.sizes = append(s.sizes, len(jobs)+len(occs))
	return s.recordingSink.Release(ctx, claim, jobs, occs)
}

// TestFirstReleaseSmall: a Tick's first release carries few items, so the
// first jobs due at a second go out after a short read; the next ones
// double up to the batch size.
func TestFirstReleaseSmall(t *testing.T) {
	_, rec, st := newTest(t)
	sink := &sizesSink{recordingSink: rec}
	s := New(Config{Store: st, Sink: sink, Batch: 100})
	for i := range 300 {
		putPending(t, st, &store.Job{ID: uint64(i + 1), Handle: fmt.Sprintf("H:t:%d", i+1), Function: "f", Due: t0.UnixNano()})
	}
	tick(t, s, t0, t0)
	if want := []int{32, 64, 100, 100, 4}; !slices.Equal(sink.sizes, want) {
		t.Errorf("release sizes %v, want %v", sink.sizes, want)
	}
	if len(rec.fired) != 300 {
		t.Errorf("released %d jobs, want 300", len(rec.fired))
	}
}
