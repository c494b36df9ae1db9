package queuewatch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/maphash"
	"math/bits"
	"strconv"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver
)

// SQLite reading.
//
// Locks. In rollback-journal mode (gearmand's default) a reader holds a
// shared lock for as long as a statement runs, and gearmand's COMMIT waits
// for it (gearmand sets a 6 s busy timeout, so it waits rather than
// fails); in WAL mode readers never block the writer. Every statement
// therefore covers at most sqliteChunk rows, outside any transaction, and
// nothing else (a store commit) happens while one is open: a commit waits
// for one short statement at most, and once gearmand asks for its
// exclusive lock SQLite gives the watcher's next statement no new shared
// lock until the commit is done.
//
// A chunk is one statement: it counts the next sqliteChunk rows in the
// database (how many have a time, the earliest future time, the chunk's
// last rowid) and returns, after that count, only the rows the tracker
// may register (due within the horizon, above the seconds it handled).
// Rows further ahead never cross into Go, which is most of a big table.
//
// New rows. gearmand's table is a rowid table (its primary key is not an
// INTEGER), and SQLite gives a new row the largest rowid in the table plus
// one, so while the row with the highest rowid read stays, every new row
// is above it. When rows at the top are deleted (their jobs ran), their
// rowids are given again, below that cursor. So the source keeps anchors:
// the rows (rowid and a hash of function, unique and time) at distances
// 0, 1, 3, 7, 15… below the highest rowid read. A poll first asks PRAGMA
// data_version whether anyone committed since the last read (nothing else
// is read when not), then finds the highest anchor still in place: rowids
// up to it were not given again, since it stayed, so reading the rows
// above it sees every new row. Usually that is the top anchor and only new
// rows are read; after deletions at the top, a few old rows are read
// again, which the tracker ignores. A row deleted and written again with
// the same function, unique and time, with rowids below it given again in
// between, is missed until the next full pass. When no anchor is left in a
// large table, the poll says so and the watcher brings the next full pass
// forward.
const (
	sqliteChunk = 1024
	// smallTable is the size, in rows, up to which a poll that finds no
	// anchor rereads the whole table rather than asking for a full pass.
	smallTable = 16 * sqliteChunk
)

// anchor is a row the source saw: its rowid and a hash of its function,
// unique and time.
type anchor struct {
	rowid int64
	sum   uint64
}

type sqliteSource struct {
	db  *sql.DB
	sql sqliteSQL
	// Owned by the watcher's goroutine.
	conn                      *sql.Conn // nil until the first read
	qVersion, qChunk, qAnchor *sql.Stmt
	seed                      maphash.Seed
	read                      bool  // a read completed: version, anchors and size hold
	version                   int64 // PRAGMA data_version at the last read
	size                      int64 // rows in the table at the last full read
	anchors                   []anchor
	// afterStatement, when set (tests), runs after each statement of a
	// read has finished.
	afterStatement func()
}

// sqliteSQL is the text of the source's statements for one table.
type sqliteSQL struct {
	version, chunk, anchor string
}

func openSQLite(sp Spec) (source, error) {
	db, err := sql.Open("sqlite", sp.dsn)
	if err != nil {
		return nil, fmt.Errorf("queuewatch: %s: %w", sp.Location, err)
	}
	oneConn(db)
	t := sp.Table
	return &sqliteSource{db: db, seed: maphash.MakeSeed(), sql: sqliteSQL{
		version: "PRAGMA data_version",
		// One row with NULL in its first three columns counts the chunk;
		// the others are the rows to hand on. Stepping the chunk, w,
		// twice costs less than materializing it.
		chunk: "WITH w AS NOT MATERIALIZED (SELECT rowid AS r, when_to_run AS t FROM " + t + " WHERE rowid > ?1 ORDER BY rowid LIMIT " + strconv.Itoa(sqliteChunk) + ") " +
			"SELECT NULL, NULL, NULL, count(*), coalesce(max(r), 0), count(CASE WHEN t > 0 THEN 1 END), min(CASE WHEN t > ?2 THEN t END) FROM w " +
			"UNION ALL SELECT function_name, unique_key, when_to_run, NULL, NULL, NULL, NULL FROM " + t +
			" WHERE rowid IN (SELECT r FROM w WHERE t > ?3 AND t <= ?4)",
		anchor: "SELECT function_name, unique_key, when_to_run, rowid FROM " + t + " WHERE rowid <= ?1 ORDER BY rowid DESC LIMIT 1",
	}}, nil
}

