package stats

import (
	"slices"
	"sync"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	h := NewHistogram([]int64{10, 20, 30})
	for _, v := range []int64{-5, 0, 10, 11, 20, 30, 31, 1000} {
		h.Observe(v)
	}
	s := h.Snapshot()
	// Bounds are inclusive: 10 falls in the first bucket, 11 in the second.
	if want := []uint64{3, 5, 6}; !slices.Equal(s.Cumulative, want) {
		t.Errorf("cumulative %v, want %v", s.Cumulative, want)
	}
	if s.Count != 8 {
		t.Errorf("count %d, want 8", s.Count)
	}
	if s.Sum != -5+0+10+11+20+30+31+1000 {
		t.Errorf("sum %d", s.Sum)
	}
}

func TestHistogramConcurrent(t *testing.T) {
	h := NewHistogram(LatenessBounds)
	const goroutines, each = 8, 1000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				h.ObserveDuration(time.Duration(g*i) * time.Millisecond)
			}
		})
	}
	// Snapshots taken meanwhile are consistent: Count equals the buckets'
	// total, and cumulative counts never decrease.
	for range 100 {
		s := h.Snapshot()
		if last := s.Cumulative[len(s.Cumulative)-1]; last > s.Count {
			t.Fatalf("last bucket %d above count %d", last, s.Count)
		}
		if !slices.IsSorted(s.Cumulative) {
			t.Fatalf("cumulative counts decrease: %v", s.Cumulative)
		}
	}
	wg.Wait()
	if got := h.Snapshot().Count; got != goroutines*each {
		t.Errorf("count %d, want %d", got, goroutines*each)
	}
}

func TestBoundsAscending(t *testing.T) {
	for name, b := range map[string][]int64{"lateness": LatenessBounds, "commit": CommitBounds, "batch": BatchBounds} {
		if !slices.IsSorted(b) || len(slices.Compact(slices.Clone(b))) != len(b) {
			t.Errorf("%s bounds not strictly ascending: %v", name, b)
		}
	}
}

func BenchmarkObserve(b *testing.B) {
	h := NewHistogram(LatenessBounds)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.ObserveDuration(3 * time.Millisecond)
		}
	})
}
