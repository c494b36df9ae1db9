package main

// Real database servers for the --watch-queue tests: PostgreSQL and
// MariaDB from Debian's packages (make test installs them), each started
// in a temporary directory on a free 127.0.0.1 port and stopped when the
// test ends. A missing binary fails the test: nothing is skipped.

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/gearsched/gearsched/store/pgstore/pgtest"
)

// dbServer is a running PostgreSQL or MariaDB.
type dbServer struct {
	*daemon
	// restart starts the server again on the same port and data.
	restart func(t testing.TB) *daemon
	// dsn is the database/sql data source of its test database.
	driver, dsn string
}

// sqlOpen opens s's test database for the test's own statements.
func (s *dbServer) sqlOpen(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open(s.driver, s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// waitSQL pings the database until it answers queries (a server accepts
// connections before it has finished starting).
func waitSQL(t testing.TB, driver, dsn string) {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered: %v", driver, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sharedTempDir is a temporary directory other users can enter (t.TempDir
// is private to root), removed when the test ends.
func sharedTempDir(t testing.TB, pattern string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startPostgres initialises a cluster owned by nobody (postgres refuses to
// run as root) and starts it on a free port, with trust authentication for
// the user postgres and its socket in the cluster's directory.
func startPostgres(t testing.TB) *dbServer {
	t.Helper()
	_, data := pgtest.InitCluster(t)
	start := func(t testing.TB, port int) *daemon {
		// SIGTERM is postgres's smart shutdown, which waits for every
		// client (gearmand) to leave: the shell turns the harness's
		// SIGTERM into SIGINT, the fast shutdown.
		d := startProcess(t, "postgres", "/bin/sh", port, func(port int) []string {
			return []string{"-c", `setpriv --reuid=nobody --regid=nogroup --clear-groups "$@" & pid=$!
trap 'kill -INT $pid' TERM
wait $pid; wait $pid`, "sh", pgtest.Bin(t, "postgres"),
				"-D", data, "-k", data, "-p", strconv.Itoa(port), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"}
		})
		waitSQL(t, "pgx", pgDSN(d.Port))
		return d
	}
	d := start(t, 0)
	reservePort(t, d.Port)
	return &dbServer{daemon: d, driver: "pgx", dsn: pgDSN(d.Port),
		restart: func(t testing.TB) *daemon { return start(t, d.Port) }}
}

func pgDSN(port int) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
}

// startMariaDB initialises a data directory and starts MariaDB on a free
// port without grant tables (any user, no password), with a database
// "gearman".
func startMariaDB(t testing.TB) *dbServer {
	t.Helper()
	for _, bin := range []string{"/usr/bin/mariadb-install-db", "/usr/sbin/mariadbd"} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s is required (Debian package mariadb-server; make test installs it): %v", bin, err)
		}
	}
	dir := sharedTempDir(t, "gearsched-maria-")
	data := filepath.Join(dir, "data")
	install := exec.Command("/usr/bin/mariadb-install-db", "--no-defaults", "--datadir="+data, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	start := func(t testing.TB, port int) *daemon {
		d := startProcess(t, "mariadbd", "/usr/sbin/mariadbd", port, func(port int) []string {
			return []string{"--no-defaults", "--datadir=" + data, "--socket=" + filepath.Join(dir, "mysqld.sock"),
				"--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1", "--user=root", "--skip-grant-tables",
				"--pid-file=" + filepath.Join(dir, "mysqld.pid"), "--innodb-flush-log-at-trx-commit=2", "--skip-log-bin"}
		})
		waitSQL(t, "mysql", mysqlDSN(d.Port, ""))
		return d
	}
	d := start(t, 0)
	reservePort(t, d.Port)
	db, err := sql.Open("mysql", mysqlDSN(d.Port, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE gearman"); err != nil {
		t.Fatal(err)
	}
	return &dbServer{daemon: d, driver: "mysql", dsn: mysqlDSN(d.Port, "gearman"),
		restart: func(t testing.TB) *daemon { return start(t, d.Port) }}
}

func mysqlDSN(port int, db string) string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s", port, db)
}
