package server

import (
	"sync/atomic"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/gearman/stats"
)

// funcCounters counts one function's jobs. Its fields are guarded by
// Server.mu, which every place that counts holds already, so counting
// costs an increment and no lock of its own. They are kept by name in
// Server.counters, apart from the function, so that `drop function` does
// not reset them.
type funcCounters struct {
	submitted, completed, failed, retried uint64
}

// serverStats are the counts made where Server.mu is not held: accepting
// connections, cancelling, releasing. Each is an atomic or a lock-free
// histogram.
type serverStats struct {
	accepted, refused, slow atomic.Uint64
	cancelledLive           atomic.Uint64
	cancelledPending        atomic.Uint64
	cancelledSchedules      atomic.Uint64
	released                *stats.Histogram // due time to ready, ns
	assigned                *stats.Histogram // due time to first JOB_ASSIGN, ns
}

func newServerStats() *serverStats {
	return &serverStats{released: stats.NewHistogram(stats.LatenessBounds), assigned: stats.NewHistogram(stats.LatenessBounds)}
}

// Stats are the server's counters and connections.
type Stats struct {
	Connections   int64  // connections being served
	Accepted      uint64 // connections accepted and served
	Refused       uint64 // connections refused over MaxConnections
	SlowConsumers uint64 // connections closed because the peer did not read its replies
	// Cancelled jobs and schedules: jobs in memory (queued or running),
	// jobs waiting for their time, recurring schedules.
	CancelledLive, CancelledPending, CancelledSchedules uint64
	// ReleaseLateness is, per scheduled job or occurrence the server
	// released, its due time to its entering a ready queue; AssignLateness
	// its due time to its first JOB_ASSIGN (after a restart, the first
	// since). In nanoseconds.
	ReleaseLateness, AssignLateness stats.HistogramSnapshot
}

// Stats returns the server's counters. It does not take Server.mu.
func (s *Server) Stats() Stats {
	return Stats{
		Connections:        s.open.Load(),
		Accepted:           s.stats.accepted.Load(),
		Refused:            s.stats.refused.Load(),
		SlowConsumers:      s.stats.slow.Load(),
		CancelledLive:      s.stats.cancelledLive.Load(),
		CancelledPending:   s.stats.cancelledPending.Load(),
		CancelledSchedules: s.stats.cancelledSchedules.Load(),
		ReleaseLateness:    s.stats.released.Snapshot(),
		AssignLateness:     s.stats.assigned.Snapshot(),
	}
}

// FunctionStats is one function's jobs in memory and its counters.
type FunctionStats struct {
	Name string
	// Queued and Running count jobs in memory by priority (gearman.High,
	// Normal, Low); jobs waiting for their time are the store's.
	Queued, Running [gearman.NumPriorities]int
	Workers         int    // CAN_DO registrations, as `status` counts them
	Submitted       uint64 // submissions accepted, coalesced ones included
	Completed       uint64 // WORK_COMPLETE
	Failed          uint64 // WORK_FAIL, WORK_EXCEPTION, retries exhausted
	Retried         uint64 // requeued after the worker left or timed out
}

// AppendFunctionStats appends one entry per function the server has
// known, dropped ones included (their counters go on), in no particular
// order. It holds Server.mu while it copies a few numbers per function and
// allocates nothing when dst has room, so that a scrape does not stall the
// server.
func (s *Server) AppendFunctionStats(dst []FunctionStats) []FunctionStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, c := range s.counters {
		fs := FunctionStats{Name: name, Submitted: c.submitted, Completed: c.completed, Failed: c.failed, Retried: c.retried}
		if f := s.funcs[name]; f != nil {
			for p := range f.queue {
				fs.Queued[p] = f.queue[p].n
			}
			fs.Running = f.runningBy
			fs.Workers = len(f.workers)
		}
		dst = append(dst, fs)
	}
	return dst
}
