package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store"
	"github.com/gearsched/gearsched/store/storetest"
)

// runGearsched runs the gearsched binary to completion and returns what
// it printed and its exit status.
func runGearsched(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	if gearschedBuildErr != nil {
		t.Fatal(gearschedBuildErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gearschedBin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.Exited():
		code = exit.ExitCode()
	default:
		t.Fatalf("gearsched %q: %v\nstdout:\n%s\nstderr:\n%s", args, err, out.String(), errOut.String())
	}
	if s := errOut.String(); strings.Contains(s, "panic:") || strings.Contains(s, "fatal error:") || strings.Contains(s, "SIGSEGV") {
		t.Fatalf("gearsched %q crashed:\n%s", args, s)
	}
	return out.String(), errOut.String(), code
}

// servedSample is what fillServed stored, by handle number.
type servedSample struct {
	ready, pending, schedules map[uint64]bool
	done                      map[uint64]bool // completed by a worker: deleted
}

// fillServed fills a database through a running server: background jobs
// no worker takes (ready jobs), some of which a worker then completes,
// future SUBMIT_JOB_EPOCH jobs (pending jobs) and SUBMIT_JOB_SCHED
// schedules; then it stops the server.
func fillServed(t *testing.T, db string) *servedSample {
	t.Helper()
	s := startGearsched(t, "--db", db, "--job-handle-prefix", "H:t")
	c := dialClient(t, s.Addr)
	smp := &servedSample{ready: map[uint64]bool{}, pending: map[uint64]bool{}, schedules: map[uint64]bool{}, done: map[uint64]bool{}}
	later := strconv.FormatInt(time.Now().Add(48*time.Hour).Unix(), 10)
	submit := func(typ gearman.Type, fn, unique string, args ...string) uint64 {
		t.Helper()
		var b [][]byte
		for _, a := range args {
			b = append(b, []byte(a))
		}
		h, err := c.Submit(typ, fn, unique, b...)
		if err != nil {
			t.Fatalf("submit %s: %v", typ, err)
		}
		return uint64(handleNumber(t, h))
	}
	for i := range 200 {
		data := fmt.Sprintf("ready %d %s", i, strings.Repeat("r", 100+i%40))
		smp.ready[submit(gearman.SubmitJobBg, "repair_ready", "", data)] = true
		data = fmt.Sprintf("pending %d %s", i, strings.Repeat("p", 100+i%40))
		smp.pending[submit(gearman.SubmitJobEpoch, "repair_pending", fmt.Sprint("p", i), later, data)] = true
		if i%5 == 0 {
			smp.schedules[submit(gearman.SubmitJobSched, "repair_sched", fmt.Sprint("s", i), "0", strconv.Itoa(i%24), "", "", "", "x")] = true
		}
	}
	w := dialClient(t, s.Addr)
	if err := w.Send(gearman.CanDo, []byte("repair_ready")); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if err := w.Send(gearman.GrabJob); err != nil {
			t.Fatal(err)
		}
		p, err := w.Recv()
		if err != nil || p.Type != gearman.JobAssign {
			t.Fatalf("grab: %v %v", p, err)
		}
		if err := w.Send(gearman.WorkComplete, p.Args[0], nil); err != nil {
			t.Fatal(err)
		}
		n := uint64(handleNumber(t, string(p.Args[0])))
		smp.done[n] = true
		delete(smp.ready, n)
	}
	// The completions' deletes are committed before the server stops.
	eventually(t, 5*time.Second, func() string {
		if n := len(listRows(t, admin(t, s.Addr, "show jobs"))); n != len(smp.ready) {
			return fmt.Sprintf("show jobs lists %d jobs, want %d", n, len(smp.ready))
		}
		return ""
	})
	if s.stop() {
		t.Fatal("the server needed SIGKILL")
	}
	return smp
}

