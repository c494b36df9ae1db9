package pgstore

import (
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/gearsched/gearsched/store"
)

// ListDue returns a page of the pending jobs and active schedules after
// from, in due order, as store.Store.ListDue: up to limit items match
// accepts, reading at most scan rows. Each page is two index range scans.
func (s *Store) ListDue(from store.DueCursor, limit, scan int, match func(*store.DueItem) bool) (store.DuePage, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	rows, _ := s.pool.Query(ctx, `SELECT `+jobColumns+` FROM pending WHERE (due, id) > ($1, $2) ORDER BY due, id LIMIT $3`,
		from.Due, int64(from.ID), scan+1)
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.Job, error) { return scanJob(r) })
	if err != nil {
		return store.DuePage{}, fmt.Errorf("pgstore: %w", err)
	}
	rows, _ = s.pool.Query(ctx, `SELECT id, def FROM schedules WHERE active AND (fire_at, id) > ($1, $2)
		ORDER BY fire_at, id LIMIT $3`, from.Due, int64(from.ID), scan+1)
	scheds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.Schedule, error) { return scanSchedule(r) })
	if err != nil {
		return store.DuePage{}, fmt.Errorf("pgstore: %w", err)
	}
	all := mergeDue(jobs, scheds)
	var p store.DuePage
	i := 0
	for ; i < len(all) && len(p.Items) < limit && p.Scanned < scan; i++ {
		it := all[i]
		p.Scanned++
		p.Next = store.DueCursor{Due: it.Due, ID: it.ID}
		if match == nil || match(&it) {
			p.Items = append(p.Items, it)
		}
	}
	p.More = i < len(all)
	return p, nil
}

// ForEachDue calls fn for every pending job and active schedule in due
// order until fn returns false, a page at a time.
func (s *Store) ForEachDue(fn func(store.DueItem) bool) error {
	var from store.DueCursor
	for {
		p, err := s.ListDue(from, 1000, 1000, nil)
		if err != nil {
			return err
		}
		for _, it := range p.Items {
			if !fn(it) {
				return nil
			}
		}
		if !p.More {
			return nil
		}
		from = p.Next
	}
}

// FindUnique returns the pending job or schedule whose unique is unique,
// whatever its function (GET_STATUS_UNIQUE names none).
func (s *Store) FindUnique(unique string) (store.Holder, bool, error) {
	if !indexed(unique) {
		return store.Holder{}, false, nil
	}
	ctx, cancel := s.opContext()
	defer cancel()
	var h store.Holder
	var ok bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `SELECT id FROM keys WHERE scope = '' AND uniq = $1 LIMIT 1`, unique).Scan(&id)
		if err == pgx.ErrNoRows {
			return nil
		}
		if err != nil {
			return err
		}
		h, ok, err = holder(ctx, tx, uint64(id))
		return err
	})
	if err != nil {
		return store.Holder{}, false, fmt.Errorf("pgstore: %w", err)
	}
	return h, ok, nil
}
