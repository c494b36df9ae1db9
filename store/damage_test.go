package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearsched/gearsched/store/storetest"
)

// sample is what buildSample stores: ready jobs, pending jobs and
// schedules by id, with the ids it deleted or cancelled afterwards.
type sample struct {
	ready, pending map[uint64]*Job
	schedules      map[uint64]*Schedule
	gone           map[uint64]bool
}

// buildSample writes a database of ready jobs, pending jobs and schedules
// over a dozen commits, deleting and cancelling some afterwards so that
// the file also holds freed pages with their older records.
func buildSample(t *testing.T, path string) *sample {
	t.Helper()
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	smp := &sample{ready: map[uint64]*Job{}, pending: map[uint64]*Job{}, schedules: map[uint64]*Schedule{}, gone: map[uint64]bool{}}
	future := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano() // pending jobs wait
	payload := func(id uint64) []byte {
		return []byte(fmt.Sprintf("payload %d %s", id, strings.Repeat("x", 100+int(id%50))))
	}
	for round := range uint64(12) {
		var ws []*Write
		for i := range uint64(25) {
			id := 1 + round*25 + i
			j := &Job{ID: id, Handle: fmt.Sprint("H:t:", id), Function: fmt.Sprint("f", id%3), Data: payload(id)}
			smp.ready[id] = j
			ws = append(ws, s.Put(j))
			pid := 1000 + id
			p := &Job{ID: pid, Handle: fmt.Sprint("H:t:", pid), Function: "p", Unique: fmt.Sprint("u", pid),
				Due: future + int64(pid)*1e9, Data: payload(pid)}
			smp.pending[pid] = p
			ws = append(ws, s.PutPending(p, ""))
			if i < 4 {
				sid := 2000 + id
				sc := &Schedule{ID: sid, Handle: fmt.Sprint("H:t:", sid), Source: SourceProtocol, Spec: "@hourly", Zone: "UTC",
					Function: "s", Unique: fmt.Sprint("s", sid), Data: payload(sid), Enabled: true, Next: future + int64(sid)*1e9, FireAt: future + int64(sid)*1e9}
				smp.schedules[sid] = sc
				ws = append(ws, s.PutSchedule(sc, ""))
			}
		}
		for _, w := range ws {
			waitBatch(t, w)
		}
	}
	for id := uint64(10); id <= 300; id += 10 {
		s.Delete(id)
		smp.gone[id] = true
		delete(smp.ready, id)
		if _, err := s.Cancel(1000 + id + 5); err != nil {
			t.Fatal(err)
		}
		smp.gone[1000+id+5] = true
		delete(smp.pending, 1000+id+5)
	}
	if err := s.SetMode("server"); err != nil { // a last commit, after the deletes
		t.Fatal(err)
	}
	return smp
}

