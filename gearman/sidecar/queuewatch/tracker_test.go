package queuewatch

import (
	"slices"
	"testing"

	"github.com/gearsched/gearsched/store"
)

// keysOf returns a batch's keys.
func keysOf(tr *tracker) []key {
	ks, _ := tr.take()
	return ks
}

// TestTrackerFirstPass: rows whose time passed are woken by one trigger
// per function now; future rows by one per (function, second) within the
// horizon, joining up to store.MaxWatch uniques.
func TestTrackerFirstPass(t *testing.T) {
	tr := newTracker(100)
	for _, r := range []Row{
		{"f", "old1", 10}, {"f", "old2", 99}, {"g", "old3", 50},
		{"f", "a", 105}, {"f", "b", 105}, {"f", "", 105}, {"f", "c", 106},
		{"f", "far", 500},
	} {
		tr.see(r, 100, 200)
	}
	ks, ws := tr.take()
	want := []key{{"f", 100}, {"g", 100}, {"f", 105}, {"f", 106}}
	if !slices.Equal(ks, want) {
		t.Fatalf("registered %v, want %v", ks, want)
	}
	if len(ws[0]) != 2 || len(ws[2]) != 2 {
		t.Errorf("watches %q: want two uniques for (f,100) and for (f,105) (the empty unique is not watched)", ws)
	}
	tr.passDone(100)
	// The next pass: nothing again; rows at or below the handled mark and
	// a row the first pass collapsed (99) stay handled.
	for _, r := range []Row{{"f", "old1", 10}, {"f", "old2", 99}, {"f", "a", 105}, {"f", "c", 106}, {"f", "late", 101}} {
		tr.see(r, 101, 201)
	}
	if ks := keysOf(tr); !slices.Equal(ks, []key{{"f", 101}}) {
		t.Errorf("second pass registered %v, want only the new row at 101", ks)
	}
}

// TestTrackerBounded: keys below the handled mark are forgotten, and no
// more than maxKeys are kept; overflowing rows are counted and come back.
func TestTrackerBounded(t *testing.T) {
	tr := newTracker(3)
	tr.passDone(0)
	for s := int64(1); s <= 5; s++ {
		tr.see(Row{"f", "u", s}, 0, 100)
	}
	if ks := keysOf(tr); len(ks) != 3 || tr.overflow != 2 {
		t.Fatalf("registered %v with overflow %d; want 3 and 2", ks, tr.overflow)
	}
	tr.overflow = 0
	tr.passDone(3 + handledMargin)
	if len(tr.keys) != 0 {
		t.Errorf("keys %v kept below the handled mark", tr.keys)
	}
	for s := int64(1); s <= 5; s++ {
		tr.see(Row{"f", "u", s}, 5, 100)
	}
	if ks := keysOf(tr); !slices.Equal(ks, []key{{"f", 4}, {"f", 5}}) {
		t.Errorf("after the mark moved: %v, want the rows above it", ks)
	}
	var many []Row
	for i := range store.MaxWatch + 3 {
		many = append(many, Row{"h", string(rune('a' + i)), 50})
	}
	tr2 := newTracker(10)
	for _, r := range many {
		tr2.see(r, 0, 100)
	}
	if _, ws := tr2.take(); len(ws) != 1 || len(ws[0]) != store.MaxWatch {
		t.Errorf("watches %q: want one trigger watching %d", ws, store.MaxWatch)
	}
	tr2.forget([]key{{"h", 50}})
	tr2.reset()
	if !tr2.first || len(tr2.keys) != 0 {
		t.Errorf("forget/reset: first %v keys %v", tr2.first, tr2.keys)
	}
}
