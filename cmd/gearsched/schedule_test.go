package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
)

// dueSecond returns a whole second at least lead after now.
func dueSecond(lead time.Duration) time.Time {
	return time.Now().Add(lead).Truncate(time.Second).Add(time.Second)
}

// submitEpochs pipelines n SUBMIT_JOB_EPOCH packets for fn, payloads
// "<prefix>-<i>", due at when, and returns the handles.
func submitEpochs(t *testing.T, c *gearman.Client, fn, prefix string, n int, when time.Time) []string {
	t.Helper()
	epoch := []byte(strconv.FormatInt(when.Unix(), 10))
	var handles []string
	for sent := 0; sent < n; {
		window := min(200, n-sent)
		for i := range window {
			if err := c.Send(gearman.SubmitJobEpoch, []byte(fn), []byte(fmt.Sprintf("%s-%d", prefix, sent+i)), epoch,
				[]byte(fmt.Sprintf("%s-%d", prefix, sent+i))); err != nil {
				t.Fatal(err)
			}
		}
		for range window {
			p, err := c.Recv()
			if err != nil || p.Type != gearman.JobCreated {
				t.Fatalf("epoch submit: %v %v", p, err)
			}
			handles = append(handles, string(p.Args[0]))
		}
		sent += window
	}
	return handles
}

// grabOne has a raw worker wait for its next job (sleeping with PRE_SLEEP
// until NOOP) and returns the JOB_ASSIGN_UNIQ fields and when it came.
func grabOne(t *testing.T, w *gearman.Client) (handle, unique, data string, at time.Time) {
	t.Helper()
	for {
		if err := w.Send(gearman.GrabJobUniq); err != nil {
			t.Fatal(err)
		}
		p, err := w.Recv()
		for err == nil && p.Type == gearman.Noop { // left over from an earlier wake-up
			p, err = w.Recv()
		}
		if err != nil {
			t.Fatal(err)
		}
		switch p.Type {
		case gearman.JobAssignUniq:
			return string(p.Args[0]), string(p.Args[2]), string(p.Args[3]), time.Now()
		case gearman.NoJob:
			w.Send(gearman.PreSleep)
			if p, err = w.Recv(); err != nil || p.Type != gearman.Noop {
				t.Fatalf("waiting for NOOP: %v %v", p, err)
			}
		default:
			t.Fatalf("unexpected %v", p.Type)
		}
	}
}

// TestEpochJobsFireOnTime submits 1,000 epoch jobs due in the same second
// and checks that all of them reach a `gearman -w` worker within 2 s of
// that second (loose: machines are noisy), while a raw worker on another
// function confirms that a job due then is not handed out before it.
func TestEpochJobsFireOnTime(t *testing.T) {
	t.Parallel()
	s := startGearsched(t)
	c := dialClient(t, s.Addr)
	due := dueSecond(2 * time.Second)
	submitEpochs(t, c, "ontime", "j", 1000, due)
	h, err := c.Submit(gearman.SubmitJobEpoch, "ontime_probe", "probe", []byte(strconv.FormatInt(due.Unix(), 10)), []byte("p"))
	if err != nil {
		t.Fatal(err)
	}
	if time.Until(due) < 500*time.Millisecond {
		t.Fatal("submissions took too long to leave room before the due second")
	}
	if rows := listRows(t, admin(t, s.Addr, "show schedules")); len(rows) != 1001 {
		t.Fatalf("show schedules lists %d rows before the due time, want 1001", len(rows))
	}

	probe := dialClient(t, s.Addr)
	probe.Send(gearman.CanDo, []byte("ontime_probe"))
	worker := startTool(t, "", "gearman", "-p", strconv.Itoa(s.Port), "-w", "-f", "ontime", "-c", "1000")
	gotHandle, _, _, at := grabOne(t, probe)
	if gotHandle != h || at.Before(due) {
		t.Fatalf("probe job %s handed out at %s, due %s", gotHandle, at.Format(time.RFC3339Nano), due.Format(time.RFC3339Nano))
	}
	out, _ := worker.wait(t)
	done := time.Now()
	if got := strings.Count(out, "j-"); got != 1000 {
		t.Fatalf("worker received %d jobs, want 1000", got)
	}
	if late := done.Sub(due); late > 2*time.Second {
		t.Errorf("the last of 1,000 jobs due at %s arrived %v late", due.Format(time.RFC3339), late)
	}
	t.Logf("1,000 jobs due at %s: probe assigned +%v, all done +%v", due.Format(time.RFC3339), at.Sub(due), done.Sub(due))
}

