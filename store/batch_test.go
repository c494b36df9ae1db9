package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// holdGate holds the committer inside BeforeCommit while it is shut, so
// that a test can queue several writes into one batch; it counts the write
// transactions the committer runs.
type holdGate struct {
	mu    sync.Mutex
	shut  chan struct{} // nil while open
	held  chan struct{}
	runs  int
	failN map[int]bool // runs (1-based) that BeforeCommit fails
}

func newHoldGate() *holdGate { return &holdGate{held: make(chan struct{}, 1), failN: map[int]bool{}} }

func (g *holdGate) hook() error {
	g.mu.Lock()
	g.runs++
	shut, fail := g.shut, g.failN[g.runs]
	g.mu.Unlock()
	if shut != nil {
		g.held <- struct{}{}
		<-shut
	}
	if fail {
		return errors.New("injected commit failure")
	}
	return nil
}

// hold shuts the gate and returns once the committer waits at it, with
// the write that holds it.
func (g *holdGate) hold(t *testing.T, s *Store) *Write {
	t.Helper()
	g.mu.Lock()
	g.shut = make(chan struct{})
	g.mu.Unlock()
	w := s.update(func(*txn) error { return nil })
	select {
	case <-g.held:
	case <-time.After(5 * time.Second):
		t.Fatal("the committer never reached the gate")
	}
	return w
}

func (g *holdGate) release() {
	g.mu.Lock()
	close(g.shut)
	g.shut = nil
	g.mu.Unlock()
}

func (g *holdGate) runCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.runs
}

// refusedKey is a write bbolt refuses after it wrote something: its
// partial write must not be kept.
func refusedKey(t *txn) error {
	if err := t.bucket(bucketMeta).Put([]byte("partial"), []byte("x")); err != nil {
		return err
	}
	return t.bucket(bucketMeta).Put(nil, []byte("x"))
}

// TestFailingWriteFailsAlone: writes that fail inside a group commit fail
// only their own Write; the puts, deletes and updates queued with them
// commit, survive a reopen, and the in-memory counts follow only what
// committed. Isolating them costs a rolled-back run per bad write, not a
// transaction per write.
func TestFailingWriteFailsAlone(t *testing.T) {
	tests := []struct {
		name string
		bad  []func(t *txn) error
		want []error // what each bad write's Wait wraps; nil: any error
	}{
		{"bbolt refuses a key", []func(*txn) error{refusedKey}, []error{bolterrors.ErrKeyRequired}},
		{"a write panics", []func(*txn) error{func(t *txn) error {
			refusedKey(t)
			panic("damaged page")
		}}, []error{nil}},
		{"two bad writes", []func(*txn) error{refusedKey, func(*txn) error { return errCorrupt }},
			[]error{bolterrors.ErrKeyRequired, errCorrupt}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newHoldGate()
			path := filepath.Join(t.TempDir(), "iso.db")
			s, err := Open(path, Options{BeforeCommit: g.hook})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { s.Close() }()
			for id := uint64(1); id <= 2; id++ {
				waitBatch(t, s.Put(&Job{ID: id, Handle: fmt.Sprint("H:t:", id), Function: "f"}))
			}

			holder := g.hold(t, s)
			var bad, good []*Write
			good = append(good, s.Put(&Job{ID: 3, Handle: "H:t:3", Function: "f"}))
			bad = append(bad, s.update(tt.bad[0]))
			s.Delete(1)
			good = append(good, s.PutPending(&Job{ID: 4, Handle: "H:t:4", Function: "p", Unique: "u", Due: 100}, ""))
			for _, fn := range tt.bad[1:] {
				bad = append(bad, s.update(fn))
			}
			good = append(good, s.PutSchedule(&Schedule{ID: 5, Handle: "H:t:5", Function: "s", Spec: "@hourly", Zone: "UTC",
				Enabled: true, Next: 200, FireAt: 200}, ""))
			before := g.runCount()
			g.release()
			waitBatch(t, holder)
			for _, w := range good {
				if err := w.Wait(); err != nil || !w.Created() {
					t.Fatalf("a good write of the batch: created %v, err %v", w.Created(), err)
				}
			}
			for i, w := range bad {
				err := w.Wait()
				if err == nil || (tt.want[i] != nil && !errors.Is(err, tt.want[i])) {
					t.Errorf("bad write %d: %v, want an error wrapping %v", i, err, tt.want[i])
				}
			}
			if runs := g.runCount() - before; runs != 1+len(bad) {
				t.Errorf("the batch took %d transactions, want %d: one rolled back per bad write, then the commit", runs, 1+len(bad))
			}
			if got, want := s.PendingCounts(), map[string]int{"p": 1}; !reflect.DeepEqual(got, want) {
				t.Errorf("PendingCounts %v, want %v", got, want)
			}

			s.Close()
			if s, err = Open(path, Options{}); err != nil {
				t.Fatal(err)
			}
			if ids := jobIDs(readAll(t, s)); !reflect.DeepEqual(ids, []uint64{2, 3}) {
				t.Errorf("ready jobs after reopen %v, want [2 3] (1 deleted in the batch, 3 put)", ids)
			}
			if ids := dueIDs(t, s); !reflect.DeepEqual(ids, []uint64{4, 5}) {
				t.Errorf("due index after reopen %v, want [4 5]", ids)
			}
			if got, want := s.PendingCounts(), map[string]int{"p": 1}; !reflect.DeepEqual(got, want) {
				t.Errorf("PendingCounts after reopen %v, want %v", got, want)
			}
			if mode, _ := s.Mode(); mode != "" {
				t.Errorf("meta mode %q", mode)
			}
			s.db.View(func(tx *bolt.Tx) error {
				if v := tx.Bucket(bucketMeta).Get([]byte("partial")); v != nil {
					t.Error("a failed write's partial write was committed")
				}
				return nil
			})
		})
	}
}

