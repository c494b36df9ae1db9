package server

import "github.com/gearsched/gearsched/gearman"

// FunctionStatus is one function as `status` and `prioritystatus` show
// it, with the store's counts apart.
type FunctionStatus struct {
	Name string
	// Queued are the ready jobs waiting for a worker, by priority
	// (gearman.High, Normal, Low).
	Queued  [gearman.NumPriorities]int
	Running int
	// Total is what `status` shows: jobs in memory of any state, and
	// the pending ones.
	Total   int
	Workers int
	// Pending are the jobs waiting for their due time; Schedules the
	// recurring schedules of the function.
	Pending   int
	Schedules int
}

// Functions returns every function the server knows, sorted by name.
func (s *Server) Functions() []FunctionStatus {
	schedules := s.store.ScheduleCounts()
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := s.sortedFunctions()
	out := make([]FunctionStatus, len(fs))
	for i, f := range fs {
		pending := s.store.PendingCount(f.name)
		out[i] = FunctionStatus{Name: f.name, Running: f.running, Total: f.total + pending, Workers: len(f.workers),
			Pending: pending, Schedules: schedules[f.name]}
		for p := range f.queue {
			out[i].Queued[p] = f.queue[p].n
		}
	}
	return out
}

// Listening reports whether the server accepts connections: it serves a
// listener and is not shutting down.
func (s *Server) Listening() bool {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	return len(s.listeners) > 0 && s.ctx.Err() == nil
}
