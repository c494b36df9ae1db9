package sidecar

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearsched/gearsched/store"
)

// TestControlRerunFindsFirstRun: gearmand runs a control job again when
// the worker's connection drops before WORK_COMPLETE. The second run, with
// the same control-job unique, must return the first run's job instead of
// scheduling a second one; another control job schedules its own.
func TestControlRerunFindsFirstRun(t *testing.T) {
	srv, _ := newSidecarServer(t, openStore(t, nil))
	c := NewControl(ControlConfig{Holder: srv})
	payload := []byte(`{"function":"f","in":"1h","data":"x"}`)
	handles := map[string]int{}
	for _, unique := range []string{"job-1", "job-1", "job-2"} {
		out, err := c.run(DefaultScheduleFunction, unique, payload)
		if err != nil {
			t.Fatal(err)
		}
		var res scheduleResult
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatal(err)
		}
		handles[res.Handle]++
	}
	if len(handles) != 2 {
		t.Errorf("handles %v: want the rerun of job-1 to return its first handle, job-2 its own", handles)
	}
}

// TestControlRerunAfterForward: gearmand runs a control job again after
// the job it scheduled was already forwarded; the rerun returns the first
// run's handle instead of scheduling again.
func TestControlRerunAfterForward(t *testing.T) {
	st := openStore(t, nil)
	srv, _ := newSidecarServer(t, st)
	ctl := NewControl(ControlConfig{Holder: srv})
	run := func() string {
		out, err := ctl.run(DefaultScheduleFunction, "control-job-1", []byte(`{"function":"f","in":"0s","data":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		var res scheduleResult
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatal(err)
		}
		return res.Handle
	}
	h := run()
	id, _ := strconv.ParseUint(strings.TrimPrefix(h, testPrefix+":"), 10, 64)
	// What the forwarder commits once gearmand acknowledged the job.
	if _, err := st.Forwarded(store.Forward{Done: []uint64{id}, Ledger: []store.Fired{{ID: id, Upstream: "127.0.0.1:1",
		UpstreamHandle: "H:up:1", At: time.Now().UnixNano()}}}); err != nil {
		t.Fatal(err)
	}
	if again := run(); again != h {
		t.Errorf("the rerun scheduled %s; want the first run's %s", again, h)
	}
}
