package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/gearsched/gearsched/store"
)

// Group commit. Clients' creates (PutPending, PutSchedule) are queued and
// a few committer goroutines each run a batch of them in one transaction,
// each create in a savepoint of its own so that one failing leaves the
// others: one commit, one round trip to the disk, for many submissions,
// as the bbolt committer does. A write completes when its batch commits.
const (
	committers = 4   // transactions in flight at once
	groupMax   = 256 // creates in one transaction at most
	queueSize  = 4096
)

// ErrClosed is a write queued after Close.
var ErrClosed = errors.New("pgstore: the store is closed")

// createOp is one queued create.
type createOp struct {
	run  func(ctx context.Context, tx pgx.Tx) (bool, store.Holder, error)
	done func(created bool, h store.Holder, err error)
}

// enqueue queues op for the committers, or fails it once the store is
// closed.
func (s *Store) enqueue(op createOp) *store.Write {
	w, done := store.NewWrite()
	op.done = done
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		done(false, store.Holder{}, ErrClosed)
		return w
	}
	s.ops <- op
	return w
}

// startCommitters runs the committers until Close closes the queue.
func (s *Store) startCommitters() {
	for range committers {
		s.workers.Go(func() {
			for op := range s.ops {
				batch := []createOp{op}
			fill:
				for len(batch) < groupMax {
					select {
					case more, ok := <-s.ops:
						if !ok {
							break fill
						}
						batch = append(batch, more)
					default:
						break fill
					}
				}
				s.commitGroup(batch)
			}
		})
	}
}

// result is one create's outcome inside a group.
type result struct {
	created bool
	h       store.Holder
	err     error
}

// commitGroup runs batch in one transaction and completes every write.
func (s *Store) commitGroup(batch []createOp) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	results := make([]result, len(batch))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for i, op := range batch {
			var r result
			// A savepoint: a create that fails is undone alone. One that
			// met a stale key taken over meanwhile runs once more and
			// finds the record that took it.
			var err error
			for attempt := 0; attempt < 2; attempt++ {
				err = pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) (err error) {
					r.created, r.h, err = op.run(ctx, sp)
					return err
				})
				if !errors.Is(err, errKeyTaken) {
					break
				}
			}
			if err != nil {
				if tx.Conn().IsClosed() || ctx.Err() != nil {
					return err
				}
				r = result{err: fmt.Errorf("pgstore: %w", err)}
			}
			results[i] = r
		}
		return nil
	})
	for i, op := range batch {
		r := results[i]
		if err != nil {
			r = result{err: fmt.Errorf("pgstore: committing %d writes: %w", len(batch), err)}
		}
		op.done(r.created, r.h, r.err)
	}
}
