package metrics

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/gearman/server"
	"github.com/gearsched/gearsched/gearman/sidecar"
	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
)

// TestJobServerMetrics drives a real job server, store and scheduler and
// reads each family of series off the page: counters move with what
// clients and workers do, gauges show the queues and the store, and the
// lateness histograms observe a scheduled job released 2 s late and
// handed out 3 s late.
func TestJobServerMetrics(t *testing.T) {
	r := newRig(t, 0)
	c, w := dial(t, r.addr), dial(t, r.addr)
	c.submit(gearman.SubmitJobHighBg, "f", "", "high")
	c.submit(gearman.SubmitJobBg, "f", "", "normal")
	due := rigStart.Add(time.Minute)
	c.submit(gearman.SubmitJobEpoch, "f", "", strconv.FormatInt(due.Unix(), 10), "epoch")
	c.submit(gearman.SubmitJobSched, "g", "nightly", "30", "2", "", "", "", "sched") // 02:30 UTC daily
	far := c.submit(gearman.SubmitJobEpoch, "h", "", strconv.FormatInt(due.Add(24*time.Hour).Unix(), 10), "far")
	if reply, err := c.Admin("cancel job " + far); err != nil || !strings.HasPrefix(reply, "OK") {
		t.Fatalf("cancel job: %q %v", reply, err)
	}

	w.register("f")
	w.send(gearman.WorkComplete, w.grab(), "done") // the HIGH job
	w.send(gearman.WorkFail, w.grab())             // the NORMAL one
	w.sync()
	r.clock.Set(due.Add(2 * time.Second))
	r.tick(t)
	r.clock.Set(due.Add(3 * time.Second))
	w.grab() // the epoch job, left running

	page, fams := scrape(t, r.m)
	nextRun := time.Date(2026, 6, 2, 2, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"gearsched_jobs_submitted_total", []string{"function", "f"}, 3},
		{"gearsched_jobs_submitted_total", []string{"function", "g"}, 1},
		{"gearsched_jobs_submitted_total", []string{"function", "h"}, 1},
		{"gearsched_jobs_completed_total", []string{"function", "f"}, 1},
		{"gearsched_jobs_failed_total", []string{"function", "f"}, 1},
		{"gearsched_jobs_retried_total", []string{"function", "f"}, 0},
		{"gearsched_jobs_running", []string{"function", "f", "priority", "normal"}, 1},
		{"gearsched_jobs_running", []string{"function", "f", "priority", "high"}, 0},
		{"gearsched_jobs_queued", []string{"function", "f", "priority", "normal"}, 0},
		{"gearsched_workers", []string{"function", "f"}, 1},
		{"gearsched_schedules", []string{"function", "g"}, 1},
		{"gearsched_scheduled_jobs_pending", []string{"function", "f"}, 0},
		{"gearsched_scheduled_jobs_pending", []string{"function", "h"}, 0},
		{"gearsched_scheduled_next_due_timestamp_seconds", nil, float64(nextRun.Unix())},
		{"gearsched_cancels_total", []string{"kind", "pending"}, 1},
		{"gearsched_cancels_total", []string{"kind", "live"}, 0},
		{"gearsched_connections", nil, 2},
		{"gearsched_connections_accepted_total", nil, 2},
		{"gearsched_connections_refused_total", nil, 0},
		{"gearsched_slow_consumers_closed_total", nil, 0},
		{"gearsched_store_commit_errors_total", nil, 0},
		{"gearsched_scheduler_release_errors_total", nil, 0},
		{"gearsched_schedule_runs_skipped_total", []string{"reason", "overlap"}, 0},
		{"gearsched_build_info", []string{"version", "test"}, 1},
	} {
		if got := value(t, fams, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}

	for _, tc := range []struct {
		stage                string
		late                 float64
		emptyBelow, fullFrom float64 // bucket bounds around late
	}{
		{"released", 2, 1, 2.5},
		{"assigned", 3, 2.5, 5},
	} {
		h := histogram(t, fams, "gearsched_lateness_seconds", "stage", tc.stage)
		if h.GetSampleCount() != 1 || h.GetSampleSum() != tc.late {
			t.Errorf("lateness %s: %d observations summing %v; want one of %v", tc.stage, h.GetSampleCount(), h.GetSampleSum(), tc.late)
		}
		for _, b := range h.Bucket {
			if b.GetUpperBound() == tc.emptyBelow && b.GetCumulativeCount() != 0 ||
				b.GetUpperBound() == tc.fullFrom && b.GetCumulativeCount() != 1 {
				t.Errorf("lateness %s: bucket le=%v holds %d", tc.stage, b.GetUpperBound(), b.GetCumulativeCount())
			}
		}
		// 1 ms to 10 s, then the +Inf bucket the text format adds.
		if len(h.Bucket) != 14 || h.Bucket[0].GetUpperBound() != 0.001 || h.Bucket[12].GetUpperBound() != 10 {
			t.Errorf("lateness buckets %v; want 1 ms to 10 s", h.Bucket)
		}
	}
	if h := histogram(t, fams, "gearsched_store_commit_duration_seconds"); h.GetSampleCount() == 0 {
		t.Error("no store commit timed")
	}
	if h := histogram(t, fams, "gearsched_store_commit_writes"); h.GetSampleSum() < 5 {
		t.Errorf("%v writes committed; want at least the 5 submissions", h.GetSampleSum())
	}
	histogram(t, fams, "gearsched_store_checkpoint_duration_seconds")
	if size := value(t, fams, "gearsched_store_size_bytes"); size <= 0 {
		t.Errorf("store size %v", size)
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if fams[name] == nil {
			t.Errorf("no %s: the Go runtime and process collectors are missing", name)
		}
	}
	for name := range fams {
		if strings.HasPrefix(name, "gearsched_upstream_") {
			t.Errorf("job-server mode has sidecar series %s", name)
		}
	}
	problems, err := promlint.New(strings.NewReader(page)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "gearsched_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}

// TestFunctionCap: with a cap of 3 the first three functions by name get
// their own label and the rest add up under function="other"; functions
// seen later fold into "other" even when their name sorts first, and so
// do functions only the store knows (pending jobs).
func TestFunctionCap(t *testing.T) {
	r := newRig(t, 3)
	c := dial(t, r.addr)
	for _, fn := range []string{"e", "d", "c", "b", "a", "a"} {
		c.submit(gearman.SubmitJobBg, fn, "", "x")
	}
	_, fams := scrape(t, r.m)
	want := map[string]float64{"a": 2, "b": 1, "c": 1, "other": 2}
	checkFunctions(t, fams, want)
	if got := value(t, fams, "gearsched_jobs_queued", "function", "other", "priority", "normal"); got != 2 {
		t.Errorf("jobs queued under other: %v, want 2", got)
	}

	c.submit(gearman.SubmitJobBg, "0", "", "x")
	handles, err := server.NewHandles(r.st, "H:x")
	if err != nil {
		t.Fatal(err)
	}
	id, handle, err := handles.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.st.PutPending(&store.Job{ID: id, Handle: handle, Function: "zz", Due: rigStart.Add(time.Hour).UnixNano()}, "").Wait(); err != nil {
		t.Fatal(err)
	}
	_, fams = scrape(t, r.m)
	want["other"] = 3
	checkFunctions(t, fams, want)
	if got := value(t, fams, "gearsched_scheduled_jobs_pending", "function", "other"); got != 1 {
		t.Errorf("pending jobs under other: %v, want 1 (function zz)", got)
	}
}

// checkFunctions checks the function label's values and the submissions
// counted under each.
func checkFunctions(t *testing.T, fams map[string]*dto.MetricFamily, want map[string]float64) {
	t.Helper()
	if got := labelValues(fams, "gearsched_jobs_submitted_total", "function"); !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
		t.Errorf("function labels %q, want %q", got, slices.Sorted(maps.Keys(want)))
	}
	for fn, n := range want {
		if got := value(t, fams, "gearsched_jobs_submitted_total", "function", fn); got != n {
			t.Errorf("submitted under %q: %v, want %v", fn, got, n)
		}
	}
}

// TestOddFunctionNames: function names that are not valid UTF-8, or are
// long, become valid, bounded label values instead of breaking the page.
func TestOddFunctionNames(t *testing.T) {
	r := newRig(t, 0)
	c := dial(t, r.addr)
	c.submit(gearman.SubmitJobBg, "bad\xff\xfename", "", "x")
	c.submit(gearman.SubmitJobBg, strings.Repeat("é", 100), "", "x") // 200 bytes
	_, fams := scrape(t, r.m)
	want := []string{"bad\uFFFDname", strings.Repeat("é", maxLabelBytes/2)}
	slices.Sort(want)
	if got := labelValues(fams, "gearsched_jobs_submitted_total", "function"); !slices.Equal(got, want) {
		t.Errorf("function labels %q, want %q", got, want)
	}
}

// TestNilSources: required sources must be there; an optional one given
// as a nil pointer (the forwarder of a job server) counts as absent, so the
// page is a job server's instead of a panic at the first scrape.
func TestNilSources(t *testing.T) {
	r := newRig(t, 0)
	if _, err := New(Config{Store: r.st}); err == nil {
		t.Error("New without a server succeeded")
	}
	if _, err := New(Config{Store: (*store.Store)(nil), Server: r.srv}); err == nil {
		t.Error("New with a nil *store.Store succeeded")
	}
	if _, err := New(Config{Store: r.st, Server: r.srv, MaxFunctions: -1}); err == nil {
		t.Error("New with a negative MaxFunctions succeeded")
	}
	m, err := New(Config{Store: r.st, Server: r.srv, Forwarder: (*sidecar.Forwarder)(nil), Scheduler: (*scheduler.Scheduler)(nil)})
	if err != nil {
		t.Fatal(err)
	}
	_, fams := scrape(t, m)
	if find(fams, "gearsched_lateness_seconds", map[string]string{"stage": "assigned"}) == nil || fams["gearsched_upstream_up"] != nil {
		t.Error("a nil forwarder did not give a job server's page")
	}
}

// TestFailedReadLeavesTheRest: when a read fails during a scrape (here the
// database file's size, its file removed), the page still serves every
// other series.
func TestFailedReadLeavesTheRest(t *testing.T) {
	r := newRig(t, 0)
	if err := os.Remove(r.st.Path()); err != nil {
		t.Fatal(err)
	}
	_, fams := scrape(t, r.m)
	if fams["gearsched_store_size_bytes"] != nil {
		t.Error("a size was reported for a removed file")
	}
	value(t, fams, "gearsched_connections")
	histogram(t, fams, "gearsched_store_commit_duration_seconds")
}

// TestMethodNotAllowed: /metrics is read-only; other methods get 405 and
// a JSON reason.
func TestMethodNotAllowed(t *testing.T) {
	r := newRig(t, 0)
	for _, method := range []string{http.MethodPost, http.MethodDelete, http.MethodPut} {
		rec := httptest.NewRecorder()
		r.m.ServeHTTP(rec, httptest.NewRequest(method, "/metrics", strings.NewReader("x")))
		var body struct{ Error string }
		if rec.Code != http.StatusMethodNotAllowed || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Error == "" {
			t.Errorf("%s /metrics: %d %q; want 405 with a JSON error", method, rec.Code, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	r.m.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("HEAD /metrics: %d", rec.Code)
	}
}
