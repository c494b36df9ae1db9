package queuewatch

import (
	"testing"
	"time"
)

// TestPacer: a full pass starts costFactor times the last one's duration
// after it (within the backend's shortest and maxFull); one brought
// forward (a reconnection, a recovery) only quickFactor times, never
// later than the normal time. A reconnection used to start a pass at
// once, so an upstream dropping every second kept a 1M-row table's
// passes running nearly all the time.
func TestPacer(t *testing.T) {
	p := pacer{minGap: 10 * time.Second, gap: 10 * time.Second}
	if !p.next(false).IsZero() || !p.next(true).IsZero() {
		t.Fatal("the first pass does not start at once")
	}
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		cost, normal, early time.Duration
	}{
		{time.Second, 50 * time.Second, 20 * time.Second},
		{10 * time.Millisecond, 10 * time.Second, 200 * time.Millisecond},
		{20 * time.Second, maxFull, maxFull},
	} {
		p.done(t0, t0.Add(tc.cost))
		end := t0.Add(tc.cost)
		if got := p.next(false).Sub(end); got != tc.normal {
			t.Errorf("pass of %v: next one %v after it, want %v", tc.cost, got, tc.normal)
		}
		if got := p.next(true).Sub(end); got != tc.early {
			t.Errorf("pass of %v: one brought forward %v after it, want %v", tc.cost, got, tc.early)
		}
	}
}
