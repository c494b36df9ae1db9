package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// legacyEncoding is a job record as written before the sidecar fields
// existed: version, priority, due, then five length-prefixed fields.
func legacyEncoding(j *Job) []byte {
	b := []byte{1, j.Priority}
	b = binary.AppendVarint(b, j.Due)
	for _, s := range [][]byte{[]byte(j.Handle), []byte(j.Function), []byte(j.Unique), []byte(j.Reducer), j.Data} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// sealedLegacy is a plain job's record now: the legacy encoding with the
// sealed bit in its version, then its seal.
func sealedLegacy(j *Job) []byte {
	b := legacyEncoding(j)
	b[0] |= recordSealed
	return seal(b, 0)
}

// TestPlainJobHasNoTrailer: a plain job is the legacy encoding, sealed;
// records written before seals still decode.
func TestPlainJobHasNoTrailer(t *testing.T) {
	for _, j := range []*Job{
		{ID: 1},
		{ID: 2, Handle: "H:vm:2", Function: "f", Unique: "u", Reducer: "r", Priority: 2, Due: 1e18, Data: []byte("a\x00b")},
		{ID: 3, Function: "f", Kind: JobPlain, Watch: []string{}}, // empty, not nil: still no trailer
	} {
		t.Run(fmt.Sprint(j.ID), func(t *testing.T) {
			got, want := j.appendTo(nil), sealedLegacy(j)
			if !bytes.Equal(got, want) {
				t.Fatalf("plain job encodes as\n %x\nwant the legacy encoding, sealed\n %x", got, want)
			}
			for _, b := range [][]byte{got, legacyEncoding(j)} {
				d, err := decodeJob(j.ID, b)
				if err != nil {
					t.Fatal(err)
				}
				if d.Kind != JobPlain || d.When != 0 || d.Upstream != "" || d.Watch != nil {
					t.Errorf("legacy record decoded with sidecar fields Kind=%d When=%d Upstream=%q Watch=%q",
						d.Kind, d.When, d.Upstream, d.Watch)
				}
			}
		})
	}
}

func TestJobTrailerRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		job  Job
	}{
		{"passthrough", Job{ID: 10, Handle: "H:s:10", Function: "f", Unique: "u", Priority: 1, Data: []byte("x"),
			Kind: JobPassthrough, When: 1700000000}},
		{"trigger", Job{ID: 11, Handle: "H:s:11", Function: "f", Unique: "gearsched-trigger:1700000000", Priority: 1,
			Due: 1700000000_100000000, Data: []byte("wake"), Kind: JobTrigger, When: 1700000000,
			Upstream: "10.0.0.1:4730", Watch: []string{"H:up:1", "H:up:2", ""}}},
		{"trigger without watch", Job{ID: 12, Function: "f", Kind: JobTrigger, Upstream: "gm:4730"}},
		{"plain with upstream", Job{ID: 13, Function: "f", Upstream: "gm:4730"}},
		{"plain with when", Job{ID: 14, Function: "f", When: 1}},
		{"negative when", Job{ID: 15, Function: "f", Kind: JobPassthrough, When: -1}},
		{"plain with watch", Job{ID: 16, Function: "f", Watch: []string{"h"}}},
		{"unknown kind", Job{ID: 17, Function: "f", Kind: 200, When: math.MaxInt64}},
		{"many watches", Job{ID: 18, Function: "f", Kind: JobTrigger, Upstream: "u",
			Watch: []string{"a", string(bytes.Repeat([]byte{'w'}, 300)), "c", "d", "e"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := tt.job
			b := j.appendTo(nil)
			if len(b) > j.encodedSize() {
				t.Errorf("encoded %d bytes, encodedSize says at most %d", len(b), j.encodedSize())
			}
			plain := legacyEncoding(&j)
			if b[0] != recordVersionTrailer|recordSealed || !bytes.HasPrefix(b[1:], plain[1:]) || len(b) <= len(plain)+sealSize {
				t.Fatalf("encoding %x is not the legacy encoding %x under version %d followed by a trailer and a seal",
					b, plain, recordVersionTrailer|recordSealed)
			}
			got, err := decodeJob(j.ID, b)
			if err != nil {
				t.Fatal(err)
			}
			want := j
			if want.Watch == nil {
				want.Watch = []string{} // the decoder always allocates
			}
			if !reflect.DeepEqual(got, &want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, &want)
			}
			// Cutting the record short must be detected.
			for cut := range len(b) {
				if _, err := decodeJob(j.ID, b[:cut]); err == nil {
					t.Fatalf("record cut to %d of %d bytes decoded without error", cut, len(b))
				}
			}
			if _, err := decodeJob(j.ID, append(b[:len(b):len(b)], 0)); err == nil {
				t.Error("record with a byte after its trailer decoded without error")
			}
		})
	}
}

