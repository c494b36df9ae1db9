package main

// End-to-end tests of the HTTP face (--http) through the real binary:
// the JSON API, probes, pause and resume from the CLI and the admin
// protocol, backups and compaction, the token, and a sidecar's readiness.

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
)

// httpURLPattern finds the URL gearsched logs when it serves HTTP.
var httpURLPattern = regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+)/`)

// httpBase returns the base URL (http://127.0.0.1:PORT) of a gearsched
// started with --http 127.0.0.1:0, from its log.
func httpBase(t *testing.T, d *daemon) string {
	t.Helper()
	var base string
	eventually(t, readyTimeout, func() string {
		if m := httpURLPattern.FindStringSubmatch(d.Stderr()); m != nil {
			base = m[1]
			return ""
		}
		return "gearsched has not logged its HTTP URL"
	})
	return base
}

// apiCall sends one request and returns the status and the body.
func apiCall(t *testing.T, method, url, body, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: ioTimeout}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

// apiJSON sends a request, checks its status and decodes the JSON reply.
func apiJSON(t *testing.T, want int, method, url, body, token string, v any) {
	t.Helper()
	status, b := apiCall(t, method, url, body, token)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, status, want, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	}
}

// apiItem is the part of an item the tests look at.
type apiItem struct {
	Handle, Kind, State, Function, Spec string
	NextRun                             *string  `json:"next_run"`
	NextRuns                            []string `json:"next_runs"`
	Runs                                []struct {
		Handle, Outcome, Worker string
		Lateness                float64 `json:"lateness_ms"`
	}
}

// TestHTTPEndToEnd drives the API of a real job server alongside real
// Gearman clients: what `gearsched at` and SUBMIT_JOB_SCHED made shows up,
// the CLI pauses and the API resumes, a cancel through the API is seen by
// `show schedules`, a job run by `gearman -w` is explained with its
// outcome, and a backup taken while it runs compacts into a database a
// second server serves.
func TestHTTPEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startGearsched(t, "--http", "127.0.0.1:0", "--db", filepath.Join(dir, "live.db"))
	base := httpBase(t, srv)
	server := "--server=" + srv.Addr

	later, _ := runTool(t, "", gearschedBin, "at", server, "+1h", "e2e_later", "payload")
	later = strings.TrimSpace(later)
	c := dialClient(t, srv.Addr)
	sched, err := c.Submit(gearman.SubmitJobSched, "e2e_sched", "nightly", []byte("30"), []byte("2"),
		nil, nil, nil, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ Handle, NextRun string }
	apiJSON(t, 201, "POST", base+"/api/v1/scheduled", `{"function":"e2e_api","in":"2h","unique":"api-1"}`, "", &created)

	var list struct {
		Items  []apiItem
		NotDue []apiItem `json:"not_due"`
	}
	apiJSON(t, 200, "GET", base+"/api/v1/scheduled?limit=10", "", "", &list)
	listed, prev := map[string]bool{}, ""
	for _, it := range list.Items {
		listed[it.Handle] = true
		if *it.NextRun < prev { // RFC 3339 UTC, whole seconds: sorts as time
			t.Errorf("%s due %s listed after one due %s", it.Handle, *it.NextRun, prev)
		}
		prev = *it.NextRun
	}
	if len(list.Items) != 3 || !listed[later] || !listed[created.Handle] || !listed[sched] {
		t.Errorf("listed %+v, want %s, %s and %s", list.Items, later, created.Handle, sched)
	}

	// Pause with the CLI, see it in the API, resume through the API.
	if out, _ := runTool(t, "", gearschedBin, "pause", server, sched); !strings.Contains(out, "paused "+sched) {
		t.Errorf("gearsched pause printed %q", out)
	}
	var it apiItem
	apiJSON(t, 200, "GET", base+"/api/v1/scheduled/"+sched, "", "", &it)
	if it.State != "paused" || it.Spec != "30 2 * * *" || len(it.NextRuns) != 5 {
		t.Errorf("paused schedule explained as %+v", it)
	}
	if out, code := runExit(t, gearschedBin, "pause", server, later); code != 1 || !strings.Contains(out, "one-shot") {
		t.Errorf("gearsched pause of a one-shot job: exit %d, %q", code, out)
	}
	apiJSON(t, 200, "POST", base+"/api/v1/scheduled/"+sched+"/resume", "", "", &it)
	if it.State != "pending" {
		t.Errorf("resumed schedule is %q", it.State)
	}
	if reply := admin(t, srv.Addr, "pause job "+sched); reply != "OK\r\n" {
		t.Errorf("admin pause job: %q", reply)
	}

	// Cancel through the API: gone from show schedules too.
	apiJSON(t, 200, "DELETE", base+"/api/v1/scheduled/"+created.Handle, "", "", nil)
	if rows := admin(t, srv.Addr, "show schedules"); strings.Contains(rows, created.Handle+"\t") {
		t.Errorf("show schedules still lists the cancelled job:\n%s", rows)
	}
	apiJSON(t, 404, "GET", base+"/api/v1/scheduled/"+created.Handle, "", "", nil)

	// A job due in a second, run by the gearman CLI: its run is explained.
	soon, _ := runTool(t, "", gearschedBin, "at", server, "+1s", "e2e_now", "hello")
	soon = strings.TrimSpace(soon)
	worker := startTool(t, "", "gearman", "-h", "127.0.0.1", "-p", strconv.Itoa(srv.Port), "-w", "-c", "1",
		"-f", "e2e_now", "--", "cat")
	worker.wait(t)
	eventually(t, 10*time.Second, func() string {
		apiJSON(t, 200, "GET", base+"/api/v1/scheduled/"+soon, "", "", &it)
		if len(it.Runs) == 1 && it.Runs[0].Outcome == "completed" {
			return ""
		}
		return "run not explained with its outcome yet"
	})
	if it.State != "fired" || it.Runs[0].Lateness < 0 || !strings.HasPrefix(it.Runs[0].Worker, "127.0.0.1") {
		t.Errorf("fired job explained as %+v", it)
	}

	var ready struct{ Ready bool }
	apiJSON(t, 200, "GET", base+"/readyz", "", "", &ready)
	if !ready.Ready {
		t.Error("readyz: not ready")
	}
	if status, m := apiCall(t, "GET", base+"/metrics", "", ""); status != 200 || !strings.Contains(string(m), "gearsched_build_info") {
		t.Errorf("/metrics on the HTTP listener: status %d, %.200s", status, m)
	}
	if status, page := apiCall(t, "GET", base+"/", "", ""); status != 200 || !strings.Contains(string(page), sched) {
		t.Errorf("web page: status %d, lists the schedule: %v", status, strings.Contains(string(page), sched))
	}

	// Back up while it runs, compact the copy, serve the compact one.
	backup, compact := filepath.Join(dir, "backup.db"), filepath.Join(dir, "compact.db")
	if out, _ := runTool(t, "", gearschedBin, "backup", "--http", strings.TrimPrefix(base, "http://"), backup); !strings.Contains(out, "backed up") {
		t.Errorf("gearsched backup printed %q", out)
	}
	if out, code := runExit(t, gearschedBin, "compact", filepath.Join(dir, "live.db"), compact); code != 1 || !strings.Contains(out, "in use") {
		t.Errorf("compact of the live database: exit %d, %q", code, out)
	}
	if out, _ := runTool(t, "", gearschedBin, "compact", backup, compact); !strings.Contains(out, "compacted") {
		t.Errorf("gearsched compact printed %q", out)
	}
	copySrv := startGearsched(t, "--db", compact)
	rows := admin(t, copySrv.Addr, "show schedules")
	if !strings.Contains(rows, later+"\t") || !strings.Contains(rows, sched+"\t") {
		t.Errorf("server on the compacted backup lists:\n%s", rows)
	}
}

// TestHTTPToken: with --http-token-file, changes need the token and reads
// do not; without one, gearsched refuses to serve HTTP off loopback.
func TestHTTPToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("sesame\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startGearsched(t, "--http", "127.0.0.1:0", "--http-token-file", tokenFile)
	base := httpBase(t, srv)
	body := `{"function":"tok","in":"1h"}`
	if status, b := apiCall(t, "POST", base+"/api/v1/scheduled", body, ""); status != 401 || !strings.Contains(string(b), "Bearer") {
		t.Errorf("POST without the token: %d %s", status, b)
	}
	apiJSON(t, 201, "POST", base+"/api/v1/scheduled", body, "sesame", nil)
	apiJSON(t, 200, "GET", base+"/api/v1/scheduled", "", "", nil)
	if _, code := runExit(t, gearschedBin, "backup", "--http", strings.TrimPrefix(base, "http://"), filepath.Join(dir, "b.db")); code != 1 {
		t.Errorf("backup without the token exited %d, want 1", code)
	}
	runTool(t, "", gearschedBin, "backup", "--http", strings.TrimPrefix(base, "http://"), "--token-file", tokenFile,
		filepath.Join(dir, "b.db"))

	for _, args := range [][]string{
		{"serve", "--http", "0.0.0.0:0"},
		{"serve", "--http", ":4780"},
		{"serve", "--http", "127.0.0.1"},
		{"serve", "--http", "127.0.0.1:0", "--http-token-file", filepath.Join(dir, "missing")},
		{"serve", "--http", "", "--http-token-file", tokenFile},
	} {
		out, code := runExit(t, gearschedBin, append(args, "--db", filepath.Join(dir, "never.db"))...)
		if code != 2 || !strings.Contains(out, "--http") {
			t.Errorf("gearsched %v: exit %d, %q; want 2 with a reason naming --http", args, code, out)
		}
	}
}

// TestHTTPSidecar: a sidecar's API shows its upstream, and /readyz follows
// whether gearmand is reachable.
func TestHTTPSidecar(t *testing.T) {
	t.Parallel()
	gd := startGearmand(t)
	side := startSidecar(t, gd, "--http", "127.0.0.1:0")
	base := httpBase(t, side)
	var ups struct {
		Mode      string
		Upstreams []struct {
			Addr string
			Up   bool
		}
	}
	eventually(t, readyTimeout, func() string {
		apiJSON(t, 200, "GET", base+"/api/v1/upstreams", "", "", &ups)
		if ups.Mode == "sidecar" && len(ups.Upstreams) == 1 && ups.Upstreams[0].Addr == gd.Addr && ups.Upstreams[0].Up {
			return ""
		}
		return "upstream not up"
	})
	apiJSON(t, 200, "GET", base+"/readyz", "", "", nil)
	gd.stop()
	eventually(t, 3*pingIntervalForTests, func() string {
		if status, _ := apiCall(t, "GET", base+"/readyz", "", ""); status != 503 {
			return "readyz still " + strconv.Itoa(status) + " with gearmand stopped"
		}
		return ""
	})
	apiJSON(t, 200, "GET", base+"/healthz", "", "", nil)
}

// pingIntervalForTests bounds how long a sidecar takes to notice a
// stopped upstream: it pings every 5 s, or sees the connection close.
const pingIntervalForTests = 5 * time.Second
