package scheduler

import "sync/atomic"

// counters are the loop's counts; it alone writes them, Stats reads them.
type counters struct {
	releaseErrors  atomic.Uint64
	skippedOverlap atomic.Uint64
	droppedMissed  atomic.Uint64
}

// Stats counts what the scheduler's loop did.
type Stats struct {
	// ReleaseErrors counts the releases that failed (the sink's upstream
	// down, a commit failed); their items stayed due and were offered again.
	ReleaseErrors uint64
	// SkippedOverlap counts occurrences not run because the previous one
	// was still queued or running (overlap = skip).
	SkippedOverlap uint64
	// DroppedMissed counts occurrences missed while gearsched was down (or
	// the clock jumped) that the missed-run policy did not run.
	DroppedMissed uint64
}

// Stats returns the loop's counts so far.
func (s *Scheduler) Stats() Stats {
	return Stats{
		ReleaseErrors:  s.stats.releaseErrors.Load(),
		SkippedOverlap: s.stats.skippedOverlap.Load(),
		DroppedMissed:  s.stats.droppedMissed.Load(),
	}
}
