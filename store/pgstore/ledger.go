package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/gearsched/gearsched/store"
)

// Forwarded commits f in a transaction of its own, locking the rows it
// changes: the forwarder's retry of a commit that failed, and the commit
// of a release whose items came in no claim.
func (s *Store) Forwarded(f store.Forward) (store.ForwardResult, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	var res store.ForwardResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) (err error) {
		res, err = forwarded(ctx, s, tx, f)
		return err
	})
	if err != nil {
		return store.ForwardResult{}, fmt.Errorf("pgstore: recording forwarded jobs: %w", err)
	}
	return res, nil
}

// forwarded writes f in tx, as store.Store.Forwarded does in bbolt: jobs
// upstream took leave the pending rows, those it refused move, the ledger
// and runs record what went out (except for what was cancelled
// meanwhile), schedules advance unless their plan is stale, and triggers
// are created or joined.
func forwarded(ctx context.Context, s *Store, tx pgx.Tx, f store.Forward) (store.ForwardResult, error) {
	var res store.ForwardResult
	gone := map[uint64]bool{}
	if len(f.Done) > 0 {
		rows, _ := tx.Query(ctx, `DELETE FROM pending WHERE id = ANY($1) RETURNING `+jobColumns, toInt64(f.Done))
		removed, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.Job, error) { return scanJob(r) })
		if err != nil {
			return res, err
		}
		res.Removed = removed
		have := make(map[uint64]bool, len(removed))
		ids := make([]int64, len(removed))
		for i, j := range removed {
			have[j.ID], ids[i] = true, int64(j.ID)
		}
		var missing []int64
		for _, id := range f.Done {
			if !have[id] {
				gone[id] = true
				missing = append(missing, int64(id))
			}
		}
		// A job that is gone was cancelled, or, when this is a retried
		// commit, fired by another sidecar after this one's claim rolled
		// back: the ledger has it then, and the copy this sidecar sent
		// must not be cancelled upstream (gearmand may have merged the
		// two under their unique).
		elsewhere, err := firedIDs(ctx, tx, missing)
		if err != nil {
			return res, err
		}
		for _, id := range missing {
			if !elsewhere[uint64(id)] {
				res.Cancelled = append(res.Cancelled, uint64(id))
			}
		}
		// The jobs no longer hold their keys; their request keys stay
		// as long as the ledger remembers them.
		if _, err := tx.Exec(ctx, `DELETE FROM keys WHERE id = ANY($1)`, ids); err != nil {
			return res, err
		}
	}
	for _, d := range f.Defer {
		if _, err := tx.Exec(ctx, `UPDATE pending SET due = $2 WHERE id = $1`, int64(d.ID), d.Due); err != nil {
			return res, err
		}
	}
	var ids, dues, ats []int64
	var ups, handles []string
	for _, e := range f.Ledger {
		if gone[e.ID] {
			continue
		}
		ids, dues, ats = append(ids, int64(e.ID)), append(dues, e.Due), append(ats, e.At)
		ups, handles = append(ups, e.Upstream), append(handles, e.UpstreamHandle)
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO fired (id, upstream, upstream_handle, due, at)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])
			ON CONFLICT (id) DO UPDATE SET upstream = excluded.upstream, upstream_handle = excluded.upstream_handle,
				due = excluded.due, at = excluded.at`, ids, ups, handles, dues, ats); err != nil {
			return res, err
		}
	}
	for _, plan := range f.Schedules {
		cur, err := getSchedule(ctx, tx, plan.ID)
		if err != nil {
			return res, err
		}
		if cur == nil {
			gone[plan.ID] = true
			res.Cancelled = append(res.Cancelled, plan.ID)
			continue
		}
		// Another sidecar may have fired later occurrences since this
		// plan was made (a retried commit after this one's claim rolled
		// back): an advance never moves a schedule backward.
		if cur.Next > plan.Next || cur.Last > plan.Last {
			continue
		}
		if adv, ok := store.Advanced(cur, plan); ok {
			if err := writeSchedule(ctx, tx, &adv); err != nil {
				return res, err
			}
		}
	}
	for _, tr := range f.Triggers {
		// A trigger only wakes workers sooner, so one the store cannot
		// hold is left out rather than failing the ledger's commit.
		if err := store.CheckPending(tr, ""); err != nil {
			s.log.Error("pgstore: trigger job not stored", "handle", tr.Handle, "err", err)
			continue
		}
		if _, err := joinTrigger(ctx, tx, tr); err != nil {
			return res, err
		}
	}
	return res, insertRuns(ctx, tx, f.Runs, gone)
}

// insertRuns records the runs of f, except those of jobs and schedules
// cancelled while they were being forwarded.
func insertRuns(ctx context.Context, tx pgx.Tx, runs []store.Run, gone map[uint64]bool) error {
	var ids, items, dues, released []int64
	var handles, fns, ups, uhs []string
	for _, r := range runs {
		if gone[r.ID] || gone[r.Item] {
			continue
		}
		ids, items, dues, released = append(ids, int64(r.ID)), append(items, int64(r.Item)), append(dues, r.Due),
			append(released, r.Released)
		handles, fns, ups, uhs = append(handles, r.Handle), append(fns, r.Function), append(ups, r.Upstream),
			append(uhs, r.UpstreamHandle)
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO runs (id, item, handle, function, due, released, upstream, upstream_handle)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::text[])
		ON CONFLICT (id) DO NOTHING`, ids, items, handles, fns, dues, released, ups, uhs)
	return err
}

