package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
)

// startSidecar starts gearsched in sidecar mode in front of upstream.
func startSidecar(t testing.TB, upstream *daemon, extraArgs ...string) *daemon {
	t.Helper()
	return startGearsched(t, append([]string{"--upstream", upstream.Addr}, extraArgs...)...)
}

// collector is a raw worker on an upstream gearmand that completes every
// job at once and counts the payloads it received.
type collector struct {
	mu     sync.Mutex
	got    map[string]int
	first  map[string]time.Time
	unique map[string]string
	change chan struct{}
	errc   chan error
}

// collect starts a collector for fn on addr; it stops when the test ends.
func collect(t *testing.T, addr, fn string) *collector {
	t.Helper()
	return collectOn(dialServer(t, addr), fn)
}

// collectOn starts a collector for fn on a connected client.
func collectOn(c *gearman.Client, fn string) *collector {
	col := &collector{got: map[string]int{}, first: map[string]time.Time{}, unique: map[string]string{},
		change: make(chan struct{}, 1), errc: make(chan error, 1)}
	go func() { col.errc <- col.run(c, fn) }()
	return col
}

func (col *collector) run(c *gearman.Client, fn string) error {
	return serveJobs(c, fn, gearman.GrabJobUniq, nil, func(p *gearman.Packet) {
		at := time.Now()
		data := string(p.Args[3])
		col.mu.Lock()
		if col.got[data] == 0 {
			col.first[data] = at
			col.unique[data] = string(p.Args[2])
		}
		col.got[data]++
		col.mu.Unlock()
		select {
		case col.change <- struct{}{}:
		default:
		}
	})
}

// await waits until done reports true (checked after every job), or fails
// the test after timeout.
func (col *collector) await(t *testing.T, timeout time.Duration, what string, done func(got map[string]int) bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		col.mu.Lock()
		ok := done(col.got)
		n := len(col.got)
		col.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-col.change:
		case err := <-col.errc:
			t.Fatalf("collector stopped: %v", err)
		case <-deadline:
			t.Fatalf("after %v: %s (got %d distinct payloads)", timeout, what, n)
		}
	}
}

// upstreamRow returns the `show upstreams` row of addr: its state, then
// the counters submitted, refused, failures, late, max late ms, triggers
// and cancelled.
func upstreamRow(t testing.TB, sidecar, addr string) (string, []int) {
	t.Helper()
	c := dialServer(t, sidecar)
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	reply, err := c.Admin("show upstreams")
	if err != nil {
		t.Fatalf("show upstreams: %v", err)
	}
	for _, r := range strings.Split(reply, "\n") {
		f := strings.Split(r, "\t")
		if f[0] != addr || len(f) != 9 {
			continue
		}
		var n []int
		for _, s := range f[2:] {
			v, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("show upstreams row %q: %v", r, err)
			}
			n = append(n, v)
		}
		return f[1], n
	}
	t.Fatalf("show upstreams has no row for %s: %q", addr, reply)
	return "", nil
}

// TestSidecarEpochJobsOnTime: 1,000 epoch jobs submitted to the sidecar
// and due in the same second all reach a worker on gearmand, none before
// its time, the probe within 1 s of it.
func TestSidecarEpochJobsOnTime(t *testing.T) {
	t.Parallel()
	gd := startGearmand(t)
	sc := startSidecar(t, gd)
	c := dialClient(t, sc.Addr)
	due := dueSecond(2 * time.Second)
	submitEpochs(t, c, "sc_ontime", "j", 1000, due)
	if time.Until(due) < 300*time.Millisecond {
		t.Fatal("submissions took too long to leave room before the due second")
	}
	col := collect(t, gd.Addr, "sc_ontime")
	col.await(t, 30*time.Second, "1,000 epoch jobs through gearmand", func(got map[string]int) bool { return len(got) == 1000 })
	col.mu.Lock()
	defer col.mu.Unlock()
	var last time.Duration
	for data, n := range col.got {
		if n != 1 {
			t.Errorf("%s reached the worker %d times", data, n)
		}
		at := col.first[data]
		if at.Before(due) {
			t.Errorf("%s reached the worker at %s, before its time %s", data, at.Format(time.RFC3339Nano), due.Format(time.RFC3339))
		}
		last = max(last, at.Sub(due))
		if col.unique[data] != data {
			t.Errorf("%s arrived with unique %q, want its own", data, col.unique[data])
		}
	}
	if last > time.Second {
		t.Errorf("the last of 1,000 jobs arrived %v after its time", last)
	}
	t.Logf("1,000 jobs due at %s: last one +%v", due.Format(time.RFC3339), last)
}

