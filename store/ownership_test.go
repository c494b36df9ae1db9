package store

import (
	"errors"
	"reflect"
	"testing"
)

func mustPutSchedule(t *testing.T, s *Store, sc *Schedule, request string) *Write {
	t.Helper()
	w := s.PutSchedule(sc, request)
	waitBatch(t, w)
	return w
}

// TestCreateIfAbsent: a pending job or schedule is written only when no
// record holds its (function, unique); the write then names the holder.
func TestCreateIfAbsent(t *testing.T) {
	tests := []struct {
		name        string
		first       func(s *Store) *Write
		second      func(s *Store) *Write
		wantCreated bool
	}{
		{"same function and unique",
			func(s *Store) *Write { return s.PutPending(&Job{ID: 1, Function: "f", Unique: "u", Due: 10}, "") },
			func(s *Store) *Write { return s.PutPending(&Job{ID: 2, Function: "f", Unique: "u", Due: 20}, "") },
			false},
		{"other function",
			func(s *Store) *Write { return s.PutPending(&Job{ID: 1, Function: "f", Unique: "u", Due: 10}, "") },
			func(s *Store) *Write { return s.PutPending(&Job{ID: 2, Function: "g", Unique: "u", Due: 20}, "") },
			true},
		{"empty unique never coalesces",
			func(s *Store) *Write { return s.PutPending(&Job{ID: 1, Function: "f", Due: 10}, "") },
			func(s *Store) *Write { return s.PutPending(&Job{ID: 2, Function: "f", Due: 20}, "") },
			true},
		{"payload unique never coalesces in the store",
			func(s *Store) *Write { return s.PutPending(&Job{ID: 1, Function: "f", Unique: "-", Due: 10}, "") },
			func(s *Store) *Write { return s.PutPending(&Job{ID: 2, Function: "f", Unique: "-", Due: 20}, "") },
			true},
		{"schedule holds a job's unique",
			func(s *Store) *Write {
				return s.PutSchedule(&Schedule{ID: 1, Function: "f", Unique: "u", Spec: "@hourly", Zone: "UTC", Enabled: true, Next: 10, FireAt: 10}, "")
			},
			func(s *Store) *Write { return s.PutPending(&Job{ID: 2, Function: "f", Unique: "u", Due: 20}, "") },
			false},
		{"pending job holds a ready job's unique",
			func(s *Store) *Write { return s.PutPending(&Job{ID: 1, Function: "f", Unique: "u", Due: 10}, "") },
			func(s *Store) *Write { return s.Put(&Job{ID: 2, Function: "f", Unique: "u"}) },
			false},
		{"same request key",
			func(s *Store) *Write { return s.PutPending(&Job{ID: 1, Function: "f", Due: 10}, "req") },
			func(s *Store) *Write { return s.PutPending(&Job{ID: 2, Function: "f", Due: 20}, "req") },
			false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTemp(t, Options{NoSync: true})
			// Both in one group commit where the committer allows: the
			// second must see the first either way.
			w1, w2 := tt.first(s), tt.second(s)
			waitBatch(t, w1)
			waitBatch(t, w2)
			if !w1.Created() || w1.Holder().ID != 1 {
				t.Fatalf("first write: created %v holder %+v", w1.Created(), w1.Holder())
			}
			if w2.Created() != tt.wantCreated {
				t.Fatalf("second write created = %v, want %v", w2.Created(), tt.wantCreated)
			}
			wantHolder := uint64(2)
			if !tt.wantCreated {
				wantHolder = 1
			}
			if w2.Holder().ID != wantHolder {
				t.Errorf("second write's holder %d, want %d", w2.Holder().ID, wantHolder)
			}
		})
	}
}

// TestRequestKeyOutlivesForwarding: a request key finds its job after it
// was forwarded, until the ledger forgets it; Cancel forgets it too.
func TestRequestKeyOutlivesForwarding(t *testing.T) {
	s, _ := openTemp(t, Options{NoSync: true})
	waitBatch(t, s.PutPending(&Job{ID: 1, Function: "f", Due: 10}, "req-1"))
	if _, err := s.Forwarded(Forward{Done: []uint64{1}, Ledger: []Fired{{ID: 1, Upstream: "u", Due: 10, At: 100}}}); err != nil {
		t.Fatal(err)
	}
	w := s.PutPending(&Job{ID: 2, Function: "f", Due: 20}, "req-1")
	waitBatch(t, w)
	if w.Created() || w.Holder() != (Holder{ID: 1, Due: 10}) {
		t.Fatalf("after forwarding: created %v holder %+v; want the forwarded job 1", w.Created(), w.Holder())
	}
	if n, err := s.PruneFired(101, 10); err != nil || n != 1 {
		t.Fatalf("PruneFired: %d, %v", n, err)
	}
	w = s.PutPending(&Job{ID: 3, Function: "f", Due: 30}, "req-1")
	if waitBatch(t, w); !w.Created() {
		t.Fatalf("after the ledger forgot job 1 the request was refused, holder %+v", w.Holder())
	}
	if res, err := s.Cancel(3); err != nil || res != CancelledJob {
		t.Fatalf("Cancel: %v, %v", res, err)
	}
	w = s.PutPending(&Job{ID: 4, Function: "f", Due: 40}, "req-1")
	if waitBatch(t, w); !w.Created() {
		t.Fatalf("after the cancel the request was refused, holder %+v", w.Holder())
	}
}

