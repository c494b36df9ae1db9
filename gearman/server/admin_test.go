package server

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gearsched/gearsched/gearman"
)

const incomplete = "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+"

// TestAdminExact replays gearmand 1.1.20's admin exchange on a fresh server: every reply byte
// for byte, in order.
func TestAdminExact(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{LogLevel: func() string { return "NOTICE" }})
	c := dialT(t, addr)
	steps := []struct{ cmd, want string }{
		{"version", "OK gearsched " + Version + "\n"},
		{"VERSION", "OK gearsched " + Version + "\n"},
		{"getpid", fmt.Sprintf("OK %d\n", os.Getpid())},
		{"verbose", "OK NOTICE\n"},
		{"status", ".\n"},
		{"prioritystatus", ".\n"},
		{"show jobs", ".\n"},
		{"show unique jobs", ".\n"},
		{"SHOW JOBS", ".\n"},
		{"priority status", "ERR UNKNOWN_COMMAND Unknown+server+commandpriority\r\n"},
		{"show", "ERR UNKNOWN_COMMAND Unknown+server+commandshow\r\n"},
		{"show foo", "ERR UNKNOWN_SHOW_ARGUMENTS\r\n"},
		{"show unique", "ERR UNKNOWN_SHOW_ARGUMENTS\r\n"},
		{"show unique foo", "ERR UNKNOWN_SHOW_ARGUMENTS\r\n"},
		{"cancel job H:nope:1", "ERR UNKNOWN_JOB\r\n"},
		{"cancel job", "ERR UNKNOWN_COMMAND Unknown+server+commandcancel\r\n"},
		{"cancel", "ERR UNKNOWN_COMMAND Unknown+server+commandcancel\r\n"},
		{"cancel job a b", "ERR UNKNOWN_ERROR\r\n"},
		{"cancel xyz H:t:1", "ERR UNKNOWN_ERROR\r\n"},
		{"create function fnB", "OK\r\n"}, // bare \n: the whole name (D3)
		{"create", incomplete + "create\r\n"},
		{"create function", incomplete + "create\r\n"},
		{"create function a b", incomplete + "create\r\n"},
		{"drop", incomplete + "drop\r\n"},
		{"drop function", incomplete + "drop\r\n"},
		{"drop function nosuch", "ERR function not found\r\n"},
		{"maxqueue", incomplete + "maxqueue\r\n"},
		{"maxqueue fnM 5", "OK\r\n"},
		{"maxqueue fnM 1 2 3", "OK\r\n"},
		{"shutdown", "ERR UNKNOWN_COMMAND Unknown+server+commandshutdown\r\n"},
		{"shutdown graceful", "ERR UNKNOWN_COMMAND Unknown+server+commandshutdown\r\n"},
		{"bogus", "ERR UNKNOWN_COMMAND Unknown+server+commandbogus\r\n"},
		{"BoGuS x", "ERR UNKNOWN_COMMAND Unknown+server+commandBoGuS\r\n"},
		{"", "ERR UNKNOWN_COMMAND Unknown+server+command\r\n"},
		{" status", "ERR UNKNOWN_COMMAND Unknown+server+command\r\n"},
		{"a b c d e", "ERR UNKNOWN_COMMAND Unknown+server+commanda\r\n"},
		{"STATUS", "fnB\t0\t0\t0\nfnM\t0\t0\t0\n.\n"},
		{"status extra args", "fnB\t0\t0\t0\nfnM\t0\t0\t0\n.\n"},
		{"status   ", "fnB\t0\t0\t0\nfnM\t0\t0\t0\n.\n"},
		{"status a b c d", "fnB\t0\t0\t0\nfnM\t0\t0\t0\n.\n"},
		{"prioritystatus", "fnB\t0\t0\t0\t0\nfnM\t0\t0\t0\t0\n.\n"},
		{"drop function FNB", "OK\r\n"},
		{"drop function fnB", "ERR function not found\r\n"},
		{"status", "fnM\t0\t0\t0\n.\n"},
	}
	for _, s := range steps {
		c.adminExpect(s.cmd, s.want)
	}

	// gearadmin's \r\n keeps the name whole too.
	c.writeRaw([]byte("create function fnA\r\n"))
	if line := c.readLine(); line != "OK\r\n" {
		t.Fatalf("create function fnA\\r\\n: %q", line)
	}
	c.adminExpect("status", "fnA\t0\t0\t0\nfnM\t0\t0\t0\n.\n")

	// The connection stayed open through all of it; a sixth word closes it
	// without a reply, and only it.
	c.sync()
	c6 := dialT(t, addr)
	c6.deadline()
	if r, err := c6.Admin("a b c d e f"); err == nil {
		t.Fatalf("6-word line answered %q", r)
	}
	c6.expectClosed()
	c.adminExpect("version", "OK gearsched "+Version+"\n")
}