// TestSidecarKeepsPriorityAndUnique: background jobs submitted to the
// sidecar reach gearmand with their priority and unique (or a
// gearsched:<handle> unique when they had none), GET_STATUS on the sidecar
// reports what gearmand knows, and foreground jobs and workers are sent to
// the job server with an ERROR.
// TestSidecarDistinct64ByteUniques: two jobs whose 64-byte uniques differ
// only in the last byte both run; gearmand keeps 63 bytes of a unique, so
// forwarding them cut would merge them there.
func TestSidecarDistinct64ByteUniques(t *testing.T) {
	t.Parallel()
	gd := startGearmand(t)
	sc := startSidecar(t, gd)
	c := dialClient(t, sc.Addr)
	base := strings.Repeat("u", gearman.MaxUniqueSize-1)
	for _, j := range []struct{ unique, data string }{{base + "a", "A"}, {base + "b", "B"}} {
		if _, err := c.Submit(gearman.SubmitJobBg, "sc_u64", j.unique, []byte(j.data)); err != nil {
			t.Fatal(err)
		}
	}
	w := dialClient(t, gd.Addr)
	w.Send(gearman.CanDo, []byte("sc_u64"))
	var got []string
	for range 2 {
		handle, _, data, _ := grabOne(t, w)
		got = append(got, data)
		w.Send(gearman.WorkComplete, []byte(handle), nil)
	}
	slices.Sort(got)
	if strings.Join(got, ",") != "A,B" {
		t.Errorf("gearmand ran %q, want both jobs", got)
	}
}

func TestSidecarKeepsPriorityAndUnique(t *testing.T) {
	t.Parallel()
	gd := startGearmand(t)
	sc := startSidecar(t, gd)
	c := dialClient(t, sc.Addr)
	var handles []string
	for _, j := range []struct {
		typ          gearman.Type
		unique, data string
	}{
		{gearman.SubmitJobLowBg, "u-low", "low"},
		{gearman.SubmitJobBg, "", "normal"},
		{gearman.SubmitJobHighBg, "u-high", "high"},
	} {
		h, err := c.Submit(j.typ, "sc_prio", j.unique, []byte(j.data))
		if err != nil {
			t.Fatal(err)
		}
		handles = append(handles, h)
	}
	eventually(t, 10*time.Second, func() string {
		if rows := listRows(t, admin(t, gd.Addr, "status")); !strings.Contains(strings.Join(rows, "\n"), "sc_prio\t3\t0\t0") {
			return fmt.Sprintf("gearmand status %q, want sc_prio with 3 queued", rows)
		}
		return ""
	})
	for _, h := range handles {
		if err := c.Send(gearman.GetStatus, []byte(h)); err != nil {
			t.Fatal(err)
		}
		p, err := c.Recv()
		if err != nil || p.Type != gearman.StatusRes || string(p.Args[0]) != h || string(p.Args[1]) != "1" || string(p.Args[2]) != "0" {
			t.Fatalf("GET_STATUS %s on the sidecar while gearmand queues it: %v %v, want known=1 running=0", h, p, err)
		}
	}

	w := dialClient(t, gd.Addr)
	w.Send(gearman.CanDo, []byte("sc_prio"))
	var got []string
	for range 3 {
		handle, unique, data, _ := grabOne(t, w)
		got = append(got, data+"="+unique)
		w.Send(gearman.WorkComplete, []byte(handle), nil)
	}
	want := []string{"high=u-high", "normal=gearsched:" + handles[1], "low=u-low"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("gearmand handed out %q, want %q", got, want)
	}
	eventually(t, 10*time.Second, func() string {
		c.Send(gearman.GetStatus, []byte(handles[0]))
		if p, err := c.Recv(); err != nil || string(p.Args[1]) != "0" {
			return fmt.Sprintf("GET_STATUS after completion: %v %v, want known=0", p, err)
		}
		return ""
	})

	for _, pk := range []struct {
		typ  gearman.Type
		args [][]byte
		text string
	}{
		{gearman.SubmitJob, [][]byte{[]byte("sc_prio"), nil, []byte("fg")}, "submit foreground jobs to the job server directly"},
		{gearman.CanDo, [][]byte{[]byte("sc_prio")}, "connect workers to the job server directly"},
		{gearman.GrabJob, nil, "connect workers to the job server directly"},
	} {
		if err := c.Send(pk.typ, pk.args...); err != nil {
			t.Fatal(err)
		}
		p, err := c.Recv()
		if err != nil || p.Type != gearman.Error || string(p.Args[0]) != "INVALID_COMMAND" || !strings.Contains(string(p.Args[1]), pk.text) {
			t.Errorf("%s to the sidecar: %v %v, want ERROR INVALID_COMMAND %q", pk.typ, p, err, pk.text)
		}
	}
}

