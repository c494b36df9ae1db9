package main

// Test harness shared by the integration tests (clients_test.go) and the
// differential tests (diff_test.go). Every scenario runs once per backend:
// the real gearmand 1.1.20 that Debian ships, and the gearsched binary built
// from this module by TestMain. Each scenario starts its own servers on free
// ports, so the tests run in parallel.
//
// Running them:
//
//	go test ./cmd/gearsched                          # both backends
//	go test -race ./cmd/gearsched
//	go test ./cmd/gearsched -run 'TestDiff'          # differential tests only
//	GEARSCHED_TEST_BACKENDS=gearmand go test ./cmd/gearsched  # one backend
//	GEARSCHED_BUILD_FLAGS=-race go test ./cmd/gearsched       # racy server
//
// They need /usr/sbin/gearmand (gearman-job-server), gearman and gearadmin
// (gearman-tools), php with the gearman extension (php-cli, php-gearman) and
// perl with Gearman::Client (libgearman-client-perl). A missing tool fails
// the tests; nothing is skipped.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
)

const (
	// gearmandPath is the Debian gearman-job-server binary.
	gearmandPath = "/usr/sbin/gearmand"
	// readyTimeout bounds the wait for a freshly started server to accept.
	readyTimeout = 10 * time.Second
	// stopGrace is how long a server gets between SIGTERM and SIGKILL.
	stopGrace = 5 * time.Second
	// ioTimeout bounds every single network exchange made by the helpers.
	ioTimeout = 5 * time.Second
	// cmdTimeout bounds every external client or worker process.
	cmdTimeout = 20 * time.Second
)

// gearschedBin is the path of the gearsched binary built by TestMain;
// gearschedBuildErr is set instead when that build failed, so that only the
// tests that need the binary fail (with the compiler output).
var (
	gearschedBin      string
	gearschedBuildErr error
)

// TestMain builds the gearsched binary once for the whole package.
//
// GEARSCHED_BUILD_FLAGS adds flags to that build (for example "-race" to run
// the server itself under the race detector).
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gearsched-itest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness: temp dir:", err)
		return 2
	}
	defer os.RemoveAll(dir)

	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(dir, "gearsched")
	args := []string{"build", "-o", bin}
	args = append(args, strings.Fields(os.Getenv("GEARSCHED_BUILD_FLAGS"))...)
	args = append(args, "github.com/gearsched/gearsched/cmd/gearsched")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	out, err := exec.CommandContext(ctx, goTool, args...).CombinedOutput()
	cancel()
	if err != nil {
		gearschedBuildErr = fmt.Errorf("go build of gearsched failed: %v\n%s", err, out)
	} else {
		gearschedBin = bin
	}
	return m.Run()
}

// lockedBuffer is a bytes.Buffer safe for concurrent Write (from the
// os/exec copying goroutine) and String (from the test).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// daemon is one running job server process listening on 127.0.0.1.
type daemon struct {
	Addr    string // "127.0.0.1:PORT"
	Port    int
	Backend string // "gearmand" or "gearsched"
	Pid     int

	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, valid after done is closed
}

// Stderr returns what the server has written to stderr so far.
func (s *daemon) Stderr() string { return s.stderr.String() }

// backend names a server implementation and how to start one.
type backend struct {
	name  string
	start func(t testing.TB, args ...string) *daemon
}

// backends lists the implementations every scenario runs against.
var backends = []backend{
	{"gearmand", startGearmand},
	{"gearsched", startGearsched},
}

