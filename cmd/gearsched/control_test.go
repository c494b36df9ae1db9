package main

// Integration tests of the sidecar's control functions: `gearsched serve
// --upstream` registers gearsched.schedule and gearsched.cancel as a worker
// on gearmand, so that clients which only know gearmand can schedule jobs.
// Each test runs the real gearmand and a sidecar in front of it; the
// clients (PHP's GearmanClient, the `gearman` tool) talk to gearmand only,
// and the scheduled jobs reach `gearman -w` workers on gearmand.

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Return codes of libgearman (libgearman-1.0/return.h) seen by PHP.
const (
	gearmanSuccess  = "0"
	gearmanWorkFail = "24"
)

// sidecarHandle matches a handle issued by the sidecar (default prefix
// "H:<hostname>").
var sidecarHandle = regexp.MustCompile(`^H:\S+:[0-9]+$`)

// startSidecarPair starts gearmand and a sidecar in front of it, and waits
// until the sidecar's control functions are registered on gearmand.
func startSidecarPair(t *testing.T) (gd, sc *daemon) {
	t.Helper()
	gd = startGearmand(t)
	sc = startGearsched(t, "--upstream", gd.Addr)
	for _, fn := range []string{"gearsched.schedule", "gearsched.cancel"} {
		waitStatusRow(t, gd, fn, fn+"\t0\t0\t1")
	}
	return gd, sc
}

// scheduleReply is the result of gearsched.schedule.
type scheduleReply struct {
	Handle  string
	NextRun time.Time
}

// parseScheduleReply checks that s is exactly {"handle": H, "next_run":
// RFC 3339} with a sidecar handle.
func parseScheduleReply(t *testing.T, what, s string) scheduleReply {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("%s: result %q is not a JSON object: %v", what, s, err)
	}
	if keys := slices.Sorted(maps.Keys(m)); !slices.Equal(keys, []string{"handle", "next_run"}) {
		t.Fatalf("%s: result %q has keys %q, want handle and next_run", what, s, keys)
	}
	h, _ := m["handle"].(string)
	if !sidecarHandle.MatchString(h) {
		t.Fatalf("%s: handle %q in %q, want /%s/", what, h, s, sidecarHandle)
	}
	nr, _ := m["next_run"].(string)
	next, err := time.Parse(time.RFC3339, nr)
	if err != nil {
		t.Fatalf("%s: next_run in %q: %v", what, s, err)
	}
	return scheduleReply{Handle: h, NextRun: next}
}

// checkNextRun checks that a next run asked for as "in": d by a call made
// between start and end lies in the window that allows (next_run is
// formatted in whole seconds).
func checkNextRun(t *testing.T, what string, r scheduleReply, d time.Duration, start, end time.Time) {
	t.Helper()
	lo, hi := start.Add(d).Truncate(time.Second), end.Add(d)
	if r.NextRun.Before(lo) || r.NextRun.After(hi) {
		t.Errorf("%s: next_run %s, want between %s and %s", what, r.NextRun.Format(time.RFC3339),
			lo.Format(time.RFC3339Nano), hi.Format(time.RFC3339Nano))
	}
}

// checkCancelReply checks that s is exactly {"cancelled":true,"handle":h}.
func checkCancelReply(t *testing.T, what, s, h string) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("%s: result %q is not a JSON object: %v", what, s, err)
	}
	if len(m) != 2 || m["cancelled"] != true || m["handle"] != h {
		t.Fatalf("%s: result %q, want {\"cancelled\":true,\"handle\":%q}", what, s, h)
	}
}

// showSchedules returns the sidecar's `show schedules` rows split into
// their six fields.
func showSchedules(t *testing.T, s *daemon) [][]string {
	t.Helper()
	var rows [][]string
	for _, r := range listRows(t, admin(t, s.Addr, "show schedules")) {
		f := strings.Split(r, "\t")
		if len(f) != 6 {
			t.Fatalf("show schedules row %q has %d fields, want 6", r, len(f))
		}
		rows = append(rows, f)
	}
	return rows
}

// scheduleRow returns the `show schedules` row of handle, or nil.
func scheduleRow(t *testing.T, s *daemon, handle string) []string {
	t.Helper()
	for _, f := range showSchedules(t, s) {
		if f[0] == handle {
			return f
		}
	}
	return nil
}

// queuedJobs returns the total-jobs column of fn's `status` row on s (0 if
// fn has no row).
func queuedJobs(t *testing.T, s *daemon, fn string) int {
	t.Helper()
	for _, r := range listRows(t, admin(t, s.Addr, "status")) {
		f := strings.Split(r, "\t")
		if len(f) == 4 && f[0] == fn {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("status row %q", r)
			}
			return n
		}
	}
	return 0
}

