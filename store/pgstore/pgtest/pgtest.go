// Package pgtest starts a real PostgreSQL server for tests: Debian's
// postgresql package (make test installs it), initialised in a temporary
// directory, run as the unprivileged user nobody (postgres refuses root)
// on a free 127.0.0.1 port, and stopped when the test ends. A missing
// binary fails the test: nothing is skipped.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL.
type Server struct {
	// URL reaches its database "postgres" as user postgres.
	URL  string
	Port int

	data string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *os.File
}

// Bin returns the path of a PostgreSQL server program.
func Bin(t testing.TB, name string) string {
	t.Helper()
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(m) == 0 {
		t.Fatalf("PostgreSQL's %s is required (Debian package postgresql; make test installs it)", name)
	}
	return m[len(m)-1]
}

// InitCluster initialises a cluster owned by nobody in a new temporary
// directory that other users can enter (t.TempDir is private to root),
// with trust authentication for the user postgres, removed when the test
// ends. It returns the directory and the cluster's data directory in it.
func InitCluster(t testing.TB) (dir, data string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "gearsched-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data = filepath.Join(dir, "data")
	for _, step := range []func() error{
		func() error { return os.Chmod(dir, 0o755) },
		func() error { return os.Mkdir(data, 0o700) },
		func() error { return os.Chown(data, 65534, 65534) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	initdb := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
		Bin(t, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	return dir, data
}

// Start initialises a cluster and starts it; it is stopped (fast
// shutdown) when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	dir, data := InitCluster(t)
	out, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	s := &Server{data: data, out: out}
	s.Port = freePort(t)
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	s.start(t)
	t.Cleanup(func() {
		s.Stop(t)
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("postgres log:\n%s", b)
		}
	})
	return s
}

// freePort returns a port free on 127.0.0.1 now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs postgres on s.Port and waits until it answers queries.
func (s *Server) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
		Bin(t, "postgres"), "-D", s.data, "-k", s.data, "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200")
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting postgres: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.URL)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return
		}
		select {
		case <-done:
			b, _ := os.ReadFile(s.out.Name())
			t.Fatalf("postgres exited: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down (fast shutdown: clients are disconnected).
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	// setpriv execs postgres, so the pid is postgres's own.
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Errorf("postgres did not stop within 30 s of SIGINT")
	}
}

// Restart starts a stopped server again on the same port and data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.start(t)
}

// NewDatabase creates an empty database and returns its URL, so that
// tests sharing one server do not share state.
func (s *Server) NewDatabase(t testing.TB, name string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, name)
}
