package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemdNotify plays systemd for a Type=notify unit with
// WatchdogSec: it listens on a unix datagram socket named by
// $NOTIFY_SOCKET, sets $WATCHDOG_USEC, and reads what gearsched sends:
// READY=1 (by then the port accepts), WATCHDOG=1 pings at half the
// watchdog interval, and STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	t.Parallel()
	if gearschedBuildErr != nil {
		t.Fatal(gearschedBuildErr)
	}
	// A short path: unix socket names are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	cmd := exec.Command(gearschedBin, "serve", "--port", "0", "--db", filepath.Join(t.TempDir(), "s.db"), "--http", "")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000") // ping every 200 ms
	_, done := startBackground(t, cmd)

	buf := make([]byte, 4096)
	recv := func() string {
		t.Helper()
		ln.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := ln.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	ready := recv()
	if !strings.HasPrefix(ready, "READY=1\nSTATUS=serving on 127.0.0.1:") {
		t.Fatalf("first notification %q, want READY=1 with the address", ready)
	}
	addr := strings.TrimPrefix(ready, "READY=1\nSTATUS=serving on ")
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("READY=1 sent, but %s does not accept: %v", addr, err)
	}
	c.Close()
	start := time.Now()
	for range 3 {
		if got := recv(); got != "WATCHDOG=1" {
			t.Fatalf("notification %q, want WATCHDOG=1", got)
		}
	}
	// Three pings at 200 ms: about 600 ms; far less would mean pings at
	// the wrong interval (the bound is loose: machines are noisy).
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("three watchdog pings in %v, want them 200 ms apart", took)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	for {
		got := recv()
		if got == "WATCHDOG=1" { // a ping may cross the signal
			continue
		}
		if got != "STOPPING=1\nSTATUS=shutting down" {
			t.Fatalf("notification %q after SIGTERM, want STOPPING=1", got)
		}
		break
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("gearsched did not exit after SIGTERM")
	}
	if cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("exit %d after SIGTERM", cmd.ProcessState.ExitCode())
	}
}

// TestSystemdWithoutSocket: outside systemd nothing is sent and nothing
// is logged about it.
func TestSystemdWithoutSocket(t *testing.T) {
	t.Parallel()
	s := startGearsched(t)
	if strings.Contains(s.Stderr(), "systemd") {
		t.Errorf("log mentions systemd without $NOTIFY_SOCKET:\n%s", s.Stderr())
	}
}