// TestCommitFailureRetriesEachAlone: when the transaction fails for a
// reason no write returned (here BeforeCommit, standing for the commit's
// own I/O), every write is committed alone, so only a write that fails by
// itself fails; when every run fails (the disk is gone), every write
// fails with the error.
func TestCommitFailureRetriesEachAlone(t *testing.T) {
	tests := []struct {
		name     string
		failRuns []int
		wantGood bool
	}{
		{"one failed commit", []int{1}, true},
		{"the disk keeps failing", []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newHoldGate()
			s, _ := openTemp(t, Options{NoSync: true, BeforeCommit: g.hook})
			holder := g.hold(t, s)
			g.mu.Lock()
			for _, n := range tt.failRuns {
				g.failN[g.runs+n] = true
			}
			g.mu.Unlock()
			a := s.Put(&Job{ID: 1, Function: "f"})
			bad := s.update(refusedKey)
			b := s.PutPending(&Job{ID: 2, Function: "f", Due: 10}, "")
			var more []*Write // the disk's failure costs at most diskFailures runs
			for id := uint64(3); id < 13; id++ {
				more = append(more, s.Put(&Job{ID: id, Function: "g"}))
			}
			before := g.runCount()
			g.release()
			waitBatch(t, holder)
			if err := bad.Wait(); err == nil {
				t.Error("the bad write succeeded")
			}
			for _, w := range append([]*Write{a, b}, more...) {
				if err := w.Wait(); (err == nil) != tt.wantGood {
					t.Errorf("good write: err %v, want success %v", err, tt.wantGood)
				}
			}
			runs, want := g.runCount()-before, 1+3+len(more) // the failed run, then each alone
			if !tt.wantGood {
				want = 1 + diskFailures
			}
			if runs != want {
				t.Errorf("%d transactions, want %d", runs, want)
			}
			wantCount := map[string]int{}
			if tt.wantGood {
				wantCount["f"] = 1
			}
			if got := s.PendingCounts(); !reflect.DeepEqual(got, wantCount) {
				t.Errorf("PendingCounts %v, want %v", got, wantCount)
			}
		})
	}
}

