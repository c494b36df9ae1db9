package main

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
)

// BenchmarkSidecarsPostgres measures firing with one sidecar against three
// on one PostgreSQL database: each round submits jobs epoch jobs across
// the sidecars, all due in the same second, and times their delivery to a
// worker on the two gearmands. It reports the firing rate (jobs a second
// from the due second to the last delivery) and the lateness of the
// deliveries.
//
//	go test -run XXX -bench SidecarsPostgres -benchtime 3x ./cmd/gearsched
func BenchmarkSidecarsPostgres(b *testing.B) {
	const jobs = 10_000
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("sidecars=%d", n), func(b *testing.B) {
			benchSidecars(b, n, jobs)
		})
	}
}

func benchSidecars(b *testing.B, n, jobs int) {
	p := startPGSidecars(b, n)
	w := newUniqueWorker(b, p, "bench_pg")
	var late []time.Duration
	var rate float64
	for round := 0; b.Loop(); round++ {
		due := dueSecond(6 * time.Second)
		uniques := make([]string, jobs)
		for j := range uniques {
			uniques[j] = fmt.Sprintf("r%d-%d", round, j)
		}
		// Four pipelined connections per sidecar, 100 submissions in
		// flight on each, as a busy client fleet sends.
		const conns, window = 4, 100
		var wg sync.WaitGroup
		for k := range n * conns {
			wg.Go(func() {
				c := dialServer(b, p.sidecar(k%n).Addr)
				defer c.Close()
				var mine []string
				for j := k; j < jobs; j += n * conns {
					mine = append(mine, uniques[j])
				}
				for len(mine) > 0 {
					batch := mine[:min(window, len(mine))]
					mine = mine[len(batch):]
					for _, u := range batch {
						if err := c.Send(gearman.SubmitJobEpoch, []byte("bench_pg"), []byte(u), []byte(strconv.FormatInt(due.Unix(), 10)), []byte(u)); err != nil {
							b.Error(err)
							return
						}
					}
					for range batch {
						if pk, err := c.Recv(); err != nil || pk.Type != gearman.JobCreated {
							b.Errorf("submitting: %v %v", pk, err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		if time.Now().After(due) {
			b.Fatalf("submitting %d jobs took past their due second", jobs)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for w.count(uniques) < jobs {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d delivered", w.count(uniques), jobs)
			}
			time.Sleep(20 * time.Millisecond)
		}
		w.mu.Lock()
		var last time.Time
		for _, u := range uniques {
			at := w.got[u][0]
			late = append(late, at.Sub(due))
			if at.After(last) {
				last = at
			}
		}
		w.mu.Unlock()
		rate += float64(jobs) / last.Sub(due).Seconds()
	}
	slices.Sort(late)
	b.ReportMetric(rate/float64(b.N), "jobs/s")
	b.ReportMetric(float64(late[len(late)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(late[len(late)*99/100].Milliseconds()), "p99-ms")
	b.ReportMetric(float64(late[len(late)-1].Milliseconds()), "max-ms")
}