// sleepingWorker registers fn on addr and goes to sleep (GRAB_JOB, NO_JOB,
// PRE_SLEEP), as an idle libgearman worker does.
func sleepingWorker(t *testing.T, addr, fn string) *gearman.Client {
	t.Helper()
	w := dialClient(t, addr)
	w.Send(gearman.CanDo, []byte(fn))
	w.Send(gearman.GrabJobUniq)
	if p, err := w.Recv(); err != nil || p.Type != gearman.NoJob {
		t.Fatalf("first grab: %v %v, want NO_JOB", p, err)
	}
	w.Send(gearman.PreSleep)
	return w
}

// TestTriggerWakesEpochJobs proves both sides of --epoch-passthrough.
// gearmand alone never runs an epoch job for a sleeping worker: 5 s after
// its time the worker has had nothing. Submitted through the sidecar, the
// same job goes to gearmand as SUBMIT_JOB_EPOCH, is woken by a trigger job
// and reaches the worker within 1 s of its time; the trigger is cancelled
// while the worker holds the epoch job, so the worker never sees it.
func TestTriggerWakesEpochJobs(t *testing.T) {
	t.Parallel()
	t.Run("gearmand alone", func(t *testing.T) {
		t.Parallel()
		gd := startGearmand(t)
		w := sleepingWorker(t, gd.Addr, "trig_alone")
		c := dialClient(t, gd.Addr)
		due := dueSecond(time.Second)
		if _, err := c.Submit(gearman.SubmitJobEpoch, "trig_alone", "e1", []byte(strconv.FormatInt(due.Unix(), 10)), []byte("epoch")); err != nil {
			t.Fatal(err)
		}
		// The submission's NOOP wakes the worker, which finds nothing due
		// and sleeps again; after that nothing may arrive.
		expectNoJob(t, w, due.Add(5*time.Second))
		if rows := listRows(t, admin(t, gd.Addr, "status")); !strings.Contains(strings.Join(rows, "\n"), "trig_alone\t1\t0\t1") {
			t.Errorf("5 s after its time gearmand status is %q, want the job still queued", rows)
		}
	})
	t.Run("sidecar passthrough", func(t *testing.T) {
		t.Parallel()
		gd := startGearmand(t)
		sc := startSidecar(t, gd, "--epoch-passthrough", "--trigger-payload", "wake-up")
		w := sleepingWorker(t, gd.Addr, "trig_pass")
		c := dialClient(t, sc.Addr)
		due := dueSecond(time.Second)
		h, err := c.Submit(gearman.SubmitJobEpoch, "trig_pass", "e1", []byte(strconv.FormatInt(due.Unix(), 10)), []byte("epoch"))
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, func() string {
			if rows := listRows(t, admin(t, gd.Addr, "show unique jobs")); strings.Join(rows, ",") != "e1" {
				return fmt.Sprintf("gearmand holds %q, want the epoch job e1 alone before its time", rows)
			}
			return ""
		})
		handle, unique, data, at := grabOne(t, w)
		if unique != "e1" || data != "epoch" {
			t.Fatalf("the worker got %s %q %q first, want the epoch job", handle, unique, data)
		}
		if at.Before(due) || at.Sub(due) > time.Second {
			t.Fatalf("epoch job due %s reached the worker at %s", due.Format(time.RFC3339), at.Format(time.RFC3339Nano))
		}
		// Hold the job until the sidecar cancelled the trigger.
		eventually(t, 10*time.Second, func() string {
			if _, n := upstreamRow(t, sc.Addr, gd.Addr); n[5] != 1 || n[6] != 1 {
				return fmt.Sprintf("triggers sent %d, cancelled %d; want 1 and 1", n[5], n[6])
			}
			return ""
		})
		w.Send(gearman.WorkComplete, []byte(handle), nil)
		w.Send(gearman.GrabJobUniq)
		if p, err := w.Recv(); err != nil || p.Type != gearman.NoJob {
			t.Fatalf("after the epoch job the worker got %v %v, want NO_JOB (the trigger cancelled)", p, err)
		}
		c.Send(gearman.GetStatus, []byte(h))
		if p, err := c.Recv(); err != nil || string(p.Args[1]) != "0" {
			t.Errorf("GET_STATUS %s on the sidecar after completion: %v %v, want known=0", h, p, err)
		}
		t.Logf("epoch job due %s reached the worker +%v", due.Format(time.RFC3339), at.Sub(due))
	})
}