// TestAdminLists checks status, prioritystatus, workers, show jobs and show
// unique jobs with jobs and workers present.
func TestAdminLists(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	adm, client, worker := dialT(t, addr), dialT(t, addr), dialT(t, addr)
	adm.sync()
	client.sync()
	worker.send(gearman.SetClientID, "my-worker-1")
	worker.canDo("f_basic", "f_basic") // duplicates count twice
	h1 := client.submit(gearman.SubmitJob, "f_basic", "u1", "payload")
	h2 := client.submit(gearman.SubmitJobBg, "f_basic", "", "bg")
	h3 := client.submit(gearman.SubmitJobHighBg, "f_pri", "p1", "x")
	h4 := client.submit(gearman.SubmitJobLowBg, "f_pri", "p2", "x")
	h5 := client.submit(gearman.SubmitJobLow, "f_pri", "p3", "x")
	if got, _ := worker.grabJob(); got != h1 {
		t.Fatalf("grabbed %s, want %s", got, h1)
	}
	adm.adminExpect("status", "f_basic\t2\t1\t2\nf_pri\t3\t0\t0\n.\n")
	adm.adminExpect("prioritystatus", "f_basic\t0\t1\t0\t2\nf_pri\t1\t0\t2\t0\n.\n")
	adm.adminExpect("show jobs", h1+"\t0\t0\t0\n"+h2+"\t0\t0\t1\n"+h3+"\t0\t0\t1\n"+h4+"\t0\t0\t1\n"+h5+"\t0\t0\t0\n.\n")
	adm.adminExpect("show unique jobs", "u1\n\np1\np2\np3\n.\n")

	want := []string{"127.0.0.1 - :", "127.0.0.1 - :", "127.0.0.1 my-worker-1 : f_basic f_basic"}
	checkWorkers(t, adm, want)

	// CANT_DO removes every registration of the function.
	worker.send(gearman.CanDo, "other")
	worker.send(gearman.CantDo, "f_basic")
	worker.sync()
	checkWorkers(t, adm, []string{"127.0.0.1 - :", "127.0.0.1 - :", "127.0.0.1 my-worker-1 : other"})
	adm.adminExpect("status", "f_basic\t2\t1\t0\nf_pri\t3\t0\t0\nother\t0\t0\t1\n.\n")
	worker.send(gearman.CanDo, "a")
	worker.send(gearman.CanDo, "b")
	worker.send(gearman.ResetAbilities)
	worker.sync()
	checkWorkers(t, adm, []string{"127.0.0.1 - :", "127.0.0.1 - :", "127.0.0.1 my-worker-1 :"})

	// A long client ID is cut at 127 bytes.
	worker.send(gearman.SetClientID, strings.Repeat("i", 200))
	worker.sync()
	checkWorkers(t, adm, []string{"127.0.0.1 - :", "127.0.0.1 - :", "127.0.0.1 " + strings.Repeat("i", 127) + " :"})

	// Functions are kept after their jobs finish.
	worker.send(gearman.WorkComplete, h1, "done")
	worker.sync()
	client.expect(gearman.WorkComplete, h1, "done")
	adm.adminExpect("status", "a\t0\t0\t0\nb\t0\t0\t0\nf_basic\t1\t0\t0\nf_pri\t3\t0\t0\nother\t0\t0\t0\n.\n")
}

