package sidecar

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/gearman/stats"
	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
)

// TestForwardLateness: each forwarded item is observed once as late as
// the clock says when gearmand acknowledged it and when its commit
// recorded it; an occurrence's lateness counts from its fire time, so its
// schedule's jitter is not lateness.
func TestForwardLateness(t *testing.T) {
	r := newFaultRig(t, nil)
	now := r.clock.Now()
	r.putDue(t, 3, now.Add(-2*time.Second))
	if err := r.tick(t, now); err != nil {
		t.Fatal(err)
	}

	id, handle, err := r.handles.Next()
	if err != nil {
		t.Fatal(err)
	}
	at := now.Truncate(time.Minute).Add(time.Minute)
	sc := &store.Schedule{ID: id, Handle: handle, Source: store.SourceControl, Spec: "* * * * *", Zone: "UTC",
		Function: "f", Missed: scheduler.MissedOnce, CatchUp: int64(time.Hour), Overlap: scheduler.OverlapAllow,
		Jitter: int64(30 * time.Second), Enabled: true, Next: at.UnixNano()}
	fire := at.Add(scheduler.JitterFor(sc))
	sc.FireAt = fire.UnixNano()
	if err := r.st.PutSchedule(sc, "").Wait(); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(fire.Add(time.Second))
	if err := r.tick(t, r.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if n := len(r.fake.Submissions()); n != 4 {
		t.Fatalf("the fake received %d submissions, want 4", n)
	}

	st := r.fwd.Stats()
	want := int64(3*2*time.Second + time.Second)
	for name, h := range map[string]stats.HistogramSnapshot{"acknowledged": st.AckLateness, "released": st.ReleaseLateness} {
		if h.Count != 4 || h.Sum != want {
			t.Errorf("%s lateness: %d observations summing %v; want 4 summing %v", name, h.Count,
				time.Duration(h.Sum), time.Duration(want))
		}
	}
	if up := st.Upstreams[0]; up.Submitted != 4 || up.Addr != r.fake.Addr() || !up.Up {
		t.Errorf("upstream stats %+v; want 4 submitted to %s, up", up, r.fake.Addr())
	}
}

// TestTriggerCounters: a trigger job counts as sent when gearmand took it,
// as delivered once it is seen taken by a worker (however often it is
// polled), and as cancelled when its epoch job was taken first.
func TestTriggerCounters(t *testing.T) {
	for _, tc := range []struct {
		name       string
		takeFirst  string // "trigger" or "epoch"
		wantCounts [2]uint64
	}{
		{"worker takes the trigger", "trigger", [2]uint64{1, 0}},
		{"worker takes the epoch job", "epoch", [2]uint64{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newFaultRig(t, nil)
			now := r.clock.Now()
			when := now.Truncate(time.Second).Add(time.Minute)
			id, handle, err := r.handles.Next()
			if err != nil {
				t.Fatal(err)
			}
			if err := r.st.PutPending(&store.Job{ID: id, Handle: handle, Function: "f", Priority: uint8(gearman.Normal),
				Due: now.UnixNano(), Kind: store.JobPassthrough, When: when.Unix(), Data: []byte("epoch")}, "").Wait(); err != nil {
				t.Fatal(err)
			}
			if err := r.tick(t, now); err != nil { // the epoch job goes out at once
				t.Fatal(err)
			}
			r.clock.Set(when.Add(time.Second))
			if err := r.tick(t, r.clock.Now()); err != nil { // then its trigger
				t.Fatal(err)
			}
			subs := r.fake.Submissions()
			if len(subs) != 2 || subs[0].Type != gearman.SubmitJobEpoch || !strings.HasPrefix(subs[1].Unique, TriggerUniquePrefix) {
				t.Fatalf("the fake received %+v; want the epoch job, then its trigger", subs)
			}
			epoch, trigger := subs[0].Handle, subs[1].Handle
			ctx := context.Background()
			r.fwd.pollWatches(ctx) // both still queued
			if tc.takeFirst == "trigger" {
				r.fake.Take(trigger)
				r.fwd.pollWatches(ctx)
				r.fwd.pollWatches(ctx) // polled again: still one delivery
			}
			r.fake.Take(epoch)
			r.fwd.pollWatches(ctx)

			up := r.fwd.Stats().Upstreams[0]
			if up.TriggersSent != 1 || [2]uint64{up.TriggersDelivered, up.TriggersCancelled} != tc.wantCounts {
				t.Errorf("triggers sent %d, delivered %d, cancelled %d; want 1, %d, %d", up.TriggersSent,
					up.TriggersDelivered, up.TriggersCancelled, tc.wantCounts[0], tc.wantCounts[1])
			}
			r.fwd.mu.Lock()
			watching := len(r.fwd.watches)
			r.fwd.mu.Unlock()
			if watching != 0 {
				t.Errorf("still watching %d triggers after the epoch job was taken", watching)
			}
		})
	}
}
