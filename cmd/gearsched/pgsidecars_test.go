package main

// Several sidecars sharing one PostgreSQL database (--store postgres://…):
// real PostgreSQL from Debian (pgtest), two real gearmands, the gearsched
// binary.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store/pgstore/pgtest"
)

// The tests here are not parallel (but for the one that starts no
// server): each starts PostgreSQL, gearmands and sidecars, and run beside
// the parallel tests they would load the machine those tests' timing
// bounds assume. They run first, one at a time.

// pgSidecars is a set of sidecars on one database and two gearmands.
type pgSidecars struct {
	pg   *pgtest.Server
	url  string
	gds  [2]*daemon
	args []string
	mu   sync.Mutex
	sc   []*daemon
	all  []*daemon // every sidecar started, killed ones too
}

// startPGSidecars starts PostgreSQL, two gearmands and n sidecars on
// them with extra arguments.
func startPGSidecars(t testing.TB, n int, extra ...string) *pgSidecars {
	t.Helper()
	p := &pgSidecars{pg: pgtest.Start(t)}
	p.url = p.pg.NewDatabase(t, "gearsched")
	p.gds = [2]*daemon{startGearmand(t), startGearmand(t)}
	p.args = append([]string{"--upstream", p.gds[0].Addr + "," + p.gds[1].Addr, "--store", p.url}, extra...)
	// Started together: they migrate the empty database at once.
	var wg sync.WaitGroup
	p.sc = make([]*daemon, n)
	for i := range n {
		wg.Go(func() { p.sc[i] = startGearsched(t, p.args...) })
	}
	wg.Wait()
	p.all = slices.Clone(p.sc)
	return p
}

// sidecar returns sidecar i as it runs now.
func (p *pgSidecars) sidecar(i int) *daemon {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sc[i]
}

// restart kills sidecar i with SIGKILL and starts it again.
func (p *pgSidecars) restart(t *testing.T, i int) {
	t.Helper()
	p.sidecar(i).kill9(t)
	d := startGearsched(t, p.args...)
	p.mu.Lock()
	p.sc[i] = d
	p.all = append(p.all, d)
	p.mu.Unlock()
}

// connectionsLost counts the upstream connections the sidecars lost: the
// batch in flight on one may reach gearmand twice, as at a kill.
func (p *pgSidecars) connectionsLost() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, d := range p.all {
		n += strings.Count(d.Stderr(), "upstream connection lost")
	}
	return n
}

// uniqueWorker is a worker on both gearmands that records, by unique, when
// each job reached it.
type uniqueWorker struct {
	mu  sync.Mutex
	got map[string][]time.Time
}

func newUniqueWorker(t testing.TB, p *pgSidecars, fns ...string) *uniqueWorker {
	w := &uniqueWorker{got: map[string][]time.Time{}}
	for _, gd := range p.gds {
		for _, fn := range fns {
			c := dialServer(t, gd.Addr)
			go serveJobs(c, fn, gearman.GrabJobUniq, nil, func(pk *gearman.Packet) {
				at := time.Now()
				w.mu.Lock()
				w.got[string(pk.Args[2])] = append(w.got[string(pk.Args[2])], at)
				w.mu.Unlock()
			})
		}
	}
	return w
}

// count returns how many of uniques reached the worker.
func (w *uniqueWorker) count(uniques []string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, u := range uniques {
		if len(w.got[u]) > 0 {
			n++
		}
	}
	return n
}

// TestStorePostgresNeedsUpstream: the job server keeps bbolt; --store
// postgres://… without --upstream is refused with a message.
func TestStorePostgresNeedsUpstream(t *testing.T) {
	t.Parallel() // starts no server
	for _, args := range [][]string{
		{"serve", "--store", "postgres://u@127.0.0.1:1/db"},
		{"serve", "--store", "mysql://u@127.0.0.1:1/db", "--upstream", "127.0.0.1:1"},
	} {
		p := startTool(t, "", gearschedBin, args...)
		<-p.done
		if p.err == nil || !strings.Contains(p.stderr.String(), "--store") {
			t.Errorf("%q: err %v, stderr %q; want a refusal naming --store", args, p.err, p.stderr.String())
		}
	}
}