// storedIDs reads back what a store holds, as buildSample's sample does.
func storedIDs(t *testing.T, s *Store) *sample {
	t.Helper()
	got := &sample{ready: map[uint64]*Job{}, pending: map[uint64]*Job{}, schedules: map[uint64]*Schedule{}}
	err := s.Jobs(func(j *Job) error { got.ready[j.ID] = j; return nil })
	if err != nil {
		t.Fatal(err)
	}
	err = s.ForEachDue(func(it DueItem) bool {
		if it.Job != nil {
			got.pending[it.ID] = it.Job
		} else {
			got.schedules[it.ID] = it.Schedule
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestDamagedDatabase damages a real database in the ways disks and
// copies do. Verify reports the damage; Salvage copies every record that
// was not damaged (and none that was deleted, where the freelist
// survives) into a database that Verify finds clean and Open serves.
func TestDamagedDatabase(t *testing.T) {
	const jobs, sched, schedules = "jobs", "sched", "schedules"
	tests := []struct {
		name string
		// damage damages the file and returns the records it may have
		// taken with it (by id), and whether deleted records must stay
		// deleted in the salvage.
		damage func(t *testing.T, path string, vals []storetest.Value, pageSize int) (lost map[uint64]bool, exact bool)
		each   bool // Verify names each damaged record
	}{
		{"truncated to half", func(t *testing.T, path string, vals []storetest.Value, _ int) (map[uint64]bool, bool) {
			fi, _ := os.Stat(path)
			half := fi.Size() / 2
			lost := map[uint64]bool{}
			for _, v := range vals {
				if v.Offset+int64(v.Size) > half {
					lost[binary.BigEndian.Uint64(v.Key)] = true
				}
			}
			must(t, storetest.Truncate(path, half))
			return lost, false
		}, false},
		{"one page overwritten with random bytes", func(t *testing.T, path string, vals []storetest.Value, pageSize int) (map[uint64]bool, bool) {
			var page int64
			for _, v := range vals {
				if v.Bucket == jobs && binary.BigEndian.Uint64(v.Key) == 151 {
					page = v.Page(pageSize)
				}
			}
			lost := map[uint64]bool{}
			for _, v := range vals {
				if v.Page(pageSize) == page {
					lost[binary.BigEndian.Uint64(v.Key)] = true
				}
			}
			must(t, storetest.OverwritePage(path, page, pageSize, rand.New(rand.NewPCG(1, 2))))
			return lost, true
		}, false},
		{"200 bytes flipped inside record values", func(t *testing.T, path string, vals []storetest.Value, _ int) (map[uint64]bool, bool) {
			changed, err := storetest.FlipBytes(path, vals, 200, rand.New(rand.NewPCG(3, 4)))
			must(t, err)
			lost := map[uint64]bool{}
			for i := range changed {
				lost[binary.BigEndian.Uint64(vals[i].Key)] = true
			}
			return lost, true
		}, true},
		{"both meta pages zeroed", func(t *testing.T, path string, _ []storetest.Value, pageSize int) (map[uint64]bool, bool) {
			must(t, storetest.ZeroMetas(path, pageSize))
			return nil, true
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "damaged.db")
			want := buildSample(t, path)
			vals, pageSize, err := storetest.Values(path, jobs, sched, schedules)
			must(t, err)
			lost, exact := tt.damage(t, path, vals, pageSize)

			rep, err := Verify(path)
			must(t, err)
			if rep.Clean() {
				t.Fatal("Verify found nothing wrong")
			}
			if tt.each {
				reported := map[uint64]bool{}
				for _, d := range rep.Damage {
					if len(d.Key) == 8 {
						reported[binary.BigEndian.Uint64(d.Key)] = true
					}
				}
				for id := range lost {
					if !reported[id] {
						t.Errorf("Verify did not report damaged record %d", id)
					}
				}
			}
			t.Logf("Verify: %d records read whole, %d problems, first: %v", rep.Records, len(rep.Damage), rep.Damage[0])

			dst := filepath.Join(dir, "salvaged.db")
			srep, err := Salvage(path, dst)
			must(t, err)
			t.Logf("Salvage copied %v", srep.Copied)
			if _, err := Salvage(path, dst); err == nil {
				t.Error("Salvage wrote over an existing file")
			}
			if rep, err := Verify(dst); err != nil || !rep.Clean() {
				t.Fatalf("the salvaged database: %v %v", err, rep.Damage)
			}
			s, err := Open(dst, Options{NoSync: true})
			must(t, err)
			defer s.Close()
			got := storedIDs(t, s)
			compareSalvage(t, "ready job", want.ready, got.ready, lost, want.gone, exact, func(a, b *Job) bool { return bytes.Equal(a.Data, b.Data) })
			compareSalvage(t, "pending job", want.pending, got.pending, lost, want.gone, exact, func(a, b *Job) bool {
				return bytes.Equal(a.Data, b.Data) && a.Due == b.Due
			})
			compareSalvage(t, "schedule", want.schedules, got.schedules, lost, want.gone, exact, func(a, b *Schedule) bool {
				return bytes.Equal(a.Data, b.Data) && a.FireAt == b.FireAt
			})
			// The rebuilt indexes serve: coalescing by unique, counts.
			for id, p := range got.pending {
				if h, ok, err := s.FindUnique(p.Unique); err != nil || !ok || h.ID != id {
					t.Fatalf("FindUnique(%s) after salvage: %+v %v %v", p.Unique, h, ok, err)
				}
			}
			if n := s.PendingCount("p"); n != len(got.pending) {
				t.Errorf("PendingCount after salvage %d, want %d", n, len(got.pending))
			}
			var top uint64
			for _, m := range []map[uint64]bool{keys(got.ready), keys(got.pending), keys(got.schedules)} {
				for id := range m {
					top = max(top, id)
				}
			}
			if first, err := s.ReserveIDs(1).Wait(); err != nil || first <= top {
				t.Errorf("first id after salvage %d (%v): ids up to %d are in use", first, err, top)
			}
		})
	}
}

// compareSalvage checks that every record of want that was not lost came
// back unchanged, that none came back altered, and (exact) that no
// deleted record came back.
func compareSalvage[R any](t *testing.T, what string, want, got map[uint64]R, lost, gone map[uint64]bool, exact bool, same func(a, b R) bool) {
	t.Helper()
	missing := 0
	for id, w := range want {
		g, ok := got[id]
		switch {
		case !ok && !lost[id]:
			missing++
			if missing <= 5 {
				t.Errorf("undamaged %s %d did not come back", what, id)
			}
		case ok && !same(w, g):
			t.Errorf("%s %d came back altered", what, id)
		}
	}
	if missing > 5 {
		t.Errorf("... %d undamaged %ss missing in all", missing, what)
	}
	for id := range got {
		if _, ok := want[id]; !ok && (exact || !gone[id]) {
			t.Errorf("%s %d came back, but it was deleted or never stored", what, id)
		}
	}
}

func keys[V any](m map[uint64]V) map[uint64]bool {
	out := map[uint64]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestEveryPageDamaged overwrites each page of a sample database in turn
// with random bytes: Verify and Salvage return, and each salvage is a
// database Verify finds clean.
func TestEveryPageDamaged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sample.db")
	buildSample(t, path)
	pristine, err := os.ReadFile(path)
	must(t, err)
	const pageSize = 4096
	rng := rand.New(rand.NewPCG(5, 6))
	for page := range int64(len(pristine) / pageSize) {
		must(t, os.WriteFile(path, pristine, 0o600))
		must(t, storetest.OverwritePage(path, page, pageSize, rng))
		if _, err := Verify(path); err != nil {
			t.Fatalf("page %d: Verify: %v", page, err)
		}
		dst := filepath.Join(dir, fmt.Sprintf("salvaged-%d.db", page))
		if _, err := Salvage(path, dst); err != nil {
			t.Logf("page %d: Salvage: %v", page, err)
			continue
		}
		if rep, err := Verify(dst); err != nil || !rep.Clean() {
			t.Errorf("page %d: the salvaged database: %v %v", page, err, rep.Damage)
		}
	}
}

// TestVerifyDatabaseInUse: Verify and Salvage refuse a database that a
// store has open, naming the process that holds it.
func TestVerifyDatabaseInUse(t *testing.T) {
	_, path := openTemp(t, Options{})
	for name, open := range map[string]func() error{
		"Verify":  func() error { _, err := Verify(path); return err },
		"Salvage": func() error { _, err := Salvage(path, path+".new"); return err },
	} {
		var inUse *InUseError
		if err := open(); !errors.As(err, &inUse) || inUse.PID != os.Getpid() {
			t.Errorf("%s of a database in use: %v, want an *InUseError naming this process", name, err)
		}
	}
	if _, err := os.Stat(path + ".new"); err == nil {
		t.Error("Salvage of a database in use created its destination")
	}
}
