package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/gearsched/gearsched/store"
)

// indexed reports whether a unique takes part in coalescing, as in the
// bbolt store: "-" asks gearmand to coalesce by payload, live jobs only.
func indexed(unique string) bool { return unique != "" && unique != "-" }

// key is the unique key of a pending job or schedule (see table keys).
type key struct{ scope, function, unique string }

// jobKey is a pending job's unique key: a trigger job's is scoped by its
// upstream.
func jobKey(j *store.Job) key {
	if j.Kind == store.JobTrigger {
		return key{j.Upstream, j.Function, j.Unique}
	}
	return key{"", j.Function, j.Unique}
}

// errKeyTaken is create's finding that another writer took over a stale
// key or request between its read and its update: the whole create is
// tried again, and then finds that writer's record holding it.
var errKeyTaken = errors.New("pgstore: a stale key was taken over meanwhile")

// create runs put in tx unless request, or k,
// is held already: then it returns the holder. Taking the key is an
// insert on its primary key, which waits for a concurrent transaction
// taking the same key and then finds it taken, so two sidecars given the
// same submission store it once.
func create(ctx context.Context, tx pgx.Tx, k key, request string, id uint64,
	put func(pgx.Tx) (store.Holder, error)) (created bool, h store.Holder, err error) {
	err = func() error {
		created, h = false, store.Holder{}
		if request != "" {
			tag, err := tx.Exec(ctx, `INSERT INTO requests (request, id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, []byte(request), int64(id))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				var held int64
				if err := tx.QueryRow(ctx, `SELECT id FROM requests WHERE request = $1`, []byte(request)).Scan(&held); err != nil {
					return err
				}
				if hh, ok, err := holder(ctx, tx, uint64(held)); err != nil || ok {
					h = hh
					return err
				}
				// The ledger remembers it, or it was dropped: a known request.
				var due int64
				err := tx.QueryRow(ctx, `SELECT due FROM fired WHERE id = $1`, held).Scan(&due)
				if err == nil {
					h = store.Holder{ID: uint64(held), Due: due}
					return nil
				}
				if !errors.Is(err, pgx.ErrNoRows) {
					return err
				}
				// Only from the record that is gone: a writer that took
				// it over first (and committed) holds it now.
				tag, err := tx.Exec(ctx, `UPDATE requests SET id = $2 WHERE request = $1 AND id = $3`, []byte(request), int64(id), held)
				if err != nil {
					return err
				}
				if tag.RowsAffected() == 0 {
					return errKeyTaken
				}
			}
		}
		if indexed(k.unique) {
			tag, err := tx.Exec(ctx, `INSERT INTO keys (scope, function, uniq, id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
				k.scope, k.function, k.unique, int64(id))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				var held int64
				if err := tx.QueryRow(ctx, `SELECT id FROM keys WHERE scope = $1 AND function = $2 AND uniq = $3`,
					k.scope, k.function, k.unique).Scan(&held); err != nil {
					return err
				}
				hh, ok, err := holder(ctx, tx, uint64(held))
				if err != nil {
					return err
				}
				if ok {
					h = hh
					if request != "" {
						// The request names the holder from now on.
						_, err = tx.Exec(ctx, `DELETE FROM requests WHERE request = $1 AND id = $2`, []byte(request), int64(id))
					}
					return err
				}
				// A key left by a record that is gone: take it over, from
				// that record only; a writer that took it over first (and
				// committed) holds it now.
				tag, err := tx.Exec(ctx, `UPDATE keys SET id = $4 WHERE scope = $1 AND function = $2 AND uniq = $3 AND id = $5`,
					k.scope, k.function, k.unique, int64(id), held)
				if err != nil {
					return err
				}
				if tag.RowsAffected() == 0 {
					return errKeyTaken
				}
			}
		}
		var err error
		if h, err = put(tx); err != nil {
			return err
		}
		created = true
		return nil
	}()
	if err != nil {
		return false, store.Holder{}, err
	}
	return created, h, nil
}

// holder describes record id if it is a pending job or a schedule.
func holder(ctx context.Context, tx pgx.Tx, id uint64) (store.Holder, bool, error) {
	var due int64
	err := tx.QueryRow(ctx, `SELECT due FROM pending WHERE id = $1
		UNION ALL SELECT (def->>'next_ns')::bigint FROM schedules WHERE id = $1`, int64(id)).Scan(&due)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Holder{}, false, nil
	case err != nil:
		return store.Holder{}, false, err
	}
	return store.Holder{ID: id, Due: due}, true, nil
}

// forget removes record id's key and request.
func forget(ctx context.Context, tx pgx.Tx, id uint64) error {
	if _, err := tx.Exec(ctx, `DELETE FROM keys WHERE id = $1`, int64(id)); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `DELETE FROM requests WHERE id = $1`, int64(id))
	return err
}
