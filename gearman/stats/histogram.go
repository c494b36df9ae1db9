// Package stats holds the lock-free histograms that gearsched's packages
// keep about themselves (store commit times, scheduling lateness), read at
// scrape time by package metrics. It uses the standard library only, so
// that store, scheduler, server and sidecar can measure on their hot paths
// without importing Prometheus: an observation is a few atomic adds and
// allocates nothing, and how the numbers are exposed is metrics' concern.
package stats

import (
	"sync/atomic"
	"time"
)

// Bucket bounds shared by the packages that observe into a Histogram.
var (
	// LatenessBounds are the upper bounds of scheduling lateness (due time
	// to release, hand-out or acknowledgement), around the goals: a job due
	// at its second runs within milliseconds, and anything past 10 s is an
	// outage or a backlog.
	LatenessBounds = durations(1*time.Millisecond, 2500*time.Microsecond, 5*time.Millisecond,
		10*time.Millisecond, 25*time.Millisecond, 50*time.Millisecond, 100*time.Millisecond,
		250*time.Millisecond, 500*time.Millisecond, time.Second, 2500*time.Millisecond,
		5*time.Second, 10*time.Second)
	// CommitBounds are the upper bounds of a store commit's duration: an
	// fsync takes from tens of microseconds (NVMe, tmpfs) to tens of
	// milliseconds (network disks).
	CommitBounds = durations(100*time.Microsecond, 250*time.Microsecond, 500*time.Microsecond,
		time.Millisecond, 2500*time.Microsecond, 5*time.Millisecond, 10*time.Millisecond,
		25*time.Millisecond, 50*time.Millisecond, 100*time.Millisecond, 250*time.Millisecond,
		500*time.Millisecond, time.Second, 2500*time.Millisecond)
	// BatchBounds are the upper bounds of writes per commit: one for a lone
	// client, up to tens of thousands when many pipeline at once.
	BatchBounds = []int64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000}
)

func durations(ds ...time.Duration) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = int64(d)
	}
	return out
}

// Histogram counts int64 observations (nanoseconds, or plain counts) in
// fixed buckets. Observe and Snapshot are safe for concurrent use and take
// no lock.
type Histogram struct {
	bounds []int64         // ascending upper bounds, inclusive
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Int64
}

// NewHistogram returns a histogram with the given ascending upper bounds;
// values above the last fall in an implicit +Inf bucket.
func NewHistogram(bounds []int64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe counts one value.
func (h *Histogram) Observe(v int64) {
	// A linear scan: the bucket lists are short and most values land in
	// the first few buckets.
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(v)
}

// ObserveDuration counts one duration, in nanoseconds.
func (h *Histogram) ObserveDuration(d time.Duration) { h.Observe(int64(d)) }

// ObserveLateness counts how late something due at due (unix ns) is at
// now. A due of 0 means nothing was due: it is not counted.
func (h *Histogram) ObserveLateness(now time.Time, due int64) {
	if due != 0 {
		h.ObserveDuration(now.Sub(time.Unix(0, due)))
	}
}

// HistogramSnapshot is a Histogram's state at one moment.
type HistogramSnapshot struct {
	// Bounds are the buckets' upper bounds; shared, do not modify.
	Bounds []int64
	// Cumulative[i] counts the values <= Bounds[i].
	Cumulative []uint64
	// Count is every value counted, those above the last bound included.
	Count uint64
	// Sum is the sum of the values.
	Sum int64
}

// Snapshot returns the counts so far. Observations made while it runs
// may be partly included; Count always equals the buckets' total.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{Bounds: h.bounds, Cumulative: make([]uint64, len(h.bounds)), Sum: h.sum.Load()}
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
		if i < len(h.bounds) {
			s.Cumulative[i] = n
		}
	}
	s.Count = n
	return s
}
