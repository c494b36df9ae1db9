package store

import (
	"fmt"
	"slices"
	"testing"
)

func runIDs(runs []Run) []uint64 {
	var ids []uint64
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	return ids
}

func mustRuns(t *testing.T, s *Store, item uint64) []Run {
	t.Helper()
	runs, err := s.Runs(item)
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

func mustRecent(t *testing.T, s *Store) []Run {
	t.Helper()
	runs, err := s.RecentRuns(1000)
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

// fireOccurrence fires schedule sc's occurrence as job id at release time
// at, as the job server does.
func fireOccurrence(t *testing.T, s *Store, sc *Schedule, id uint64, due, at int64) {
	t.Helper()
	cur, err := s.GetSchedule(sc.ID)
	if err != nil || cur == nil {
		t.Fatalf("GetSchedule(%d): %v %v", sc.ID, cur, err)
	}
	cur.Next, cur.FireAt, cur.Last = due+10, due+10, due
	job := &Job{ID: id, Handle: fmt.Sprintf("H:t:%d", id), Function: sc.Function, Due: due}
	if _, fired, err := s.Fire(at, nil, []Occurrence{{Job: job, Schedule: cur}}, nil); err != nil || len(fired) != 1 {
		t.Fatalf("Fire: %v, fired %d", err, len(fired))
	}
}

// TestRunRecordedWithFireAndOutcomeWithFinish: the commit that fires a
// pending job records its run; the delete of the finished job records
// the outcome, and survives a reopen.
func TestRunRecordedWithFireAndOutcomeWithFinish(t *testing.T) {
	s, path := openTemp(t, Options{})
	waitBatch(t, s.PutPending(&Job{ID: 5, Handle: "H:t:5", Function: "f", Due: 1000}, ""))
	waitBatch(t, s.Put(&Job{ID: 6, Handle: "H:t:6", Function: "plain"}))
	if moved, _, err := s.Fire(1250, []uint64{5}, nil, nil); err != nil || len(moved) != 1 {
		t.Fatalf("Fire: %v, moved %d", err, len(moved))
	}
	want := Run{Item: 5, ID: 5, Handle: "H:t:5", Function: "f", Due: 1000, Released: 1250}
	if got := mustRuns(t, s, 5); len(got) != 1 || got[0] != want {
		t.Fatalf("runs after Fire = %+v, want [%+v]", got, want)
	}
	out := Outcome{Result: ResultCompleted, Worker: "127.0.0.1 w1", Assigned: 1300, Ended: 1400, Attempts: 1}
	s.Finish(5, out)
	s.Finish(6, Outcome{Result: ResultCompleted}) // a plain job: no run
	waitBatch(t, s.ReserveIDs(1).w)               // a write after them: they are committed
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want.Outcome = out
	if got := mustRuns(t, s, 5); len(got) != 1 || got[0] != want {
		t.Errorf("runs after Finish and reopen = %+v, want [%+v]", got, want)
	}
	if got := mustRuns(t, s, 6); len(got) != 0 {
		t.Errorf("plain job has runs %+v", got)
	}
	if got := readAll(t, s); len(got) != 0 {
		t.Errorf("Finish left ready jobs %v", jobIDs(got))
	}
}

// TestRunsBounded: an item keeps its latest RunsPerItem runs, the store
// its latest MaxRuns, and a schedule's runs go with it.
func TestRunsBounded(t *testing.T) {
	s, _ := openTemp(t, Options{NoSync: true, MaxRuns: 15})
	sc := &Schedule{ID: 1, Handle: "H:t:1", Source: SourceProtocol, Spec: "@every 10s", Zone: "UTC", Function: "f",
		Enabled: true, Next: 100, FireAt: 100}
	mustPutSchedule(t, s, sc, "")
	for i := range 12 {
		fireOccurrence(t, s, sc, uint64(100+i), int64(100+10*i), int64(101+10*i))
	}
	runs := mustRuns(t, s, 1)
	if got, want := runIDs(runs), []uint64{111, 110, 109, 108, 107, 106, 105, 104, 103, 102}; !slices.Equal(got, want) {
		t.Errorf("schedule's runs = %v, want the latest %d, newest first: %v", got, RunsPerItem, want)
	}
	for i := range 8 {
		id := uint64(200 + i)
		waitBatch(t, s.PutPending(&Job{ID: id, Function: "g", Due: 500}, ""))
		if _, _, err := s.Fire(int64(1000+i), []uint64{id}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	recent := mustRecent(t, s)
	want := []uint64{207, 206, 205, 204, 203, 202, 201, 200, 111, 110, 109, 108, 107, 106, 105}
	if got := runIDs(recent); !slices.Equal(got, want) {
		t.Errorf("recent runs = %v, want the latest 15: %v", got, want)
	}
	if res, err := s.Cancel(1); err != nil || res != CancelledSchedule {
		t.Fatalf("Cancel = %v, %v", res, err)
	}
	if got := mustRuns(t, s, 1); len(got) != 0 {
		t.Errorf("cancelled schedule keeps runs %v", runIDs(got))
	}
	if got := runIDs(mustRecent(t, s)); !slices.Equal(got, want[:8]) {
		t.Errorf("recent runs after the cancel = %v, want %v", got, want[:8])
	}
	// The count followed: 7 more one-shot runs fit before the oldest go.
	for i := range 7 {
		id := uint64(300 + i)
		waitBatch(t, s.PutPending(&Job{ID: id, Function: "g", Due: 500}, ""))
		if _, _, err := s.Fire(int64(2000+i), []uint64{id}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := mustRecent(t, s); len(got) != 15 || got[14].ID != 200 {
		t.Errorf("after 7 more: %d runs, oldest %d; want 15, oldest 200", len(got), got[len(got)-1].ID)
	}
}

// TestForwardedRuns: the sidecar's commit records where each job went;
// the run of a schedule cancelled meanwhile is not recorded, and pruning
// the ledger prunes the runs.
func TestForwardedRuns(t *testing.T) {
	s, _ := openTemp(t, Options{NoSync: true})
	waitBatch(t, s.PutPending(&Job{ID: 1, Handle: "H:t:1", Function: "f", Due: 100}, ""))
	mustPutSchedule(t, s, &Schedule{ID: 2, Handle: "H:t:2", Source: SourceProtocol, Spec: "@hourly", Zone: "UTC",
		Function: "f", Enabled: true, Next: 100, FireAt: 100}, "")
	runs := []Run{
		{Item: 1, ID: 1, Handle: "H:t:1", Due: 100, Released: 150, Upstream: "gm:4730", UpstreamHandle: "H:gm:1"},
		{Item: 2, ID: 3, Handle: "H:t:3", Due: 100, Released: 150, Upstream: "gm:4730", UpstreamHandle: "H:gm:2"},
		{Item: 9, ID: 4, Handle: "H:t:4", Due: 100, Released: 150, Upstream: "gm:4730", UpstreamHandle: "H:gm:3"},
	}
	ledger := []Fired{{ID: 1, At: 150}, {ID: 3, At: 150}, {ID: 4, At: 150}}
	if _, err := s.Forwarded(Forward{Done: []uint64{1}, Ledger: ledger, Runs: runs}); err != nil {
		t.Fatal(err)
	}
	if got := mustRuns(t, s, 1); len(got) != 1 || got[0] != runs[0] {
		t.Errorf("job's runs = %+v, want [%+v]", got, runs[0])
	}
	if got := mustRuns(t, s, 2); len(got) != 1 || got[0] != runs[1] {
		t.Errorf("schedule's runs = %+v, want [%+v]", got, runs[1])
	}
	if got := mustRuns(t, s, 9); len(got) != 0 {
		t.Errorf("run of a schedule that is gone was recorded: %+v", got)
	}
	if n, err := s.PruneFired(200, 10); err != nil || n != 3 {
		t.Fatalf("PruneFired = %d, %v", n, err)
	}
	if got := mustRecent(t, s); len(got) != 0 {
		t.Errorf("runs left after pruning the ledger: %+v", got)
	}
}

// BenchmarkFire measures releasing pending jobs in batches of 1,000 (the
// scheduler's batch), each commit recording the batch's runs, and the
// jobs' Finish, with the run records already at their bound (MaxRuns),
// so that every run written also prunes the oldest. ns/op is per job.
//
//	go test ./store -run '^$' -bench Fire -benchtime 200000x
func BenchmarkFire(b *testing.B) {
	s, _ := openTemp(b, Options{MaxRuns: 10_000})
	const batch = 1000
	payload := []byte("0123456789")
	id := uint64(0)
	fire := func(n int) {
		for n > 0 {
			k := min(n, batch)
			ids := make([]uint64, k)
			var last *Write
			for i := range ids {
				id++
				ids[i] = id
				last = s.PutPending(&Job{ID: id, Handle: "H:b:" + fmt.Sprint(id), Function: "f",
					Unique: fmt.Sprintf("%036d", id), Due: int64(id), Data: payload}, "")
			}
			if err := last.Wait(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, _, err := s.Fire(int64(id), ids, nil, nil); err != nil {
				b.Fatal(err)
			}
			for _, j := range ids {
				s.Finish(j, Outcome{Result: ResultCompleted, Ended: int64(j)})
			}
			b.StopTimer()
			n -= k
		}
	}
	fire(10_000) // fill the runs to their bound
	waitBatch(b, s.ReserveIDs(1).w)
	b.ResetTimer()
	b.StopTimer()
	fire(b.N)
	waitBatch(b, s.ReserveIDs(1).w) // the last Finish writes
}