// ready takes the source's one connection and prepares its statements:
// PRAGMA data_version compares commits seen by one connection, so every
// read goes through the same one.
func (s *sqliteSource) ready(ctx context.Context) error {
	if s.conn != nil {
		return nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("queuewatch: %w", err)
	}
	var stmts []*sql.Stmt
	for _, q := range []string{s.sql.version, s.sql.chunk, s.sql.anchor} {
		st, err := conn.PrepareContext(ctx, q)
		if err != nil {
			conn.Close()
			return fmt.Errorf("queuewatch: preparing %q: %w", q, err)
		}
		stmts = append(stmts, st)
	}
	s.conn = conn
	s.qVersion, s.qChunk, s.qAnchor = stmts[0], stmts[1], stmts[2]
	return nil
}

func (s *sqliteSource) done() {
	if s.afterStatement != nil {
		s.afterStatement()
	}
}

// queryRow runs a one-row statement under queryTimeout; sql.ErrNoRows is
// returned as is.
func (s *sqliteSource) queryRow(ctx context.Context, st *sql.Stmt, args []any, dst ...any) error {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	err := st.QueryRowContext(ctx, args...).Scan(dst...)
	s.done()
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("queuewatch: %w", err)
	}
	return err
}

// readFrom reads the rows above rowid start, chunk by chunk, and returns
// the last rowid it covered (start if none), the tally and the rows it
// stepped over.
func (s *sqliteSource) readFrom(ctx context.Context, start int64, b bounds, fn func(Row)) (top int64, t tally, size int64, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, tally{}, 0, err
		}
		n, end, ct, err := s.chunk(ctx, start, b, fn)
		if err != nil {
			return 0, tally{}, 0, err
		}
		if n == 0 {
			return start, t, size, nil
		}
		size += n
		t.add(ct)
		start = end
		if n < sqliteChunk {
			return start, t, size, nil
		}
	}
}

// chunk reads the sqliteChunk rows above rowid start: it returns how many
// there were, the last one's rowid and their tally, and hands on the rows
// within b once the statement is done, so that nothing fn does (a store
// commit) holds the shared lock.
func (s *sqliteSource) chunk(ctx context.Context, start int64, b bounds, fn func(Row)) (n, end int64, t tally, err error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	rs, err := s.qChunk.QueryContext(ctx, start, b.now, b.low, b.horizon)
	if err != nil {
		return 0, 0, tally{}, fmt.Errorf("queuewatch: %w", err)
	}
	var rows []Row
	var sc rowScanner
	var count, last, timed, next sql.NullInt64
	for rs.Next() {
		r, err := sc.scan(rs, &count, &last, &timed, &next)
		if err != nil {
			rs.Close()
			return 0, 0, tally{}, err
		}
		if count.Valid {
			n, end, t = count.Int64, last.Int64, tally{rows: int(timed.Int64), next: next.Int64}
		} else {
			rows = append(rows, r)
		}
	}
	err = rs.Err()
	rs.Close()
	s.done()
	if err != nil {
		return 0, 0, tally{}, fmt.Errorf("queuewatch: %w", err)
	}
	for _, r := range rows {
		fn(r)
	}
	return n, end, t, nil
}

