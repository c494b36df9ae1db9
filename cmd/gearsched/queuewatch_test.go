package main

// --watch-queue against the real gearmand 1.1.20 with each persistent
// queue it ships: SQLite, PostgreSQL and MySQL (MariaDB). Epoch jobs are
// submitted to gearmand itself, never to the sidecar, so the only way the
// sidecar can know them is the queue table.

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/gearman/sidecar"
	_ "modernc.org/sqlite"
)

// sqliteQueueArgs are gearmand's options for an SQLite queue in file.
func sqliteQueueArgs(file string) []string {
	return []string{"-q", "libsqlite3", "--libsqlite3-db", file}
}

// epochJob is one job of a scenario: its unique (also its payload) and
// second.
type epochJob struct {
	unique string
	when   time.Time
}

// submitEpochJobs submits jobs to gearmand as SUBMIT_JOB_EPOCH.
func submitEpochJobs(t *testing.T, addr, fn string, jobs []epochJob) {
	t.Helper()
	c := dialClient(t, addr)
	for _, j := range jobs {
		if _, err := c.Submit(gearman.SubmitJobEpoch, fn, j.unique, []byte(strconv.FormatInt(j.when.Unix(), 10)), []byte(j.unique)); err != nil {
			t.Fatalf("submit %s: %v", j.unique, err)
		}
	}
}

// epochBatch returns n jobs at due and n at due+1s, uniques prefix-i.
func epochBatch(prefix string, n int, due time.Time) []epochJob {
	var jobs []epochJob
	for i := range 2 * n {
		jobs = append(jobs, epochJob{fmt.Sprintf("%s-%d", prefix, i), due.Add(time.Duration(i/n) * time.Second)})
	}
	return jobs
}

// receiveAll has worker w (asleep or about to grab) take jobs until each
// of want arrived, completing every job and skipping trigger jobs. A job
// must arrive once, never before its second and, unless late is set for
// it, within 1 s after it.
func receiveAll(t *testing.T, w *gearman.Client, want []epochJob, late func(epochJob) bool) map[string]time.Duration {
	t.Helper()
	byUnique := map[string]epochJob{}
	for _, j := range want {
		byUnique[j.unique] = j
	}
	got := map[string]time.Duration{}
	triggers := 0
	for len(got) < len(want) {
		handle, unique, data, at := grabOne(t, w)
		if err := w.Send(gearman.WorkComplete, []byte(handle), nil); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(unique, sidecar.TriggerUniquePrefix) {
			triggers++
			continue
		}
		j, ok := byUnique[unique]
		switch {
		case !ok || data != unique:
			t.Fatalf("unexpected job %q %q", unique, data)
		case got[unique] != 0:
			t.Fatalf("%s arrived twice", unique)
		case at.Before(j.when):
			t.Fatalf("%s due %s arrived early, at %s", unique, j.when.Format(time.RFC3339), at.Format(time.RFC3339Nano))
		case (late == nil || !late(j)) && at.Sub(j.when) > time.Second:
			t.Fatalf("%s due %s arrived %v after its second", unique, j.when.Format(time.RFC3339), at.Sub(j.when))
		}
		got[unique] = max(at.Sub(j.when), time.Nanosecond)
	}
	t.Logf("%d jobs, %d trigger jobs reached the worker", len(got), triggers)
	return got
}

// queueRow returns the `show queues` row of upstream addr: backend,
// table, rows with a time, next time, triggers, last error.
func queueRow(t *testing.T, sidecarAddr, addr string) []string {
	t.Helper()
	for _, r := range listRows(t, admin(t, sidecarAddr, "show queues")) {
		if f := strings.Split(r, "\t"); f[0] == addr && len(f) == 7 {
			return f[1:]
		}
	}
	t.Fatalf("show queues has no row for %s", addr)
	return nil
}

// expectNoJob checks that sleeping worker w, told of a submission, finds
// nothing due and then is not woken until deadline.
func expectNoJob(t *testing.T, w *gearman.Client, deadline time.Time) {
	t.Helper()
	if p, err := w.Recv(); err != nil || p.Type != gearman.Noop {
		t.Fatalf("after the submission: %v %v, want NOOP", p, err)
	}
	w.Send(gearman.GrabJobUniq)
	if p, err := w.Recv(); err != nil || p.Type != gearman.NoJob {
		t.Fatalf("grab before the due time: %v %v, want NO_JOB", p, err)
	}
	w.Send(gearman.PreSleep)
	w.SetDeadline(deadline)
	p, err := w.Recv()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("the sleeping worker was woken: %v %v", p, err)
	}
}

