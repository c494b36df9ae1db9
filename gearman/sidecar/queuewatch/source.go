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

// source reads one backend's queue table. Its methods are called from the
// watcher's goroutine only.
type source interface {
	// pass calls fn for every row with a time, reading in short
	// statements that take no lock a writer waits for (a busy timeout on
	// SQLite; plain MVCC reads on PostgreSQL and MySQL). fn must not keep
	// the row's strings' backing arrays beyond the call unless it copies.
	pass(ctx context.Context, fn func(Row)) error
	// newRows calls fn for rows added since the last pass or newRows, and
	// reports false when the backend cannot tell new rows from old ones
	// (only a full pass sees them then).
	newRows(ctx context.Context, fn func(Row)) (bool, error)
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
		return openMVCC(sp, "pgx", "$1")
	case BackendMySQL:
		return openMVCC(sp, "mysql", "?")
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

// scanRows calls fn for each row of rs (function, unique, when_to_run) and
// returns the last error. NULL function or unique (never written by
// gearmand) read as "".
func scanRows(rs *sql.Rows, fn func(Row)) error {
	defer rs.Close()
	var fnName, unique sql.NullString
	var when sql.NullInt64
	for rs.Next() {
		if err := rs.Scan(&fnName, &unique, &when); err != nil {
			return fmt.Errorf("queuewatch: reading a row: %w", err)
		}
		if when.Int64 > 0 {
			fn(Row{Function: fnName.String, Unique: unique.String, WhenToRun: when.Int64})
		}
	}
	return rs.Err()
}
