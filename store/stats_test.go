package store

import (
	"errors"
	"os"
	"reflect"
	"testing"
)

// TestStatsCountCommits: committed transactions, their writes and failed
// ones are counted, each commit is timed, and the file's size is the one
// on disk.
func TestStatsCountCommits(t *testing.T) {
	fail := false
	s, path := openTemp(t, Options{NoSync: true, BeforeCommit: func() error {
		if fail {
			return errors.New("injected")
		}
		return nil
	}})
	before := mustStats(t, s)
	for i := range 3 {
		waitBatch(t, s.Put(&Job{ID: uint64(i + 1), Function: "f"}))
	}
	fail = true
	if err := s.Put(&Job{ID: 9, Function: "f"}).Wait(); err == nil {
		t.Fatal("injected failure did not fail the commit")
	}
	fail = false
	st := mustStats(t, s)
	if got := st.Commits - before.Commits; got != 3 {
		t.Errorf("commits +%d, want +3", got)
	}
	if got := st.Writes - before.Writes; got != 3 {
		t.Errorf("writes +%d, want +3", got)
	}
	// The failed batch is tried twice: whole, then its write alone (see
	// Store.commit), and both transactions fail.
	if got := st.CommitErrors - before.CommitErrors; got != 2 {
		t.Errorf("commit errors +%d, want +2", got)
	}
	// Every transaction is timed and sized, the failed ones included.
	if got := st.CommitDuration.Count - before.CommitDuration.Count; got != 5 {
		t.Errorf("timed commits +%d, want +5", got)
	}
	if got := st.CommitWrites.Sum - before.CommitWrites.Sum; got != 5 {
		t.Errorf("writes per commit summed +%d, want +5", got)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.FileSize != fi.Size() || st.FileSize == 0 {
		t.Errorf("file size %d, want %d", st.FileSize, fi.Size())
	}
}

func TestScheduleCounts(t *testing.T) {
	s, _ := openTemp(t, Options{NoSync: true})
	mustPutSchedule(t, s, &Schedule{ID: 1, Function: "g", Unique: "a", Spec: "@hourly", Zone: "UTC", Enabled: true, Next: 5, FireAt: 5}, "")
	mustPutSchedule(t, s, &Schedule{ID: 2, Function: "g", Unique: "b", Spec: "@hourly", Zone: "UTC", Enabled: true, Next: 5, FireAt: 5}, "")
	if got, want := s.ScheduleCounts(), map[string]int{"g": 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("ScheduleCounts %v, want %v", got, want)
	}
}

func mustStats(t *testing.T, s *Store) Stats {
	t.Helper()
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}