// TestSidecarUpstreamOutage stops gearmand before the jobs' time and
// starts it again 10 s later on the same port: every job reaches the
// worker once, late by about the outage, and the lateness is counted.
func TestSidecarUpstreamOutage(t *testing.T) {
	t.Parallel()
	gd := startGearmand(t)
	sc := startSidecar(t, gd)
	c := dialClient(t, sc.Addr)
	due := dueSecond(2 * time.Second)
	submitEpochs(t, c, "sc_outage", "o", 50, due)
	reservePort(t, gd.Port)
	if gd.stop() {
		t.Fatal("gearmand needed SIGKILL")
	}
	stopped := time.Now()
	eventually(t, 10*time.Second, func() string {
		if state, _ := upstreamRow(t, sc.Addr, gd.Addr); state != "down" {
			return "the sidecar still reports gearmand " + state
		}
		return ""
	})
	// Past the due time nothing can be delivered; wait out the outage.
	time.Sleep(time.Until(stopped.Add(10 * time.Second)))
	gd2 := startGearmandOn(t, gd.Port)
	back := time.Now()
	col := collect(t, gd2.Addr, "sc_outage")
	col.await(t, 30*time.Second, "50 jobs after the outage", func(got map[string]int) bool { return len(got) == 50 })
	col.mu.Lock()
	for data, n := range col.got {
		if n != 1 {
			t.Errorf("%s reached the worker %d times", data, n)
		}
		if col.first[data].Before(back) {
			t.Errorf("%s arrived before gearmand was back", data)
		}
	}
	col.mu.Unlock()
	// The forwarder counts a batch just after gearmand took it.
	var n []int
	eventually(t, 10*time.Second, func() string {
		if _, n = upstreamRow(t, sc.Addr, gd.Addr); n[3] != 50 {
			return fmt.Sprintf("show upstreams counts %d late jobs, want 50", n[3])
		}
		return ""
	})
	// Late by about the outage: reconnection backoff is capped at 2 s.
	if worst := time.Duration(n[4]) * time.Millisecond; n[3] != 50 || worst < back.Sub(due)-time.Second || worst > back.Sub(due)+5*time.Second {
		t.Errorf("show upstreams counts %d late jobs, worst %v; want 50, about %v", n[3], worst, back.Sub(due))
	}
	if n[2] < 1 {
		t.Errorf("show upstreams counts %d connection failures, want at least 1", n[2])
	}
	if !strings.Contains(sc.Stderr(), "forwarded late") {
		t.Error("the sidecar did not log the late forwarding")
	}
	t.Logf("outage %v; due %s; gearmand back +%v; late counters %v", back.Sub(stopped).Round(time.Millisecond),
		due.Format(time.RFC3339), back.Sub(due).Round(time.Millisecond), n)
}

