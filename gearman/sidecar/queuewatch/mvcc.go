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
// it takes it never delays gearmand's INSERT and DELETE. gearmand's table
// has no column that orders rows by arrival (its only index is the
// (unique_key, function_name) key), so new rows cannot be told from old
// ones: every read is a full pass.
type mvccSource struct {
	db    *sql.DB
	query string
}

func openMVCC(sp Spec, driver, placeholder string) (source, error) {
	db, err := sql.Open(driver, sp.dsn)
	if err != nil {
		return nil, fmt.Errorf("queuewatch: %s: %w", sp.Location, err)
	}
	oneConn(db)
	return &mvccSource{db: db,
		query: "SELECT function_name, unique_key, when_to_run FROM " + sp.Table + " WHERE when_to_run > " + placeholder}, nil
}

func (s *mvccSource) pass(ctx context.Context, fn func(Row)) error {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	rs, err := s.db.QueryContext(ctx, s.query, 0)
	if err != nil {
		return fmt.Errorf("queuewatch: %w", err)
	}
	return scanRows(rs, fn)
}

func (s *mvccSource) newRows(context.Context, func(Row)) (bool, error) { return false, nil }

func (s *mvccSource) close() error { return s.db.Close() }