// checkQueueTable checks that gearmand created table with the columns the
// watcher reads.
func checkQueueTable(t *testing.T, db *sql.DB, table string) {
	t.Helper()
	rs, err := db.Query("SELECT unique_key, function_name, priority, data, when_to_run FROM " + table + " WHERE 1 = 0")
	if err != nil {
		t.Fatalf("gearmand's queue table %s: %v", table, err)
	}
	rs.Close()
}

// watchedScenario: a sleeping worker on gearmand, 2×n epoch jobs
// submitted to gearmand due in two seconds, the sidecar watching the
// queue: every job arrives once, within 1 s after its second.
func watchedScenario(t *testing.T, gd, sc *daemon, fn string, n int) {
	t.Helper()
	w := sleepingWorker(t, gd.Addr, fn)
	jobs := epochBatch(fn, n, dueSecond(2*time.Second))
	submitEpochJobs(t, gd.Addr, fn, jobs)
	got := receiveAll(t, w, jobs, nil)
	var worst time.Duration
	for _, d := range got {
		worst = max(worst, d)
	}
	t.Logf("worst lateness %v", worst)
	row := queueRow(t, sc.Addr, gd.Addr)
	if n, _ := strconv.Atoi(row[4]); n < 2 || row[5] != "-" {
		t.Errorf("show queues row %q: want at least 2 triggers and no error", row)
	}
}

// TestWatchQueueSQLite: with gearmand's SQLite queue, a sleeping worker
// gets nothing 5 s past the time without the watcher (the control case);
// with the sidecar watching the queue every job arrives within 1 s after
// its second, none early, none twice.
func TestWatchQueueSQLite(t *testing.T) {
	t.Parallel()
	t.Run("without the watcher", func(t *testing.T) {
		t.Parallel()
		gd := startGearmand(t, sqliteQueueArgs(filepath.Join(t.TempDir(), "queue.db"))...)
		startSidecar(t, gd)
		w := sleepingWorker(t, gd.Addr, "wq_control")
		due := dueSecond(time.Second)
		submitEpochJobs(t, gd.Addr, "wq_control", []epochJob{{"c1", due}})
		expectNoJob(t, w, due.Add(5*time.Second))
	})
	t.Run("with the watcher", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "queue.db")
		gd := startGearmand(t, sqliteQueueArgs(file)...)
		sc := startSidecar(t, gd, "--watch-queue", gd.Addr+"=sqlite://"+file)
		db, err := sql.Open("sqlite", file)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		checkQueueTable(t, db, "gearman_queue")
		watchedScenario(t, gd, sc, "wq_sqlite", 10)
	})
}

// TestWatchQueueSQLiteRestart: rows written into the table by hand while
// gearmand is stopped, some past and some a few seconds ahead, are
// replayed by gearmand when it starts again; the watcher wakes the future
// ones at their second for a sleeping worker, and every job arrives once.
func TestWatchQueueSQLiteRestart(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "queue.db")
	gd := startGearmand(t, sqliteQueueArgs(file)...)
	sc := startSidecar(t, gd, "--watch-queue", gd.Addr+"=sqlite://"+file)
	reservePort(t, gd.Port)
	if gd.stop() {
		t.Fatal("gearmand needed SIGKILL")
	}
	db, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	due := dueSecond(4 * time.Second)
	var past, future []epochJob
	for i := range 3 {
		past = append(past, epochJob{fmt.Sprintf("past-%d", i), now.Add(-time.Duration(30+i) * time.Second).Truncate(time.Second)})
	}
	future = epochBatch("ahead", 3, due)
	for _, j := range append(append([]epochJob(nil), past...), future...) {
		if _, err := db.Exec("INSERT INTO gearman_queue (unique_key, function_name, priority, data, when_to_run) VALUES (?, ?, 1, ?, ?)",
			j.unique, "wq_restart", []byte(j.unique), j.when.Unix()); err != nil {
			t.Fatal(err)
		}
	}
	gd2 := startGearmandOn(t, gd.Port, sqliteQueueArgs(file)...)
	if time.Until(due) < time.Second {
		t.Fatal("gearmand took too long to restart to leave room before the rows' second")
	}
	// A worker that connects grabs the past rows at once; then it sleeps
	// and only the watcher's triggers can wake it for the others.
	w := dialClient(t, gd2.Addr)
	w.Send(gearman.CanDo, []byte("wq_restart"))
	isPast := func(j epochJob) bool { return strings.HasPrefix(j.unique, "past-") }
	receiveAll(t, w, append(past, future...), isPast)
	eventually(t, 10*time.Second, func() string {
		if row := queueRow(t, sc.Addr, gd.Addr); row[2] != "0" && row[2] != "1" && row[2] != "2" {
			return fmt.Sprintf("show queues row %q: rows not yet deleted", row)
		}
		return ""
	})
}