// checkPayloads checks that a `gearman -w` worker without a command, which
// prints the payloads it gets back to back, received exactly the payloads
// want, in any order. No payload may contain another.
func checkPayloads(t *testing.T, got string, want ...string) {
	t.Helper()
	times := map[string]int{}
	for _, w := range want {
		times[w]++
	}
	rest := got
	for w, n := range times {
		if c := strings.Count(got, w); c != n {
			t.Errorf("worker received %q %d times, want %d (all it printed: %q)", w, c, n, got)
		}
		rest = strings.ReplaceAll(rest, w, "")
	}
	if rest != "" {
		t.Errorf("worker received more than %q: %q is left over (all it printed: %q)", want, rest, got)
	}
}

// TestControlFromPHP schedules and cancels through gearmand with PHP's
// GearmanClient (testdata/clients/control.php): a doNormal and a
// doBackground schedule, a schedule cancelled at once, a sentinel due
// after the cancelled one, and bad input with and without the exceptions
// option. A worker on gearmand must get the three live payloads and never
// the cancelled one.
func TestControlFromPHP(t *testing.T) {
	t.Parallel()
	gd, sc := startSidecarPair(t)
	const fn = "ctl_php"
	worker := startTool(t, "", "gearman", toolArgs(gd, "-w", "-f", fn, "-c", "3")...)

	start := time.Now()
	out, _ := runTool(t, "", "php", clientScript(t, "control.php"), gd.Addr, fn)
	end := time.Now()
	t.Logf("control.php (%v):\n%s", end.Sub(start).Round(time.Millisecond), out)

	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("control.php printed %q", line)
		}
		got[k] = v
	}
	if got["done"] != "yes" {
		t.Fatalf("control.php did not finish:\n%s", out)
	}
	expect := func(key, want string) {
		t.Helper()
		if got[key] != want {
			t.Errorf("control.php %s: %q, want %q", key, got[key], want)
		}
	}

	// (a) doNormal: the sidecar's JSON, due in 2 s.
	expect("normal rc", gearmanSuccess)
	normal := parseScheduleReply(t, "doNormal", got["normal result"])
	checkNextRun(t, "doNormal", normal, 2*time.Second, start, end)

	// (b) doBackground: gearmand's own handle.
	expect("background rc", gearmanSuccess)
	if h := got["background handle"]; !regexp.MustCompile(`^H:\S+:[0-9]+$`).MatchString(h) {
		t.Errorf("doBackground handle %q, want a gearmand job handle", h)
	}

	// (d) Scheduled and cancelled; a second cancel fails.
	expect("to cancel rc", gearmanSuccess)
	cancelled := parseScheduleReply(t, "to cancel", got["to cancel result"])
	checkNextRun(t, "to cancel", cancelled, 4*time.Second, start, end)
	expect("cancel rc", gearmanSuccess)
	checkCancelReply(t, "cancel", got["cancel result"], cancelled.Handle)
	expect("cancel again rc", gearmanWorkFail)
	expect("cancel again result", "")
	expect("sentinel rc", gearmanSuccess)
	sentinel := parseScheduleReply(t, "sentinel", got["sentinel result"])
	checkNextRun(t, "sentinel", sentinel, 6*time.Second, start, end)
	if !sentinel.NextRun.After(cancelled.NextRun) {
		t.Fatalf("sentinel due %s, not after the cancelled job's %s", sentinel.NextRun, cancelled.NextRun)
	}
	handles := []string{normal.Handle, cancelled.Handle, sentinel.Handle}
	if slices.Sort(handles); len(slices.Compact(handles)) != 3 {
		t.Errorf("handles %q are not distinct", handles)
	}

	// (c) Bad input: the job fails (GEARMAN_WORK_FAIL) with or without the
	// exceptions option, and the reason reaches a task's warning callback.
	expect("bad rc", gearmanWorkFail)
	expect("bad result", "")
	expect("bad task warning", `"in": time: invalid duration "soon"`)
	expect("bad task fail", "yes")
	expect("bad task runTasks", "true")
	expect("bad no-exceptions rc", gearmanWorkFail)
	expect("bad no-exceptions result", "")
	if !strings.Contains(sc.Stderr(), "control job refused") {
		t.Errorf("the sidecar did not log the refused control job")
	}

	// The cancelled job is gone from the sidecar at once.
	if row := scheduleRow(t, sc, cancelled.Handle); row != nil {
		t.Errorf("show schedules still lists the cancelled job: %q", row)
	}

	// The worker on gearmand gets the three live jobs. The sentinel is due
	// after the cancelled job, so once it has arrived the cancelled job's
	// time has passed.
	wout, _ := worker.wait(t)
	checkPayloads(t, wout, "from-php-normal", "from-php-background", "from-php-sentinel")
	if strings.Contains(wout, "from-php-cancelled") {
		t.Errorf("the cancelled job reached the worker: %q", wout)
	}
	// Nothing else is left queued on gearmand or held by the sidecar.
	waitStatusRow(t, gd, fn, fn+"\t0\t0\t0")
	eventually(t, 10*time.Second, func() string {
		if rows := showSchedules(t, sc); len(rows) != 0 {
			return fmt.Sprintf("show schedules still lists %q", rows)
		}
		return ""
	})
}