// TestKill9BeforeDue kills the server between the submission of epoch jobs
// and their due time; after a restart every job fires exactly once.
func TestKill9BeforeDue(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "due.db")
	s1 := startGearsched(t, "--db", db)
	c := dialClient(t, s1.Addr)
	due := dueSecond(3 * time.Second)
	handles := submitEpochs(t, c, "k9", "k", 300, due)
	s1.kill9(t)

	s2 := startGearsched(t, "--db", db)
	w := dialClient(t, s2.Addr)
	w.Send(gearman.CanDo, []byte("k9"))
	seen := map[string]int{}
	for range len(handles) {
		h, _, data, at := grabOne(t, w)
		if at.Before(due) {
			t.Fatalf("%s handed out at %s, before its due time %s", h, at.Format(time.RFC3339Nano), due.Format(time.RFC3339))
		}
		seen[data]++
		w.Send(gearman.WorkComplete, []byte(h), nil)
	}
	for i := range len(handles) {
		if n := seen[fmt.Sprintf("k-%d", i)]; n != 1 {
			t.Errorf("job k-%d fired %d times", i, n)
		}
	}
	// The ECHO round trip makes sure the last WORK_COMPLETE was processed.
	w.Send(gearman.EchoReq, []byte("sync"))
	if p, err := w.Recv(); err != nil || p.Type != gearman.EchoRes {
		t.Fatalf("sync: %v %v", p, err)
	}
	// Nothing more is queued or pending: no job fires a second time.
	for _, row := range listRows(t, admin(t, s2.Addr, "status")) {
		if strings.HasPrefix(row, "k9\t") && row != "k9\t0\t0\t1" {
			t.Errorf("status after all jobs ran: %q", row)
		}
	}
	if rows := listRows(t, admin(t, s2.Addr, "show schedules")); len(rows) != 0 {
		t.Errorf("show schedules still lists %d rows", len(rows))
	}
}

// TestSchedulesFile runs a per-second schedule from the schedules file,
// then reloads the file with SIGHUP: an invalid file keeps the schedule, a
// file without it removes it.
func TestSchedulesFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "schedules.toml")
	write := func(text string) {
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("[[schedule]]\nname = \"tick\"\ncron = \"* * * * * *\"\nfunction = \"tick_fn\"\ndata = \"tock\"\n")
	s := startGearsched(t, "--schedules", file)
	w := dialClient(t, s.Addr)
	w.Send(gearman.CanDo, []byte("tick_fn"))
	var secs []int64
	for range 2 {
		h, unique, data, at := grabOne(t, w)
		name, sec, ok := strings.Cut(unique, "@")
		n, err := strconv.ParseInt(sec, 10, 64)
		if !ok || name != "tick" || err != nil || data != "tock" {
			t.Fatalf("occurrence %s: unique %q data %q", h, unique, data)
		}
		if at.Before(time.Unix(n, 0)) {
			t.Fatalf("occurrence %s handed out at %s, before %s", unique, at.Format(time.RFC3339Nano), time.Unix(n, 0).Format(time.RFC3339))
		}
		secs = append(secs, n)
		w.Send(gearman.WorkComplete, []byte(h), nil)
	}
	if secs[1] <= secs[0] {
		t.Errorf("occurrences %v not in increasing seconds", secs)
	}
	rows := listRows(t, admin(t, s.Addr, "show schedules"))
	if len(rows) != 1 || !strings.Contains(rows[0], "\ttick_fn\ttick\t") || !strings.HasSuffix(rows[0], "\t* * * * * *\tUTC") {
		t.Fatalf("show schedules: %q", rows)
	}

	write("[[schedule]]\nname = \"tick\"\ncron = \"61 * * * *\"\nfunction = \"tick_fn\"\n")
	s.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 10*time.Second, func() string {
		if strings.Contains(s.Stderr(), "schedules file rejected") {
			return ""
		}
		return "no rejection logged"
	})
	if rows := listRows(t, admin(t, s.Addr, "show schedules")); len(rows) != 1 || !strings.Contains(rows[0], "* * * * * *") {
		t.Fatalf("after an invalid reload: %q", rows)
	}
	// An empty file is more likely half written than meant: refused.
	write("")
	s.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 10*time.Second, func() string {
		if strings.Contains(s.Stderr(), "is empty; to remove every schedule, leave a comment in it") {
			return ""
		}
		return "the empty file was not rejected"
	})
	if rows := listRows(t, admin(t, s.Addr, "show schedules")); len(rows) != 1 {
		t.Fatalf("after an empty file: %q, want the schedule kept", rows)
	}
	// A file of comments removes every schedule, with a warning.
	write("# no schedules any more\n")
	s.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 10*time.Second, func() string {
		if rows := listRows(t, admin(t, s.Addr, "show schedules")); len(rows) != 0 {
			return fmt.Sprintf("still listed: %q", rows)
		}
		// The warning follows the commit that removed the schedule.
		if !strings.Contains(s.Stderr(), "every file schedule was removed") {
			return "removing every schedule logged no warning"
		}
		return ""
	})
}

