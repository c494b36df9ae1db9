package queuewatch

import (
	"context"
	"database/sql"
	"fmt"

	_ "github.com/go-sql-driver/mysql" // the "mysql" driver
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

// mvccSource reads a PostgreSQL or MySQL queue table. A plain SELECT
// outside an explicit transaction is a consistent, non-locking read on
// both (PostgreSQL's snapshot; InnoDB's consistent read), so however long
// it takes it never delays gearmand's INSERT and DELETE.
//
// A full pass is one scan: the database does the filtering and counting,
// returning the rows due within the horizon, one row each, and a single
// row that counts the others and carries the earliest future time, so
// what crosses the network and what the watcher decodes does not grow
// with the table. New rows between passes are found by newRows
// (mvccnew.go).
type mvccSource struct {
	db    *sql.DB
	query string
	// args are the query's arguments: MySQL's placeholders are
	// positional, PostgreSQL's numbered.
	args func(bounds) []any
	// fresh finds the rows added between passes (mvccnew.go).
	fresh freshRows
}

func openMVCC(sp Spec, driver string) (source, error) {
	db, err := sql.Open(driver, sp.dsn)
	if err != nil {
		return nil, fmt.Errorf("queuewatch: %s: %w", sp.Location, err)
	}
	oneConn(db)
	// Rows past the horizon all fall into the group of NULLs; a row due
	// within it is its own group, as (unique_key, function_name) is the
	// table's key.
	in := "when_to_run > %[2]s AND when_to_run <= %[3]s"
	q := "SELECT CASE WHEN " + in + " THEN function_name END, CASE WHEN " + in + " THEN unique_key END, " +
		"CASE WHEN " + in + " THEN when_to_run END, count(*), min(CASE WHEN when_to_run > %[1]s THEN when_to_run END) " +
		"FROM " + sp.Table + " WHERE when_to_run > 0 GROUP BY 1, 2, 3"
	src := &mvccSource{db: db}
	if driver == "pgx" {
		src.query = fmt.Sprintf(q, "$1", "$2", "$3")
		src.args = func(b bounds) []any { return []any{b.now, b.low, b.horizon} }
		src.fresh = postgresFresh(sp.Table)
	} else {
		// MySQL sorts GROUP BY results unless told not to.
		src.query = fmt.Sprintf(q, "?", "?", "?") + " ORDER BY NULL"
		src.args = func(b bounds) []any {
			return []any{b.low, b.horizon, b.low, b.horizon, b.low, b.horizon, b.now}
		}
		src.fresh = mysqlFresh(sp.Table)
	}
	return src, nil
}

func (s *mvccSource) pass(ctx context.Context, b bounds, fn func(Row)) (tally, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	// The mark is taken before the scan: everything it counts as seen,
	// the scan sees.
	mark, err := s.fresh.gate(ctx, s.db)
	if err != nil {
		return tally{}, err
	}
	rs, err := s.db.QueryContext(ctx, s.query, s.args(b)...)
	if err != nil {
		return tally{}, fmt.Errorf("queuewatch: %w", err)
	}
	defer rs.Close()
	var t tally
	var sc rowScanner
	var n int64
	var next sql.NullInt64
	for rs.Next() {
		r, err := sc.scan(rs, &n, &next)
		if err != nil {
			return tally{}, err
		}
		t.add(tally{rows: int(n), next: next.Int64})
		if sc.when.Valid {
			fn(r)
		}
	}
	if err := rs.Err(); err != nil {
		return tally{}, fmt.Errorf("queuewatch: %w", err)
	}
	s.fresh.passed(mark)
	return t, nil
}

func (s *mvccSource) close() error { return s.db.Close() }
