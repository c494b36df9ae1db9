package main

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
)

// benchJobs is how many background jobs one benchmark iteration pushes
// through the server; gearmand with its SQLite queue, which commits each
// job alone, gets a tenth of them.
const benchJobs = 20000

// perfBackends are the servers the performance benchmarks compare:
// gearmand in memory (as Debian runs it), gearmand with its SQLite queue
// (durable, like gearsched), and gearsched.
var perfBackends = []backend{backends[0], {"gearmand-sqlite", startGearmandSQLite}, backends[1]}

// startGearmandSQLite starts gearmand with its persistent SQLite queue in
// a fresh file.
func startGearmandSQLite(t testing.TB, args ...string) *daemon {
	t.Helper()
	file := filepath.Join(t.TempDir(), "queue.db")
	return startGearmand(t, append([]string{"-q", "libsqlite3", "--libsqlite3-db", file}, args...)...)
}

// BenchmarkBackgroundThroughput measures background jobs per second end to
// end: one client pipelines SUBMIT_JOB_BG (10-byte payloads, empty unique)
// in windows of 500, four `gearman -w` workers run them, and the clock
// stops when `status` shows the function empty. gearmand (no persistent
// queue, as Debian runs it), gearmand with its SQLite queue, and gearsched
// (every job fsynced before JOB_CREATED) run in the same invocation so
// their figures compare:
//
//	go test ./cmd/gearsched -run '^$' -bench BackgroundThroughput -benchtime 1x -count 3
func BenchmarkBackgroundThroughput(b *testing.B) {
	for _, be := range perfBackends {
		b.Run(be.name, func(b *testing.B) {
			jobs := benchJobs
			if be.name == "gearmand-sqlite" {
				jobs /= 10
			}
			srv := be.start(b)
			for range 4 {
				w := exec.Command("gearman", "-p", strconv.Itoa(srv.Port), "-w", "-f", "bench")
				if err := w.Start(); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { w.Process.Kill(); w.Wait() })
			}
			c := dialServer(b, srv.Addr)
			payload := []byte("0123456789")
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				for sent := 0; sent < jobs; {
					window := min(500, jobs-sent)
					for range window {
						if err := c.Send(gearman.SubmitJobBg, []byte("bench"), nil, payload); err != nil {
							b.Fatal(err)
						}
					}
					for range window {
						p, err := c.Recv()
						if err != nil || p.Type != gearman.JobCreated {
							b.Fatalf("submit: %v %v", p, err)
						}
					}
					sent += window
				}
				waitDrained(b, c, "bench")
			}
			elapsed := time.Since(start)
			b.ReportMetric(float64(b.N*jobs)/elapsed.Seconds(), "jobs/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// waitDrained polls `status` until fn has no queued or running job.
func waitDrained(b *testing.B, c *gearman.Client, fn string) {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		reply, err := c.Admin("status")
		if err != nil {
			b.Fatal(err)
		}
		busy := false
		for _, row := range strings.Split(reply, "\n") {
			f := strings.Split(row, "\t")
			if len(f) == 4 && f[0] == fn && (f[1] != "0" || f[2] != "0") {
				busy = true
			}
		}
		if !busy {
			return
		}
		time.Sleep(5 * time.Millisecond) // polling resolution of the measurement
	}
	b.Fatal("jobs not drained within 5 minutes")
}

// BenchmarkForegroundRoundTrip measures one synchronous client's round
// trip, SUBMIT_JOB to WORK_COMPLETE, with one raw worker that completes
// each job at once: the latency a foreground job adds on an idle server.
// gearmand and gearsched run in the same invocation; 2,000 jobs after a
// warm-up of 200, p50_ms and p99_ms of their round trips:
//
//	go test ./cmd/gearsched -run '^$' -bench ForegroundRoundTrip -benchtime 1x -count 3
func BenchmarkForegroundRoundTrip(b *testing.B) {
	const warmup, jobs = 200, 2000
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			srv := be.start(b)
			w := dialServer(b, srv.Addr)
			go serveJobs(w, "rt", gearman.GrabJobUniq, nil, func(*gearman.Packet) {})
			c := dialServer(b, srv.Addr)
			payload := []byte("0123456789")
			roundTrip := func() time.Duration {
				start := time.Now()
				if err := c.Send(gearman.SubmitJob, []byte("rt"), nil, payload); err != nil {
					b.Fatal(err)
				}
				for {
					p, err := c.Recv()
					if err != nil {
						b.Fatal(err)
					}
					if p.Type == gearman.WorkComplete {
						return time.Since(start)
					}
					if p.Type != gearman.JobCreated {
						b.Fatalf("%s in reply to SUBMIT_JOB", p.Type)
					}
				}
			}
			var lat []time.Duration
			b.ResetTimer()
			for range b.N {
				for i := range warmup + jobs {
					if d := roundTrip(); i >= warmup {
						lat = append(lat, d)
					}
				}
			}
			slices.Sort(lat)
			b.ReportMetric(ms(percentile(lat, 0.50)), "p50_ms")
			b.ReportMetric(ms(percentile(lat, 0.99)), "p99_ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
