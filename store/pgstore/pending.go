package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/gearsched/gearsched/store"
)

// jobColumns are the columns of table pending that scanJob reads.
const jobColumns = `id, handle, function, uniq, reducer, priority, due, data, kind, when_s, upstream, watch`

// scanJob reads one row of jobColumns.
func scanJob(row pgx.Row) (*store.Job, error) {
	var j store.Job
	var id int64
	var prio, kind int16
	if err := row.Scan(&id, &j.Handle, &j.Function, &j.Unique, &j.Reducer, &prio, &j.Due, &j.Data, &kind,
		&j.When, &j.Upstream, &j.Watch); err != nil {
		return nil, err
	}
	j.ID, j.Priority, j.Kind = uint64(id), uint8(prio), uint8(kind)
	if j.Data == nil {
		j.Data = []byte{}
	}
	return &j, nil
}

// insertJob stores j in table pending, and tells the other sidecars when
// it is due (see notify.go).
func insertJob(ctx context.Context, tx pgx.Tx, j *store.Job) error {
	data, watch := j.Data, j.Watch
	if data == nil {
		data = []byte{}
	}
	if watch == nil {
		watch = []string{}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO pending (`+jobColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
		int64(j.ID), j.Handle, j.Function, j.Unique, j.Reducer, int16(j.Priority), j.Due, data, int16(j.Kind),
		j.When, j.Upstream, watch); err != nil {
		return err
	}
	return notifyDue(ctx, tx, j.Due)
}

// PutPending queues j to wait until j.Due, unless a pending job or
// schedule holds its (function, unique), or request made a record that is
// still known: then nothing is written and the write's Holder names that
// record (as store.Store.PutPending). The write completes once committed.
func (s *Store) PutPending(j *store.Job, request string) *store.Write {
	if err := store.CheckPending(j, request); err != nil {
		w, done := store.NewWrite()
		done(false, store.Holder{}, err)
		return w
	}
	return s.enqueue(createOp{run: func(ctx context.Context, tx pgx.Tx) (bool, store.Holder, error) {
		created, h, err := create(ctx, tx, jobKey(j), request, j.ID, func(tx pgx.Tx) (store.Holder, error) {
			return store.Holder{ID: j.ID, Due: j.Due}, insertJob(ctx, tx, j)
		})
		if created && j.Kind != store.JobTrigger {
			s.addPending(j.Function)
		}
		return created, h, err
	}})
}

// Cancel removes pending job or schedule id in one transaction. A claim
// holding it is waited for: a job it fired is gone by then (NotFound), a
// schedule it advanced is cancelled as advanced and never fires again.
func (s *Store) Cancel(id uint64) (store.CancelResult, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	var res store.CancelResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		res = store.NotFound
		tag, err := tx.Exec(ctx, `DELETE FROM pending WHERE id = $1`, int64(id))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			res = store.CancelledJob
			return forget(ctx, tx, id)
		}
		var source string
		err = tx.QueryRow(ctx, `SELECT source FROM schedules WHERE id = $1 FOR UPDATE`, int64(id)).Scan(&source)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil
		case err != nil:
			return err
		case source == store.SourceFile:
			res = store.FileSchedule
			return nil
		}
		res = store.CancelledSchedule
		if _, err := tx.Exec(ctx, `DELETE FROM schedules WHERE id = $1`, int64(id)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM runs WHERE item = $1`, int64(id)); err != nil {
			return err
		}
		return forget(ctx, tx, id)
	})
	if err != nil {
		return store.NotFound, fmt.Errorf("pgstore: cancelling %d: %w", id, err)
	}
	return res, nil
}

// Lookup returns the pending job or schedule id, if there is one.
func (s *Store) Lookup(id uint64) (store.Holder, bool, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	var h store.Holder
	var ok bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) (err error) {
		h, ok, err = holder(ctx, tx, id)
		return err
	})
	if err != nil {
		return store.Holder{}, false, fmt.Errorf("pgstore: %w", err)
	}
	return h, ok, nil
}

// Scheduled returns the pending job with that id, or nil.
func (s *Store) Scheduled(id uint64) (*store.Job, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	j, err := scanJob(s.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM pending WHERE id = $1`, int64(id)))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	return j, nil
}
