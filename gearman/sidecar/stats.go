package sidecar

import (
	"time"

	"github.com/gearsched/gearsched/gearman/stats"
)

// ForwardStats are one upstream server's counters: its connection's, and
// the forwarder's for the jobs it sent there.
type ForwardStats struct {
	UpstreamStats
	Late    uint64        // jobs acknowledged lateThreshold (1 s) or more after due
	MaxLate time.Duration // the worst of those, to the millisecond
	// Trigger jobs acknowledged; cancelled while still queued because
	// their epoch jobs were taken; seen taken by a worker.
	TriggersSent, TriggersCancelled, TriggersDelivered uint64
}

// Stats are the forwarder's counters.
type Stats struct {
	Upstreams []ForwardStats // in configuration order
	// ReleaseLateness is, per forwarded item, its due time to the commit
	// that recorded it as fired; AckLateness its due time to gearmand's
	// JOB_CREATED. In nanoseconds.
	ReleaseLateness, AckLateness stats.HistogramSnapshot
}

// Stats returns the forwarder's counters and each upstream's.
func (f *Forwarder) Stats() Stats {
	ups := f.up.Stats()
	st := Stats{Upstreams: make([]ForwardStats, len(ups)),
		ReleaseLateness: f.released.Snapshot(), AckLateness: f.acked.Snapshot()}
	for i, u := range ups {
		fs := f.stats[u.Addr]
		st.Upstreams[i] = ForwardStats{UpstreamStats: u, Late: fs.late.Load(),
			MaxLate:      time.Duration(fs.maxLateMs.Load()) * time.Millisecond,
			TriggersSent: fs.triggers.Load(), TriggersCancelled: fs.cancelled.Load(), TriggersDelivered: fs.delivered.Load()}
	}
	return st
}
