package main

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkWatchQueueLateness measures how late epoch jobs submitted
// straight to gearmand reach its workers when only the watcher can wake
// them: 1,000 SUBMIT_JOB_EPOCH jobs due in one second, submitted over 8
// pipelined connections while four raw workers sleep, with gearmand's
// queue in SQLite (on /dev/shm, so gearmand's one fsync per job does not
// eat the lead), PostgreSQL and MariaDB. Lateness is JOB_ASSIGN minus the
// due second (p50, p99, max; early must be 0).
//
//	go test ./cmd/gearsched -run '^$' -bench WatchQueueLateness -benchtime 1x
func BenchmarkWatchQueueLateness(b *testing.B) {
	const n = 1000
	b.Run("backend=sqlite", func(b *testing.B) {
		benchLateness(b, n, func() ([]time.Duration, time.Duration) {
			dir, err := os.MkdirTemp("/dev/shm", "gearsched-bench-")
			if err != nil {
				b.Fatal(err)
			}
			defer os.RemoveAll(dir)
			file := filepath.Join(dir, "queue.db")
			gd := startGearmand(b, sqliteQueueArgs(file)...)
			defer gd.stop()
			sc := startSidecar(b, gd, "--watch-queue", gd.Addr+"=sqlite://"+file)
			defer sc.stop()
			return latenessRoundAt(b, n, false, gd.Addr, gd.Addr)
		})
	})
	b.Run("backend=postgres", func(b *testing.B) {
		pg := startPostgres(b)
		benchLateness(b, n, func() ([]time.Duration, time.Duration) {
			gd := startGearmand(b, "-q", "postgres", "--libpq-conninfo", fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres", pg.Port))
			defer gd.stop()
			sc := startSidecar(b, gd, "--watch-queue", gd.Addr+"="+pg.dsn)
			defer sc.stop()
			return latenessRoundAt(b, n, false, gd.Addr, gd.Addr)
		})
	})
	b.Run("backend=mariadb", func(b *testing.B) {
		my := startMariaDB(b)
		benchLateness(b, n, func() ([]time.Duration, time.Duration) {
			gd := startGearmand(b, "-q", "mysql", "--mysql-host", "127.0.0.1", "--mysql-port", strconv.Itoa(my.Port),
				"--mysql-user", "root", "--mysql-db", "gearman")
			defer gd.stop()
			sc := startSidecar(b, gd, "--watch-queue", gd.Addr+"=mysql://"+my.dsn)
			defer sc.stop()
			return latenessRoundAt(b, n, false, gd.Addr, gd.Addr)
		})
	})
}

// procCPU returns a process's user+system CPU time from /proc/PID/stat.
func procCPU(b testing.TB, pid int) time.Duration {
	b.Helper()
	text, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name (which may hold spaces) start
	// with the state; utime and stime are fields 14 and 15, in ticks of
	// 1/100 s (USER_HZ on Linux).
	f := strings.Fields(string(text[strings.LastIndexByte(string(text), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// millionRows is the size of BenchmarkWatchQueueMillionRows's table, and
// millionAhead how far ahead its first row is due (seconds): beyond the
// watcher's horizon for the whole benchmark, so that the triggers `show
// queues` counts are those of the rows the benchmark inserts.
const (
	millionRows  = 1_000_000
	millionAhead = 3600
)

// millionQueue is one backend's 1M-row queue table for
// BenchmarkWatchQueueMillionRows.
type millionQueue struct {
	// url is what --watch-queue names after UPSTREAM=.
	url string
	db  *sql.DB
	// insertSQL writes one row in gearmand's way from its unique,
	// function and when_to_run.
	insertSQL string
	seq       int
	// watcherPid, where the database runs a process per session, returns
	// the pid of the one serving the watcher.
	watcherPid func() int
}

// insert commits one row, a new function due 30 s ahead (so that its
// trigger is new), and returns the commit's time.
func (q *millionQueue) insert(b *testing.B) time.Duration {
	d, err := q.tryInsert()
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// tryInsert is insert for a goroutine of the benchmark's own.
func (q *millionQueue) tryInsert() (time.Duration, error) {
	q.seq++
	start := time.Now()
	_, err := q.db.Exec(q.insertSQL, fmt.Sprintf("n-%d", q.seq), fmt.Sprintf("notice%d", q.seq), time.Now().Unix()+30)
	return time.Since(start), err
}

// busyRows is how many rows busyPhase inserts, one every busyEvery.
const (
	busyRows  = 100
	busyEvery = 100 * time.Millisecond
)

// busyPhase inserts busyRows rows, one every busyEvery (a gearmand that
// keeps receiving jobs writes its table all the time, so the watcher's
// gate stays open), and returns how long after its commit each row was
// noticed. Rows are noticed in the order of their commits (a read sees
// every row committed before it), each adding one trigger, so row i was
// noticed when the trigger count first reached its count before plus i;
// the count is asked every 10 ms.
func busyPhase(b *testing.B, q *millionQueue, triggers func() int) []time.Duration {
	before := triggers()
	committed := make(chan time.Time, busyRows)
	var insertErr error
	go func() {
		defer close(committed)
		next := time.Now()
		for range busyRows {
			time.Sleep(time.Until(next))
			next = next.Add(busyEvery)
			if _, insertErr = q.tryInsert(); insertErr != nil {
				return
			}
			committed <- time.Now()
		}
	}()
	var at []time.Time
	var notices []time.Duration
	open := true
	for deadline := time.Now().Add(2 * time.Minute); len(notices) < busyRows; {
		for drained := false; open && !drained; {
			select {
			case t, ok := <-committed:
				if !ok {
					open = false
					if insertErr != nil {
						b.Fatal(insertErr)
					}
					break
				}
				at = append(at, t)
			default:
				drained = true
			}
		}
		got, now := triggers()-before, time.Now()
		for len(notices) < got && len(notices) < len(at) {
			notices = append(notices, now.Sub(at[len(notices)]))
		}
		if now.After(deadline) {
			b.Fatalf("%d of %d rows inserted under load noticed in 2 minutes", len(notices), busyRows)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return notices
}

// execAll runs statements on db.
func execAll(b *testing.B, db *sql.DB, statements ...string) {
	for _, st := range statements {
		if _, err := db.Exec(st); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWatchQueueMillionRows measures the watcher on a queue table of
// 1,000,000 rows (gearmand's schema, filled with SQL: 100 functions,
// 36-byte uniques, 10-byte payloads (16 on PostgreSQL), times spread over
// the day from an hour ahead), in SQLite, PostgreSQL and MariaDB. The sidecar's
// upstream is a gearmand with the builtin queue, which receives the
// triggers. Reported: first_pass_s, from the sidecar's start until `show
// queues` counts the rows; then over at least a minute (until the last
// of 12 rows was noticed) the sidecar's own CPU (cpu_%, of one core,
// utime+stime of its process from /proc/PID/stat: not the test's writer,
// the database server or gearmand) and RSS (rss_MiB at the end, hwm_MiB
// its peak); on PostgreSQL also db_cpu_%, the CPU of the server process
// serving the watcher's session (its scans), and on MariaDB the CPU of
// the whole mariadbd (one process, its threads serving nothing else but
// the benchmark's inserts); notice_ms and
// notice_p50_ms, the worst and the median of 12 rows inserted during the
// minute (each a new function due 30 s ahead), from the insert's commit
// until `show queues` counts its trigger. Commit times of inserts (p50
// and max): insert_ctl, 50 rows before the sidecar started (the control);
// insert_pass, inserts_in_pass rows committed one after another (10 ms
// apart) during the first full pass, when the watcher reads all the time;
// insert, the 12 rows of the minute. Then the table is written to all the
// time: busyRows rows, one every busyEvery (busyPhase), with
// busy_notice_p50_ms, busy_notice_p99_ms and busy_notice_ms from each
// commit until its trigger is counted, and busy_cpu_% and busy_db_cpu_%
// over that phase (the sidecar's includes answering `show queues` every
// 10 ms).
//
//	go test ./cmd/gearsched -run '^$' -bench WatchQueueMillionRows -benchtime 1x -timeout 20m
func BenchmarkWatchQueueMillionRows(b *testing.B) {
	b.Run("backend=sqlite", func(b *testing.B) {
		for range b.N {
			millionRowsRound(b, sqliteMillion(b))
		}
	})
	b.Run("backend=postgres", func(b *testing.B) {
		for range b.N {
			millionRowsRound(b, postgresMillion(b))
		}
	})
	b.Run("backend=mariadb", func(b *testing.B) {
		for range b.N {
			millionRowsRound(b, mariadbMillion(b))
		}
	})
}

// sqliteMillion builds the SQLite table. Its writer waits for a reader's
// shared lock as gearmand does (a 6 s busy timeout).
func sqliteMillion(b *testing.B) *millionQueue {
	file := filepath.Join(b.TempDir(), "queue.db")
	db, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(6000)")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	execAll(b, db, "CREATE TABLE gearman_queue ( unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name))",
		fmt.Sprintf(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d)
INSERT INTO gearman_queue SELECT printf('%%08x-0000-4000-8000-%%012x', x, x), 'bench' || (x %% 100), 1, randomblob(10), %d + (x * 7919) %% 86400 FROM c`,
			millionRows, time.Now().Unix()+millionAhead))
	return &millionQueue{url: "sqlite://" + file, db: db,
		insertSQL: "INSERT OR REPLACE INTO gearman_queue (priority, unique_key, function_name, data, when_to_run) VALUES (1, ?, ?, x'00', ?)"}
}

// postgresMillion builds the PostgreSQL table on a server of its own.
func postgresMillion(b *testing.B) *millionQueue {
	pg := startPostgres(b)
	db := pg.sqlOpen(b)
	execAll(b, db, "CREATE TABLE queue (unique_key VARCHAR(64), function_name VARCHAR(255), priority INTEGER, data BYTEA, when_to_run INTEGER, UNIQUE (unique_key, function_name))",
		fmt.Sprintf(`INSERT INTO queue SELECT format('%%s-0000-4000-8000-%%s', lpad(to_hex(x), 8, '0'), lpad(to_hex(x), 12, '0')), 'bench' || (x %% 100), 1,
decode(md5(x::text), 'hex'), %d + (x::bigint * 7919) %% 86400 FROM generate_series(1, %d) x`, time.Now().Unix()+millionAhead, millionRows),
		"VACUUM ANALYZE queue")
	q := &millionQueue{url: pg.dsn, db: db,
		insertSQL: "INSERT INTO queue (priority, unique_key, function_name, data, when_to_run) VALUES (1, $1, $2, '\\x00', $3)"}
	q.watcherPid = func() int {
		var pid int
		if err := db.QueryRow("SELECT pid FROM pg_stat_activity WHERE application_name = 'gearsched-queuewatch'").Scan(&pid); err != nil {
			b.Fatalf("the watcher's PostgreSQL session: %v", err)
		}
		return pid
	}
	return q
}

// mariadbMillion builds the MariaDB table, in gearmand's schema (which
// has no primary key), on a server of its own. The database's CPU is the
// whole mariadbd process's: it serves nothing but the watcher and the
// benchmark's inserts.
func mariadbMillion(b *testing.B) *millionQueue {
	my := startMariaDB(b)
	db := my.sqlOpen(b)
	db.SetMaxOpenConns(1)
	execAll(b, db, "CREATE TABLE gearman_queue (unique_key VARCHAR(64), function_name VARCHAR(255), priority INT, data LONGBLOB, when_to_run INT, UNIQUE KEY unique_key (unique_key, function_name)) ENGINE=InnoDB",
		"SET SESSION max_recursive_iterations = 2000000",
		fmt.Sprintf(`INSERT INTO gearman_queue WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d)
SELECT concat(lpad(hex(x), 8, '0'), '-0000-4000-8000-', lpad(hex(x), 12, '0')), concat('bench', x %% 100), 1, unhex(md5(x)), %d + (x * 7919) %% 86400 FROM c`,
			millionRows, time.Now().Unix()+millionAhead),
		"ANALYZE TABLE gearman_queue")
	q := &millionQueue{url: "mysql://" + my.dsn, db: db,
		insertSQL: "INSERT INTO gearman_queue (priority, unique_key, function_name, data, when_to_run) VALUES (1, ?, ?, x'00', ?)"}
	q.watcherPid = func() int { return my.Pid }
	return q
}

// millionRowsRound runs one round of BenchmarkWatchQueueMillionRows on q.
func millionRowsRound(b *testing.B, q *millionQueue) {
	var insertCtl, insertPass, insertMinute []time.Duration
	for range 50 {
		d := q.insert(b)
		insertCtl = append(insertCtl, d)
	}

	gd := startGearmand(b)
	started := time.Now()
	sc := startSidecar(b, gd, "--watch-queue", gd.Addr+"="+q.url)
	adm := dialServer(b, sc.Addr)
	row := func() []string {
		adm.SetDeadline(time.Now().Add(ioTimeout))
		reply, err := adm.Admin("show queues")
		if err != nil {
			b.Fatal(err)
		}
		return strings.Split(strings.SplitN(reply, "\n", 2)[0], "\t")
	}
	// Rows are inserted one after another while the first pass reads
	// the table: their commits wait for the watcher's statements, if for
	// anything. `show queues` counts rows once a full pass is done.
	for deadline := time.Now().Add(10 * time.Minute); ; {
		if r := row(); len(r) == 7 && r[3] != "0" {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the first pass did not finish: %q", row())
		}
		d := q.insert(b)
		insertPass = append(insertPass, d)
		time.Sleep(10 * time.Millisecond)
	}
	firstPass := time.Since(started)

	dbPid := 0
	var dbCPU0 time.Duration
	if q.watcherPid != nil {
		dbPid = q.watcherPid()
		dbCPU0 = procCPU(b, dbPid)
	}
	cpu0, t0 := procCPU(b, sc.Pid), time.Now()
	var notices []time.Duration
	for i := range 12 {
		for time.Since(t0) < time.Duration(i)*5*time.Second {
			time.Sleep(time.Until(t0.Add(time.Duration(i) * 5 * time.Second)))
		}
		before, _ := strconv.Atoi(row()[5])
		d := q.insert(b)
		committed := time.Now()
		insertMinute = append(insertMinute, d)
		// Asked every 5 ms at first, then less and less often, so that
		// the asking (an admin command the sidecar answers) does not
		// weigh in its CPU while a row waits for a full pass.
		for poll := 5 * time.Millisecond; ; poll = min(poll*3/2, 100*time.Millisecond) {
			if n, _ := strconv.Atoi(row()[5]); n > before {
				break
			}
			if time.Since(committed) > time.Minute {
				b.Fatal("a new row was not noticed within a minute")
			}
			time.Sleep(poll)
		}
		notices = append(notices, time.Since(committed))
	}
	for time.Since(t0) < time.Minute {
		time.Sleep(time.Until(t0.Add(time.Minute)))
	}
	cpu := procCPU(b, sc.Pid) - cpu0
	elapsed := time.Since(t0)
	if dbPid != 0 {
		b.ReportMetric(100*(procCPU(b, dbPid)-dbCPU0).Seconds()/elapsed.Seconds(), "db_cpu_%")
	}
	mem := readProcMem(b, sc.Pid)

	// Then the table is written to all the time.
	busyCPU0, busyT0 := procCPU(b, sc.Pid), time.Now()
	var busyDBCPU0 time.Duration
	if dbPid != 0 {
		busyDBCPU0 = procCPU(b, dbPid)
	}
	busy := busyPhase(b, q, func() int {
		n, _ := strconv.Atoi(row()[5])
		return n
	})
	busyElapsed := time.Since(busyT0)
	b.ReportMetric(100*(procCPU(b, sc.Pid)-busyCPU0).Seconds()/busyElapsed.Seconds(), "busy_cpu_%")
	if dbPid != 0 {
		b.ReportMetric(100*(procCPU(b, dbPid)-busyDBCPU0).Seconds()/busyElapsed.Seconds(), "busy_db_cpu_%")
	}
	slices.Sort(busy)
	b.ReportMetric(ms(busy[len(busy)/2]), "busy_notice_p50_ms")
	b.ReportMetric(ms(busy[len(busy)*99/100]), "busy_notice_p99_ms")
	b.ReportMetric(ms(busy[len(busy)-1]), "busy_notice_ms")

	slices.Sort(notices)
	b.ReportMetric(firstPass.Seconds(), "first_pass_s")
	b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "cpu_%")
	b.ReportMetric(mib(mem.rss), "rss_MiB")
	b.ReportMetric(mib(mem.hwm), "hwm_MiB")
	b.ReportMetric(ms(notices[len(notices)/2]), "notice_p50_ms")
	b.ReportMetric(ms(notices[len(notices)-1]), "notice_ms")
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"insert_ctl", insertCtl}, {"insert_pass", insertPass}, {"insert", insertMinute}} {
		slices.Sort(m.d)
		b.ReportMetric(ms(m.d[len(m.d)/2]), m.name+"_p50_ms")
		b.ReportMetric(ms(m.d[len(m.d)-1]), m.name+"_max_ms")
	}
	b.ReportMetric(float64(len(insertPass)), "inserts_in_pass")
	b.ReportMetric(0, "ns/op")
	// Nothing should disturb the sidecar here: a lost upstream
	// connection (once, a reply read as another request's) made every
	// reconnection start a full pass.
	if out := sc.Stderr(); strings.Contains(out, "upstream connection lost") || strings.Contains(out, "cannot read gearmand's queue") {
		b.Errorf("the sidecar lost a connection during the benchmark:\n%s", out)
	}
	sc.stop()
	gd.stop()
}