// TestSidecarsShareOnePostgres: three sidecars on one database (migrated
// by all three starting at once): epoch jobs submitted to each reach a
// worker once, none early, whichever sidecar fires them; every sidecar
// answers GET_STATUS for a job another took, and cancels it.
func TestSidecarsShareOnePostgres(t *testing.T) {
	p := startPGSidecars(t, 3)
	w := newUniqueWorker(t, p, "pg_share")
	due := dueSecond(2 * time.Second)
	var uniques []string
	for i := range 3 {
		c := dialClient(t, p.sidecar(i).Addr)
		for j := range 300 {
			u := fmt.Sprintf("s%d-%d", i, j)
			if _, err := c.Submit(gearman.SubmitJobEpoch, "pg_share", u, []byte(strconv.FormatInt(due.Unix(), 10)), []byte(u)); err != nil {
				t.Fatal(err)
			}
			uniques = append(uniques, u)
		}
	}
	// A job far in the future, taken by sidecar 0: sidecar 2 knows it
	// and cancels it.
	c0 := dialClient(t, p.sidecar(0).Addr)
	later := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	h, err := c0.Submit(gearman.SubmitJobEpoch, "pg_share", "later", []byte(later), []byte("later"))
	if err != nil {
		t.Fatal(err)
	}
	c2 := dialClient(t, p.sidecar(2).Addr)
	st, err := c2.Status(h)
	if err != nil || !st.Known {
		t.Fatalf("GET_STATUS %s on another sidecar: %+v, %v", h, st, err)
	}
	if reply := admin(t, p.sidecar(2).Addr, "cancel job "+h); !strings.HasPrefix(reply, "OK") {
		t.Fatalf("cancel job %s on another sidecar: %q", h, reply)
	}
	if st, err := c0.Status(h); err != nil || st.Known {
		t.Fatalf("GET_STATUS %s after the cancel: %+v, %v", h, st, err)
	}
	eventually(t, 30*time.Second, func() string {
		if n := w.count(uniques); n < len(uniques) {
			return fmt.Sprintf("%d of %d jobs reached the worker", n, len(uniques))
		}
		return ""
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, u := range uniques {
		if len(w.got[u]) != 1 {
			t.Errorf("%s reached the worker %d times", u, len(w.got[u]))
		}
		if w.got[u][0].Before(due) {
			t.Errorf("%s reached the worker %v early", u, due.Sub(w.got[u][0]))
		}
	}
}

// killRunSize is the kill run's size: 20,000 jobs due over 30 s and 20
// per-second schedules, as `make test` runs it; with -short a quicker
// run of the same kind.
type killRunSize struct {
	jobs      int
	spread    time.Duration
	schedules int
}

func killRunSizeFor() killRunSize {
	if testing.Short() {
		return killRunSize{jobs: 3_000, spread: 12 * time.Second, schedules: 5}
	}
	return killRunSize{jobs: 20_000, spread: 30 * time.Second, schedules: 20}
}

// TestSidecarsKillRun: three sidecars, one database, two gearmands. Epoch
// jobs due over the spread and per-second schedules (the same file on
// every sidecar) are submitted across all three; every 3 s a random
// sidecar is killed with SIGKILL and started again, and PostgreSQL is
// restarted once in the middle. Every acknowledged job reaches a worker,
// none early; duplicates stay within one batch per kill; every
// per-second occurrence runs, at most twice if in flight at a kill.
func TestSidecarsKillRun(t *testing.T) {
	size := killRunSizeFor()
	dir := t.TempDir()
	var file strings.Builder
	for i := range size.schedules {
		fmt.Fprintf(&file, "[[schedule]]\nname = \"kr-%d\"\ncron = \"* * * * * *\"\nfunction = \"kr_sched\"\nmissed = \"all\"\nmissed_cap = 120\n\n", i)
	}
	schedFile := filepath.Join(dir, "schedules.toml")
	if err := os.WriteFile(schedFile, []byte(file.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startPGSidecars(t, 3, "--schedules", schedFile)
	w := newUniqueWorker(t, p, "kr_job", "kr_sched")

	// Submission, across the three sidecars, before the first is due.
	start := time.Now()
	first := dueSecond(4 * time.Second)
	when := make(map[string]time.Time, size.jobs)
	var mu sync.Mutex
	var wg sync.WaitGroup
	// Two pipelined connections per sidecar, 100 submissions in flight
	// on each.
	const conns, window = 6, 100
	for k := range conns {
		wg.Go(func() {
			c := dialClient(t, p.sidecar(k%3).Addr)
			var mine []int
			for j := k; j < size.jobs; j += conns {
				mine = append(mine, j)
			}
			for len(mine) > 0 {
				batch := mine[:min(window, len(mine))]
				mine = mine[len(batch):]
				ats := make([]time.Time, len(batch))
				for i, j := range batch {
					u := "k-" + strconv.Itoa(j)
					ats[i] = first.Add(size.spread * time.Duration(j) / time.Duration(size.jobs)).Truncate(time.Second)
					if err := c.Send(gearman.SubmitJobEpoch, []byte("kr_job"), []byte(u), []byte(strconv.FormatInt(ats[i].Unix(), 10)), []byte(u)); err != nil {
						t.Error(err)
						return
					}
				}
				for i, j := range batch {
					u := "k-" + strconv.Itoa(j)
					pk, err := c.Recv()
					if err != nil || pk.Type != gearman.JobCreated {
						t.Errorf("submitting %s: %v %v", u, pk, err)
						return
					}
					mu.Lock()
					when[u] = ats[i]
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	submitted := time.Since(start)
	end := first.Add(size.spread)

	// Kills every 3 s through the spread; PostgreSQL restarted once in
	// the middle.
	kills := 0
	pgRestarted := false
	for next := time.Now().Add(3 * time.Second); next.Before(end); next = next.Add(3 * time.Second) {
		time.Sleep(time.Until(next)) // the kill schedule itself, not an ordering wait
		p.restart(t, rand.IntN(3))
		kills++
		if !pgRestarted && time.Now().After(first.Add(size.spread/2)) {
			p.pg.Stop(t)
			p.pg.Restart(t)
			pgRestarted = true
		}
	}
	all := make([]string, 0, len(when))
	for u := range when {
		all = append(all, u)
	}
	eventually(t, 120*time.Second, func() string {
		if n := w.count(all); n < len(all) {
			return fmt.Sprintf("%d of %d acknowledged jobs reached a worker", n, len(all))
		}
		return ""
	})
	stop := time.Now()

	w.mu.Lock()
	defer w.mu.Unlock()
	dups, early := 0, 0
	var late []time.Duration
	for u, at := range when {
		got := w.got[u]
		dups += len(got) - 1
		if got[0].Before(at) {
			early++
			t.Errorf("%s reached the worker %v before its second", u, at.Sub(got[0]))
		}
		late = append(late, got[0].Sub(at))
	}
	// One release batch (1,000) per kill may go out twice, and one per
	// PostgreSQL restart.
	if limit := 1000 * (kills + 1 + p.connectionsLost()); dups > limit {
		t.Errorf("%d duplicate deliveries, more than one batch per kill or lost connection (%d)", dups, limit)
	}
	// Occurrences: every second of every schedule from the first due
	// second to the end of the spread, once; twice only if in flight at
	// a kill.
	occDups, occMissing := 0, 0
	for i := range size.schedules {
		for s := first.Unix(); s < end.Unix(); s++ {
			n := len(w.got[fmt.Sprintf("kr-%d@%d", i, s)])
			switch {
			case n == 0:
				occMissing++
			case n > 1:
				occDups += n - 1
			}
		}
	}
	if occMissing > 0 {
		t.Errorf("%d per-second occurrences never ran", occMissing)
	}
	// A batch in flight on a lost upstream connection may go out twice
	// too (the occurrences are resubmitted under their uniques).
	lost := p.connectionsLost()
	if occDups > (kills+1+lost)*size.schedules {
		t.Errorf("%d per-second occurrences ran twice, more than those in flight at %d kills and %d lost upstream connections",
			occDups, kills, lost)
	}
	slices.Sort(late)
	t.Logf("kill run: %d jobs (submitted in %v) due over %v, %d schedules; %d kills, PostgreSQL restarted %v, %d upstream connections lost; "+
		"%d duplicate jobs, %d duplicate occurrences; lateness p50 %v p99 %v max %v; all delivered at the spread's end %+v",
		len(when), submitted.Round(time.Millisecond), size.spread, size.schedules, kills, pgRestarted, lost, dups, occDups,
		late[len(late)/2].Round(time.Millisecond), late[len(late)*99/100].Round(time.Millisecond),
		late[len(late)-1].Round(time.Millisecond), stop.Sub(end).Round(time.Millisecond))
}

// TestImportFromBbolt: a bbolt sidecar's pending jobs move to PostgreSQL
// with import-pg; a PostgreSQL sidecar then knows their handles and
// fires them, and new handles do not repeat theirs.
func TestImportFromBbolt(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t, "gearsched")
	gd := startGearmand(t)
	db := filepath.Join(t.TempDir(), "old.db")
	old := startSidecar(t, gd, "--db", db)
	c := dialClient(t, old.Addr)
	due := dueSecond(4 * time.Second)
	soon, err := c.Submit(gearman.SubmitJobEpoch, "imp", "soon", []byte(strconv.FormatInt(due.Unix(), 10)), []byte("soon"))
	if err != nil {
		t.Fatal(err)
	}
	later, err := c.Submit(gearman.SubmitJobEpoch, "imp", "later", []byte(strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)), []byte("later"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	old.stop()
	for range 2 { // a second run copies nothing twice
		out, _ := runTool(t, "", gearschedBin, "import-pg", "--db", db, "--store", url)
		if !strings.HasPrefix(out, "copied ") {
			t.Fatalf("import-pg said %q", out)
		}
	}
	col := collect(t, gd.Addr, "imp")
	sc := startSidecar(t, gd, "--store", url)
	c = dialClient(t, sc.Addr)
	if st, err := c.Status(later); err != nil || !st.Known {
		t.Fatalf("GET_STATUS %s after the import: %+v, %v", later, st, err)
	}
	h, err := c.Submit(gearman.SubmitJobBg, "imp", "new", []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	if handleNumber(t, h) <= handleNumber(t, later) {
		t.Fatalf("new handle %s does not come after the imported %s", h, later)
	}
	col.await(t, 30*time.Second, "the imported job due soon", func(got map[string]int) bool { return got["soon"] == 1 })
	col.mu.Lock()
	defer col.mu.Unlock()
	if at := col.first["soon"]; at.Before(due) {
		t.Fatalf("imported job %s fired %v early", soon, due.Sub(at))
	}
}

// TestSidecarPostgresDown: while PostgreSQL is down a sidecar refuses
// submissions with ERROR (nothing acknowledged that is not committed) and
// /readyz reports not ready; when it returns, the sidecar takes and fires
// jobs again, and a job acknowledged before the outage still fires.
func TestSidecarPostgresDown(t *testing.T) {
	p := startPGSidecars(t, 1, "--http", "127.0.0.1:0")
	sc := p.sidecar(0)
	base := httpBase(t, sc)
	w := newUniqueWorker(t, p, "pg_down")
	c := dialClient(t, sc.Addr)
	due := dueSecond(6 * time.Second)
	if _, err := c.Submit(gearman.SubmitJobEpoch, "pg_down", "before", []byte(strconv.FormatInt(due.Unix(), 10)), []byte("x")); err != nil {
		t.Fatal(err)
	}
	apiJSON(t, 200, "GET", base+"/readyz", "", "", nil)
	p.pg.Stop(t)
	_, err := c.Submit(gearman.SubmitJobBg, "pg_down", "during", []byte("x"))
	var se *gearman.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("a submission with PostgreSQL down: %v, want an ERROR", err)
	}
	if status, _ := apiCall(t, "GET", base+"/readyz", "", ""); status != 503 {
		t.Fatalf("readyz with PostgreSQL down: %d, want 503", status)
	}
	p.pg.Restart(t)
	eventually(t, 30*time.Second, func() string {
		if status, _ := apiCall(t, "GET", base+"/readyz", "", ""); status != 200 {
			return "readyz " + strconv.Itoa(status) + " after PostgreSQL returned"
		}
		return ""
	})
	if _, err := c.Submit(gearman.SubmitJobBg, "pg_down", "after", []byte("x")); err != nil {
		t.Fatalf("a submission after PostgreSQL returned: %v", err)
	}
	eventually(t, 30*time.Second, func() string {
		if n := w.count([]string{"before", "after"}); n < 2 {
			return fmt.Sprintf("%d of 2 jobs reached the worker", n)
		}
		return ""
	})
	if w.count([]string{"during"}) != 0 {
		t.Error("the refused submission reached the worker")
	}
}

// TestSidecarWaitsForPostgres: a sidecar started while PostgreSQL is down
// waits for it, says so, and serves once it is up.
func TestSidecarWaitsForPostgres(t *testing.T) {
	p := startPGSidecars(t, 0)
	w := newUniqueWorker(t, p, "pg_wait")
	p.pg.Stop(t)
	if gearschedBuildErr != nil {
		t.Fatal(gearschedBuildErr)
	}
	port := freePort(t)
	sc := launch(t, "gearsched", gearschedBin, port, serveArgs(port, filepath.Join(t.TempDir(), "unused.db"), p.args...))
	eventually(t, 30*time.Second, func() string {
		if !strings.Contains(sc.Stderr(), "waiting for PostgreSQL") {
			return "the sidecar did not say it waits for PostgreSQL"
		}
		return ""
	})
	select {
	case <-sc.done:
		t.Fatalf("the sidecar exited while PostgreSQL was down: %v", sc.err)
	default:
	}
	p.pg.Restart(t)
	if err := sc.waitReady(); err != nil {
		t.Fatal(err)
	}
	c := dialClient(t, sc.Addr)
	if _, err := c.Submit(gearman.SubmitJobBg, "pg_wait", "after", []byte("x")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		if w.count([]string{"after"}) != 1 {
			return "the job did not reach the worker"
		}
		return ""
	})
}

// TestSidecarsOwnershipAcrossNodes: three sidecars carrying the same
// schedules file get one set of schedules, and after the file changes
// and all three get SIGHUP at once, one set again, by name; the same
// control request sent through both gearmands makes one schedule.
func TestSidecarsOwnershipAcrossNodes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "schedules.toml")
	write := func(names ...string) {
		var b strings.Builder
		for _, n := range names {
			fmt.Fprintf(&b, "[[schedule]]\nname = %q\ncron = \"0 3 * * *\"\nfunction = \"own_file\"\n\n", n)
		}
		if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a", "b", "c")
	p := startPGSidecars(t, 3, "--schedules", file)
	names := func(s *daemon) []string {
		var out []string
		for _, row := range showSchedules(t, s) {
			if row[1] == "own_file" {
				out = append(out, row[2])
			}
		}
		slices.Sort(out)
		return out
	}
	expect := func(want ...string) {
		t.Helper()
		eventually(t, 20*time.Second, func() string {
			for i := range 3 {
				if got := names(p.sidecar(i)); !slices.Equal(got, want) {
					return fmt.Sprintf("sidecar %d lists %q, want %q", i, got, want)
				}
			}
			return ""
		})
	}
	expect("a", "b", "c")
	write("b", "c", "d")
	for i := range 3 {
		if err := p.sidecar(i).cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	expect("b", "c", "d")

	// Every sidecar registers the control functions on both gearmands.
	for _, gd := range p.gds {
		waitStatusRow(t, gd, "gearsched.schedule", "gearsched.schedule\t0\t0\t3")
	}
	payload := []byte(`{"function":"own_ctl","cron":"0 4 * * *","unique":"ctl-once"}`)
	replies := make([]string, 2)
	var wg sync.WaitGroup
	for i, gd := range p.gds {
		wg.Go(func() {
			c := dialServer(t, gd.Addr)
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			if err := c.Send(gearman.SubmitJob, []byte("gearsched.schedule"), []byte("same-request"), payload); err != nil {
				t.Error(err)
				return
			}
			for {
				pk, err := c.Recv()
				if err != nil {
					t.Error(err)
					return
				}
				if pk.Type == gearman.WorkComplete {
					replies[i] = string(pk.Args[1])
					return
				}
				if pk.Type == gearman.WorkFail || pk.Type == gearman.WorkException {
					t.Errorf("control request through %s failed: %v", gd.Addr, pk.Type)
					return
				}
			}
		})
	}
	wg.Wait()
	a, b := parseScheduleReply(t, "first", replies[0]), parseScheduleReply(t, "second", replies[1])
	if a.Handle != b.Handle {
		t.Errorf("the same request made two schedules: %s and %s", a.Handle, b.Handle)
	}
	n := 0
	for _, row := range showSchedules(t, p.sidecar(0)) {
		if row[1] == "own_ctl" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d schedules of own_ctl, want 1", n)
	}
}