// TestEmptyFunctionName: "" is a function name like any other (gearmand
// serves it): its pending jobs are stored, counted, coalesced by unique
// and counted again after a reopen, though bbolt takes no empty key.
func TestEmptyFunctionName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	waitBatch(t, s.Put(&Job{ID: 1, Function: ""}))
	w := s.PutPending(&Job{ID: 2, Function: "", Unique: "u", Due: 10}, "")
	if waitBatch(t, w); !w.Created() {
		t.Fatal("pending job of function \"\" not created")
	}
	w = s.PutPending(&Job{ID: 3, Function: "", Unique: "u", Due: 20}, "")
	if waitBatch(t, w); w.Created() || w.Holder().ID != 2 {
		t.Fatalf("same unique: created %v holder %+v, want job 2", w.Created(), w.Holder())
	}
	waitBatch(t, s.PutPending(&Job{ID: 4, Function: "x", Unique: "u", Due: 30}, "")) // another function's key
	mustPutSchedule(t, s, &Schedule{ID: 5, Function: "", Unique: "s", Spec: "@hourly", Zone: "UTC", Enabled: true, Next: 40, FireAt: 40}, "")

	s.Close()
	if s, err = Open(path, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	if got, want := s.PendingCounts(), map[string]int{"": 1, "x": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("PendingCounts after reopen %v, want %v", got, want)
	}
	if got := s.Functions(); !reflect.DeepEqual(got, []string{"", "x"}) {
		t.Errorf("Functions %q", got)
	}
	if h, ok, err := s.FindUnique("s"); err != nil || !ok || h.ID != 5 {
		t.Errorf("FindUnique(s): %+v %v %v, want schedule 5", h, ok, err)
	}
	if ids := jobIDs(readAll(t, s)); !reflect.DeepEqual(ids, []uint64{1}) {
		t.Errorf("ready jobs %v, want [1]", ids)
	}
	if res, err := s.Cancel(2); err != nil || res != CancelledJob {
		t.Fatalf("Cancel(2): %v %v", res, err)
	}
	if got := s.PendingCount(""); got != 0 {
		t.Errorf("after the cancel PendingCount(\"\") = %d", got)
	}
}

// TestRecordsTheStoreCannotHold: a record whose keys bbolt would refuse
// is refused before it reaches a batch, with ErrInvalid; one just inside
// the limits is stored.
func TestRecordsTheStoreCannotHold(t *testing.T) {
	long := strings.Repeat("f", MaxFunctionSize)
	tests := []struct {
		name  string
		write func(s *Store) *Write
		ok    bool
	}{
		{"longest function, pending with a unique", func(s *Store) *Write {
			return s.PutPending(&Job{ID: 1, Function: long, Unique: strings.Repeat("u", 64), Due: 1}, "")
		}, true},
		{"longest function, schedule", func(s *Store) *Write {
			return s.PutSchedule(&Schedule{ID: 1, Function: long, Unique: "u", Spec: "@hourly", Zone: "UTC"}, "")
		}, true},
		{"function too long, ready", func(s *Store) *Write { return s.Put(&Job{ID: 1, Function: long + "f"}) }, false},
		{"function too long, pending", func(s *Store) *Write {
			return s.PutPending(&Job{ID: 1, Function: long + "f", Due: 1}, "")
		}, false},
		{"function too long, schedule", func(s *Store) *Write {
			return s.PutSchedule(&Schedule{ID: 1, Function: long + "f", Spec: "@hourly", Zone: "UTC"}, "")
		}, false},
		{"function with NUL", func(s *Store) *Write { return s.Put(&Job{ID: 1, Function: "a\x00b"}) }, false},
		{"unique with NUL", func(s *Store) *Write {
			return s.PutPending(&Job{ID: 1, Function: "f", Unique: "a\x00b", Due: 1}, "")
		}, false},
		{"function and unique over bbolt's key limit", func(s *Store) *Write {
			return s.PutPending(&Job{ID: 1, Function: long, Unique: strings.Repeat("u", 2000), Due: 1}, "")
		}, false},
		{"request key over bbolt's key limit", func(s *Store) *Write {
			return s.PutPending(&Job{ID: 1, Function: "f", Due: 1}, strings.Repeat("r", bolt.MaxKeySize+1))
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTemp(t, Options{NoSync: true})
			w := tt.write(s)
			if !tt.ok {
				select {
				case <-w.Done():
				default:
					t.Fatal("a record the store cannot hold was queued")
				}
				if err := w.Err(); !errors.Is(err, ErrInvalid) {
					t.Fatalf("err %v, want ErrInvalid", err)
				}
				return
			}
			if err := w.Wait(); err != nil || !w.Created() {
				t.Fatalf("created %v, err %v", w.Created(), err)
			}
		})
	}
}
