package sidecar

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/gearman/server"
	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
)

// TestSidecarDatabaseRefusedByJobServer: pending jobs stored in sidecar
// mode (triggers, passthrough jobs) must not be released to workers by a
// job server started on the same database.
func TestSidecarDatabaseRefusedByJobServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mode.db")
	open := func() *store.Store {
		st, err := store.Open(path, store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	if _, _, err := sidecarServer(t, st); err != nil {
		t.Fatal(err)
	}
	if err := st.PutPending(&store.Job{ID: 7, Handle: testPrefix + ":7", Function: "f", Due: 1,
		Kind: store.JobTrigger, Upstream: "127.0.0.1:1"}, "").Wait(); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st = open()
	defer st.Close()
	if _, err := server.New(server.Config{Store: st, HandlePrefix: testPrefix}); err == nil {
		t.Fatal("a job server accepted a database holding sidecar trigger jobs")
	}
	if _, _, err := sidecarServer(t, st); err != nil {
		t.Errorf("the sidecar refused its own database: %v", err)
	}
}

// TestAdvanceSchedules: a schedule is saved past the occurrences that
// were forwarded and resumes at the first one that failed; after a
// refusal it waits refusedRetry.
func TestAdvanceSchedules(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return now.Add(time.Duration(s-10) * time.Second) }
	refused := &gearman.ServerError{Code: "QUEUE_ERROR"}
	connErr := errors.New("connection reset")
	tests := []struct {
		name       string
		errs       []error // per occurrence, oldest first
		wantNext   time.Time
		wantFireAt time.Time
		wantLast   string
	}{
		{"all forwarded", []error{nil, nil}, at(30), at(30), "h1"},
		{"second fails on its connection", []error{nil, connErr}, at(2), at(2), "h0"},
		{"first refused", []error{refused, nil}, at(1), now.Add(refusedRetry), "old"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := &store.Schedule{ID: 1, Handle: "H:t:1", Next: at(30).UnixNano(), FireAt: at(30).UnixNano(), LastHandle: "old"}
			var occs []scheduler.Occurrence
			for i := range tt.errs {
				occs = append(occs, scheduler.Occurrence{Schedule: sc, At: at(i + 1), Fire: true})
			}
			var items []forwardItem
			for i := range occs {
				items = append(items, forwardItem{occ: &occs[i], handle: "h" + string(rune('0'+i)), up: UpstreamJob{Err: tt.errs[i]}})
			}
			out := advanceSchedules(items, occs, now)
			if len(out) != 1 {
				t.Fatalf("%d schedules saved, want 1", len(out))
			}
			got := out[0]
			if got.Next != tt.wantNext.UnixNano() || got.FireAt != tt.wantFireAt.UnixNano() || got.LastHandle != tt.wantLast {
				t.Errorf("saved Next %v FireAt %v LastHandle %q; want %v %v %q", time.Unix(0, got.Next).UTC(),
					time.Unix(0, got.FireAt).UTC(), got.LastHandle, tt.wantNext, tt.wantFireAt, tt.wantLast)
			}
		})
	}
}

// TestPeerForSpreadsAndFailsOver: jobs spread over every reachable server
// for any pair of addresses, a job's server does not change while the set
// of reachable servers does not, and when one server goes down only its
// jobs move.
func TestPeerForSpreadsAndFailsOver(t *testing.T) {
	for _, addrs := range [][]string{
		{"127.0.0.1:42489", "127.0.0.1:46007"},
		{"10.0.0.1:4730", "10.0.0.2:4730", "10.0.0.3:4730"},
	} {
		u, err := NewUpstream(UpstreamConfig{Addrs: addrs})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range u.peers {
			p.up.Store(true)
		}
		const n = 3000
		first := make([]*peer, n)
		count := map[*peer]int{}
		for i := range n {
			j := &UpstreamJob{Function: "f", Unique: fmt.Sprintf("u-%d", i)}
			first[i] = u.peerFor(j)
			count[first[i]]++
			if again := u.peerFor(j); again != first[i] {
				t.Fatalf("%v: job %d chose %s, then %s", addrs, i, first[i].addr, again.addr)
			}
		}
		for _, p := range u.peers {
			if share := float64(count[p]) / n; share < 0.5/float64(len(addrs)) {
				t.Errorf("%v: %s got %d of %d jobs", addrs, p.addr, count[p], n)
			}
		}
		down := u.peers[0]
		down.up.Store(false)
		for i := range n {
			got := u.peerFor(&UpstreamJob{Function: "f", Unique: fmt.Sprintf("u-%d", i)})
			if got == down || (first[i] != down && got != first[i]) {
				t.Fatalf("%v: with %s down, job %d moved from %s to %s", addrs, down.addr, i, first[i].addr, got.addr)
			}
		}
	}
}

// TestReleaseSkippedOccurrenceAdvances: a release that submits nothing
// (an occurrence skipped by the overlap or missed-run policy) still saves
// the schedule's advance; otherwise the schedule would be offered forever.
func TestReleaseSkippedOccurrenceAdvances(t *testing.T) {
	st := openStore(t, nil)
	_, fwd := newSidecarServer(t, st)
	due := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	sc := &store.Schedule{ID: 5, Handle: testPrefix + ":5", Source: store.SourceFile, Name: "n", Spec: "@hourly", Zone: "UTC",
		Function: "f", Enabled: true, Next: due.UnixNano(), FireAt: due.UnixNano()}
	if err := st.PutSchedule(sc, "").Wait(); err != nil {
		t.Fatal(err)
	}
	adv := *sc
	adv.Next = due.Add(time.Hour).UnixNano()
	adv.FireAt = adv.Next
	if err := fwd.Release(context.Background(), nil, nil, []scheduler.Occurrence{{Schedule: &adv, At: due}}); err != nil {
		t.Fatalf("release of a skipped occurrence: %v", err)
	}
	got, err := st.GetSchedule(5)
	if err != nil || got == nil || got.Next != adv.Next {
		t.Fatalf("schedule after the release: %+v %v; want Next %v", got, err, due.Add(time.Hour))
	}
}

// TestForwardUnique: what is forwarded fits gearmand's 63 bytes, keeps
// distinct uniques distinct, and is the same on every resubmission.
func TestForwardUnique(t *testing.T) {
	u64a := strings.Repeat("u", 63) + "a"
	u64b := strings.Repeat("u", 63) + "b"
	tests := []struct {
		unique, handle, want string
	}{
		{"order-42", "H:t:1", "order-42"},
		{"", "H:t:7", "gearsched:H:t:7"},
		{strings.Repeat("x", 63), "H:t:1", strings.Repeat("x", 63)},
	}
	for _, tt := range tests {
		if got := forwardUnique(tt.unique, tt.handle); got != tt.want {
			t.Errorf("forwardUnique(%q, %q) = %q, want %q", tt.unique, tt.handle, got, tt.want)
		}
	}
	a, b := forwardUnique(u64a, "H:t:1"), forwardUnique(u64b, "H:t:2")
	if a == b || len(a) > scheduler.MaxUnique || len(b) > scheduler.MaxUnique {
		t.Errorf("64-byte uniques differing in the last byte forwarded as %q and %q", a, b)
	}
	if !strings.HasPrefix(a, strings.Repeat("u", 46)+"~") || forwardUnique(u64a, "H:t:9") != a {
		t.Errorf("forwarded unique %q: want the first 46 bytes, ~, a digest, the same every time", a)
	}
	if long := forwardUnique("", "H:"+strings.Repeat("h", 70)+":1"); len(long) > scheduler.MaxUnique {
		t.Errorf("unique for a long handle has %d bytes", len(long))
	}
}
