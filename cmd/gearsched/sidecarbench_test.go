package main

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
)

// BenchmarkSidecarLateness is BenchmarkEpochLateness through the sidecar:
// the epoch jobs are submitted to gearsched --upstream, which submits them
// to a real gearmand at their second, where the four raw workers sleep.
// Lateness is from the due second to JOB_ASSIGN from gearmand.
//
//	go test ./cmd/gearsched -run '^$' -bench SidecarLateness -benchtime 1x
func BenchmarkSidecarLateness(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			benchLateness(b, n, func() ([]time.Duration, time.Duration) {
				gd := startGearmand(b)
				defer gd.stop()
				sc := startSidecar(b, gd)
				defer sc.stop()
				return latenessRoundAt(b, n, false, sc.Addr, gd.Addr)
			})
		})
	}
}

// sidecarOutage is how long gearmand is down in BenchmarkSidecarOutageDrain.
const sidecarOutage = 60 * time.Second

// BenchmarkSidecarOutageDrain measures how a backlog drains after an
// upstream outage: gearmand is stopped, 100,000 background jobs are
// submitted to the sidecar (acknowledged, held in its store), and gearmand
// starts again on the same port 60 s after it stopped. Reported from that
// restart: forwarded_s, until the sidecar had every job acknowledged by
// gearmand, and delivered_s, until four raw workers (connected at the
// restart) had every job. For comparison, in the same run, gearmand_bg/s
// is how fast that gearmand accepts plain SUBMIT_JOB_BG from one
// pipelining client, and forward/s the sidecar's rate.
//
//	go test ./cmd/gearsched -run '^$' -bench SidecarOutageDrain -benchtime 1x -timeout 30m
func BenchmarkSidecarOutageDrain(b *testing.B) {
	const n = 100000
	const fn = "drain"
	var forwarded, delivered, plain time.Duration
	for range b.N {
		gd := startGearmand(b)
		sc := startSidecar(b, gd)
		if gd.stop() {
			b.Fatal("gearmand needed SIGKILL")
		}
		stopped := time.Now()
		loadJobs(b, sc.Addr, epochPlan{fn: fn, bg: true}, n, 8, sidecarOutage)
		time.Sleep(time.Until(stopped.Add(sidecarOutage)))

		gd2 := startGearmandOn(b, gd.Port)
		restarted := time.Now()
		log := &assignLog{seen: make(map[string]int, n), want: n, done: make(chan struct{}), at: make([]time.Time, 0, n)}
		var wg sync.WaitGroup
		var workers []*gearman.Client
		asleep := make(chan struct{}, 4)
		for range 4 {
			w := dialServer(b, gd2.Addr)
			w.SetDeadline(restarted.Add(10 * time.Minute))
			workers = append(workers, w)
			wg.Go(func() { latenessWorker(w, fn, log, asleep) })
		}
		for {
			_, counts := upstreamRow(b, sc.Addr, gd2.Addr)
			if counts[0] >= n {
				forwarded += time.Since(restarted)
				break
			}
			if time.Since(restarted) > 10*time.Minute {
				b.Fatalf("the sidecar forwarded %d of %d jobs in 10 minutes", counts[0], n)
			}
			time.Sleep(10 * time.Millisecond) // polling resolution of the forwarded figure
		}
		select {
		case <-log.done:
			delivered += time.Since(restarted)
		case <-time.After(10 * time.Minute):
			b.Fatalf("workers got %d of %d jobs in 10 minutes", log.got.Load(), n)
		}
		for _, w := range workers {
			w.Close()
		}
		wg.Wait()
		if len(log.seen) != n {
			b.Errorf("%d assignments but %d distinct handles", log.got.Load(), len(log.seen))
		}
		sc.stop()

		// The same gearmand, emptied: one client pipelining plain BG jobs.
		plain += loadJobs(b, gd2.Addr, epochPlan{fn: "plain", bg: true}, n, 1, 5*time.Minute)
		gd2.stop()
	}
	per := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
	b.ReportMetric(per(forwarded), "forwarded_s")
	b.ReportMetric(per(delivered), "delivered_s")
	b.ReportMetric(float64(n)/per(forwarded), "forward/s")
	b.ReportMetric(float64(n)/per(plain), "gearmand_bg/s")
	b.ReportMetric(0, "ns/op")
}
