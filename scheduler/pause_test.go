package scheduler

import (
	"strings"
	"testing"
	"time"

	"github.com/gearsched/gearsched/store"
)

// TestPausedScheduleFiresNothing: a schedule paused from t0-30s fires
// nothing while paused, though it falls due every minute; resumed at
// t0+10m30s, the runs that fell due meanwhile are missed runs and its
// policy decides which run, the daemon having been up all along.
func TestPausedScheduleFiresNothing(t *testing.T) {
	start := t0.Add(-time.Hour) // the daemon started long before
	resume := t0.Add(10*time.Minute + 30*time.Second)
	for _, tc := range []struct {
		name   string
		missed string
		cap    int
		want   []int // minutes after t0 that fire at the resume
	}{
		{"once", MissedOnce, 0, []int{10}},
		{"skip", MissedSkip, 0, nil},
		{"all capped", MissedAll, 2, []int{9, 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, sink, st := newTest(t)
			putSchedule(t, st, minutely(tc.missed, tc.cap, time.Hour))
			if _, _, err := st.SetPaused(7, true, t0.Add(-30*time.Second).UnixNano()); err != nil {
				t.Fatal(err)
			}
			for m := 0; m <= 10; m++ {
				tick(t, s, t0.Add(time.Duration(m)*time.Minute+time.Second), start)
			}
			if len(sink.fired) != 0 {
				t.Fatalf("a paused schedule fired %v", sink.fired)
			}
			if sc := mustSchedule(t, st, 7); sc.Next != t0.UnixNano() {
				t.Errorf("paused schedule's next run moved to %v, want it kept at t0", time.Unix(0, sc.Next).UTC())
			}
			if _, _, err := st.SetPaused(7, false, resume.UnixNano()); err != nil {
				t.Fatal(err)
			}
			tick(t, s, resume, start)
			if want := minuteUniques(tc.want); strings.Join(sink.fired, " ") != want {
				t.Errorf("at the resume fired %v, want %v", sink.fired, want)
			}
			// From then on it runs as before.
			checkEleventhMinute(t, s, sink, start)
		})
	}
}

// TestReloadKeepsPause: the schedules file does not record a pause, so a
// reload, with the schedule unchanged or changed, leaves it paused.
func TestReloadKeepsPause(t *testing.T) {
	_, _, st := newTest(t)
	def := minutely(MissedOnce, 0, time.Hour)
	alloc := func() (uint64, string, error) { return 7, "H:t:7", nil }
	if _, err := Sync(st, []*store.Schedule{def}, t0, alloc); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.SetPaused(7, true, t0.UnixNano()); err != nil {
		t.Fatal(err)
	}
	changed := *def
	changed.Data = []byte("new payload")
	for _, defs := range [][]*store.Schedule{{def}, {&changed}} {
		if _, err := Sync(st, defs, t0, alloc); err != nil {
			t.Fatal(err)
		}
		if sc := mustSchedule(t, st, 7); !sc.Paused {
			t.Fatalf("reload with data %q resumed the schedule", defs[0].Data)
		}
	}
}
