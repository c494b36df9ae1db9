package scheduler

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearsched/gearsched/store"
)

// heldStore is a store whose due items another scheduler has claimed:
// NextDue finds them due, Claim takes none.
type heldStore struct{ *store.Store }

func (h heldStore) Claim(ctx context.Context, until int64, max int) (store.Claim, []store.DueItem, error) {
	claim, _, err := h.Store.Claim(ctx, until, 0)
	return claim, nil, err
}

// TestSharedStoreLooksAgainSoon: with Shared, items that are due but
// claimed by another scheduler are looked at again after sharedPoll, not
// in a busy loop; without it, due items the loop could not take would be
// its own failure.
func TestSharedStoreLooksAgainSoon(t *testing.T) {
	_, sink, st := newTest(t)
	putPending(t, st, &store.Job{ID: 1, Handle: "H:t:1", Function: "f", Due: t0.Add(-time.Second).UnixNano()})
	s := New(Config{Store: heldStore{st}, Sink: sink, Shared: true})
	clk := newManualClock(t0)
	r := startRun(t, s, clk, sink, nil)
	for range 3 {
		if d := clk.pending.d; d != sharedPoll {
			t.Fatalf("the loop sleeps %v with items due that another holds, want %v", d, sharedPoll)
		}
		r.wakeUp()
	}
	if len(sink.fired) != 0 {
		t.Fatalf("fired %v that another scheduler holds", sink.fired)
	}
}

// downStore is a store that cannot be read while down is set, as a
// PostgreSQL store while the database is away.
type downStore struct {
	*store.Store
	down atomic.Bool
}

func (d *downStore) Claim(ctx context.Context, until int64, max int) (store.Claim, []store.DueItem, error) {
	if d.down.Load() {
		return nil, nil, errors.New("database down")
	}
	return d.Store.Claim(ctx, until, max)
}

// TestStoreOutageIsDowntime: occurrences that fell due while the store
// could not be read for longer than jumpThreshold follow the schedule's
// missed-run policy when it returns, as if gearsched had been down; a
// short outage is only a delay, and everything it held back fires.
func TestStoreOutageIsDowntime(t *testing.T) {
	for _, tc := range []struct {
		name   string
		outage time.Duration
		want   string // occurrences fired, by minute
	}{
		// Down from 12:01:01 to 12:04:01: 12:02, 12:03 and 12:04 were
		// missed, and skip runs none of them.
		{"long outage: skip", 3 * time.Minute, "m@12:01"},
		// Down for 3 s: nothing fell due meanwhile; all run.
		{"short outage: delayed", 3 * time.Second, "m@12:01 m@12:02 m@12:03 m@12:04"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, sink, st := newTest(t)
			sc := minutely(MissedSkip, 0, time.Hour)
			sc.Next, sc.FireAt = t0.Add(time.Minute).UnixNano(), t0.Add(time.Minute).UnixNano()
			putSchedule(t, st, sc)
			ds := &downStore{Store: st}
			s := New(Config{Store: ds, Sink: sink, Batch: 3})
			clk := newManualClock(t0)
			r := startRun(t, s, clk, sink, nil)
			r.runUntil(t0.Add(time.Minute + time.Second)) // 12:01 fires
			ds.down.Store(true)
			r.runUntil(clk.Now().Add(tc.outage))
			ds.down.Store(false)
			r.runUntil(t0.Add(4*time.Minute + 30*time.Second))
			if g := minutes(sink.fired); g != tc.want {
				t.Errorf("fired %s, want %s", g, tc.want)
			}
		})
	}
}

// minutes renders occurrence uniques "m@<unix>" as "m@hh:mm".
func minutes(uniques []string) string {
	var out []string
	for _, u := range uniques {
		name, sec, ok := strings.Cut(u, "@")
		if !ok {
			out = append(out, u)
			continue
		}
		var n int64
		for _, c := range sec {
			n = n*10 + int64(c-'0')
		}
		out = append(out, name+"@"+time.Unix(n, 0).UTC().Format("15:04"))
	}
	return strings.Join(out, " ")
}