// forEachBackend runs fn as a parallel subtest per backend.
//
// GEARSCHED_TEST_BACKENDS, a comma-separated list of backend names, restricts
// the run to those backends (for example "gearmand" to validate the tests
// against gearmand alone). By default every backend runs.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Helper()
	only := os.Getenv("GEARSCHED_TEST_BACKENDS")
	for _, b := range backends {
		if only != "" && !slices.Contains(strings.Split(only, ","), b.name) {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// freePort asks the kernel for an unused TCP port on 127.0.0.1.
// It skips reserved ports.
func freePort(t testing.TB) int {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if _, reserved := reservedPorts.Load(port); !reserved {
			return port
		}
	}
}

// reservedPorts holds the ports of servers a test stops and starts again
// on the same port; freePort never hands them to a parallel test in the
// meantime.
var reservedPorts sync.Map

// reservePort keeps port out of freePort's hands until the test ends.
// Call it while the server is still listening on it.
func reservePort(t testing.TB, port int) {
	reservedPorts.Store(port, true)
	t.Cleanup(func() { reservedPorts.Delete(port) })
}

// startGearmand starts the real gearmand on a free port with the builtin
// (non-persistent) queue and extraArgs appended to its command line.
func startGearmand(t testing.TB, extraArgs ...string) *daemon {
	t.Helper()
	return startGearmandOn(t, 0, extraArgs...)
}

// startGearmandOn is startGearmand on a given port (0: a free one), to
// restart a server where its clients expect it.
func startGearmandOn(t testing.TB, port int, extraArgs ...string) *daemon {
	t.Helper()
	if _, err := os.Stat(gearmandPath); err != nil {
		t.Fatalf("gearmand is required: %v", err)
	}
	dir := t.TempDir()
	return startProcess(t, "gearmand", gearmandPath, port, func(port int) []string {
		args := []string{
			"--listen", "127.0.0.1",
			"--port", strconv.Itoa(port),
			"--log-file", "stderr",
			"--verbose", "INFO",
			"--threads", "1",
			"--pid-file", filepath.Join(dir, "gearmand.pid"),
		}
		return append(args, extraArgs...)
	})
}

// startGearsched starts the gearsched binary built by TestMain on a free
// port, with a fresh database and extraArgs appended to its command line.
func startGearsched(t testing.TB, extraArgs ...string) *daemon {
	t.Helper()
	if gearschedBuildErr != nil {
		t.Fatal(gearschedBuildErr)
	}
	db := filepath.Join(t.TempDir(), "gearsched.db")
	return startProcess(t, "gearsched", gearschedBin, 0, func(port int) []string {
		return serveArgs(port, db, extraArgs...)
	})
}

// serveArgs is the command line of `gearsched serve` on port with the
// database db and extraArgs appended.
func serveArgs(port int, db string, extraArgs ...string) []string {
	args := []string{
		"serve",
		"--listen", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--db", db,
		"--log-format", "text",
		"--http", "", // tests in parallel would share its default port; a test that wants it passes --http
	}
	return append(args, extraArgs...)
}

// launch starts bin with args, its port being port, and registers its
// stop with t.Cleanup (which also reports races and panics in its output,
// and logs the output if the test failed). It does not wait for the port.
func launch(t testing.TB, name, bin string, port int, args []string) *daemon {
	t.Helper()
	s := &daemon{
		Addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Port:    port,
		Backend: name,
		stderr:  &lockedBuffer{},
		done:    make(chan struct{}),
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout = s.stderr
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	s.Pid = s.cmd.Process.Pid
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		if s.stop() {
			t.Errorf("%s did not exit within %v of SIGTERM", name, stopGrace)
		}
		if out := s.Stderr(); strings.Contains(out, "WARNING: DATA RACE") ||
			strings.Contains(out, "panic: ") || strings.Contains(out, "fatal error: ") {
			t.Errorf("%s reported a data race, panic or fatal error", name)
		}
		if t.Failed() {
			t.Logf("%s %v stderr:\n%s", name, s.cmd.Args, s.Stderr())
		}
	})
	return s
}

// startProcess starts bin with the arguments argsFor(port) on a free port
// (or on fixedPort, when not 0) and waits until the port accepts
// connections. If the process dies before that (for instance because
// another test grabbed the port in between), it retries on a new port a
// couple of times. The process is stopped by
// t.Cleanup, and its stderr is logged if the test failed.
func startProcess(t testing.TB, name, bin string, fixedPort int, argsFor func(port int) []string) *daemon {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := fixedPort
		if port == 0 {
			port = freePort(t)
		}
		s := launch(t, name, bin, port, argsFor(port))
		lastErr = s.waitReady()
		if lastErr == nil {
			return s
		}
		s.stop()
		select {
		case <-s.done:
			t.Logf("%s exited before accepting (attempt %d): %v\n%s", name, attempt+1, lastErr, s.Stderr())
			if fixedPort != 0 {
				break
			}
			continue // maybe the port was taken: try another one
		default:
		}
		break
	}
	t.Fatalf("%s did not become ready: %v", name, lastErr)
	return nil
}

// waitReady dials the server until it accepts, the process exits, or
// readyTimeout passes. Backoff grows from 5 ms to 100 ms.
//
// The port comes from the kernel's ephemeral range, so while nothing listens
// on it a dial can be given that same port as its source and connect to
// itself (TCP simultaneous open); such a connection does not count.
func (s *daemon) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	backoff := 5 * time.Millisecond
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			self := c.LocalAddr().String() == c.RemoteAddr().String()
			c.Close()
			if !self {
				return nil
			}
			err = errors.New("connected to itself")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no listener on %s after %v: %v", s.Addr, readyTimeout, err)
		}
		select {
		case <-s.done:
			return fmt.Errorf("process exited: %v", s.err)
		case <-time.After(backoff):
		}
		if backoff < 100*time.Millisecond {
			backoff *= 2
		}
	}
}

// stop sends SIGTERM, then SIGKILL after stopGrace, and waits for the exit.
// It reports whether SIGKILL was needed. It is idempotent.
func (s *daemon) stop() (killed bool) {
	select {
	case <-s.done:
		return false
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return false
	case <-time.After(stopGrace):
		_ = s.cmd.Process.Kill()
		<-s.done
		return true
	}
}

// adminConn is a connection used for the text (admin) protocol.
type adminConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

// dialAdmin opens an admin connection that is closed by t.Cleanup.
func dialAdmin(t *testing.T, addr string) *adminConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &adminConn{t: t, c: c, r: bufio.NewReader(c)}
}

