package server

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearsched/gearsched/gearman"
)

// TestDurability stops a server with background jobs queued and running,
// reopens the same database with a new server, and checks that every
// stored job comes back whole, under its handle, in submission order.
func TestDurability(t *testing.T) {
	t.Parallel()
	dbPath := filepath.Join(t.TempDir(), "gearsched.db")

	ts1 := startServer(t, Config{}, dbPath)
	c := dialT(t, ts1.addr)
	h1 := c.submit(gearman.SubmitJobBg, "pq", "bg1", "d-bg1")
	h2 := c.submit(gearman.SubmitJobHighBg, "pq", "bg2", "d-bg2")
	h3 := c.submit(gearman.SubmitJobLowBg, "pq", "bg3", "d-bg3")
	h4 := c.submit(gearman.SubmitJobBg, "pq", "", "empty-A") // D6: both survive
	h5 := c.submit(gearman.SubmitJobBg, "pq", "", "empty-B")
	h6 := c.submit(gearman.SubmitReduceJobBackground, "pq", "rd1", "myreducer", "", "reduce\x00bg")
	h7 := c.submit(gearman.SubmitJobBg, "pq", "bg4", "d-bg4")
	fg := dialT(t, ts1.addr)
	h8 := fg.submit(gearman.SubmitJob, "pq", "fgbg", "fgdata")
	if h := c.submit(gearman.SubmitJobBg, "pq", "fgbg", "other"); h != h8 { // D7: now stored
		t.Fatalf("bg onto fg: %s, want %s", h, h8)
	}
	fg.submit(gearman.SubmitJob, "pq", "fg1", "fg only") // never stored
	h10 := c.submit(gearman.SubmitJobBg, "run", "r1", "running")
	h11 := c.submit(gearman.SubmitJobBg, "pq", "cancelled", "x")
	h12 := c.submit(gearman.SubmitJobBg, "fin", "f1", "x")
	h13 := c.submit(gearman.SubmitJobEpoch, "pq", "ep1", "1000", "epoch")

	adm := dialT(t, ts1.addr)
	adm.adminExpect("cancel job "+h11, "OK\r\n")
	w := dialT(t, ts1.addr)
	w.canDo("fin")
	if h, _ := w.grabJob(); h != h12 {
		t.Fatalf("grabbed %s, want %s", h, h12)
	}
	w.send(gearman.WorkComplete, h12, "")
	w.send(gearman.CantDo, "fin")
	w.send(gearman.CanDo, "run")
	w.sync()
	if h, _ := w.grabJob(); h != h10 { // running at shutdown
		t.Fatalf("grabbed %s, want %s", h, h10)
	}
	ts1.stop(t)

	ts2 := startServer(t, Config{}, dbPath)
	adm = dialT(t, ts2.addr)
	stored := []string{h1, h2, h3, h4, h5, h6, h7, h8, h10, h13}
	var want strings.Builder
	for _, h := range stored {
		want.WriteString(h + "\t0\t0\t1\n")
	}
	want.WriteString(".\n")
	adm.adminExpect("show jobs", want.String())
	adm.adminExpect("show unique jobs", "bg1\nbg2\nbg3\n\n\nrd1\nbg4\nfgbg\nr1\nep1\n.\n")
	adm.adminExpect("prioritystatus", "pq\t1\t7\t1\t0\nrun\t0\t1\t0\t0\n.\n")
	adm.adminExpect("status", "pq\t9\t0\t0\nrun\t1\t0\t0\n.\n")

	c = dialT(t, ts2.addr)
	c.status(h1, "1", "0", "0", "0") // old handles name the same jobs (D5)
	c.statusUnique("bg4", "1", "0", "0", "0", "0")
	// Restored jobs coalesce.
	if h := c.submit(gearman.SubmitJobBg, "pq", "bg1", "again"); h != h1 {
		t.Errorf("bg resubmission of bg1: %s, want %s", h, h1)
	}
	listener := dialT(t, ts2.addr)
	if h := listener.submit(gearman.SubmitJob, "pq", "bg4", "again"); h != h7 {
		t.Errorf("fg resubmission of bg4: %s, want %s", h, h7)
	}
	// A new job gets a handle never used before.
	hn := c.submit(gearman.SubmitJobBg, "pq", "new", "newdata")
	if handleNum(t, hn) <= handleNum(t, h13) {
		t.Errorf("new handle %s not above %s", hn, h13)
	}

	w = dialT(t, ts2.addr)
	w.canDo("pq")
	type assign struct {
		t    gearman.Type
		args []string
	}
	order := []assign{
		{gearman.JobAssignUniq, []string{h2, "pq", "bg2", "d-bg2"}},
		{gearman.JobAssignUniq, []string{h1, "pq", "bg1", "d-bg1"}},
		{gearman.JobAssignUniq, []string{h4, "pq", "", "empty-A"}},
		{gearman.JobAssignUniq, []string{h5, "pq", "", "empty-B"}},
		{gearman.JobAssignAll, []string{h6, "pq", "rd1", "myreducer", "reduce\x00bg"}},
		{gearman.JobAssignUniq, []string{h7, "pq", "bg4", "d-bg4"}},
		{gearman.JobAssignUniq, []string{h8, "pq", "fgbg", "fgdata"}},
		{gearman.JobAssignUniq, []string{h13, "pq", "ep1", "epoch"}},
		{gearman.JobAssignUniq, []string{hn, "pq", "new", "newdata"}},
		{gearman.JobAssignUniq, []string{h3, "pq", "bg3", "d-bg3"}},
	}
	for _, a := range order {
		w.send(gearman.GrabJobAll)
		w.expect(a.t, a.args...)
		w.send(gearman.WorkComplete, a.args[0], "ok:"+a.args[0])
	}
	w.send(gearman.GrabJobAll)
	w.expect(gearman.NoJob)
	listener.expect(gearman.WorkComplete, h7, "ok:"+h7)

	w.send(gearman.CanDo, "run")
	w.send(gearman.GrabJob)
	w.expect(gearman.JobAssign, h10, "run", "running")
	w.send(gearman.WorkComplete, h10, "")
	w.sync()
	ts2.stop(t)

	// Completed jobs stay deleted; handles keep growing.
	ts3 := startServer(t, Config{}, dbPath)
	c = dialT(t, ts3.addr)
	c.adminExpect("show jobs", ".\n")
	if h := c.submit(gearman.SubmitJobBg, "pq", "", "x"); handleNum(t, h) <= handleNum(t, hn) {
		t.Errorf("handle %s after second restart not above %s", h, hn)
	}
}
