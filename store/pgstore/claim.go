package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"

	"github.com/gearsched/gearsched/store"
)

// Claim locks up to max pending jobs and up to max schedules due by
// until (unix ns) and by the database's clock, whichever is earlier, in a
// transaction that the returned claim's Forwarded commits or its Release
// rolls back. Rows another sidecar's claim holds are passed over (SKIP
// LOCKED): that sidecar fires them, or, if it dies or fails, its
// transaction rolls back and they are due again for anyone. Every row
// locked is returned, so nothing is held that the firing does not carry.
func (s *Store) Claim(ctx context.Context, until int64, max int) (store.Claim, []store.DueItem, error) {
	// Bounded, so that a connection that died silently does not hold up
	// the scheduler.
	qctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	tx, err := s.pool.Begin(qctx)
	if err != nil {
		return nil, nil, fmt.Errorf("pgstore: claiming due items: %w", err)
	}
	items, until, err := claimRows(qctx, tx, until, max)
	if err != nil {
		rollback(tx)
		return nil, nil, fmt.Errorf("pgstore: claiming due items: %w", err)
	}
	if len(items) == 0 {
		// Nothing locked: end the transaction now rather than hold a
		// connection until the scheduler releases the claim.
		rollback(tx)
		tx = nil
	}
	return &claim{s: s, ctx: ctx, tx: tx, until: until}, items, nil
}

// claimRows reads and locks the due rows, earliest first, and returns the
// bound they were read by: never later than the database's clock, so a
// sidecar whose clock runs ahead fires nothing early by the database's.
func claimRows(ctx context.Context, tx pgx.Tx, until int64, max int) ([]store.DueItem, int64, error) {
	var dbNow int64
	if err := tx.QueryRow(ctx, `SELECT `+nowSQL).Scan(&dbNow); err != nil {
		return nil, 0, err
	}
	until = min(until, dbNow)
	rows, _ := tx.Query(ctx, `SELECT `+jobColumns+` FROM pending WHERE due <= $1 ORDER BY due, id LIMIT $2 FOR UPDATE SKIP LOCKED`,
		until, max)
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.Job, error) { return scanJob(r) })
	if err != nil {
		return nil, 0, err
	}
	rows, _ = tx.Query(ctx, `SELECT id, def FROM schedules WHERE active AND fire_at <= $1 ORDER BY fire_at, id LIMIT $2
		FOR UPDATE SKIP LOCKED`, until, max)
	scheds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.Schedule, error) { return scanSchedule(r) })
	if err != nil {
		return nil, 0, err
	}
	items := mergeDue(jobs, scheds)
	return items, until, nil
}

// claim is a transaction holding the row locks of the items it read.
type claim struct {
	s     *Store
	ctx   context.Context
	tx    pgx.Tx // nil once ended, or when nothing was claimed
	until int64
	ended bool // by Forwarded or Release
}

// Until is the bound the items were read by.
func (c *claim) Until() int64 { return c.until }

// errEnded is Forwarded on a claim that was already ended.
var errEnded = errors.New("pgstore: the claim was already ended")

// Forwarded records f in the claim's transaction and commits it: the
// items leave the due rows, the schedules advance (a plan whose schedule
// was redefined meanwhile is refused, as with bbolt), and the locks end.
// A failed commit rolls everything back: the items are due again.
func (c *claim) Forwarded(f store.Forward) (store.ForwardResult, error) {
	switch {
	case c.ended:
		return store.ForwardResult{}, errEnded
	case c.tx == nil: // nothing was claimed: commit on its own
		c.ended = true
		return c.s.Forwarded(f)
	}
	tx := c.tx
	c.tx, c.ended = nil, true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), opTimeout)
	defer cancel()
	res, err := forwarded(ctx, c.s, tx, f)
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err != nil {
		rollback(tx)
		return store.ForwardResult{}, fmt.Errorf("pgstore: recording forwarded jobs: %w", err)
	}
	return res, nil
}

// Release rolls back the claim if it was not committed.
func (c *claim) Release() {
	if c.tx != nil {
		rollback(c.tx)
		c.tx = nil
	}
	c.ended = true
}

// rollback ends tx without a commit, giving up after opTimeout: on a
// connection that died silently a rollback would otherwise wait for the
// kernel to give up on it (many minutes), holding up the scheduler and a
// shutdown; pgx closes the connection when the deadline passes, and the
// server rolls back when it notices.
func rollback(tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_ = tx.Rollback(ctx)
}

// NextDue returns the earliest due time of any pending job or active
// schedule, claimed or not.
func (s *Store) NextDue() (due int64, ok bool, err error) {
	ctx, cancel := s.opContext()
	defer cancel()
	var d *int64
	err = s.pool.QueryRow(ctx, `SELECT least((SELECT due FROM pending ORDER BY due, id LIMIT 1),
		(SELECT fire_at FROM schedules WHERE active ORDER BY fire_at, id LIMIT 1))`).Scan(&d)
	if err != nil {
		return 0, false, fmt.Errorf("pgstore: %w", err)
	}
	if d == nil {
		return 0, false, nil
	}
	return *d, true, nil
}

// mergeDue returns jobs and schedules as due items in due order (then id
// order), as the bbolt store's due index orders them.
func mergeDue(jobs []*store.Job, scheds []*store.Schedule) []store.DueItem {
	items := make([]store.DueItem, 0, len(jobs)+len(scheds))
	for _, j := range jobs {
		items = append(items, store.DueItem{Due: j.Due, ID: j.ID, Job: j})
	}
	for _, sc := range scheds {
		items = append(items, store.DueItem{Due: sc.FireAt, ID: sc.ID, Schedule: sc})
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].Due != items[j].Due {
			return items[i].Due < items[j].Due
		}
		return items[i].ID < items[j].ID
	})
	return items
}
