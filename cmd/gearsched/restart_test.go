package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
)

// kill9 kills the server without any chance to clean up, and waits.
func (s *daemon) kill9(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9 %s: %v", s.Backend, err)
	}
	<-s.done
}

func handleNumber(t *testing.T, h string) int {
	t.Helper()
	n, err := strconv.Atoi(h[strings.LastIndexByte(h, ':')+1:])
	if err != nil {
		t.Fatalf("handle %q: %v", h, err)
	}
	return n
}

// TestRestartAfterKill9 submits background jobs with the gearman CLI, has
// one job running on a worker, kills the server with SIGKILL, restarts it
// on the same database, and checks that a worker receives every job, in
// priority and submission order, under the handles it had before.
func TestRestartAfterKill9(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "restart.db")
	s1 := startGearsched(t, "--db", db)

	var normal []string
	for i := range 100 {
		normal = append(normal, fmt.Sprintf("normal-%03d", i))
	}
	runTool(t, strings.Join(normal, "\n")+"\n", "gearman", "-p", strconv.Itoa(s1.Port), "-b", "-n", "-f", "restart_fn")
	for i := range 5 {
		runTool(t, "", "gearman", "-p", strconv.Itoa(s1.Port), "-b", "-I", "-f", "restart_fn", fmt.Sprintf("high-%d", i))
		runTool(t, "", "gearman", "-p", strconv.Itoa(s1.Port), "-b", "-L", "-f", "restart_fn", fmt.Sprintf("low-%d", i))
	}
	// A job that is running when the server dies must come back too.
	sub := dialClient(t, s1.Addr)
	runningHandle, err := sub.Submit(gearman.SubmitJobBg, "restart_running", "running-1", []byte("in-flight"))
	if err != nil {
		t.Fatal(err)
	}
	w := dialClient(t, s1.Addr)
	w.Send(gearman.CanDo, []byte("restart_running"))
	w.Send(gearman.GrabJob)
	p, err := w.Recv()
	if err != nil || p.Type != gearman.JobAssign || string(p.Args[0]) != runningHandle {
		t.Fatalf("grab before the crash: %v %v", p, err)
	}
	before := listRows(t, admin(t, s1.Addr, "show jobs"))
	if len(before) != 111 {
		t.Fatalf("show jobs before the crash has %d rows, want 111:\n%s", len(before), strings.Join(before, "\n"))
	}

	s1.kill9(t)
	s2 := startGearsched(t, "--db", db)

	after := listRows(t, admin(t, s2.Addr, "show jobs"))
	if handles(before) != handles(after) {
		t.Errorf("handles changed across the restart:\nbefore %s\nafter  %s", handles(before), handles(after))
	}

	out := filepath.Join(t.TempDir(), "received")
	runTool(t, "", "gearman", "-p", strconv.Itoa(s2.Port), "-w", "-f", "restart_fn", "-c", "110",
		"--", "sh", "-c", "cat >> "+out+"; echo >> "+out)
	text, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(string(text), "\n") {
		if l != "" {
			got = append(got, l)
		}
	}
	var want []string
	for i := range 5 {
		want = append(want, fmt.Sprintf("high-%d", i))
	}
	want = append(want, normal...)
	for i := range 5 {
		want = append(want, fmt.Sprintf("low-%d", i))
	}
	if !slices.Equal(got, want) {
		t.Errorf("worker received %d jobs after the restart:\n got %q\nwant %q", len(got), got, want)
	}

	w2 := dialClient(t, s2.Addr)
	w2.Send(gearman.CanDo, []byte("restart_running"))
	w2.Send(gearman.GrabJobUniq)
	p, err = w2.Recv()
	if err != nil || p.Type != gearman.JobAssignUniq || string(p.Args[0]) != runningHandle ||
		string(p.Args[2]) != "running-1" || string(p.Args[3]) != "in-flight" {
		t.Fatalf("the job running at the crash was not requeued whole: %v %v", p, err)
	}

	// A handle is never reused: new jobs number past every earlier one.
	maxBefore := 0
	for _, h := range strings.Fields(handles(before)) {
		maxBefore = max(maxBefore, handleNumber(t, h))
	}
	c := dialClient(t, s2.Addr)
	h, err := c.Submit(gearman.SubmitJobBg, "restart_new", "", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if handleNumber(t, h) <= maxBefore {
		t.Errorf("new handle %s after the restart reuses a number at or below %d", h, maxBefore)
	}
}

// handles returns the sorted first column of `show jobs` rows.
func handles(rows []string) string {
	var hs []string
	for _, r := range rows {
		hs = append(hs, strings.SplitN(r, "\t", 2)[0])
	}
	slices.Sort(hs)
	return strings.Join(hs, " ")
}

// TestKill9DuringSubmissions kills the server while a client is submitting
// as fast as it can: every submission that got JOB_CREATED must be there
// after the restart.
func TestKill9DuringSubmissions(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "kill.db")
	s1 := startGearsched(t, "--db", db)
	c := dialClient(t, s1.Addr)

	acked := make(chan string, 100000)
	enough := make(chan struct{})
	go func() {
		defer close(acked)
		for i := 0; ; i++ {
			h, err := c.Submit(gearman.SubmitJobBg, "kill_fn", fmt.Sprintf("u-%d", i), []byte("payload"))
			if err != nil {
				return // the server died
			}
			acked <- h
			if i == 200 {
				close(enough)
			}
		}
	}()
	select {
	case <-enough:
	case <-time.After(60 * time.Second):
		t.Fatal("200 submissions were not acknowledged within 60 s")
	}
	s1.kill9(t)
	var ack []string
	for h := range acked {
		ack = append(ack, h)
	}

	s2 := startGearsched(t, "--db", db)
	stored := map[string]bool{}
	for _, r := range listRows(t, admin(t, s2.Addr, "show jobs")) {
		stored[strings.SplitN(r, "\t", 2)[0]] = true
	}
	for _, h := range ack {
		if !stored[h] {
			t.Errorf("acknowledged job %s lost in the crash (%d acknowledged, %d stored)", h, len(ack), len(stored))
		}
	}
}