// waitBatch fails the test if the batch's commit failed.
func waitBatch(t testing.TB, b interface{ Wait() error }) {
	t.Helper()
	if err := b.Wait(); err != nil {
		t.Fatal(err)
	}
}

func pendingCounts(t *testing.T, s *Store) map[string]int {
	t.Helper()
	return s.PendingCounts()
}

func scheduled(t *testing.T, s *Store, id uint64) *Job {
	t.Helper()
	j, err := s.Scheduled(id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func firedJob(t *testing.T, s *Store, id uint64) *Fired {
	t.Helper()
	f, err := s.FiredJob(id)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// dueIDs returns the ids in the due index, in due order.
func dueIDs(t *testing.T, s *Store) []uint64 {
	t.Helper()
	items, err := s.DueItems(math.MaxInt64, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	return ids
}

func jobIDs(jobs []*Job) []uint64 {
	var ids []uint64
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

func TestForwardedRemovesPendingAndRecordsLedger(t *testing.T) {
	tests := []struct {
		name        string
		done        []uint64
		wantRemoved []uint64
		wantPending []uint64
		wantCounts  map[string]int
	}{
		{"none", nil, nil, []uint64{1, 2, 3}, map[string]int{"f": 2, "g": 1}},
		{"one of f", []uint64{1}, []uint64{1}, []uint64{2, 3}, map[string]int{"f": 1, "g": 1}},
		{"all of g", []uint64{3}, []uint64{3}, []uint64{1, 2}, map[string]int{"f": 2}},
		{"all", []uint64{3, 1, 2}, []uint64{3, 1, 2}, nil, map[string]int{}},
		{"unknown ids are left out", []uint64{99, 2}, []uint64{2}, []uint64{1, 3}, map[string]int{"f": 1, "g": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTemp(t, Options{})
			jobs := []*Job{
				{ID: 1, Handle: "H:t:1", Function: "f", Unique: "u1", Due: 100, Data: []byte("one")},
				{ID: 2, Handle: "H:t:2", Function: "f", Due: 200},
				{ID: 3, Handle: "H:t:3", Function: "g", Unique: "u3", Due: 300, Kind: JobPassthrough, When: 7},
			}
			for _, j := range jobs {
				waitBatch(t, s.PutPending(j, ""))
			}
			var ledger []Fired
			for i, id := range tt.done {
				ledger = append(ledger, Fired{ID: id, Upstream: "gm:4730", UpstreamHandle: fmt.Sprintf("H:up:%d", i),
					Due: int64(id) * 100, At: 1000 + int64(i)})
			}
			res, err := s.Forwarded(Forward{Done: tt.done, Ledger: ledger})
			removed := res.Removed
			if err != nil {
				t.Fatal(err)
			}
			if got := jobIDs(removed); !slices.Equal(got, tt.wantRemoved) {
				t.Errorf("Forwarded removed %v, want %v", got, tt.wantRemoved)
			}
			for _, r := range removed {
				if j := jobs[r.ID-1]; r.Function != j.Function || r.Unique != j.Unique || r.Kind != j.Kind || r.When != j.When {
					t.Errorf("removed record %+v does not match the stored job %+v", r, j)
				}
			}
			for _, j := range jobs {
				got := scheduled(t, s, j.ID)
				if want := slices.Contains(tt.wantPending, j.ID); (got != nil) != want {
					t.Errorf("Scheduled(%d) = %+v, want pending: %v", j.ID, got, want)
				}
			}
			if got := dueIDs(t, s); !slices.Equal(got, tt.wantPending) {
				t.Errorf("due index holds %v, want %v", got, tt.wantPending)
			}
			if got := pendingCounts(t, s); !reflect.DeepEqual(got, tt.wantCounts) {
				t.Errorf("PendingCounts = %v, want %v", got, tt.wantCounts)
			}
			for _, j := range jobs {
				if j.Unique == "" {
					continue
				}
				h, _, err := s.FindUnique(j.Unique)
				if err != nil {
					t.Fatal(err)
				}
				want := uint64(0)
				if slices.Contains(tt.wantPending, j.ID) {
					want = j.ID
				}
				if h.ID != want {
					t.Errorf("FindUnique(%q) = %d, want %d", j.Unique, h.ID, want)
				}
			}
			// Entries of jobs that were no longer pending (cancelled while
			// being submitted) are not recorded.
			want := map[uint64]Fired{}
			for _, e := range ledger {
				if slices.Contains(tt.wantRemoved, e.ID) {
					want[e.ID] = e
				}
			}
			for _, id := range []uint64{1, 2, 3, 99} {
				got := firedJob(t, s, id)
				e, ok := want[id]
				switch {
				case !ok && got != nil:
					t.Errorf("FiredJob(%d) = %+v, want nil", id, got)
				case ok && (got == nil || *got != e):
					t.Errorf("FiredJob(%d) = %+v, want %+v", id, got, e)
				}
			}
			// Forwarding the same ids again changes nothing.
			res, err = s.Forwarded(Forward{Done: tt.done})
			again := res.Removed
			if err != nil {
				t.Fatal(err)
			}
			if len(again) != 0 {
				t.Errorf("second Forwarded removed %v, want nothing", jobIDs(again))
			}
			if got := pendingCounts(t, s); !reflect.DeepEqual(got, tt.wantCounts) {
				t.Errorf("after a second Forwarded PendingCounts = %v, want %v", got, tt.wantCounts)
			}
		})
	}
}

func TestTriggerNotCounted(t *testing.T) {
	s, _ := openTemp(t, Options{})
	waitBatch(t, s.PutPending(&Job{ID: 1, Function: "f", Unique: "x", Due: 50}, ""))
	trig := &Job{ID: 2, Function: "f", Unique: "x", Due: 100, Kind: JobTrigger, Upstream: "gm:4730", Watch: []string{"H:up:1"}}
	if _, err := s.Forwarded(Forward{Triggers: []*Job{trig}}); err != nil {
		t.Fatal(err)
	}
	if got, want := pendingCounts(t, s), map[string]int{"f": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("with a trigger pending, PendingCounts = %v, want %v", got, want)
	}
	if got := dueIDs(t, s); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("due index holds %v, want [1 2]", got)
	}
	// A trigger's unique key includes its upstream: it does not shadow the
	// client's job with the same function and unique.
	if h, _, err := s.FindUnique("x"); err != nil || h.ID != 1 {
		t.Errorf("FindUnique(x) = %d, %v; want the client's job 1", h.ID, err)
	}
	got := scheduled(t, s, 2)
	if got == nil || got.Kind != JobTrigger || got.Upstream != "gm:4730" || !slices.Equal(got.Watch, trig.Watch) {
		t.Fatalf("Scheduled(2) = %+v, want the trigger %+v", got, trig)
	}

	res, err := s.Forwarded(Forward{Done: []uint64{2}})
	removed := res.Removed
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(jobIDs(removed), []uint64{2}) {
		t.Errorf("Forwarded removed %v, want [2]", jobIDs(removed))
	}
	if got, want := pendingCounts(t, s), map[string]int{"f": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("after forwarding the trigger, PendingCounts = %v, want %v", got, want)
	}
	if h, _, err := s.FindUnique("x"); err != nil || h.ID != 1 {
		t.Errorf("after forwarding the trigger, FindUnique(x) = %d, %v; want 1", h.ID, err)
	}
}

func TestTriggerJoin(t *testing.T) {
	trig := func(id uint64, upstream string, watch ...string) *Job {
		return &Job{ID: id, Handle: fmt.Sprintf("H:s:%d", id), Function: "f", Unique: "gearsched-trigger:1700000000",
			Priority: 1, Due: 1700000000_100000000, Kind: JobTrigger, When: 1700000000, Upstream: upstream, Watch: watch}
	}
	tests := []struct {
		name string
		// commits are Forwarded one after the other.
		commits [][]*Job
		// want maps each pending trigger's id to its watched handles.
		want map[uint64][]string
	}{
		{
			name:    "one",
			commits: [][]*Job{{trig(1, "a:1", "h1")}},
			want:    map[uint64][]string{1: {"h1"}},
		},
		{
			name:    "same key joins",
			commits: [][]*Job{{trig(1, "a:1", "h1")}, {trig(2, "a:1", "h2")}},
			want:    map[uint64][]string{1: {"h1", "h2"}},
		},
		{
			name:    "same key in one commit joins",
			commits: [][]*Job{{trig(1, "a:1", "h1"), trig(2, "a:1", "h2"), trig(3, "a:1", "h3")}},
			want:    map[uint64][]string{1: {"h1", "h2", "h3"}},
		},
		{
			name: "watch stops at MaxWatch",
			commits: [][]*Job{{trig(1, "a:1", "h1"), trig(2, "a:1", "h2")},
				{trig(3, "a:1", "h3"), trig(4, "a:1", "h4")}, {trig(5, "a:1", "h5"), trig(6, "a:1", "h6")}},
			want: map[uint64][]string{1: {"h1", "h2", "h3", "h4"}},
		},
		{
			name:    "a join is cut to MaxWatch",
			commits: [][]*Job{{trig(1, "a:1", "h1", "h2", "h3")}, {trig(2, "a:1", "h4", "h5", "h6")}},
			want:    map[uint64][]string{1: {"h1", "h2", "h3", "h4"}},
		},
		{
			name:    "different upstreams are separate",
			commits: [][]*Job{{trig(1, "a:1", "h1"), trig(2, "b:1", "h2")}, {trig(3, "b:1", "h3"), trig(4, "a:1", "h4")}},
			want:    map[uint64][]string{1: {"h1", "h4"}, 2: {"h2", "h3"}},
		},
		{
			name: "different functions are separate",
			commits: [][]*Job{{trig(1, "a:1", "h1"), func() *Job {
				j := trig(2, "a:1", "h2")
				j.Function = "g"
				return j
			}()}},
			want: map[uint64][]string{1: {"h1"}, 2: {"h2"}},
		},
		{
			name: "different uniques are separate",
			commits: [][]*Job{{trig(1, "a:1", "h1"), func() *Job {
				j := trig(2, "a:1", "h2")
				j.Unique = "gearsched-trigger:1700000001"
				return j
			}()}},
			want: map[uint64][]string{1: {"h1"}, 2: {"h2"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTemp(t, Options{})
			for _, triggers := range tt.commits {
				if _, err := s.Forwarded(Forward{Triggers: triggers}); err != nil {
					t.Fatal(err)
				}
			}
			var wantIDs []uint64
			for id, watch := range tt.want {
				wantIDs = append(wantIDs, id)
				j := scheduled(t, s, id)
				if j == nil {
					t.Errorf("trigger %d is not pending", id)
					continue
				}
				if !slices.Equal(j.Watch, watch) {
					t.Errorf("trigger %d watches %q, want %q", id, j.Watch, watch)
				}
				if len(j.Watch) > MaxWatch {
					t.Errorf("trigger %d watches %d handles, more than MaxWatch %d", id, len(j.Watch), MaxWatch)
				}
				if j.Kind != JobTrigger || j.When != 1700000000 {
					t.Errorf("trigger %d came back as %+v", id, j)
				}
			}
			for _, triggers := range tt.commits {
				for _, tr := range triggers {
					if _, ok := tt.want[tr.ID]; !ok && scheduled(t, s, tr.ID) != nil {
						t.Errorf("trigger %d was stored although it joins another", tr.ID)
					}
				}
			}
			slices.Sort(wantIDs)
			got := dueIDs(t, s)
			slices.Sort(got)
			if !slices.Equal(got, wantIDs) {
				t.Errorf("due index holds %v, want %v", got, wantIDs)
			}
			if c := pendingCounts(t, s); len(c) != 0 {
				t.Errorf("PendingCounts = %v, want none: triggers are not counted", c)
			}
		})
	}
}

func TestTriggerAfterForwardIsNew(t *testing.T) {
	s, _ := openTemp(t, Options{})
	t1 := &Job{ID: 1, Function: "f", Unique: "t", Kind: JobTrigger, Upstream: "a:1", Watch: []string{"h1"}}
	t2 := &Job{ID: 2, Function: "f", Unique: "t", Kind: JobTrigger, Upstream: "a:1", Watch: []string{"h2"}}
	if _, err := s.Forwarded(Forward{Triggers: []*Job{t1}}); err != nil {
		t.Fatal(err)
	}
	// Forwarding the first trigger and adding the second in one commit:
	// the second must not join the one just removed.
	if _, err := s.Forwarded(Forward{Done: []uint64{1}, Triggers: []*Job{t2}}); err != nil {
		t.Fatal(err)
	}
	if j := scheduled(t, s, 1); j != nil {
		t.Errorf("forwarded trigger 1 still pending: %+v", j)
	}
	j := scheduled(t, s, 2)
	if j == nil || !slices.Equal(j.Watch, []string{"h2"}) {
		t.Errorf("Scheduled(2) = %+v, want a new trigger watching [h2]", j)
	}
}

func TestPruneFired(t *testing.T) {
	// Entries 1..5 recorded at 100, 200, 200, 300, 400.
	ats := map[uint64]int64{1: 100, 2: 200, 3: 200, 4: 300, 5: 400}
	tests := []struct {
		name     string
		before   int64
		max      int
		wantN    int
		wantLeft []uint64
	}{
		{"nothing older", 100, 10, 0, []uint64{1, 2, 3, 4, 5}},
		{"at the cutoff is kept", 200, 10, 1, []uint64{2, 3, 4, 5}},
		{"ties go together", 201, 10, 3, []uint64{4, 5}},
		{"all", 401, 10, 5, nil},
		{"far future", math.MaxInt64, 10, 5, nil},
		{"max bounds the count, oldest first", 401, 2, 2, []uint64{3, 4, 5}},
		{"max zero", 401, 0, 0, []uint64{1, 2, 3, 4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTemp(t, Options{})
			var ledger []Fired
			for id := uint64(5); id >= 1; id-- { // recorded out of order
				ledger = append(ledger, Fired{ID: id, Upstream: "gm:4730", UpstreamHandle: fmt.Sprint("H:up:", id), Due: 1, At: ats[id]})
			}
			if _, err := s.Forwarded(Forward{Ledger: ledger}); err != nil {
				t.Fatal(err)
			}
			n, err := s.PruneFired(tt.before, tt.max)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.wantN {
				t.Errorf("PruneFired(%d, %d) = %d, want %d", tt.before, tt.max, n, tt.wantN)
			}
			for id, at := range ats {
				f := firedJob(t, s, id)
				if want := slices.Contains(tt.wantLeft, id); (f != nil) != want {
					t.Errorf("entry %d (at %d): present %v, want %v", id, at, f != nil, want)
				}
				if f != nil && f.At != at {
					t.Errorf("entry %d at %d, want %d", id, f.At, at)
				}
			}
			// The index was pruned with the entries: a second prune of the
			// same range deletes only what max held back the first time.
			older := 0
			for _, id := range tt.wantLeft {
				if ats[id] < tt.before {
					older++
				}
			}
			n, err = s.PruneFired(tt.before, tt.max)
			if err != nil {
				t.Fatal(err)
			}
			if want := min(tt.max, older); n != want {
				t.Errorf("second PruneFired(%d, %d) = %d, want %d", tt.before, tt.max, n, want)
			}
		})
	}
}

func TestLedgerAndTriggersSurviveReopen(t *testing.T) {
	s, path := openTemp(t, Options{})
	waitBatch(t, s.PutPending(&Job{ID: 1, Handle: "H:s:1", Function: "f", Due: 10, Kind: JobPassthrough, When: 1700000000}, ""))
	waitBatch(t, s.PutPending(&Job{ID: 2, Handle: "H:s:2", Function: "f", Due: 20}, ""))
	entry := Fired{ID: 1, Upstream: "10.0.0.1:4730", UpstreamHandle: "H:up:77", Due: 10, At: 1000}
	trig := []*Job{
		{ID: 3, Handle: "H:s:3", Function: "f", Unique: "t", Due: 30, Kind: JobTrigger, When: 1700000000, Upstream: "10.0.0.1:4730", Watch: []string{"H:up:77"}},
		{ID: 4, Handle: "H:s:4", Function: "f", Unique: "t", Due: 30, Kind: JobTrigger, When: 1700000000, Upstream: "10.0.0.1:4730", Watch: []string{"H:up:78"}},
	}
	if _, err := s.Forwarded(Forward{Done: []uint64{1}, Ledger: []Fired{entry}, Triggers: trig}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if got := firedJob(t, s, 1); got == nil || *got != entry {
		t.Errorf("after reopen FiredJob(1) = %+v, want %+v", got, entry)
	}
	if j := scheduled(t, s, 1); j != nil {
		t.Errorf("after reopen the forwarded job is pending: %+v", j)
	}
	want := *trig[0]
	want.Watch = []string{"H:up:77", "H:up:78"}
	if got := scheduled(t, s, 3); got == nil || !reflect.DeepEqual(*got, want) {
		t.Errorf("after reopen Scheduled(3) = %+v, want %+v", got, &want)
	}
	if got, want := pendingCounts(t, s), map[string]int{"f": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen PendingCounts = %v, want %v", got, want)
	}
	if got := dueIDs(t, s); !slices.Equal(got, []uint64{2, 3}) {
		t.Errorf("after reopen the due index holds %v, want [2 3]", got)
	}
	// The time index survived too: pruning finds the entry.
	if n, err := s.PruneFired(1001, 10); err != nil || n != 1 {
		t.Errorf("after reopen PruneFired = %d, %v; want 1", n, err)
	}
	if got := firedJob(t, s, 1); got != nil {
		t.Errorf("pruned entry still there: %+v", got)
	}
}

// TestPruneFiredSurvivesReopen checks that a prune is durable.
func TestPruneFiredSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prune.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ledger := []Fired{{ID: 1, At: 10}, {ID: 2, At: 20}}
	if _, err := s.Forwarded(Forward{Ledger: ledger}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneFired(15, 10); err != nil || n != 1 {
		t.Fatalf("PruneFired = %d, %v; want 1", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := firedJob(t, s, 1); got != nil {
		t.Errorf("pruned entry came back after reopen: %+v", got)
	}
	if got := firedJob(t, s, 2); got == nil || *got != ledger[1] {
		t.Errorf("FiredJob(2) = %+v, want %+v", got, ledger[1])
	}
	if n, err := s.PruneFired(15, 10); err != nil || n != 0 {
		t.Errorf("PruneFired after reopen = %d, %v; want 0", n, err)
	}
}

// TestDeferMovesDueTime: a refused job moves to its new due time in the
// index and the record, and a job no longer pending is left alone.
func TestDeferMovesDueTime(t *testing.T) {
	s, _ := openTemp(t, Options{})
	for _, j := range []*Job{{ID: 1, Handle: "H:t:1", Function: "f", Due: 100}, {ID: 2, Handle: "H:t:2", Function: "f", Due: 200}} {
		waitBatch(t, s.PutPending(j, ""))
	}
	if _, err := s.Forwarded(Forward{Defer: []Deferral{{ID: 1, Due: 300}, {ID: 42, Due: 50}}}); err != nil {
		t.Fatal(err)
	}
	if got := dueIDs(t, s); !slices.Equal(got, []uint64{2, 1}) {
		t.Errorf("due index order %v, want [2 1]", got)
	}
	if j := scheduled(t, s, 1); j == nil || j.Due != 300 {
		t.Errorf("deferred record %+v, want Due 300", j)
	}
	if got := pendingCounts(t, s); got["f"] != 2 {
		t.Errorf("PendingCounts = %v, want f: 2", got)
	}
}

// TestPutTriggers: a watcher's triggers are created once per (upstream,
// function, second); a second one for the same key joins its watch list
// (up to MaxWatch), another upstream or second is a trigger of its own,
// and a trigger the forwarder already sent is created anew.
func TestPutTriggers(t *testing.T) {
	s, _ := openTemp(t, Options{})
	tr := func(id uint64, up, unique, watch string) *Job {
		return &Job{ID: id, Function: "f", Unique: unique, Kind: JobTrigger, Upstream: up, Watch: []string{watch}}
	}
	n, err := s.PutTriggers([]*Job{tr(1, "a:1", "t@100", "u1"), tr(2, "a:1", "t@100", "u2"), tr(3, "b:1", "t@100", "u3"), tr(4, "a:1", "t@101", "u4")})
	if err != nil || n != 3 {
		t.Fatalf("PutTriggers = %d, %v; want 3 created", n, err)
	}
	if j := scheduled(t, s, 1); j == nil || !slices.Equal(j.Watch, []string{"u1", "u2"}) {
		t.Errorf("trigger 1 = %+v, want watching [u1 u2]", j)
	}
	if j := scheduled(t, s, 2); j != nil {
		t.Errorf("trigger 2 stored on its own: %+v", j)
	}
	var more []*Job
	for i := range MaxWatch + 2 {
		more = append(more, tr(uint64(10+i), "a:1", "t@100", fmt.Sprint("w", i)))
	}
	if n, err := s.PutTriggers(more); err != nil || n != 0 {
		t.Fatalf("PutTriggers on a pending key = %d, %v; want 0 created", n, err)
	}
	if j := scheduled(t, s, 1); j == nil || len(j.Watch) != MaxWatch {
		t.Errorf("trigger 1 = %+v, want %d watched entries", j, MaxWatch)
	}
	if _, err := s.Forwarded(Forward{Done: []uint64{1}}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PutTriggers([]*Job{tr(20, "a:1", "t@100", "u9")}); err != nil || n != 1 {
		t.Fatalf("PutTriggers after the trigger was sent = %d, %v; want 1 created", n, err)
	}
	if _, err := s.PutTriggers([]*Job{{ID: 30, Function: "f", Unique: "x", Kind: JobTrigger}}); err == nil {
		t.Error("PutTriggers took a trigger without an upstream")
	}
}
