package main

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
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
		reservePort(b, gd.Port)
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

// triggerPayload marks trigger jobs in BenchmarkTriggerDelivery.
const triggerPayload = "gearsched-trigger"

// holdingWorker is a serveJobs worker (GRAB_JOB) on fn that holds each job for
// hold before completing it, records epoch jobs' assignment times and
// counts trigger jobs.
func holdingWorker(c *gearman.Client, fn string, hold time.Duration, epochs *assignLog, triggers *atomic.Int64) error {
	return serveJobs(c, fn, gearman.GrabJob, nil, func(p *gearman.Packet) {
		if string(p.Args[2]) == triggerPayload {
			triggers.Add(1)
			return
		}
		epochs.add(string(p.Args[0]), time.Now())
		time.Sleep(hold) // the job's work
	})
}

// BenchmarkTriggerDelivery measures --epoch-passthrough: 5 functions, each
// with 4 sleeping raw workers on gearmand and 100 epoch jobs due in the
// same second, submitted through the sidecar. Each worker holds a job for
// hold. Reported: epoch-job lateness (p50, p99 ms), trigger jobs sent,
// cancelled while still queued, and delivered to a worker.
//
//	go test ./cmd/gearsched -run '^$' -bench TriggerDelivery -benchtime 1x
func BenchmarkTriggerDelivery(b *testing.B) {
	const fns, workersPer, perFn = 5, 4, 100
	for _, hold := range []time.Duration{0, 50 * time.Millisecond} {
		b.Run(fmt.Sprintf("hold=%v", hold), func(b *testing.B) {
			var late []time.Duration
			var sent, cancelled, delivered int
			for range b.N {
				gd := startGearmand(b)
				sc := startSidecar(b, gd, "--epoch-passthrough", "--trigger-payload", triggerPayload)
				log := &assignLog{seen: map[string]int{}, want: fns * perFn, done: make(chan struct{})}
				var triggers atomic.Int64
				var wg sync.WaitGroup
				var workers []*gearman.Client
				for f := range fns {
					for range workersPer {
						w := dialServer(b, gd.Addr)
						workers = append(workers, w)
						wg.Go(func() { holdingWorker(w, fmt.Sprintf("trig%d", f), hold, log, &triggers) })
					}
				}
				due := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
				for f := range fns {
					loadEpochs(b, sc.Addr, fmt.Sprintf("trig%d", f), perFn, 1, due.Unix(), 0, time.Minute)
				}
				select {
				case <-log.done:
				case <-time.After(time.Until(due) + time.Minute):
					b.Fatalf("workers got %d of %d epoch jobs", log.got.Load(), fns*perFn)
				}
				// Every trigger is cancelled or delivered once gearmand's
				// queues are empty and the sidecar stopped watching.
				for {
					_, n := upstreamRow(b, sc.Addr, gd.Addr)
					queued := 0
					for f := range fns {
						queued += statusTotal(b, gd.Addr, fmt.Sprintf("trig%d", f))
					}
					if queued == 0 && int64(n[5]-n[6]) == triggers.Load() {
						sent, cancelled, delivered = sent+n[5], cancelled+n[6], delivered+int(triggers.Load())
						break
					}
					if time.Since(due) > 2*time.Minute {
						b.Fatalf("queued %d, triggers sent %d cancelled %d delivered %d", queued, n[5], n[6], triggers.Load())
					}
					time.Sleep(20 * time.Millisecond) // polling two servers' counters
				}
				for _, w := range workers {
					w.Close()
				}
				wg.Wait()
				for _, at := range log.at {
					late = append(late, at.Sub(due))
				}
				sc.stop()
				gd.stop()
			}
			slices.Sort(late)
			b.ReportMetric(ms(percentile(late, 0.50)), "p50_ms")
			b.ReportMetric(ms(percentile(late, 0.99)), "p99_ms")
			b.ReportMetric(float64(sent)/float64(b.N), "triggers_sent")
			b.ReportMetric(float64(cancelled)/float64(b.N), "cancelled")
			b.ReportMetric(float64(delivered)/float64(b.N), "delivered")
			b.ReportMetric(0, "ns/op")
		})
	}
}
