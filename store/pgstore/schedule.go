package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/gearsched/gearsched/store"
)

// scanSchedule reads a schedule from its id and JSON definition.
func scanSchedule(row pgx.Row) (*store.Schedule, error) {
	var id int64
	var def []byte
	if err := row.Scan(&id, &def); err != nil {
		return nil, err
	}
	var sc store.Schedule
	if err := json.Unmarshal(def, &sc); err != nil {
		return nil, fmt.Errorf("schedule %d: %w", id, err)
	}
	sc.ID = uint64(id)
	return &sc, nil
}

// writeSchedule inserts or replaces sc's row, and tells the other sidecars
// when it next fires.
func writeSchedule(ctx context.Context, tx pgx.Tx, sc *store.Schedule) error {
	def, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	var name *string
	if sc.Source == store.SourceFile {
		name = &sc.Name
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schedules (id, name, source, active, fire_at, def) VALUES ($1,$2,$3,$4,$5,$6)
		ON CONFLICT (id) DO UPDATE SET name = $2, source = $3, active = $4, fire_at = $5, def = $6`,
		int64(sc.ID), name, sc.Source, sc.Active(), sc.FireAt, def); err != nil {
		return err
	}
	if sc.Active() {
		return notifyDue(ctx, tx, sc.FireAt)
	}
	return nil
}

// getSchedule reads schedule id in tx, locking its row: nil if none.
func getSchedule(ctx context.Context, tx pgx.Tx, id uint64) (*store.Schedule, error) {
	sc, err := scanSchedule(tx.QueryRow(ctx, `SELECT id, def FROM schedules WHERE id = $1 FOR UPDATE`, int64(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return sc, err
}

// define writes a definition of sc over the one in tx (if any), moving its
// generation as the bbolt store does (store.NextGen), and keeps its key.
func define(ctx context.Context, tx pgx.Tx, sc *store.Schedule) error {
	old, err := getSchedule(ctx, tx, sc.ID)
	if err != nil {
		return err
	}
	sc.Gen = store.NextGen(old, sc)
	return writeSchedule(ctx, tx, sc)
}

// PutSchedule stores a new schedule unless a pending job or schedule holds
// its (function, unique), or request made a record still known (as
// store.Store.PutSchedule). The write completes once committed.
func (s *Store) PutSchedule(sc *store.Schedule, request string) *store.Write {
	if err := store.CheckSchedule(sc, request); err != nil {
		w, done := store.NewWrite()
		done(false, store.Holder{}, err)
		return w
	}
	k := key{"", sc.Function, sc.Unique}
	if sc.Source == store.SourceFile {
		k.unique = "" // file schedules are keyed by name
	}
	return s.enqueue(createOp{run: func(ctx context.Context, tx pgx.Tx) (bool, store.Holder, error) {
		return create(ctx, tx, k, request, sc.ID, func(tx pgx.Tx) (store.Holder, error) {
			return store.Holder{ID: sc.ID, Due: sc.Next}, define(ctx, tx, sc)
		})
	}})
}

// GetSchedule returns the schedule with that id, or nil.
func (s *Store) GetSchedule(id uint64) (*store.Schedule, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	sc, err := scanSchedule(s.pool.QueryRow(ctx, `SELECT id, def FROM schedules WHERE id = $1`, int64(id)))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	return sc, nil
}

// Schedules returns every schedule, in id order.
func (s *Store) Schedules() ([]*store.Schedule, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	rows, _ := s.pool.Query(ctx, `SELECT id, def FROM schedules ORDER BY id`)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.Schedule, error) { return scanSchedule(r) })
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	return out, nil
}

// reloadLock is the advisory lock key that keeps two reloads of the
// schedules file, from two sidecars, apart.
const reloadLock = 0x6765617273636865

// EditSchedules runs fn in one transaction, with every schedule locked as
// it is then, under an advisory lock that keeps two sidecars' reloads
// apart: each sidecar may carry the same schedules file, and the second
// reload finds the first's schedules by name and changes nothing. A claim
// holding a schedule is waited for, so fn sees it as advanced.
func (s *Store) EditSchedules(fn func(store.ScheduleEditor) error) error {
	ctx, cancel := s.opContext()
	defer cancel()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(reloadLock)); err != nil {
			return err
		}
		return fn(&editor{ctx: ctx, tx: tx})
	})
	if err != nil {
		return fmt.Errorf("pgstore: editing schedules: %w", err)
	}
	return nil
}

// editor is store.ScheduleEditor on one transaction.
type editor struct {
	ctx context.Context
	tx  pgx.Tx
}

// Schedules returns every schedule, in id order, locked for the edit.
func (e *editor) Schedules() ([]*store.Schedule, error) {
	rows, _ := e.tx.Query(e.ctx, `SELECT id, def FROM schedules ORDER BY id FOR UPDATE`)
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.Schedule, error) { return scanSchedule(r) })
}

// Put writes a definition of sc, new or replacing the one with its id.
func (e *editor) Put(sc *store.Schedule) error {
	if err := store.CheckSchedule(sc, ""); err != nil {
		return err
	}
	if sc.Source != store.SourceFile && indexed(sc.Unique) {
		if _, err := e.tx.Exec(e.ctx, `INSERT INTO keys (scope, function, uniq, id) VALUES ('', $1, $2, $3)
			ON CONFLICT (scope, function, uniq) DO UPDATE SET id = $3`, sc.Function, sc.Unique, int64(sc.ID)); err != nil {
			return err
		}
	}
	return define(e.ctx, e.tx, sc)
}

// Delete removes schedule id, if there is one.
func (e *editor) Delete(id uint64) error {
	if _, err := e.tx.Exec(e.ctx, `DELETE FROM schedules WHERE id = $1`, int64(id)); err != nil {
		return err
	}
	if _, err := e.tx.Exec(e.ctx, `DELETE FROM runs WHERE item = $1`, int64(id)); err != nil {
		return err
	}
	return forget(e.ctx, e.tx, id)
}

// SetPaused pauses or resumes schedule id in one transaction, as
// store.Store.SetPaused: a definition change, which a claim holding the
// schedule finishes first.
func (s *Store) SetPaused(id uint64, paused bool, now int64) (store.PauseResult, *store.Schedule, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	var res store.PauseResult
	var out *store.Schedule
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		res, out = store.PauseNotFound, nil
		sc, err := getSchedule(ctx, tx, id)
		switch {
		case err != nil:
			return err
		case sc == nil:
			var one int
			err := tx.QueryRow(ctx, `SELECT 1 FROM pending WHERE id = $1`, int64(id)).Scan(&one)
			if err == nil {
				res = store.PauseJob
			} else if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			return nil
		}
		res, out = store.PauseDone, sc
		if sc.Paused == paused {
			return nil
		}
		old := *sc
		sc.Paused = paused
		if !paused {
			sc.ResumedAt = now
		}
		sc.Gen = store.NextGen(&old, sc)
		return writeSchedule(ctx, tx, sc)
	})
	if err != nil {
		return store.PauseNotFound, nil, fmt.Errorf("pgstore: %w", err)
	}
	return res, out, nil
}