// anchorAt returns the row at or below rowid, or false when there is none.
func (s *sqliteSource) anchorAt(ctx context.Context, rowid int64) (anchor, bool, error) {
	var sc rowScanner
	var a anchor
	err := s.queryRow(ctx, s.qAnchor, []any{rowid}, &sc.fn, &sc.unique, &sc.when, &a.rowid)
	if errors.Is(err, sql.ErrNoRows) {
		return anchor{}, false, nil
	}
	if err != nil {
		return anchor{}, false, err
	}
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(sc.fn.String)
	h.WriteByte(0)
	h.WriteString(sc.unique.String)
	h.WriteByte(0)
	h.WriteString(strconv.FormatInt(sc.when.Int64, 10))
	a.sum = h.Sum64()
	return a, true, nil
}

// setAnchors keeps the anchors at or below start (still in place) and
// adds the rows at distances 0, 1, 3, 7… below top, down to start; then it
// keeps the highest anchor of each power-of-two distance from top, so
// there are at most 64.
func (s *sqliteSource) setAnchors(ctx context.Context, start, top int64) error {
	var fresh []anchor
	for d := int64(0); top-d > start; d = 2*d + 1 {
		a, ok, err := s.anchorAt(ctx, top-d)
		if err != nil {
			return err
		}
		if !ok || a.rowid <= start {
			break
		}
		if len(fresh) == 0 || a.rowid < fresh[len(fresh)-1].rowid {
			fresh = append(fresh, a)
		}
	}
	all := append(fresh, s.anchors...)
	s.anchors = s.anchors[:0:0]
	lastBucket := -1
	for _, a := range all {
		if b := bits.Len64(uint64(top - a.rowid)); b > lastBucket {
			s.anchors = append(s.anchors, a)
			lastBucket = b
		}
	}
	return nil
}

// dataVersion returns PRAGMA data_version: it changes when another
// connection committed.
func (s *sqliteSource) dataVersion(ctx context.Context) (int64, error) {
	var v int64
	return v, s.queryRow(ctx, s.qVersion, nil, &v)
}

func (s *sqliteSource) pass(ctx context.Context, b bounds, fn func(Row)) (tally, error) {
	if err := s.ready(ctx); err != nil {
		return tally{}, err
	}
	v, err := s.dataVersion(ctx)
	if err != nil {
		return tally{}, err
	}
	top, t, size, err := s.readFrom(ctx, 0, b, fn)
	if err != nil {
		return tally{}, err
	}
	s.anchors = nil
	if err := s.setAnchors(ctx, 0, top); err != nil {
		return tally{}, err
	}
	s.read, s.version, s.size = true, v, size
	return t, nil
}

func (s *sqliteSource) newRows(ctx context.Context, b bounds, fn func(Row)) (bool, tally, error) {
	if !s.read {
		return false, tally{}, nil
	}
	v, err := s.dataVersion(ctx)
	if err != nil || v == s.version {
		return true, tally{}, err
	}
	start := int64(-1)
	for i, a := range s.anchors {
		got, ok, err := s.anchorAt(ctx, a.rowid)
		if err != nil {
			return true, tally{}, err
		}
		if ok && got == a {
			start, s.anchors = a.rowid, s.anchors[i:]
			break
		}
	}
	if start < 0 {
		// Every anchor went: the table was emptied or turned over.
		// Reread a small one; a large one waits for a full pass.
		s.anchors = nil
		if s.size > smallTable {
			s.read = false
			return false, tally{}, nil
		}
		start = 0
	}
	top, t, size, err := s.readFrom(ctx, start, b, fn)
	if err != nil {
		return true, tally{}, err
	}
	if start == 0 {
		s.size = size
	}
	if err := s.setAnchors(ctx, start, top); err != nil {
		return true, tally{}, err
	}
	s.version = v
	return true, t, nil
}

func (s *sqliteSource) readAt() time.Time { return time.Time{} }

func (s *sqliteSource) close() error {
	if s.conn != nil {
		s.conn.Close()
	}
	return s.db.Close()
}
