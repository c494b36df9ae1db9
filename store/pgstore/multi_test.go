package pgstore_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
	"github.com/gearsched/gearsched/store/pgstore"
)

// firing is one item a sink handed over.
type firing struct {
	key      string // a job's handle, an occurrence's unique
	due, at  int64
	sidecar  int
	schedule bool
}

// recorder is a sink that commits as the forwarder does, through the
// claim, and records what it fired; several sinks share one.
type recorder struct {
	mu    sync.Mutex
	fired []firing
}

// sink is one sidecar's sink on a recorder.
type sink struct {
	r  *recorder
	id int
}

func (s sink) Release(ctx context.Context, claim store.Claim, jobs []*store.Job, occs []scheduler.Occurrence) error {
	now := time.Now().UnixNano()
	var fw store.Forward
	var out []firing
	for _, j := range jobs {
		fw.Done = append(fw.Done, j.ID)
		fw.Ledger = append(fw.Ledger, store.Fired{ID: j.ID, Upstream: "u", UpstreamHandle: j.Handle, Due: j.Due, At: now})
		out = append(out, firing{key: j.Handle, due: j.Due, at: now, sidecar: s.id})
	}
	seen := map[*store.Schedule]bool{}
	for _, o := range occs {
		if o.Fire {
			out = append(out, firing{key: o.Unique, due: o.At.UnixNano(), at: now, sidecar: s.id, schedule: true})
		}
		if !seen[o.Schedule] {
			seen[o.Schedule] = true
			fw.Schedules = append(fw.Schedules, o.Schedule)
		}
	}
	if _, err := claim.Forwarded(fw); err != nil {
		return err
	}
	s.r.mu.Lock()
	s.r.fired = append(s.r.fired, out...)
	s.r.mu.Unlock()
	return nil
}

func (sink) Live(context.Context, string) (bool, error) { return false, nil }

// testThreeSchedulers runs three schedulers, each on its own store (its
// own pool of connections, as three sidecars have), over one database:
// jobs stored through every one of them and per-second schedules loaded
// by all three fire exactly once each, none early.
func testThreeSchedulers(t *testing.T, url string) {
	const sidecars, jobs, spread, nsched = 3, 3000, 3 * time.Second, 5
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	rec := &recorder{}
	stores := make([]*pgstore.Store, sidecars)
	for i := range stores {
		st := open(t, url)
		stores[i] = st
		s := scheduler.New(scheduler.Config{Store: st, Sink: sink{rec, i}, Shared: true})
		wg.Go(func() { s.Run(ctx) })
		wg.Go(func() { st.Listen(ctx, s.WakeFor) })
	}
	start := time.Now()
	names := make([]string, nsched)
	for i := range names {
		names[i] = fmt.Sprintf("every-second-%d", i)
	}
	for _, st := range stores {
		if _, err := scheduler.Sync(st, schedules(t, names...), start, ids(t, st)); err != nil {
			t.Fatal(err)
		}
	}
	// The first job is due after the submissions are stored (about a
	// second under the race detector on a loaded machine), so lateness
	// measures firing, not submission.
	first := start.Add(2 * time.Second)
	var ws []*store.Write
	for i := range jobs {
		due := first.Add(spread * time.Duration(i) / jobs)
		ws = append(ws, stores[i%sidecars].PutPending(job(uint64(i+1), "", due), ""))
	}
	// A job stored after its due time is late from when it was stored.
	storedAt := map[string]int64{}
	for i, w := range ws {
		if err := w.Wait(); err != nil {
			t.Fatal(err)
		}
		storedAt[job(uint64(i+1), "", time.Time{}).Handle] = time.Now().UnixNano()
	}
	stored := time.Since(start)
	end := first.Add(spread)
	waitFor(t, "every job to fire", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		n := 0
		for _, f := range rec.fired {
			if !f.schedule {
				n++
			}
		}
		return n >= jobs && time.Now().After(end.Add(time.Second))
	})
	cancel()
	wg.Wait()
	stop := time.Now()

	rec.mu.Lock()
	defer rec.mu.Unlock()
	count := map[string]int{}
	var late []time.Duration
	per := make([]int, sidecars)
	occs := 0
	for _, f := range rec.fired {
		count[f.key]++
		per[f.sidecar]++
		if f.at < f.due {
			t.Errorf("%s fired %v early", f.key, time.Duration(f.due-f.at))
		}
		if f.schedule {
			occs++
		} else {
			late = append(late, time.Duration(f.at-max(f.due, storedAt[f.key])))
		}
	}
	for k, n := range count {
		if n != 1 {
			t.Errorf("%s fired %d times", k, n)
		}
	}
	if len(late) != jobs {
		t.Errorf("%d jobs fired, want %d", len(late), jobs)
	}
	// Each schedule fires once a second from start to stop, give or take
	// the seconds at either end.
	if want := nsched * int(stop.Sub(start)/time.Second); occs < want-2*nsched || occs > want+2*nsched {
		t.Errorf("%d occurrences, want about %d", occs, want)
	}
	slices.Sort(late)
	t.Logf("%d jobs (stored in %v) and %d occurrences over %d schedulers (per scheduler %v); lateness (from due, or from stored if later) p50 %v p99 %v max %v",
		len(late), stored.Round(time.Millisecond), occs, sidecars, per, late[len(late)/2], late[len(late)*99/100], late[len(late)-1])
}