// TestWatchQueuePostgres: the same scenario with gearmand's libpq queue.
func TestWatchQueuePostgres(t *testing.T) {
	t.Parallel()
	pg := startPostgres(t)
	gd := startGearmand(t, "-q", "postgres", "--libpq-conninfo", fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres", pg.Port))
	sc := startSidecar(t, gd, "--watch-queue", gd.Addr+"="+pg.dsn)
	checkQueueTable(t, pg.sqlOpen(t), "queue")
	watchedScenario(t, gd, sc, "wq_pg", 10)
}

// TestWatchQueueMariaDB: the same scenario with gearmand's mysql queue.
func TestWatchQueueMariaDB(t *testing.T) {
	t.Parallel()
	my := startMariaDB(t)
	gd := startGearmand(t, "-q", "MySQL", "--mysql-host", "127.0.0.1", "--mysql-port", strconv.Itoa(my.Port),
		"--mysql-user", "root", "--mysql-db", "gearman")
	sc := startSidecar(t, gd, "--watch-queue", gd.Addr+"=mysql://"+my.dsn)
	checkQueueTable(t, my.sqlOpen(t), "gearman_queue")
	watchedScenario(t, gd, sc, "wq_maria", 10)
}

// TestWatchQueueDatabaseDown: the sidecar starts while the queue's
// database cannot be reached, with epoch jobs in gearmand whose time
// passes during the outage. The sidecar serves meanwhile and `show queues`
// names the error; once the database is back the watcher wakes the jobs.
//
// The outage is between the sidecar and PostgreSQL (a proxy the test
// closes), not PostgreSQL itself: gearmand 1.1.20's libpq queue does not
// reconnect after a PostgreSQL restart (every completion then fails with
// QUEUE_ERROR and gearmand drops the worker), which would test gearmand.
func TestWatchQueueDatabaseDown(t *testing.T) {
	t.Parallel()
	pg := startPostgres(t)
	gd := startGearmand(t, "-q", "postgres", "--libpq-conninfo", fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres", pg.Port))
	proxy := startProxy(t, pg.Addr)
	w := sleepingWorker(t, gd.Addr, "wq_down")
	due := dueSecond(time.Second)
	jobs := []epochJob{{"d1", due}, {"d2", due}}
	submitEpochJobs(t, gd.Addr, "wq_down", jobs)
	proxy.down()
	sc := startSidecar(t, gd, "--watch-queue", gd.Addr+"="+pgDSN(proxy.port))
	eventually(t, 10*time.Second, func() string {
		if row := queueRow(t, sc.Addr, gd.Addr); row[5] == "-" {
			return fmt.Sprintf("show queues row %q: want an error while the database is unreachable", row)
		}
		return ""
	})
	if state, _ := upstreamRow(t, sc.Addr, gd.Addr); state != "up" {
		t.Errorf("upstream %s is %s while the queue is down", gd.Addr, state)
	}
	// The jobs' time passes while the queue cannot be read: the worker
	// is not woken.
	expectNoJob(t, w, due.Add(time.Second))
	proxy.up(t)
	// Still asleep: only a trigger job can wake it now.
	w.SetDeadline(time.Now().Add(60 * time.Second))
	if p, err := w.Recv(); err != nil || p.Type != gearman.Noop {
		t.Fatalf("after the database came back: %v %v, want NOOP", p, err)
	}
	receiveAll(t, w, jobs, func(epochJob) bool { return true })
	if row := queueRow(t, sc.Addr, gd.Addr); row[5] != "-" {
		t.Errorf("show queues row %q: the error should be gone", row)
	}
	if out := sc.Stderr(); !strings.Contains(out, "cannot read gearmand's queue") || !strings.Contains(out, "reading gearmand's queue again") {
		t.Errorf("the outage and the recovery were not logged:\n%s", out)
	}
}

// tcpProxy forwards a free 127.0.0.1 port to a server, and can refuse
// connections (down) and accept them again (up) on the same port.
type tcpProxy struct {
	target string
	port   int
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{target: target, port: freePort(t), conns: map[net.Conn]bool{}}
	reservePort(t, p.port)
	p.up(t)
	t.Cleanup(func() {
		p.down()
		p.wg.Wait()
	})
	return p
}

// up listens again.
func (p *tcpProxy) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)))
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.pipe(c) })
		}
	})
}