// TestSidecarKill9DuringBurst kills the sidecar with SIGKILL while it is
// accepting and forwarding background jobs as fast as a client submits
// them. After a restart on the same database every acknowledged job
// reaches the worker; a job reaches it twice only if it was in flight
// (submitted upstream, not yet in the ledger), at most one release batch.
func TestSidecarKill9DuringBurst(t *testing.T) {
	t.Parallel()
	gd := startGearmand(t)
	col := collect(t, gd.Addr, "sc_burst")
	db := filepath.Join(t.TempDir(), "burst.db")
	s1 := startSidecar(t, gd, "--db", db)
	c := dialClient(t, s1.Addr)

	acked := make(chan string, 1<<20)
	go func() {
		defer close(acked)
		for i := 0; ; i += 100 {
			for j := i; j < i+100; j++ {
				if c.Send(gearman.SubmitJobBg, []byte("sc_burst"), nil, []byte("b-"+strconv.Itoa(j))) != nil {
					return
				}
			}
			for j := i; j < i+100; j++ {
				p, err := c.Recv()
				if err != nil || p.Type != gearman.JobCreated {
					return // the sidecar died
				}
				acked <- "b-" + strconv.Itoa(j)
			}
		}
	}()
	// Kill once the worker has seen a few thousand jobs: forwarding is
	// then in full swing.
	col.await(t, 60*time.Second, "3,000 jobs forwarded before the kill", func(got map[string]int) bool { return len(got) >= 3000 })
	s1.kill9(t)
	var ack []string
	for d := range acked {
		ack = append(ack, d)
	}
	startSidecar(t, gd, "--db", db)
	col.await(t, 60*time.Second, fmt.Sprintf("all %d acknowledged jobs after the restart", len(ack)), func(got map[string]int) bool {
		for _, d := range ack {
			if got[d] == 0 {
				return false
			}
		}
		return true
	})
	col.mu.Lock()
	defer col.mu.Unlock()
	dups := 0
	for _, n := range col.got {
		dups += n - 1
	}
	if dups > 1000 {
		t.Errorf("%d duplicate deliveries, more than one release batch (1,000) in flight", dups)
	}
	t.Logf("%d jobs acknowledged before the kill, %d reached the worker, %d twice", len(ack), len(col.got), dups)
}