// joinTrigger stores trigger tr, or adds its watched handles to the
// pending trigger with the same key (up to store.MaxWatch) unless a claim
// is firing that one; it reports whether it created one. It locks the
// key row, then the trigger's row, the order a claim's commit does not
// take, so it never waits for the second.
func joinTrigger(ctx context.Context, tx pgx.Tx, tr *store.Job) (bool, error) {
	k := jobKey(tr)
	var held int64
	err := tx.QueryRow(ctx, `SELECT id FROM keys WHERE scope = $1 AND function = $2 AND uniq = $3 FOR UPDATE`,
		k.scope, k.function, k.unique).Scan(&held)
	if err == nil {
		// SKIP LOCKED: a claim firing that trigger holds its row, and its
		// commit will want the key row this transaction holds; waiting
		// here would deadlock the two. A trigger being fired is not
		// joined: a new one takes the key.
		var watch []string
		err = tx.QueryRow(ctx, `SELECT watch FROM pending WHERE id = $1 FOR UPDATE SKIP LOCKED`, held).Scan(&watch)
		if err == nil {
			if len(watch) >= store.MaxWatch {
				return false, nil
			}
			watch = append(watch, tr.Watch[:min(len(tr.Watch), store.MaxWatch-len(watch))]...)
			_, err = tx.Exec(ctx, `UPDATE pending SET watch = $2 WHERE id = $1`, held, watch)
			return false, err
		}
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO keys (scope, function, uniq, id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (scope, function, uniq) DO UPDATE SET id = $4`, k.scope, k.function, k.unique, int64(tr.ID)); err != nil {
		return false, err
	}
	return true, insertJob(ctx, tx, tr)
}

// PutTriggers stores trigger jobs found by a watcher of an upstream's
// persistent queue, as store.Store.PutTriggers, and returns how many it
// created.
func (s *Store) PutTriggers(triggers []*store.Job) (created int, err error) {
	for _, tr := range triggers {
		if tr.Kind != store.JobTrigger || tr.Upstream == "" || !indexed(tr.Unique) {
			return 0, fmt.Errorf("pgstore: PutTriggers: job %d is not a trigger with an upstream and a unique", tr.ID)
		}
	}
	ctx, cancel := s.opContext()
	defer cancel()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		created = 0
		for _, tr := range triggers {
			ok, err := joinTrigger(ctx, tx, tr)
			if err != nil {
				return err
			}
			if ok {
				created++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("pgstore: %w", err)
	}
	return created, nil
}

// FiredJob returns the ledger entry of job id, or nil: whichever sidecar
// forwarded it.
func (s *Store) FiredJob(id uint64) (*store.Fired, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	f := store.Fired{ID: id}
	err := s.pool.QueryRow(ctx, `SELECT upstream, upstream_handle, due, at FROM fired WHERE id = $1`, int64(id)).
		Scan(&f.Upstream, &f.UpstreamHandle, &f.Due, &f.At)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	return &f, nil
}

// PruneFired deletes up to max ledger entries recorded before before (unix
// ns), with their request keys and runs, and returns how many it deleted.
func (s *Store) PruneFired(before int64, max int) (int, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `DELETE FROM fired WHERE id IN (SELECT id FROM fired WHERE at < $1 ORDER BY at, id LIMIT $2)
			RETURNING id`, before, max)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		n = len(ids)
		if _, err := tx.Exec(ctx, `DELETE FROM requests WHERE id = ANY($1)`, ids); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM runs WHERE id = ANY($1)`, ids)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("pgstore: pruning the fire ledger: %w", err)
	}
	return n, nil
}

// toInt64 converts ids for a bigint[] parameter.
func toInt64(ids []uint64) []int64 {
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return slices.Clip(out)
}

// firedIDs returns which of ids the fire ledger holds.
func firedIDs(ctx context.Context, tx pgx.Tx, ids []int64) (map[uint64]bool, error) {
	out := map[uint64]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, _ := tx.Query(ctx, `SELECT id FROM fired WHERE id = ANY($1)`, ids)
	found, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	for _, id := range found {
		out[uint64(id)] = true
	}
	return out, err
}
