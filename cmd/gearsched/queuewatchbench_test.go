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

// millionRows is the size of BenchmarkWatchQueueMillionRows's table.
const millionRows = 1_000_000

// BenchmarkWatchQueueMillionRows measures the watcher on an SQLite queue
// table of 1,000,000 rows (built with SQL in gearmand's schema: 100
// functions, 36-byte uniques, 10-byte payloads, times spread over the day
// from 2 minutes ahead). The sidecar's upstream is a gearmand with the
// builtin queue, which receives the triggers. Reported: first_pass_s,
// from the sidecar's start until `show queues` counts every row; then over
// one minute the sidecar's CPU (cpu_%, of one core, from /proc/PID/stat)
// and RSS (rss_MiB at the end, hwm_MiB its peak), and notice_ms, the worst
// of 12 rows inserted during the minute, each a new function due 30 s
// ahead, from the insert's commit until `show queues` counts its trigger.
// insert_ms and insert_ctl_ms are the worst commit times of those inserts,
// with the watcher reading and, before it started, without.
//
//	go test ./cmd/gearsched -run '^$' -bench WatchQueueMillionRows -benchtime 1x -timeout 20m
func BenchmarkWatchQueueMillionRows(b *testing.B) {
	for range b.N {
		file := filepath.Join(b.TempDir(), "queue.db")
		// The writer waits for a reader's shared lock as gearmand does
		// (a 6 s busy timeout).
		db, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(6000)")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		base := time.Now().Unix() + 120
		for _, q := range []string{
			"CREATE TABLE gearman_queue ( unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name))",
			fmt.Sprintf(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d)
INSERT INTO gearman_queue SELECT printf('%%08x-0000-4000-8000-%%012x', x, x), 'bench' || (x %% 100), 1, randomblob(10), %d + (x * 7919) %% 86400 FROM c`, millionRows, base),
		} {
			if _, err := db.Exec(q); err != nil {
				b.Fatal(err)
			}
		}
		seq := 0
		insert := func() (time.Duration, string) {
			seq++
			fn := fmt.Sprintf("notice%d", seq)
			start := time.Now()
			if _, err := db.Exec("INSERT OR REPLACE INTO gearman_queue (priority, unique_key, function_name, data, when_to_run) VALUES (1, ?, ?, x'00', ?)",
				fmt.Sprintf("n-%d", seq), fn, time.Now().Unix()+30); err != nil {
				b.Fatal(err)
			}
			return time.Since(start), fn
		}
		var insertCtl time.Duration
		for range 12 {
			d, _ := insert()
			insertCtl = max(insertCtl, d)
		}

		gd := startGearmand(b)
		started := time.Now()
		sc := startSidecar(b, gd, "--watch-queue", gd.Addr+"=sqlite://"+file)
		adm := dialServer(b, sc.Addr)
		row := func() []string {
			adm.SetDeadline(time.Now().Add(ioTimeout))
			reply, err := adm.Admin("show queues")
			if err != nil {
				b.Fatal(err)
			}
			return strings.Split(strings.SplitN(reply, "\n", 2)[0], "\t")
		}
		for deadline := time.Now().Add(10 * time.Minute); ; {
			if r := row(); len(r) == 7 && r[3] == strconv.Itoa(millionRows+12) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("the first pass did not finish: %q", row())
			}
			time.Sleep(50 * time.Millisecond)
		}
		firstPass := time.Since(started)

		cpu0, t0 := procCPU(b, sc.Pid), time.Now()
		var notices []time.Duration
		var insertMax time.Duration
		for i := range 12 {
			for time.Since(t0) < time.Duration(i)*5*time.Second {
				time.Sleep(time.Until(t0.Add(time.Duration(i) * 5 * time.Second)))
			}
			before, _ := strconv.Atoi(row()[5])
			d, _ := insert()
			committed := time.Now()
			insertMax = max(insertMax, d)
			for {
				if n, _ := strconv.Atoi(row()[5]); n > before {
					break
				}
				if time.Since(committed) > time.Minute {
					b.Fatal("a new row was not noticed within a minute")
				}
				time.Sleep(5 * time.Millisecond)
			}
			notices = append(notices, time.Since(committed))
		}
		for time.Since(t0) < time.Minute {
			time.Sleep(time.Until(t0.Add(time.Minute)))
		}
		cpu := procCPU(b, sc.Pid) - cpu0
		elapsed := time.Since(t0)
		mem := readProcMem(b, sc.Pid)
		slices.Sort(notices)
		b.ReportMetric(firstPass.Seconds(), "first_pass_s")
		b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "cpu_%")
		b.ReportMetric(mib(mem.rss), "rss_MiB")
		b.ReportMetric(mib(mem.hwm), "hwm_MiB")
		b.ReportMetric(ms(notices[len(notices)/2]), "notice_p50_ms")
		b.ReportMetric(ms(notices[len(notices)-1]), "notice_ms")
		b.ReportMetric(ms(insertMax), "insert_ms")
		b.ReportMetric(ms(insertCtl), "insert_ctl_ms")
		b.ReportMetric(0, "ns/op")
		sc.stop()
		gd.stop()
	}
}
