package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearsched/gearsched/gearman"
)

// mountTinyFS mounts a tmpfs of size bytes and unmounts it at cleanup,
// after every server started later in the test has stopped.
func mountTinyFS(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED, not passed: mounting a small tmpfs needs root (CI runs as root)")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// TestFullDisk fills the database's file system: submissions that cannot be
// stored get ERROR QUEUE_ERROR instead of JOB_CREATED, the server keeps
// serving, and every job that was acknowledged survives kill -9.
func TestFullDisk(t *testing.T) {
	t.Parallel()
	dir := mountTinyFS(t, 2<<20)
	db := filepath.Join(dir, "full.db")
	s1 := startGearsched(t, "--db", db)
	c := dialClient(t, s1.Addr)

	payload := bytes.Repeat([]byte("z"), 64<<10)
	var acked []string
	var serr *gearman.ServerError
	for i := 0; ; i++ {
		if i > 200 {
			t.Fatal("200 jobs of 64 KiB fit on a 2 MiB file system: the disk never filled")
		}
		h, err := c.Submit(gearman.SubmitJobBg, "full_fn", fmt.Sprintf("u%d", i), payload)
		if errors.As(err, &serr) {
			if serr.Code != "QUEUE_ERROR" {
				t.Fatalf("full disk answered %s %q, want QUEUE_ERROR", serr.Code, serr.Text)
			}
			break
		}
		if err != nil {
			t.Fatalf("submission %d: %v", i, err)
		}
		acked = append(acked, h)
	}
	if len(acked) == 0 {
		t.Fatal("no job fitted at all; the test proves nothing")
	}
	t.Logf("%d jobs of 64 KiB acknowledged before the disk filled", len(acked))
	// The connection and the server are still fine.
	if err := c.Send(gearman.EchoReq, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if p, err := c.Recv(); err != nil || p.Type != gearman.EchoRes || string(p.Args[0]) != "still here" {
		t.Fatalf("echo after the disk filled: %v %v", p, err)
	}
	rows := listRows(t, admin(t, s1.Addr, "show jobs"))
	if len(rows) != len(acked) {
		t.Errorf("show jobs lists %d jobs, %d were acknowledged (a refused job must leave no trace)", len(rows), len(acked))
	}

	s1.kill9(t)
	s2 := startGearsched(t, "--db", db)
	stored := strings.Join(listRows(t, admin(t, s2.Addr, "show jobs")), "\n")
	for _, h := range acked {
		if !strings.Contains(stored, h+"\t") {
			t.Errorf("acknowledged job %s missing after the restart", h)
		}
	}
}