// TestAtCommand drives `gearsched at`, `ls` and `cancel` against a server.
func TestAtCommand(t *testing.T) {
	t.Parallel()
	s := startGearsched(t)
	srv := "--server=" + s.Addr
	h, _ := runTool(t, "", gearschedBin, "at", srv, "-u", "report-1", "+1h", "report", "payload")
	h = strings.TrimSpace(h)
	if !strings.HasPrefix(h, "H:") {
		t.Fatalf("at printed %q, want a handle", h)
	}
	again, _ := runTool(t, "stdin payload", gearschedBin, "at", srv, "-u", "report-1", "+2h", "report", "-")
	if strings.TrimSpace(again) != h {
		t.Errorf("same unique got %q, want %q", again, h)
	}
	ls, _ := runTool(t, "", gearschedBin, "ls", srv)
	if lines := strings.Split(strings.TrimSpace(ls), "\n"); len(lines) != 2 || !strings.Contains(lines[1], h) || !strings.Contains(lines[1], "report-1") {
		t.Errorf("ls printed:\n%s", ls)
	}
	if out, _ := runTool(t, "", gearschedBin, "cancel", srv, h); !strings.Contains(out, "cancelled "+h) {
		t.Errorf("cancel printed %q", out)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"cancel", srv, h}, 1, "no job or schedule"},
		{[]string{"at", srv, "tomorrow", "f"}, 2, "WHEN \"tomorrow\""},
		{[]string{"at", srv, "+1m"}, 2, "at takes WHEN FUNCTION"},
		{[]string{"at", srv, "--priority", "high", "+1m", "f"}, 2, "--priority applies only to WHEN=now"},
		{[]string{"at", "--server=127.0.0.1:1", "+1s", "f"}, 1, "cannot reach the Gearman server"},
		{[]string{"ls", "--server=127.0.0.1:1"}, 1, "cannot reach the Gearman server"},
		{[]string{"bogus"}, 2, "unknown command"},
	} {
		out, code := runExit(t, gearschedBin, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.msg) {
			t.Errorf("gearsched %v: exit %d, output %q; want exit %d and %q", tc.args, code, out, tc.code, tc.msg)
		}
	}
	for _, sub := range []string{"at", "ls", "cancel", "serve"} {
		out, code := runExit(t, gearschedBin, sub, "--help")
		if code != 0 || !slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool { return strings.Contains(l, "--server") || strings.Contains(l, "--port") }) {
			t.Errorf("gearsched %s --help: exit %d\n%s", sub, code, out)
		}
	}
}

// runExit runs a command to completion (at most 30 s) and returns its
// combined output and exit code.
func runExit(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}