func (p *tcpProxy) pipe(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil {
		p.mu.Unlock()
		c.Close()
		s.Close()
		return
	}
	p.conns[c], p.conns[s] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(s, c)
	go cp(c, s)
	<-done
	c.Close()
	s.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

// down closes the listener and every forwarded connection.
func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// TestWatchQueueLateCommit: a row written by hand in a transaction that
// stays open across several polls is noticed once it commits, within
// 1 s, on PostgreSQL and MariaDB, though no full pass comes meanwhile. On
// MariaDB the watcher's gate (the server's write counters) opens when the
// row is written, before it can be seen, and stays shut at the commit
// but for Com_commit; on PostgreSQL the snapshot changes at the commit.
func TestWatchQueueLateCommit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) (gd *daemon, db *dbServer, url, table, insert string)
	}{
		{"postgres", func(t *testing.T) (*daemon, *dbServer, string, string, string) {
			pg := startPostgres(t)
			gd := startGearmand(t, "-q", "postgres", "--libpq-conninfo", fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres", pg.Port))
			return gd, pg, pg.dsn, "queue", "INSERT INTO queue (unique_key, function_name, priority, data, when_to_run) VALUES ($1, $2, 1, '\\x00', $3)"
		}},
		{"mariadb", func(t *testing.T) (*daemon, *dbServer, string, string, string) {
			my := startMariaDB(t)
			gd := startGearmand(t, "-q", "MySQL", "--mysql-host", "127.0.0.1", "--mysql-port", strconv.Itoa(my.Port),
				"--mysql-user", "root", "--mysql-db", "gearman")
			return gd, my, "mysql://" + my.dsn, "gearman_queue", "INSERT INTO gearman_queue (unique_key, function_name, priority, data, when_to_run) VALUES (?, ?, 1, x'00', ?)"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gd, dbs, url, table, insert := tc.start(t)
			db := dbs.sqlOpen(t)
			checkQueueTable(t, db, table)
			// A row an hour ahead: `show queues` counts it once the
			// first full pass is done.
			if _, err := db.Exec(insert, "marker", "wq_marker", time.Now().Unix()+3600); err != nil {
				t.Fatal(err)
			}
			sc := startSidecar(t, gd, "--watch-queue", gd.Addr+"="+url)
			eventually(t, 10*time.Second, func() string {
				if row := queueRow(t, sc.Addr, gd.Addr); row[2] != "1" {
					return fmt.Sprintf("show queues row %q: the first pass is not done", row)
				}
				return ""
			})
			triggers := func() int {
				n, _ := strconv.Atoi(queueRow(t, sc.Addr, gd.Addr)[4])
				return n
			}
			before := triggers()
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if _, err := tx.Exec(insert, "late", "wq_late", time.Now().Unix()+30); err != nil {
				t.Fatal(err)
			}
			// Several polls (250 ms apart) while the row is written but
			// not committed: none may see it, and none may forget it.
			hold := time.Now().Add(1500 * time.Millisecond)
			for time.Now().Before(hold) {
				if n := triggers(); n != before {
					t.Fatalf("a trigger (%d, was %d) before the row was committed", n, before)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			committed := time.Now()
			eventually(t, 5*time.Second, func() string {
				if n := triggers(); n == before {
					return "the committed row was not noticed"
				}
				return ""
			})
			if d := time.Since(committed); d > time.Second {
				t.Errorf("the row was noticed %v after its commit, want within 1 s", d)
			}
		})
	}
}
