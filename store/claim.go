package store

import "context"

// Claim is the due items one firing took from a store, from the read that
// found them to the commit that records them. A store several schedulers
// share (package pgstore) locks the items for the claim's holder, so that
// no other scheduler fires them meanwhile, and ends the lock with the
// commit; this store, which one process owns, locks nothing.
//
// A claim ends with Forwarded, or with Release, which gives the items up:
// whatever was not committed stays due. Release after Forwarded does
// nothing, so the scheduler releases every claim when the firing is over.
type Claim interface {
	// Until is the time (unix ns) the claim took due items up to: an
	// item due later was not taken. Occurrences are planned from it.
	Until() int64
	// Forwarded commits a sidecar's record of what went upstream (see
	// Store.Forwarded) and ends the claim.
	Forwarded(Forward) (ForwardResult, error)
	// Release ends the claim without a commit.
	Release()
}

// Claim returns up to max items due by until (unix ns), as DueItems does,
// in a claim whose Forwarded is Store.Forwarded. One process owns a bbolt
// database, and the scheduler is the only reader of due items that fires
// them, so the claim holds nothing: a cancel or a reload made before the
// commit is caught there by the generation check (see Forwarded).
func (s *Store) Claim(_ context.Context, until int64, max int) (Claim, []DueItem, error) {
	items, err := s.DueItems(until, max)
	if err != nil {
		return nil, nil, err
	}
	return boltClaim{s: s, until: until}, items, nil
}

// boltClaim is a claim on this store: the read's bound, and the store.
type boltClaim struct {
	s     *Store
	until int64
}

func (c boltClaim) Until() int64                               { return c.until }
func (c boltClaim) Forwarded(f Forward) (ForwardResult, error) { return c.s.Forwarded(f) }
func (boltClaim) Release()                                     {}
