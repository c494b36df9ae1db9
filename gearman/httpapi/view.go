package httpapi

import (
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
)

// States of an item.
const (
	statePending  = "pending"  // waiting for its time
	statePaused   = "paused"   // a schedule that keeps its place but fires nothing
	stateDisabled = "disabled" // a schedules-file entry with enabled = false
	stateFinished = "finished" // a schedule that will never fire again
	stateFired    = "fired"    // a one-shot job that was released; its runs remain
)

// item is a pending job or a schedule in JSON.
type item struct {
	Handle   string `json:"handle"`
	Kind     string `json:"kind"` // job, schedule; in a sidecar also passthrough or trigger
	State    string `json:"state"`
	Function string `json:"function"`
	Unique   string `json:"unique,omitempty"`
	Priority string `json:"priority"`
	// NextRun is when it fires next (schedules: with jitter), null if
	// never.
	NextRun  *string `json:"next_run"`
	DataSize int     `json:"data_size"`
	// Schedules only.
	Name       string  `json:"name,omitempty"`
	Source     string  `json:"source,omitempty"`
	Spec       string  `json:"spec,omitempty"`
	Zone       string  `json:"zone,omitempty"`
	Missed     string  `json:"missed,omitempty"`
	Overlap    string  `json:"overlap,omitempty"`
	LastRun    *string `json:"last_run,omitempty"`
	LastHandle string  `json:"last_handle,omitempty"`
}

// detail is one item with what is known about its runs: the explain view.
type detail struct {
	item
	// NextRuns are the next runs it would make, up to nextRuns.
	NextRuns []string `json:"next_runs"`
	// Runs are its latest runs, newest first.
	Runs []run `json:"runs"`
}

// run is one firing in JSON.
type run struct {
	Handle string `json:"handle"`
	// Item names the job or schedule it is a run of.
	Item     string  `json:"item"`
	Function string  `json:"function,omitempty"`
	Due      string  `json:"due"`
	Released string  `json:"released"`
	Lateness float64 `json:"lateness_ms"` // from due to released
	// Where it went: a sidecar's upstream and its handle there.
	Upstream       string `json:"upstream,omitempty"`
	UpstreamHandle string `json:"upstream_handle,omitempty"`
	// How it went, as far as the job server knows.
	Assigned      *string  `json:"assigned,omitempty"`
	StartLateness *float64 `json:"start_lateness_ms,omitempty"` // from due to a worker taking it
	Worker        string   `json:"worker,omitempty"`
	Outcome       string   `json:"outcome,omitempty"`
	Ended         *string  `json:"ended,omitempty"`
	Attempts      int      `json:"attempts,omitempty"`
}

// nextRuns is how many next runs the explain view shows of a schedule.
const nextRuns = 5

// formatTime is the API's time format: RFC 3339 in UTC, with the
// fraction of a second only when there is one (jitter).
func formatTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

func timeOrNil(ns int64) *string {
	if ns == 0 {
		return nil
	}
	s := formatTime(ns)
	return &s
}

func priorityName(p uint8) string {
	switch gearman.Priority(p) {
	case gearman.High:
		return "high"
	case gearman.Low:
		return "low"
	}
	return "normal"
}

func jobItem(j *store.Job) item {
	kind := "job"
	switch j.Kind {
	case store.JobPassthrough:
		kind = "passthrough"
	case store.JobTrigger:
		kind = "trigger"
	}
	return item{Handle: j.Handle, Kind: kind, State: statePending, Function: j.Function, Unique: j.Unique,
		Priority: priorityName(j.Priority), NextRun: timeOrNil(j.Due), DataSize: len(j.Data)}
}

func scheduleItem(sc *store.Schedule) item {
	it := item{Handle: sc.Handle, Kind: "schedule", State: scheduleState(sc), Function: sc.Function, Unique: sc.Unique,
		Priority: priorityName(sc.Priority), DataSize: len(sc.Data), Name: sc.Name, Source: sc.Source,
		Spec: sc.Spec, Zone: sc.Zone, Missed: sc.Missed, Overlap: sc.Overlap, LastRun: timeOrNil(sc.Last),
		LastHandle: sc.LastHandle}
	if sc.Next > 0 {
		it.NextRun = timeOrNil(sc.FireAt)
	}
	return it
}

func scheduleState(sc *store.Schedule) string {
	switch {
	case !sc.Enabled:
		return stateDisabled
	case sc.Paused:
		return statePaused
	case sc.Next == 0:
		return stateFinished
	}
	return statePending
}

func dueItem(it *store.DueItem) item {
	if it.Job != nil {
		return jobItem(it.Job)
	}
	return scheduleItem(it.Schedule)
}

// runView is r in JSON; label names its item.
func runView(r *store.Run, label string) run {
	v := run{Handle: r.Handle, Item: label, Function: r.Function, Due: formatTime(r.Due), Released: formatTime(r.Released),
		Lateness: millis(r.Released - r.Due), Upstream: r.Upstream, UpstreamHandle: r.UpstreamHandle,
		Assigned: timeOrNil(r.Assigned), Worker: r.Worker, Outcome: r.Result, Ended: timeOrNil(r.Ended),
		Attempts: r.Attempts}
	if r.Assigned != 0 {
		ms := millis(r.Assigned - r.Due)
		v.StartLateness = &ms
	}
	return v
}

// millis is a duration in ns as milliseconds, to the microsecond.
func millis(ns int64) float64 { return float64(ns/1000) / 1000 }

// scheduleNextRuns returns up to n next runs of sc from its next one,
// jitter included, or nil if its spec no longer parses.
func scheduleNextRuns(sc *store.Schedule, n int) []string {
	out := []string{}
	if sc.Next == 0 {
		return out
	}
	loc, err := time.LoadLocation(sc.Zone)
	if err != nil {
		return out
	}
	spec, err := scheduler.ParseCron(sc.Spec, loc)
	if err != nil {
		return out
	}
	jitter := scheduler.JitterFor(sc)
	for at := time.Unix(0, sc.Next); !at.IsZero() && len(out) < n; at = spec.Next(at) {
		out = append(out, formatTime(at.Add(jitter).UnixNano()))
	}
	return out
}
