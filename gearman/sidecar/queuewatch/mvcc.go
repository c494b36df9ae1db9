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
// New rows cannot be told from old ones without reading the whole table:
// gearmand's tables have no column that grows with insertion and no index
// but the (unique_key, function_name) key. PostgreSQL's system columns
// xmin (the inserting transaction) and ctid (the row's place) exist, but
// nothing indexes xmin, so asking for rows above a transaction id is a
// sequential scan of the table, as a full pass is; and a new row takes
// any page with free space, so ctid does not grow with insertion. MySQL's
// table (no primary key, nullable key columns) is clustered on InnoDB's
// hidden row id, which SQL cannot read, and has no AUTO_INCREMENT column.
// Every read is therefore a full pass; the watcher paces them by their
// cost. The database does the filtering and counting: one scan returns
// the rows due within the horizon, one row each, and a single row that
// counts the others and carries the earliest future time, so what crosses
// the network and what the watcher decodes does not grow with the table.
type mvccSource struct {
	db    *sql.DB
	query string
	// args are the query's arguments: MySQL's placeholders are
	// positional, PostgreSQL's numbered.
	args func(bounds) []any
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
	} else {
		// MySQL sorts GROUP BY results unless told not to.
		src.query = fmt.Sprintf(q, "?", "?", "?") + " ORDER BY NULL"
		src.args = func(b bounds) []any {
			return []any{b.low, b.horizon, b.low, b.horizon, b.low, b.horizon, b.now}
		}
	}
	return src, nil
}

func (s *mvccSource) pass(ctx context.Context, b bounds, fn func(Row)) (tally, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
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
	return t, nil
}

func (s *mvccSource) newRows(context.Context, bounds, func(Row)) (bool, tally, error) {
	return false, tally{}, nil
}

func (s *mvccSource) close() error { return s.db.Close() }
