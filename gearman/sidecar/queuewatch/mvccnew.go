package queuewatch

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// New rows on PostgreSQL and MySQL.
//
// gearmand's tables there have no column that grows with insertion and no
// index but the (unique_key, function_name) key, and the watcher may not
// add one, so no statement can fetch just the new rows without the
// database scanning the table. What each server does afford is a cheap
// way to tell that nothing was committed, and a scan that hands only the
// rows that matter to the watcher:
//
//   - PostgreSQL: the snapshot (txid_current_snapshot(), which unlike
//     pg_current_snapshot() exists before PostgreSQL 13 too) changes
//     whenever a transaction commits or takes a transaction id, anywhere
//     in the cluster. When it did, one sequential scan returns the rows
//     within the bounds whose inserting transaction (xmin) is at or after
//     the xmin of the snapshot taken before the last read: every row that
//     read could not see, and a few it saw. age(xmin) compares
//     transaction ids modulo 2^32 as PostgreSQL does; a row frozen more
//     than 2^31 transactions ago may be read again, which the tracker
//     ignores. The scan is the database's CPU (about 0.1 s per million
//     rows), the watcher's only the rows it returns. ctid does not help
//     (a new row takes any page with free space) and nothing indexes
//     xmin.
//   - MySQL and MariaDB: SHOW GLOBAL STATUS counters Handler_write,
//     Handler_update (rows written to any table) and Com_commit (explicit
//     COMMITs) tell that someone may have written; a plain consistent read
//     of the rows within the bounds then finds the new ones among them.
//     The counters move when a row is written, which may be before its
//     commit, so after a read the gate opened the next poll reads once
//     more even if they stayed. InnoDB clusters gearmand's table (no primary
//     key, nullable key columns) on a hidden row id that SQL cannot read,
//     so this is a full scan in the database (about 0.2 s per million
//     rows on MariaDB 10.11).
//
// Scans of new rows are paced by their cost: the next starts no sooner
// than freshFactor times the last one's duration after it ended, so that a
// server written to all the time spends at most 1/(freshFactor+1) of one
// core on the watcher (on MySQL, with the read once more, at most 2 scans
// in 2+freshFactor times a scan's duration); a table of 100,000 rows is still read at every
// poll, one of 1,000,000 on MariaDB (0.2 s a scan) every 0.8 s or so
// while writes go on. A server that is quiet costs one cheap statement
// per poll.
const freshFactor = 3

// freshRows finds the rows a PostgreSQL or MySQL table gained since the
// last read. Owned by the watcher's goroutine.
type freshRows struct {
	// gateSQL returns rows whose columns, joined, change when anyone
	// may have committed a row.
	gateSQL string
	// scanSQL returns function_name, unique_key and when_to_run of the
	// rows within the bounds that may be new since the mark, given by
	// args.
	scanSQL string
	args    func(b bounds, mark string) []any
	// markOf turns the gate's reading before a read into the mark of the
	// next scan; nil when the scan needs none.
	markOf func(gate string) (string, error)
	// settle is set when the gate may move before the rows it announces
	// are visible: the read after one the gate opened is done anyway.
	settle bool

	read      bool   // a read completed: last holds
	last      string // the gate's reading before the last read
	unsettled bool   // the next poll reads even if the gate stayed
	next      time.Time
}

func postgresFresh(table string) freshRows {
	return freshRows{
		gateSQL: "SELECT txid_current_snapshot()::text",
		scanSQL: "SELECT function_name, unique_key, when_to_run FROM " + table +
			" WHERE when_to_run > $1 AND when_to_run <= $2 AND age(xmin) <= age($3::text::xid)",
		args: func(b bounds, mark string) []any { return []any{b.low, b.horizon, mark} },
		markOf: func(snapshot string) (string, error) {
			// xmin:xmax:xip,...; xmin is a 64-bit transaction id whose
			// low 32 bits are what a row's xmin holds.
			xmin, _, _ := strings.Cut(snapshot, ":")
			v, err := strconv.ParseUint(xmin, 10, 64)
			if err != nil {
				return "", fmt.Errorf("queuewatch: snapshot %q: %w", snapshot, err)
			}
			return strconv.FormatUint(v&0xffffffff, 10), nil
		},
	}
}

func mysqlFresh(table string) freshRows {
	return freshRows{
		gateSQL: "SHOW GLOBAL STATUS WHERE Variable_name IN ('Handler_write', 'Handler_update', 'Com_commit')",
		scanSQL: "SELECT function_name, unique_key, when_to_run FROM " + table + " WHERE when_to_run > ? AND when_to_run <= ?",
		args:    func(b bounds, _ string) []any { return []any{b.low, b.horizon} },
		settle:  true,
	}
}

// gate reads the gate.
func (f *freshRows) gate(ctx context.Context, db *sql.DB) (string, error) {
	rs, err := db.QueryContext(ctx, f.gateSQL)
	if err != nil {
		return "", fmt.Errorf("queuewatch: %w", err)
	}
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		return "", fmt.Errorf("queuewatch: %w", err)
	}
	var b strings.Builder
	vals := make([]sql.RawBytes, len(cols))
	dst := make([]any, len(cols))
	for i := range vals {
		dst[i] = &vals[i]
	}
	for rs.Next() {
		if err := rs.Scan(dst...); err != nil {
			return "", fmt.Errorf("queuewatch: %w", err)
		}
		for _, v := range vals {
			b.Write(v)
			b.WriteByte(' ')
		}
	}
	if err := rs.Err(); err != nil {
		return "", fmt.Errorf("queuewatch: %w", err)
	}
	return b.String(), nil
}

// passed records a full pass whose gate reading before it was mark.
func (f *freshRows) passed(mark string) {
	f.read, f.last, f.unsettled = true, mark, f.settle
}

func (s *mvccSource) newRows(ctx context.Context, b bounds, fn func(Row)) (bool, tally, error) {
	f := &s.fresh
	if !f.read {
		return false, tally{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	g, err := f.gate(ctx, s.db)
	if err != nil {
		return true, tally{}, err
	}
	moved := g != f.last
	switch {
	case !moved && !f.unsettled:
		return true, tally{}, nil
	case moved && time.Now().Before(f.next):
		// Paced; f.last stays, so the gate stays open until then.
		return true, tally{}, nil
	}
	// Reading once more after a read the gate opened is not paced: it
	// comes once per such read, and waiting for it would hold up the
	// next row written after it by the whole pacing gap.
	mark := ""
	if f.markOf != nil {
		if mark, err = f.markOf(f.last); err != nil {
			return true, tally{}, err
		}
	}
	start := time.Now()
	rs, err := s.db.QueryContext(ctx, f.scanSQL, f.args(b, mark)...)
	if err != nil {
		return true, tally{}, fmt.Errorf("queuewatch: %w", err)
	}
	defer rs.Close()
	var t tally
	var sc rowScanner
	for rs.Next() {
		r, err := sc.scan(rs)
		if err != nil {
			return true, tally{}, err
		}
		if r.WhenToRun > b.now {
			t.add(tally{rows: 1, next: r.WhenToRun})
		}
		fn(r)
	}
	if err := rs.Err(); err != nil {
		return true, tally{}, fmt.Errorf("queuewatch: %w", err)
	}
	f.unsettled = f.settle && moved
	f.last = g
	end := time.Now()
	f.next = end.Add(freshFactor * end.Sub(start))
	return true, t, nil
}

func (s *mvccSource) readAt() time.Time { return s.fresh.next }
