package pgstore

import (
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/gearsched/gearsched/store"
)

// runColumns are the columns of table runs that scanRun reads.
const runColumns = `id, item, handle, function, due, released, upstream, upstream_handle`

func scanRun(r pgx.CollectableRow) (store.Run, error) {
	var run store.Run
	var id, item int64
	err := r.Scan(&id, &item, &run.Handle, &run.Function, &run.Due, &run.Released, &run.Upstream, &run.UpstreamHandle)
	run.ID, run.Item = uint64(id), uint64(item)
	return run, err
}

// Runs returns the recorded runs of pending job or schedule item, newest
// first. A sidecar records no outcome: gearmand runs the jobs.
func (s *Store) Runs(item uint64) ([]store.Run, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	rows, _ := s.pool.Query(ctx, `SELECT `+runColumns+` FROM runs WHERE item = $1 ORDER BY id DESC LIMIT 1000`, int64(item))
	runs, err := pgx.CollectRows(rows, scanRun)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	return runs, nil
}

// RecentRuns returns up to n runs of any item, the most recently released
// first.
func (s *Store) RecentRuns(n int) ([]store.Run, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	rows, _ := s.pool.Query(ctx, `SELECT `+runColumns+` FROM runs ORDER BY released DESC, id DESC LIMIT $1`, n)
	runs, err := pgx.CollectRows(rows, scanRun)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	return runs, nil
}
