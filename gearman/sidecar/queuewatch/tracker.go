package queuewatch

import (
	"github.com/gearsched/gearsched/gearman/sidecar"
	"github.com/gearsched/gearsched/store"
)

// key names one trigger within a queue (the upstream is the queue's): a
// function and a second.
type key struct {
	function string
	when     int64
}

// handledMargin is how far below the second a complete pass started in
// the watcher moves its mark of handled seconds. A job gearmand accepts
// with a time in the current second is due at once, but gearmand's
// coarse clock may still read the second before and leave it waiting, so
// such rows are looked at once more.
const handledMargin = 2

// tracker is the watcher's memory: which triggers it has registered, so
// that a row seen again in the next scan is not triggered twice. It holds
// no rows. Everything at or below the second handled is dealt with and
// forgotten; above it, keys holds the (function, second) pairs registered,
// only up to the horizon a scan is given and never more than maxKeys, so
// memory is bounded by the number of distinct seconds with jobs in the
// next few minutes, whatever the size of the table. Owned by the
// watcher's goroutine.
type tracker struct {
	// first is set until a complete pass after start-up, a reconnection of
	// the upstream or a recovery of the database: rows whose time has
	// passed are then woken with one trigger per function, since nothing
	// says whether anyone woke them.
	first   bool
	handled int64
	keys    map[key]struct{}
	maxKeys int
	// overflow counts rows not registered because keys was full; they are
	// registered by a later scan, once registered seconds pass.
	overflow int
	// batch are the keys registered by the scan under way, not yet
	// stored, with the watch entries of their rows.
	batch map[key][]string
	order []key
}

func newTracker(maxKeys int) *tracker {
	return &tracker{first: true, keys: map[key]struct{}{}, maxKeys: maxKeys, batch: map[key][]string{}}
}

// see decides about one row of a scan made at second now; rows due after
// horizon are left to a later scan.
func (t *tracker) see(r Row, now, horizon int64) {
	when := r.WhenToRun
	k := key{r.Function, when}
	switch {
	case t.first && when <= now:
		// One trigger now for every past row of the function. The rows'
		// own seconds near now are marked too, so that the scans after
		// this pass do not wake them a second time.
		if when > now-handledMargin && when < now {
			t.keys[k] = struct{}{}
		}
		k.when = now
	case !t.first && when <= t.handled, when > horizon:
		return
	}
	if w, ok := t.batch[k]; ok {
		if len(w) < store.MaxWatch {
			t.batch[k] = watchOf(w, r.Unique)
		}
		return
	}
	if _, ok := t.keys[k]; ok {
		return
	}
	if len(t.keys) >= t.maxKeys {
		t.overflow++
		return
	}
	t.keys[k] = struct{}{}
	t.batch[k] = watchOf(nil, r.Unique)
	t.order = append(t.order, k)
}

// low is the time at or below which see ignores every row: the seconds
// handled, unless rows whose time passed are in question (first).
func (t *tracker) low() int64 {
	if t.first {
		return 0
	}
	return t.handled
}

// watchOf appends the watch entry of the job with that unique, if it can
// be watched (sidecar.UniqueWatch).
func watchOf(w []string, unique string) []string {
	if e, ok := sidecar.UniqueWatch(unique); ok {
		return append(w, e)
	}
	return w
}

// pending is the number of keys registered but not yet stored.
func (t *tracker) pending() int { return len(t.order) }

// take returns the batch, in the order it was registered, and empties it.
func (t *tracker) take() ([]key, [][]string) {
	keys, watches := t.order, make([][]string, len(t.order))
	for i, k := range keys {
		watches[i] = t.batch[k]
	}
	t.order, t.batch = nil, map[key][]string{}
	return keys, watches
}

// forget unregisters keys whose triggers could not be stored, so that the
// next scan registers them again.
func (t *tracker) forget(keys []key) {
	for _, k := range keys {
		delete(t.keys, k)
	}
}

// passDone records a complete pass started at second start: every row
// then present up to that second was dealt with.
func (t *tracker) passDone(start int64) {
	t.first = false
	t.handled = start - handledMargin
	for k := range t.keys {
		if k.when <= t.handled {
			delete(t.keys, k)
		}
	}
}

// reset makes the next pass wake every past row again (see first).
func (t *tracker) reset() { t.first = true }
