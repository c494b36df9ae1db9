package store

import (
	"testing"
)

// TestSetPaused: a paused schedule keeps its next run but leaves the due
// index, at a new generation; resuming puts it back and records when.
func TestSetPaused(t *testing.T) {
	s, _ := openTemp(t, Options{NoSync: true})
	mustPutSchedule(t, s, &Schedule{ID: 1, Handle: "H:t:1", Source: SourceProtocol, Spec: "@hourly", Zone: "UTC",
		Function: "f", Enabled: true, Next: 3600e9, FireAt: 3600e9}, "")
	waitBatch(t, s.PutPending(&Job{ID: 2, Function: "f", Due: 100}, ""))
	before, _ := s.GetSchedule(1)

	res, sc, err := s.SetPaused(1, true, 50)
	if err != nil || res != PauseDone || !sc.Paused || sc.Next != 3600e9 || sc.Gen != before.Gen+1 {
		t.Fatalf("pause = %v %+v %v; want done, paused, next kept, generation %d", res, sc, err, before.Gen+1)
	}
	if due := dueIDs(t, s); len(due) != 1 || due[0] != 2 {
		t.Errorf("due index after pause = %v, want only the job [2]", due)
	}
	if res, sc2, err := s.SetPaused(1, true, 60); err != nil || res != PauseDone || sc2.Gen != sc.Gen {
		t.Errorf("pausing again = %v gen %d %v; want done, unchanged generation %d", res, sc2.Gen, err, sc.Gen)
	}
	res, sc, err = s.SetPaused(1, false, 70)
	if err != nil || res != PauseDone || sc.Paused || sc.ResumedAt != 70 || sc.Gen != before.Gen+2 {
		t.Fatalf("resume = %v %+v %v; want done, resumed at 70, generation %d", res, sc, err, before.Gen+2)
	}
	if due := dueIDs(t, s); len(due) != 2 || due[1] != 1 {
		t.Errorf("due index after resume = %v, want [2 1]", due)
	}
	if res, _, err := s.SetPaused(2, true, 80); err != nil || res != PauseJob {
		t.Errorf("pausing a pending job = %v %v, want PauseJob", res, err)
	}
	if res, _, err := s.SetPaused(99, true, 80); err != nil || res != PauseNotFound {
		t.Errorf("pausing nothing = %v %v, want PauseNotFound", res, err)
	}
}
