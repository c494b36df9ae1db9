package store

import (
	"slices"
	"testing"
)

func listIDs(p DuePage) []uint64 {
	var ids []uint64
	for _, it := range p.Items {
		ids = append(ids, it.ID)
	}
	return ids
}

// TestListDue: pages follow the due index from a cursor; a filter stops a
// page after the scan bound and says where to go on.
func TestListDue(t *testing.T) {
	s, _ := openTemp(t, Options{NoSync: true})
	// Jobs 1..9, due in reverse id order; function g for every third.
	for id := uint64(1); id <= 9; id++ {
		fn := "f"
		if id%3 == 0 {
			fn = "g"
		}
		waitBatch(t, s.PutPending(&Job{ID: id, Function: fn, Due: int64(100 - id)}, ""))
	}
	mustPutSchedule(t, s, &Schedule{ID: 10, Handle: "H:t:10", Source: SourceProtocol, Spec: "@hourly", Zone: "UTC",
		Function: "g", Enabled: true, Next: 95, FireAt: 95}, "")

	p, err := s.ListDue(DueCursor{}, 4, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := listIDs(p), []uint64{9, 8, 7, 6}; !slices.Equal(got, want) || !p.More || p.Next != (DueCursor{94, 6}) {
		t.Fatalf("first page = %v more=%v next=%+v; want %v, more, next {94 6}", got, p.More, p.Next, want)
	}
	p, err = s.ListDue(p.Next, 4, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := listIDs(p), []uint64{5, 10, 4, 3}; !slices.Equal(got, want) || !p.More {
		t.Fatalf("second page = %v more=%v; want %v and more", got, p.More, want)
	}
	p, err = s.ListDue(p.Next, 4, 1000, nil)
	if got, want := listIDs(p), []uint64{2, 1}; err != nil || !slices.Equal(got, want) || p.More {
		t.Fatalf("last page = %v more=%v err=%v; want %v, no more", got, p.More, err, want)
	}

	isG := func(it *DueItem) bool {
		if it.Job != nil {
			return it.Job.Function == "g"
		}
		return it.Schedule.Function == "g"
	}
	var all []uint64
	pages := 0
	for from := (DueCursor{}); ; pages++ {
		p, err := s.ListDue(from, 10, 3, isG)
		if err != nil {
			t.Fatal(err)
		}
		if p.Scanned > 3 {
			t.Fatalf("a page scanned %d entries, bound 3", p.Scanned)
		}
		all = append(all, listIDs(p)...)
		if !p.More {
			break
		}
		from = p.Next
	}
	if want := []uint64{9, 6, 10, 3}; !slices.Equal(all, want) || pages != 3 {
		t.Errorf("filtered pages = %v in %d pages, want %v in 4 pages of 3 entries", all, pages+1, want)
	}
}