// servedHandles returns the handle numbers that show jobs and show
// schedules list on a running server.
func servedHandles(t *testing.T, addr string) (jobs, scheduled map[uint64]bool) {
	t.Helper()
	jobs, scheduled = map[uint64]bool{}, map[uint64]bool{}
	for _, row := range listRows(t, admin(t, addr, "show jobs")) {
		jobs[uint64(handleNumber(t, row[:strings.IndexByte(row, '\t')]))] = true
	}
	for _, row := range listRows(t, admin(t, addr, "show schedules")) {
		scheduled[uint64(handleNumber(t, row[:strings.IndexByte(row, '\t')]))] = true
	}
	return jobs, scheduled
}

// TestCheckAndSalvage damages a database a server filled, in four ways.
// The server either refuses it with a message naming `gearsched check` and
// `gearsched salvage`, or serves it without the damaged records; it never
// crashes. `gearsched check` lists the damage and exits 1; `gearsched
// salvage` writes a new database that check finds clean and the server
// starts on, holding every record that was not damaged.
func TestCheckAndSalvage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// damage returns the handle numbers whose record it damaged, or
		// whose page it may have taken.
		damage func(t *testing.T, db string, vals []storetest.Value, pageSize int) map[uint64]bool
		serves bool // the server starts on the damaged file
		each   bool // check names each damaged record
	}{
		{"truncated to half", func(t *testing.T, db string, vals []storetest.Value, _ int) map[uint64]bool {
			fi, err := os.Stat(db)
			if err != nil {
				t.Fatal(err)
			}
			lost := map[uint64]bool{}
			for _, v := range vals {
				if v.Offset+int64(v.Size) > fi.Size()/2 {
					lost[binary.BigEndian.Uint64(v.Key)] = true
				}
			}
			mustDo(t, storetest.Truncate(db, fi.Size()/2))
			return lost
		}, false, false},
		{"one page overwritten with random bytes", func(t *testing.T, db string, vals []storetest.Value, pageSize int) map[uint64]bool {
			page := vals[len(vals)/3].Page(pageSize)
			lost := map[uint64]bool{}
			for _, v := range vals {
				if v.Page(pageSize) == page {
					lost[binary.BigEndian.Uint64(v.Key)] = true
				}
			}
			mustDo(t, storetest.OverwritePage(db, page, pageSize, rand.New(rand.NewPCG(1, 2))))
			return lost
		}, false, false},
		{"200 bytes flipped inside record values", func(t *testing.T, db string, vals []storetest.Value, _ int) map[uint64]bool {
			changed, err := storetest.FlipBytes(db, vals, 200, rand.New(rand.NewPCG(3, 4)))
			mustDo(t, err)
			lost := map[uint64]bool{}
			for i := range changed {
				lost[binary.BigEndian.Uint64(vals[i].Key)] = true
			}
			return lost
		}, true, true},
		{"both meta pages zeroed", func(t *testing.T, db string, _ []storetest.Value, pageSize int) map[uint64]bool {
			mustDo(t, storetest.ZeroMetas(db, pageSize))
			return nil
		}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			db := filepath.Join(dir, "damaged.db")
			want := fillServed(t, db)
			vals, pageSize, err := storetest.Values(db, "jobs", "sched", "schedules")
			mustDo(t, err)
			lost := tt.damage(t, db, vals, pageSize)
			damaged, err := os.ReadFile(db)
			mustDo(t, err)

			if tt.serves {
				s := startGearsched(t, "--db", db, "--job-handle-prefix", "H:t")
				jobs, scheduled := servedHandles(t, s.Addr)
				for n := range lost {
					if jobs[n] || scheduled[n] {
						t.Errorf("the server serves damaged record %d", n)
					}
				}
				s.stop()
				if !strings.Contains(s.Stderr(), "damage found") {
					t.Errorf("the server did not log the damage:\n%s", s.Stderr())
				}
				mustDo(t, os.WriteFile(db, damaged, 0o600)) // as damaged, whatever the server wrote
			} else {
				_, stderr, code := runGearsched(t, "serve", "--port", "0", "--db", db)
				if code != 1 || !strings.Contains(stderr, "damaged") || !strings.Contains(stderr, "gearsched salvage") {
					t.Errorf("serve on the damaged database: exit %d, stderr:\n%s\nwant exit 1 naming the damage and gearsched salvage", code, stderr)
				}
			}

			stdout, _, code := runGearsched(t, "check", "--db", db)
			if code != 1 || !strings.Contains(stdout, "problem") {
				t.Fatalf("check: exit %d, want 1 with the problems listed:\n%s", code, stdout)
			}
			t.Logf("check:\n%s", firstLines(stdout, 6))
			if tt.each {
				for n := range lost {
					if !strings.Contains(stdout, fmt.Sprintf(" id %d: ", n)) {
						t.Errorf("check does not name damaged record %d", n)
					}
				}
			}

			dst := filepath.Join(dir, "salvaged.db")
			stdout, stderr, code := runGearsched(t, "salvage", db, dst)
			if code != 0 {
				t.Fatalf("salvage: exit %d\n%s\n%s", code, stdout, stderr)
			}
			t.Logf("salvage:\n%s", lastLines(stdout, 2))
			if _, _, code := runGearsched(t, "salvage", db, dst); code != 1 {
				t.Errorf("a second salvage into the same file: exit %d, want 1", code)
			}
			if stdout, _, code := runGearsched(t, "check", "--db", dst); code != 0 {
				t.Errorf("check of the salvaged database: exit %d\n%s", code, stdout)
			}

			s := startGearsched(t, "--db", dst, "--job-handle-prefix", "H:t")
			jobs, scheduled := servedHandles(t, s.Addr)
			for n := range want.ready {
				if !jobs[n] && !lost[n] {
					t.Errorf("undamaged ready job %d is not served after the salvage", n)
				}
			}
			for _, set := range []map[uint64]bool{want.pending, want.schedules} {
				for n := range set {
					if !scheduled[n] && !lost[n] {
						t.Errorf("undamaged pending job or schedule %d is not served after the salvage", n)
					}
				}
			}
			if tt.name != "truncated to half" { // its freelist may be gone: see store.Salvage
				for n := range want.done {
					if jobs[n] {
						t.Errorf("job %d, completed before the damage, came back", n)
					}
				}
			}
			t.Logf("after the salvage: %d ready jobs, %d pending jobs and schedules served of %d and %d",
				len(jobs), len(scheduled), len(want.ready), len(want.pending)+len(want.schedules))
		})
	}
}

