package queuewatch

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// queueFile creates an SQLite file with gearmand's queue table holding n
// rows with a time (1000 seconds ahead of now, one function in ten), and
// returns its path and a connection for the test's writes that waits for
// locks as gearmand does (a 6 s busy timeout).
func queueFile(t *testing.T, n int) (string, *sql.DB) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "queue.db")
	db, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(6000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		"CREATE TABLE gearman_queue ( unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name))",
		fmt.Sprintf(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d)
INSERT INTO gearman_queue SELECT 'u' || x, 'f' || (x %% 10), 1, x'00', %d FROM c`, n, time.Now().Unix()+1000),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return file, db
}

// openFile opens the watcher's source on file.
func openFile(t *testing.T, file string) *sqliteSource {
	t.Helper()
	sp, err := ParseSpec("127.0.0.1:4730=sqlite://" + file)
	if err != nil {
		t.Fatal(err)
	}
	src, err := open(sp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.close() })
	return src.(*sqliteSource)
}

// insertRow writes one row due at when; the row's unique is its name.
func insertRow(t *testing.T, db *sql.DB, unique string, when int64) {
	t.Helper()
	if _, err := db.Exec("INSERT INTO gearman_queue (unique_key, function_name, priority, data, when_to_run) VALUES (?, 'new', 1, x'00', ?)", unique, when); err != nil {
		t.Fatal(err)
	}
}

// wide are bounds that hand on every row of queueFile's tables.
func wide() bounds {
	now := time.Now().Unix()
	return bounds{now: now, horizon: now + 100_000}
}

// uniques reads new rows and returns their uniques, sorted.
func uniques(t *testing.T, src *sqliteSource) []string {
	t.Helper()
	var got []string
	ok, _, err := src.newRows(context.Background(), wide(), func(r Row) { got = append(got, r.Unique) })
	if err != nil || !ok {
		t.Fatalf("newRows: %v, %v", ok, err)
	}
	slices.Sort(got)
	return got
}

// TestSQLiteReadsHoldNoLockBetweenStatements: a full pass and a poll read
// the table in statements of at most sqliteChunk rows, and between two of
// them hold no lock: a writer that does not wait at all (busy timeout 0)
// commits each time. A read transaction spanning statements, or a
// statement left open, would make its commit fail with SQLITE_BUSY.
func TestSQLiteReadsHoldNoLockBetweenStatements(t *testing.T) {
	rows := 5*sqliteChunk + 7
	file, _ := queueFile(t, rows)
	writer, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	writer.SetMaxOpenConns(1)
	src := openFile(t, file)
	statements, writes := 0, 0
	var failed []error
	src.afterStatement = func() {
		statements++
		writes++
		if _, err := writer.Exec("INSERT INTO gearman_queue (unique_key, function_name, priority, data, when_to_run) VALUES (?, 'w', 1, x'00', 0)",
			fmt.Sprintf("w%d", writes)); err != nil {
			failed = append(failed, err)
		}
	}
	tl, err := src.pass(context.Background(), wide(), func(Row) {})
	if err != nil {
		t.Fatal(err)
	}
	if tl.rows != rows {
		t.Errorf("the pass counted %d rows with a time, want %d", tl.rows, rows)
	}
	if min := rows / sqliteChunk; statements <= min {
		t.Errorf("a pass over %d rows ran %d statements, want more than %d (at most %d rows each)", rows, statements, min, sqliteChunk)
	}
	insertRow(t, writer, "new1", time.Now().Unix()+10)
	if got := uniques(t, src); !slices.Equal(got, []string{"new1"}) {
		t.Errorf("the poll read %q, want new1", got)
	}
	for _, err := range failed {
		t.Errorf("a writer that does not wait failed between two of the watcher's statements: %v", err)
	}
}

// TestSQLiteWriterNotHeldUp: while the watcher reads the table again and
// again, a writer that waits for locks as gearmand does commits a row
// each time the watcher has run another statement, so that its commits
// fall in the middle of passes; each must finish well within a generous
// bound. A hang check: it fails when a read keeps its lock (a statement
// left open, a transaction across a pass), not on a slow machine.
func TestSQLiteWriterNotHeldUp(t *testing.T) {
	file, db := queueFile(t, 20*sqliteChunk)
	src := openFile(t, file)
	stepped := make(chan struct{}, 1)
	src.afterStatement = func() {
		select {
		case stepped <- struct{}{}:
		default:
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var passes atomic.Int64
	readErr := make(chan error, 1)
	wg.Go(func() {
		for ctx.Err() == nil {
			_, err := src.pass(ctx, wide(), func(Row) {})
			if err == nil {
				passes.Add(1)
				_, _, err = src.newRows(ctx, wide(), func(Row) {})
			}
			if err != nil && ctx.Err() == nil {
				readErr <- err
				return
			}
		}
	})
	defer func() {
		cancel()
		wg.Wait()
	}()
	var worst time.Duration
	n := 0
	for ; passes.Load() < 3; n++ {
		select {
		case <-stepped:
		case err := <-readErr:
			t.Fatal(err)
		case <-time.After(time.Minute):
			t.Fatalf("the watcher ran no statement for a minute (%d passes)", passes.Load())
		}
		start := time.Now()
		insertRow(t, db, fmt.Sprintf("h%d", n), time.Now().Unix()+100)
		worst = max(worst, time.Since(start))
	}
	t.Logf("worst of %d commits %v during %d passes", n, worst, passes.Load())
	if bound := 2 * time.Second; worst > bound {
		t.Errorf("a commit waited %v with the watcher reading, over %v: the watcher holds its read lock too long", worst, bound)
	}
}

// TestSQLiteNewRows: a poll hands on exactly the rows added since the
// last read, reads nothing when nobody committed, and finds new rows that
// took the rowids of deleted rows at the top of the table.
func TestSQLiteNewRows(t *testing.T) {
	file, db := queueFile(t, 3*sqliteChunk)
	src := openFile(t, file)
	if _, err := src.pass(context.Background(), wide(), func(Row) {}); err != nil {
		t.Fatal(err)
	}
	statements := 0
	src.afterStatement = func() { statements++ }
	if got := uniques(t, src); len(got) != 0 || statements != 1 {
		t.Errorf("a poll with no commit since read %q in %d statements, want nothing in one (PRAGMA data_version)", got, statements)
	}
	now := time.Now().Unix()
	insertRow(t, db, "a", now+5)
	insertRow(t, db, "b", now+6)
	if got := uniques(t, src); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("after two inserts the poll read %q, want a and b", got)
	}
	// The jobs at the top ran (their rows went), and new rows took their
	// rowids, below the highest rowid read.
	if _, err := db.Exec("DELETE FROM gearman_queue WHERE unique_key IN ('a', 'b')"); err != nil {
		t.Fatal(err)
	}
	insertRow(t, db, "c", now+7)
	insertRow(t, db, "d", now+8)
	insertRow(t, db, "e", now+9)
	if got := uniques(t, src); !slices.Equal(got, []string{"c", "d", "e"}) {
		t.Errorf("after rows took the rowids of deleted ones the poll read %q, want c, d and e", got)
	}
	// Deeper: the top rows and old rows below them go, new ones come.
	if _, err := db.Exec("DELETE FROM gearman_queue WHERE rowid > (SELECT max(rowid) - 40 FROM gearman_queue)"); err != nil {
		t.Fatal(err)
	}
	// The poll reads from the highest row still in place: f and some of
	// the old rows below the deleted ones, at most twice as many rows as
	// went (the anchors' spacing), which the tracker has seen already.
	insertRow(t, db, "f", now+10)
	got := uniques(t, src)
	old := slices.DeleteFunc(slices.Clone(got), func(u string) bool { return u == "f" })
	if len(old) == len(got) || len(old) > 2*40 || slices.ContainsFunc(old, func(u string) bool { return u[0] != 'u' }) {
		t.Errorf("after 40 rows at the top went the poll read %q, want f and at most 80 old rows", got)
	}
}

// TestSQLiteNewRowsTableTurnedOver: when every row a large table had at
// the last read is gone, a poll cannot tell new rows and says so (the
// watcher then brings the full pass forward); a small table is reread.
func TestSQLiteNewRowsTableTurnedOver(t *testing.T) {
	for _, tc := range []struct {
		rows int
		ok   bool
	}{{smallTable + sqliteChunk, false}, {100, true}} {
		file, db := queueFile(t, tc.rows)
		src := openFile(t, file)
		if _, err := src.pass(context.Background(), wide(), func(Row) {}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("DELETE FROM gearman_queue"); err != nil {
			t.Fatal(err)
		}
		insertRow(t, db, "x", time.Now().Unix()+5)
		var got []string
		ok, _, err := src.newRows(context.Background(), wide(), func(r Row) { got = append(got, r.Unique) })
		if err != nil || ok != tc.ok || (ok && !slices.Equal(got, []string{"x"})) {
			t.Errorf("%d rows replaced by one: newRows read %q, %v, %v; want ok=%v", tc.rows, got, ok, err, tc.ok)
		}
		if !ok {
			got = nil
			if _, err := src.pass(context.Background(), wide(), func(r Row) { got = append(got, r.Unique) }); err != nil || !slices.Equal(got, []string{"x"}) {
				t.Errorf("the full pass after it read %q, %v; want x", got, err)
			}
		}
	}
}