// cmd sends one admin line and returns the complete raw reply. line is sent
// as given if it already ends in "\n", otherwise "\n" is appended.
// A reply whose first line starts with "OK" or "ERR" is one line; anything
// else is a list that ends with the line ".\n".
func (a *adminConn) cmd(line string) string {
	a.t.Helper()
	reply, err := a.exchange(line)
	if err != nil {
		a.t.Fatalf("admin %q: %v (read so far %q)", line, err, reply)
	}
	return reply
}

func (a *adminConn) exchange(line string) (string, error) {
	if !strings.HasSuffix(line, "\n") {
		line += "\n"
	}
	if err := a.c.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		return "", err
	}
	if _, err := a.c.Write([]byte(line)); err != nil {
		return "", err
	}
	var out strings.Builder
	first := true
	for {
		l, err := a.r.ReadString('\n')
		out.WriteString(l)
		if err != nil {
			return out.String(), err
		}
		if first && (strings.HasPrefix(l, "OK") || strings.HasPrefix(l, "ERR")) {
			return out.String(), nil
		}
		first = false
		if l == ".\n" {
			return out.String(), nil
		}
	}
}

// admin sends one admin command on a fresh connection and returns the raw
// reply (see adminConn.cmd).
func admin(t *testing.T, addr, cmd string) string {
	t.Helper()
	a := dialAdmin(t, addr)
	defer a.c.Close()
	return a.cmd(cmd)
}

// eventually calls check until it returns "" or the deadline passes, and
// then fails the test with the last message. It is for awaiting a state
// change that the server does not announce (a connection going away, a
// worker registering); the backoff grows from 2 ms to 50 ms.
func eventually(t *testing.T, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	backoff := 2 * time.Millisecond
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %s", timeout, msg)
		}
		time.Sleep(backoff)
		if backoff < 50*time.Millisecond {
			backoff *= 2
		}
	}
}

// listRows splits a list reply ("row\nrow\n.\n") into its rows, checking the
// terminator, and returns them sorted (row order is undefined).
func listRows(t *testing.T, reply string) []string {
	t.Helper()
	if !strings.HasSuffix(reply, ".\n") {
		t.Fatalf("list reply does not end with .\\n: %q", reply)
	}
	body := strings.TrimSuffix(reply, ".\n")
	if body == "" {
		return nil
	}
	if !strings.HasSuffix(body, "\n") {
		t.Fatalf("list reply: last row not terminated: %q", reply)
	}
	rows := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	slices.Sort(rows)
	return rows
}

// toolProc is an external client or worker process started by startTool.
type toolProc struct {
	cmd    *exec.Cmd
	stdout *lockedBuffer
	stderr *lockedBuffer
	done   chan struct{}
	err    error
}

// startTool starts an external program with a deadline of cmdTimeout; stdin
// may be nil. The process is killed by t.Cleanup if still running, and its
// output is logged when the test fails.
func startTool(t *testing.T, stdin string, name string, args ...string) *toolProc {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is required: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	p := &toolProc{
		cmd:    exec.CommandContext(ctx, path, args...),
		stdout: &lockedBuffer{},
		stderr: &lockedBuffer{},
		done:   make(chan struct{}),
	}
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = p.stderr
	if stdin != "" {
		p.cmd.Stdin = strings.NewReader(stdin)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		cancel()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
		if t.Failed() && p.err != nil { // killed at the deadline, or failed
			t.Logf("%s %q: err=%v\nstdout:\n%s\nstderr:\n%s", name, args, p.err, p.stdout.String(), p.stderr.String())
		}
	})
	return p
}

// wait waits for the process to exit (killed at cmdTimeout at the latest)
// and fails the test unless it exited with status 0.
func (p *toolProc) wait(t *testing.T) (stdout, stderr string) {
	t.Helper()
	<-p.done
	if p.err != nil {
		t.Fatalf("%q: %v\nstdout:\n%s\nstderr:\n%s", p.cmd.Args, p.err, p.stdout.String(), p.stderr.String())
	}
	return p.stdout.String(), p.stderr.String()
}

// runTool runs an external program to completion (see startTool and wait).
func runTool(t *testing.T, stdin string, name string, args ...string) (stdout, stderr string) {
	t.Helper()
	return startTool(t, stdin, name, args...).wait(t)
}

// repoRoot returns the module root (the test runs in cmd/gearsched).
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(wd, "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found from %s: %v", wd, err)
	}
	return root
}

// clientScript returns the path of testdata/clients/name.
func clientScript(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "testdata", "clients", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("client script: %v", err)
	}
	return p
}

// dialServer connects a gearman.Client to addr (within 5 s) and closes it
// at cleanup. It sets no deadline: benchmarks run long.
func dialServer(t testing.TB, addr string) *gearman.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := gearman.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialClient is dialServer with a 30 s deadline on everything, for tests.
func dialClient(t *testing.T, addr string) *gearman.Client {
	t.Helper()
	c := dialServer(t, addr)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}
