package queuewatch

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Row is one queue row that has a time: a job gearmand holds until
// WhenToRun (unix seconds).
type Row struct {
	Function  string
	Unique    string
	WhenToRun int64
}

// bounds are what a read is for: rows with a time in (low, horizon] (unix
// seconds) are handed on, since those are the rows the tracker may still
// register; the others are only counted, in the database, so that a
// large table costs the watcher little more than its count.
type bounds struct {
	now, low, horizon int64
}

// tally is what a read counted: the rows with a time, and the earliest
// time after now (0 if none).
type tally struct {
	rows int
	next int64
}

func (t *tally) add(o tally) {
	t.rows += o.rows
	if o.next > 0 && (t.next == 0 || o.next < t.next) {
		t.next = o.next
	}
}

// source reads one backend's queue table. Its methods are called from the
// watcher's goroutine only.
type source interface {
	// pass calls fn for every row with a time in (b.low, b.horizon] and
	// counts all rows with a time, reading in short statements that take
	// no lock a writer waits for (a busy timeout on SQLite; plain MVCC
	// reads on PostgreSQL and MySQL). fn must not keep the row's strings'
	// backing arrays beyond the call unless it copies.
	pass(ctx context.Context, b bounds, fn func(Row)) (tally, error)
	// newRows does the same for the rows added since the last pass or
	// newRows (the tally counts only those), and reports false when the
	// backend cannot tell new rows from old ones: only a full pass sees
	// them then.
	newRows(ctx context.Context, b bounds, fn func(Row)) (bool, tally, error)
	// readAt is the earliest time newRows will read again where it paces
	// its reads, so that the watcher polls then rather than at the next
	// poll after it; zero (or past) when any poll may read.
	readAt() time.Time
	close() error
}

// queryTimeout bounds every statement, so a database that stops answering
// is noticed as an error instead of stalling the watcher.
const queryTimeout = 30 * time.Second

// open opens sp's database. Nothing is dialled here (database/sql dials
// on first use), so a database that is down fails the first read instead.
func open(sp Spec) (source, error) {
	switch sp.Backend {
	case BackendSQLite:
		return openSQLite(sp)
	case BackendPostgres:
		return openMVCC(sp, "pgx")
	case BackendMySQL:
		return openMVCC(sp, "mysql")
	}
	return nil, fmt.Errorf("queuewatch: unknown backend %q", sp.Backend)
}

// oneConn keeps db to a single connection: the watcher reads one
// statement at a time and should cost the database one session.
func oneConn(db *sql.DB) {
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(5 * time.Minute)
}

// rowScanner reads rows of (function, unique, when_to_run). NULL function
// or unique (never written by gearmand) read as "".
type rowScanner struct {
	fn, unique sql.NullString
	when       sql.NullInt64
}

func (s *rowScanner) scan(rs *sql.Rows, extra ...any) (Row, error) {
	if err := rs.Scan(append([]any{&s.fn, &s.unique, &s.when}, extra...)...); err != nil {
		return Row{}, fmt.Errorf("queuewatch: reading a row: %w", err)
	}
	return Row{Function: s.fn.String, Unique: s.unique.String, WhenToRun: s.when.Int64}, nil
}