// TestDatabaseInUse: a second server, and check and salvage, on a
// database a running server holds are refused with a message naming the
// server's pid.
func TestDatabaseInUse(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "busy.db")
	s := startGearsched(t, "--db", db)
	want := fmt.Sprintf("database %s is in use by another process (pid %d)", db, s.Pid)
	for _, args := range [][]string{
		{"serve", "--port", "0", "--db", db},
		{"check", "--db", db},
		{"salvage", db, db + ".new"},
	} {
		_, stderr, code := runGearsched(t, args...)
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("gearsched %q: exit %d, stderr %q; want exit 1 and %q", args, code, stderr, want)
		}
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	return strings.Join(lines[:min(n, len(lines))], "")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// TestDamageHint: an error a damaged database caused at start-up names
// check and salvage; others pass unchanged.
func TestDamageHint(t *testing.T) {
	for _, tt := range []struct {
		err  error
		hint bool
	}{
		{fmt.Errorf("server: restore jobs: %w", store.ErrDamaged), true},
		{errors.New("listen: address in use"), false},
	} {
		got := damageHint(tt.err, "x.db")
		if !errors.Is(got, tt.err) {
			t.Errorf("damageHint(%v) = %v: the cause is lost", tt.err, got)
		}
		if hint := strings.Contains(got.Error(), "gearsched salvage x.db NEW.db"); hint != tt.hint {
			t.Errorf("damageHint(%v) = %v: hint %v, want %v", tt.err, got, hint, tt.hint)
		}
	}
}