// TestSidecarRefusedJobsDeferred: jobs gearmand refuses (its queue for the
// function is full) are deferred and retried without holding up jobs due
// after them, and go out once gearmand takes them again.
func TestSidecarRefusedJobsDeferred(t *testing.T) {
	t.Parallel()
	gd := startGearmand(t)
	// maxqueue applies only to a function gearmand knows (D11); a job
	// queued directly makes it known and fills the queue of 1.
	if _, err := dialClient(t, gd.Addr).Submit(gearman.SubmitJobBg, "sc_full", "seed", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if r := admin(t, gd.Addr, "maxqueue sc_full 1"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("maxqueue: %q", r)
	}
	sc := startSidecar(t, gd)
	c := dialClient(t, sc.Addr)
	// A whole release batch of refused jobs ahead of the one that can go.
	const refused = 1000
	for i := range refused {
		if err := c.Send(gearman.SubmitJobBg, []byte("sc_full"), []byte(fmt.Sprintf("full-%d", i)), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for range refused {
		if p, err := c.Recv(); err != nil || p.Type != gearman.JobCreated {
			t.Fatalf("submission: %v %v", p, err)
		}
	}
	if _, err := c.Submit(gearman.SubmitJobBg, "sc_ok", "", []byte("after")); err != nil {
		t.Fatal(err)
	}
	col := collect(t, gd.Addr, "sc_ok")
	col.await(t, 10*time.Second, "the job due after the refused ones", func(got map[string]int) bool { return got["after"] == 1 })
	if _, n := upstreamRow(t, sc.Addr, gd.Addr); n[1] < refused {
		t.Errorf("show upstreams counts %d refused submissions, want at least %d", n[1], refused)
	}
	// The collector may have the job a moment before the sidecar's commit
	// records it as forwarded.
	eventually(t, 10*time.Second, func() string {
		if rows := listRows(t, admin(t, sc.Addr, "show schedules")); len(rows) != refused {
			return fmt.Sprintf("the sidecar holds %d jobs, want the %d refused ones", len(rows), refused)
		}
		return ""
	})
	if r := admin(t, gd.Addr, "maxqueue sc_full 0"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("maxqueue: %q", r)
	}
	eventually(t, 30*time.Second, func() string {
		if rows := listRows(t, admin(t, gd.Addr, "status")); !strings.Contains(strings.Join(rows, "\n"), fmt.Sprintf("sc_full\t%d\t0\t0", refused+1)) {
			return fmt.Sprintf("gearmand status %q, want the seed and the %d refused sc_full jobs queued", rows, refused)
		}
		return ""
	})
	// gearmand may list the jobs a moment before the sidecar's commit
	// records them as forwarded.
	eventually(t, 10*time.Second, func() string {
		if rows := listRows(t, admin(t, sc.Addr, "show schedules")); len(rows) != 0 {
			return fmt.Sprintf("the sidecar still holds %d jobs", len(rows))
		}
		return ""
	})
}

// TestSidecarFailover: with two upstreams, jobs are spread over both by
// the hash of function and unique; when one stops, every later job goes to
// the other.
func TestSidecarFailover(t *testing.T) {
	t.Parallel()
	gd1, gd2 := startGearmand(t), startGearmand(t)
	sc := startGearsched(t, "--upstream", gd1.Addr+","+gd2.Addr)
	c := dialClient(t, sc.Addr)
	submit := func(prefix string) {
		for i := range 20 {
			if _, err := c.Submit(gearman.SubmitJobBg, "sc_fo", fmt.Sprintf("%s-%d", prefix, i), []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	total := func(s *daemon) int { return max(statusTotal(t, s.Addr, "sc_fo"), 0) }
	submit("a")
	var n1, n2 int
	eventually(t, 10*time.Second, func() string {
		if n1, n2 = total(gd1), total(gd2); n1+n2 != 20 {
			return fmt.Sprintf("gearmands hold %d and %d jobs, want 20 in all", n1, n2)
		}
		return ""
	})
	if n1 == 0 || n2 == 0 {
		t.Errorf("20 jobs with distinct uniques went %d / %d: not spread over both upstreams", n1, n2)
	}
	if gd1.stop() {
		t.Fatal("gearmand needed SIGKILL")
	}
	submit("b")
	eventually(t, 20*time.Second, func() string {
		if got := total(gd2); got != n2+20 {
			return fmt.Sprintf("the remaining gearmand holds %d jobs, want %d", got, n2+20)
		}
		return ""
	})
	if state, _ := upstreamRow(t, sc.Addr, gd1.Addr); state != "down" {
		t.Errorf("show upstreams reports the stopped gearmand %s", state)
	}
	eventually(t, 10*time.Second, func() string {
		if rows := listRows(t, admin(t, sc.Addr, "show schedules")); len(rows) != 0 {
			return fmt.Sprintf("the sidecar still holds %d jobs", len(rows))
		}
		return ""
	})
}
