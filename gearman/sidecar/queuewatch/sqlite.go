package queuewatch

import (
	"context"
	"database/sql"
	"fmt"

	_ "modernc.org/sqlite" // the "sqlite" driver
)

// SQLite reading. gearmand's SQLite table is a rowid table (its primary
// key is not an INTEGER), and SQLite gives a new row the largest rowid in
// the table plus one, so rows added since a cursor are those above it: the
// incremental scan. A row that replaces the newest one after a delete can
// get the same rowid again; each scan therefore starts rowidLookback below
// the cursor, and the full passes find whatever that misses.
//
// In rollback-journal mode (gearmand's default) a reader holds a shared
// lock that gearmand's COMMIT waits for (gearmand sets a 6 s busy
// timeout, so it waits rather than fails). Every statement therefore
// reads at most sqliteChunk rows, each in its own implicit transaction, so
// a commit waits at most one short statement. In WAL mode readers never
// block the writer at all.
const (
	sqliteChunk   = 2048
	rowidLookback = 64
)

type sqliteSource struct {
	db *sql.DB
	// cursor is the highest rowid read; owned by the watcher's goroutine.
	cursor int64
	// qWindowEnd finds the rowid sqliteChunk rows past a start (stepping
	// the table's b-tree without returning the rows); qWindow reads the
	// rows with a time in (start, end]; qTop reads the largest rowid.
	qWindowEnd, qWindow, qTop string
}

func openSQLite(sp Spec) (source, error) {
	db, err := sql.Open("sqlite", sp.dsn)
	if err != nil {
		return nil, fmt.Errorf("queuewatch: %s: %w", sp.Location, err)
	}
	oneConn(db)
	t := sp.Table
	return &sqliteSource{db: db,
		qWindowEnd: fmt.Sprintf("SELECT rowid FROM %s WHERE rowid > ?1 ORDER BY rowid LIMIT 1 OFFSET %d", t, sqliteChunk-1),
		qWindow:    "SELECT function_name, unique_key, when_to_run FROM " + t + " WHERE rowid > ?1 AND rowid <= ?2 AND when_to_run > 0",
		qTop:       "SELECT coalesce(max(rowid), 0) FROM " + t,
	}, nil
}

// readFrom reads every row with a time above rowid start, window by
// window, and leaves the cursor at the largest rowid it covered.
func (s *sqliteSource) readFrom(ctx context.Context, start int64, fn func(Row)) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var end int64
		err := s.queryRow(ctx, s.qWindowEnd, &end, start)
		last := err == sql.ErrNoRows
		if last {
			end, err = s.top(ctx)
		}
		if err != nil {
			return err
		}
		if end > start {
			if err := s.window(ctx, start, end, fn); err != nil {
				return err
			}
		}
		s.cursor = max(end, start)
		start = end
		if last {
			return nil
		}
	}
}

func (s *sqliteSource) top(ctx context.Context) (int64, error) {
	var top int64
	return top, s.queryRow(ctx, s.qTop, &top)
}

func (s *sqliteSource) queryRow(ctx context.Context, q string, dst *int64, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	err := s.db.QueryRowContext(ctx, q, args...).Scan(dst)
	if err != nil && err != sql.ErrNoRows {
		return fmt.Errorf("queuewatch: %w", err)
	}
	return err
}

func (s *sqliteSource) window(ctx context.Context, start, end int64, fn func(Row)) error {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	rs, err := s.db.QueryContext(ctx, s.qWindow, start, end)
	if err != nil {
		return fmt.Errorf("queuewatch: %w", err)
	}
	// The window's rows are handed on only after the statement is done,
	// so that nothing fn does (a store commit) holds the shared lock.
	var rows []Row
	if err := scanRows(rs, func(r Row) { rows = append(rows, r) }); err != nil {
		return err
	}
	for _, r := range rows {
		fn(r)
	}
	return nil
}

func (s *sqliteSource) pass(ctx context.Context, fn func(Row)) error {
	return s.readFrom(ctx, 0, fn)
}

func (s *sqliteSource) newRows(ctx context.Context, fn func(Row)) (bool, error) {
	top, err := s.top(ctx)
	if err != nil {
		return true, err
	}
	// Rows deleted at the top since the last scan: the next insert reuses
	// their rowids, so the cursor must come down to the table's top.
	start := max(min(s.cursor, top)-rowidLookback, 0)
	return true, s.readFrom(ctx, start, fn)
}

func (s *sqliteSource) close() error { return s.db.Close() }