// TestControlFromCLI schedules through gearmand with the `gearman` tool: a
// one-shot job, a per-second cron schedule that a worker on gearmand sees
// fire twice before it is cancelled with gearsched.cancel, and a payload
// that is not JSON.
func TestControlFromCLI(t *testing.T) {
	t.Parallel()
	gd, sc := startSidecarPair(t)
	const fn = "ctl_cli"
	call := func(fn, data string) string {
		t.Helper()
		out, _ := runTool(t, "", "gearman", toolArgs(gd, "-f", fn, data)...)
		return out
	}
	worker := startTool(t, "", "gearman", toolArgs(gd, "-w", "-f", fn, "-c", "3")...)

	start := time.Now()
	once := parseScheduleReply(t, "in 1s", call("gearsched.schedule",
		`{"function":"`+fn+`","in":"1s","data":"cli-once","unique":"cli-once"}`))
	checkNextRun(t, "in 1s", once, time.Second, start, time.Now())

	// A six-field spec (seconds first): every second, in UTC.
	start = time.Now()
	tick := parseScheduleReply(t, "cron", call("gearsched.schedule",
		`{"function":"`+fn+`","cron":"* * * * * *","data":"cli-tick","unique":"cli-tick"}`))
	if end := time.Now(); !tick.NextRun.After(start.Truncate(time.Second)) || tick.NextRun.After(end.Add(time.Second)) {
		t.Errorf("cron next_run %s, want the second after %s", tick.NextRun.Format(time.RFC3339), start.Format(time.RFC3339Nano))
	}
	if tick.Handle == once.Handle {
		t.Errorf("the one-shot job and the schedule share the handle %s", tick.Handle)
	}
	row := scheduleRow(t, sc, tick.Handle)
	if row == nil || row[1] != fn || row[2] != "cli-tick" || row[4] != "* * * * * *" || row[5] != "UTC" {
		t.Fatalf("show schedules row of the schedule: %q, want handle %s, function %s, unique cli-tick, spec \"* * * * * *\", zone UTC",
			row, tick.Handle, fn)
	}
	if _, err := time.Parse(time.RFC3339, row[3]); err != nil {
		t.Errorf("show schedules next run %q: %v", row[3], err)
	}

	// The worker gets the one-shot job and two occurrences.
	wout, _ := worker.wait(t)
	checkPayloads(t, wout, "cli-once", "cli-tick", "cli-tick")

	// Cancel the schedule: it is gone at once, and with the one-shot job
	// fired nothing is left.
	checkCancelReply(t, "cancel", call("gearsched.cancel", tick.Handle), tick.Handle)
	if rows := showSchedules(t, sc); len(rows) != 0 {
		t.Errorf("show schedules after the cancel: %q", rows)
	}

	// No occurrence fires after the cancel. Occurrences now pile up on
	// gearmand (no worker); a sentinel due 3 s later arrives there after
	// at least three more occurrences would have, had the schedule still
	// run. One occurrence released just before the cancel may still be on
	// its way upstream.
	queued := queuedJobs(t, gd, fn)
	const sentinelFn = fn + "_sentinel"
	call("gearsched.schedule", `{"function":"`+sentinelFn+`","in":"3s","data":"sentinel"}`)
	eventually(t, 15*time.Second, func() string {
		if n := queuedJobs(t, gd, sentinelFn); n != 1 {
			return fmt.Sprintf("%d sentinel jobs queued on gearmand, want 1", n)
		}
		return ""
	})
	if n := queuedJobs(t, gd, fn); n > queued+1 {
		t.Errorf("%d jobs of %s queued on gearmand after the cancel, then %d: the schedule kept firing", queued, fn, n)
	}

	// A payload that is not JSON: the job fails, and the gearman tool
	// prints the reason (sent as WORK_WARNING) and exits 1.
	bad := startTool(t, "", "gearman", toolArgs(gd, "-t", "10000", "-f", "gearsched.schedule", "not json")...)
	<-bad.done
	stdout, stderr := bad.stdout.String(), bad.stderr.String()
	t.Logf("gearman with a payload that is not JSON: exit %v, stdout %q, stderr %q", bad.err, stdout, stderr)
	if bad.err == nil || !strings.Contains(stdout+stderr, "payload is not a JSON object") || !strings.Contains(stderr, "Job failed") {
		t.Errorf("gearman with a payload that is not JSON: exit %v, stdout %q, stderr %q; want a failure with the reason", bad.err, stdout, stderr)
	}
	eventually(t, 10*time.Second, func() string {
		if !strings.Contains(sc.Stderr(), "payload is not a JSON object") {
			return "the sidecar did not log the refused payload"
		}
		return ""
	})
	// The refused job is finished on gearmand, not left queued or running.
	waitStatusRow(t, gd, "gearsched.schedule", "gearsched.schedule\t0\t0\t1")
}