// checkWorkers compares `workers` with want, ignoring the file descriptors,
// which must be distinct and ascending.
func checkWorkers(t *testing.T, c *tconn, want []string) {
	t.Helper()
	reply := c.admin("workers")
	if !strings.HasSuffix(reply, "\n.\n") {
		t.Fatalf("workers reply %q", reply)
	}
	rows := strings.Split(strings.TrimSuffix(reply, "\n.\n"), "\n")
	re := regexp.MustCompile(`^(\d+) (.*)$`)
	var got []string
	last := -1
	for _, row := range rows {
		m := re.FindStringSubmatch(row)
		if m == nil {
			t.Fatalf("workers row %q", row)
		}
		fd, _ := strconv.Atoi(m[1])
		if fd <= last {
			t.Errorf("workers rows not in fd order: %q", reply)
		}
		last = fd
		got = append(got, m[2])
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("workers:\n got %q\nwant %q", got, want)
	}
}

func TestAdminCancel(t *testing.T) {
	t.Parallel()
	dbPath := filepath.Join(t.TempDir(), "db")
	ts := startServer(t, Config{}, dbPath)
	adm, client := dialT(t, ts.addr), dialT(t, ts.addr)
	h := client.submit(gearman.SubmitJob, "cx", "cu", "x")
	hb := client.submit(gearman.SubmitJobBg, "cx", "bu", "x")
	adm.adminExpect("cancel job "+h, "OK\r\n")
	client.expect(gearman.WorkFail, h)
	adm.adminExpect("cancel job "+hb, "OK\r\n")
	client.sync() // no listener on the bg job
	// Flagged, still counted until reaped at the next grab.
	adm.adminExpect("show jobs", h+"\t0\t1\t0\n"+hb+"\t0\t1\t0\n.\n")
	adm.adminExpect("status", "cx\t2\t0\t0\n.\n")
	client.status(h, "0", "0", "0", "0")
	client.statusUnique("cu", "0", "0", "0", "0", "0")
	adm.adminExpect("cancel job "+h, "ERR UNKNOWN_JOB\r\n")
	// A cancelled unique no longer coalesces.
	h2 := client.submit(gearman.SubmitJob, "cx", "cu", "new")
	if h2 == h {
		t.Fatalf("submission coalesced onto cancelled job %s", h)
	}
	w := dialT(t, ts.addr)
	w.canDo("cx")
	if got, data := w.grabJob(); got != h2 || data != "new" {
		t.Fatalf("grabbed %s %q, want %s", got, data, h2)
	}
	w.expectNoJob()
	adm.adminExpect("show jobs", h2+"\t0\t0\t0\n.\n")
	adm.adminExpect("status", "cx\t1\t1\t1\n.\n")

	// Cancelling a running job does not stop it; its result still goes
	// nowhere harmful.
	adm.adminExpect("cancel job "+h2, "OK\r\n")
	client.expect(gearman.WorkFail, h2)
	w.send(gearman.WorkComplete, h2, "late")
	w.sync()
	client.sync()
	adm.adminExpect("show jobs", ".\n")

	// The cancelled bg job's record is gone: nothing comes back.
	ts.stop(t)
	ts2 := startServer(t, Config{}, dbPath)
	dialT(t, ts2.addr).adminExpect("show jobs", ".\n")
}

func TestAdminDropFunction(t *testing.T) {
	t.Parallel()
	addr := newTestServer(t, Config{})
	adm, client, w := dialT(t, addr), dialT(t, addr), dialT(t, addr)
	const busy = "ERR there are still connected workers or executing clients\r\n"
	h := client.submit(gearman.SubmitJobBg, "dq", "", "x")
	adm.adminExpect("drop function dq", busy) // queued job (D12)
	w.canDo("dq")
	adm.adminExpect("drop function dq", busy) // worker and job
	w.grabJob()
	adm.adminExpect("drop function dq", busy) // running
	w.send(gearman.WorkComplete, h, "")
	w.send(gearman.CantDo, "dq")
	w.sync()
	adm.adminExpect("status", "dq\t0\t0\t0\n.\n")
	adm.adminExpect("drop function DQ", "OK\r\n") // case-insensitive
	adm.adminExpect("status", ".\n")
	adm.adminExpect("drop function dq", "ERR function not found\r\n")
	// A worker alone blocks the drop.
	w.canDo("only")
	adm.adminExpect("drop function only", busy)
}
