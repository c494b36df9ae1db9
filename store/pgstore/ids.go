package pgstore

import (
	"context"
	"fmt"

	"github.com/gearsched/gearsched/store"
)

// IDBlock is how many ids one value of the id_blocks sequence stands for:
// value n reserves ids (n-1)*IDBlock+1 … n*IDBlock. A sequence never hands
// a value out twice, whichever sidecar asks, so a handle names one job
// across every sidecar and restart; ids of a block a sidecar did not use
// up before it stopped are left unused.
const IDBlock = 1 << 16

// ReserveIDs reserves n consecutive job ids (at most IDBlock) from the
// shared sequence; the reservation completes once the database answered.
func (s *Store) ReserveIDs(n uint64) *store.Reservation {
	r, done := store.NewReservation()
	if n == 0 || n > IDBlock {
		done(0, fmt.Errorf("pgstore: ReserveIDs(%d): blocks hold 1 to %d ids", n, IDBlock))
		return r
	}
	s.writes.Add(1)
	go func() {
		defer s.writes.Done()
		ctx, cancel := s.opContext()
		defer cancel()
		done(s.reserve(ctx))
	}()
	return r
}

// reserve takes the next block.
func (s *Store) reserve(ctx context.Context) (uint64, error) {
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT nextval('id_blocks')`).Scan(&v); err != nil {
		return 0, fmt.Errorf("pgstore: reserving job ids: %w", err)
	}
	return uint64(v-1)*IDBlock + 1, nil
}

// AdvanceIDs moves the sequence so that every id it hands out from now
// on is above past: an import from a bbolt sidecar keeps its jobs' ids
// and handles, and new ones must not repeat them.
func (s *Store) AdvanceIDs(past uint64) error {
	ctx, cancel := s.opContext()
	defer cancel()
	blocks := int64((past + IDBlock - 1) / IDBlock)
	if _, err := s.pool.Exec(ctx, `SELECT setval('id_blocks', greatest($1::bigint,
		(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM id_blocks)), true)`, max(blocks, 1)); err != nil {
		return fmt.Errorf("pgstore: advancing the id sequence: %w", err)
	}
	return nil
}
