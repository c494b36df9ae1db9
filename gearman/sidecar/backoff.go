package sidecar

import "time"

// Reconnection defaults for upstream servers and the control worker: a
// server that comes back is used again within maxBackoff.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
	// outageReport spaces the warnings about a server that stays
	// unreachable.
	outageReport = 30 * time.Second
)

// backoffLimits returns lo and hi with defaults filled in.
func backoffLimits(lo, hi time.Duration) (time.Duration, time.Duration) {
	if lo <= 0 {
		lo = minBackoff
	}
	if hi < lo {
		hi = max(maxBackoff, lo)
	}
	return lo, hi
}

// backoff is the wait before reconnecting to one server: it doubles from
// min to max with each failure and starts again after a success.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
	warned   time.Time // last warning about this server
}

// fail records a failure and returns the wait before the next attempt.
func (b *backoff) fail() time.Duration {
	b.cur = min(max(2*b.cur, b.min), b.max)
	return b.cur
}

// reset records a success.
func (b *backoff) reset() { b.cur = 0 }

// warn reports whether a failure should be logged: the first of an outage,
// then one every outageReport.
func (b *backoff) warn(now time.Time) bool {
	if b.cur != b.min && now.Sub(b.warned) < outageReport {
		return false
	}
	b.warned = now
	return true
}