// TestStaleAdvanceRefused: the firing path's advance applies only to the
// schedule generation it was planned from.
func TestStaleAdvanceRefused(t *testing.T) {
	base := func() *Schedule {
		return &Schedule{ID: 7, Handle: "H:t:7", Source: SourceFile, Name: "n", Spec: "@hourly", Zone: "UTC",
			Function: "f", Data: []byte("v1"), Enabled: true, Next: 100, FireAt: 100}
	}
	plan := func(s *Store) *Schedule {
		t.Helper()
		sc, err := s.GetSchedule(7)
		if err != nil || sc == nil {
			t.Fatalf("GetSchedule: %v %v", sc, err)
		}
		sc.Next, sc.FireAt, sc.Last, sc.LastHandle = 200, 200, 100, "H:t:8"
		return sc
	}
	occ := func(sc *Schedule) []Occurrence {
		return []Occurrence{{Schedule: sc, Job: &Job{ID: 8, Handle: "H:t:8", Function: "f"}}}
	}
	edit := func(s *Store, change func(*Schedule)) {
		t.Helper()
		err := s.EditSchedules(func(e ScheduleEditor) error {
			sc := base()
			change(sc)
			return e.Put(sc)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		meanwhile func(s *Store)
		wantFired bool
		wantNext  int64
		wantData  string
	}{
		{"nothing meanwhile", func(*Store) {}, true, 200, "v1"},
		{"payload changed meanwhile", func(s *Store) { edit(s, func(sc *Schedule) { sc.Data = []byte("v2") }) }, true, 200, "v2"},
		{"spec changed meanwhile", func(s *Store) {
			edit(s, func(sc *Schedule) { sc.Spec, sc.Next, sc.FireAt = "@daily", 500, 500 })
		}, false, 500, "v1"},
		{"paused meanwhile", func(s *Store) {
			if _, _, err := s.SetPaused(7, true, 150); err != nil {
				t.Fatal(err)
			}
		}, false, 100, "v1"},
		{"cancelled meanwhile", func(s *Store) {
			if err := s.EditSchedules(func(e ScheduleEditor) error { return e.Delete(7) }); err != nil {
				t.Fatal(err)
			}
		}, false, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTemp(t, Options{NoSync: true})
			mustPutSchedule(t, s, base(), "")
			p := plan(s)
			tt.meanwhile(s)
			_, fired, err := s.Fire(0, nil, occ(p), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(fired) == 1; got != tt.wantFired {
				t.Errorf("occurrence stored: %v, want %v", got, tt.wantFired)
			}
			if got := len(readAll(t, s)) == 1; got != tt.wantFired {
				t.Errorf("occurrence job in the store: %v, want %v", got, tt.wantFired)
			}
			sc, err := s.GetSchedule(7)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantNext == 0 {
				if sc != nil {
					t.Fatalf("cancelled schedule came back: %+v", sc)
				}
				if got := dueIDs(t, s); len(got) != 0 {
					t.Errorf("due index holds %v", got)
				}
				return
			}
			if sc.Next != tt.wantNext || string(sc.Data) != tt.wantData {
				t.Errorf("schedule Next %d data %q, want %d %q", sc.Next, sc.Data, tt.wantNext, tt.wantData)
			}
		})
	}
}

// TestCountsAfterCommitOnly: the in-memory counts change with a commit,
// and not at all when it fails.
func TestCountsAfterCommitOnly(t *testing.T) {
	fail := false
	s, _ := openTemp(t, Options{NoSync: true, BeforeCommit: func() error {
		if fail {
			return errors.New("injected")
		}
		return nil
	}})
	waitBatch(t, s.PutPending(&Job{ID: 1, Function: "f", Unique: "a", Due: 10}, ""))
	mustPutSchedule(t, s, &Schedule{ID: 2, Function: "g", Unique: "s", Spec: "@hourly", Zone: "UTC", Enabled: true, Next: 5, FireAt: 5}, "")
	if got, want := s.PendingCounts(), map[string]int{"f": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("PendingCounts %v, want %v", got, want)
	}
	if got := s.Functions(); !reflect.DeepEqual(got, []string{"f", "g"}) {
		t.Errorf("Functions %v", got)
	}
	fail = true
	if err := s.PutPending(&Job{ID: 3, Function: "f", Due: 10}, "").Wait(); err == nil {
		t.Fatal("injected failure did not fail the commit")
	}
	fail = false
	if got := s.PendingCount("f"); got != 1 {
		t.Errorf("after a failed commit PendingCount(f) = %d, want 1", got)
	}
	if res, err := s.Cancel(1); err != nil || res != CancelledJob {
		t.Fatalf("Cancel(1): %v %v", res, err)
	}
	if res, err := s.Cancel(2); err != nil || res != CancelledSchedule {
		t.Fatalf("Cancel(2): %v %v", res, err)
	}
	if got := s.Functions(); len(got) != 0 {
		t.Errorf("after cancelling everything, Functions %v", got)
	}
}
