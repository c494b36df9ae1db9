package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
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
// copies do. Open refuses it with ErrDamaged and the way out, or opens it
// and skips the damaged records; without the full check on open, reads
// and writes on it return errors rather than crash; Verify reports the
// damage; Salvage copies every record that was not damaged (and none that
// was deleted, where the freelist survives) into a database that Verify
// finds clean and Open serves.
func TestDamagedDatabase(t *testing.T) {
	const jobs, sched, schedules = "jobs", "sched", "schedules"
	tests := []struct {
		name string
		// damage damages the file and returns the records it may have
		// taken with it (by id), and whether deleted records must stay
		// deleted in the salvage.
		damage func(t *testing.T, path string, vals []storetest.Value, pageSize int) (lost map[uint64]bool, exact bool)
		opens  bool // Open serves it
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
		}, false, false},
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
		}, false, false},
		{"200 bytes flipped inside record values", func(t *testing.T, path string, vals []storetest.Value, _ int) (map[uint64]bool, bool) {
			changed, err := storetest.FlipBytes(path, vals, 200, rand.New(rand.NewPCG(3, 4)))
			must(t, err)
			lost := map[uint64]bool{}
			for i := range changed {
				lost[binary.BigEndian.Uint64(vals[i].Key)] = true
			}
			return lost, true
		}, true, true},
		{"both meta pages zeroed", func(t *testing.T, path string, _ []storetest.Value, pageSize int) (map[uint64]bool, bool) {
			must(t, storetest.ZeroMetas(path, pageSize))
			return nil, true
		}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "damaged.db")
			want := buildSample(t, path)
			vals, pageSize, err := storetest.Values(path, jobs, sched, schedules)
			must(t, err)
			lost, exact := tt.damage(t, path, vals, pageSize)
			pristine, err := os.ReadFile(path)
			must(t, err)

			// Open: refused with the way out, or served without the
			// damaged records.
			s, err := Open(path, Options{NoSync: true})
			switch {
			case tt.opens && err != nil:
				t.Fatalf("Open: %v", err)
			case !tt.opens && err == nil:
				s.Close()
				t.Fatal("Open served a damaged database")
			case !tt.opens && (!errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "gearsched salvage")):
				t.Fatalf("Open: %v; want ErrDamaged and the way out", err)
			case tt.opens:
				got := storedIDs(t, s)
				for id := range got.ready {
					if lost[id] {
						t.Errorf("damaged ready job %d was read", id)
					}
				}
				s.Close()
			}
			exerciseUnverified(t, path)
			must(t, os.WriteFile(path, pristine, 0o600)) // as damaged, before the writes above

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
			s, err = Open(dst, Options{NoSync: true})
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

// exerciseUnverified opens the damaged file without the full check, as a
// large database is opened, and uses it: every read and write returns,
// with an error or not, and none takes the process down.
func exerciseUnverified(t *testing.T, path string) {
	t.Helper()
	s, err := Open(path, Options{NoSync: true, VerifyLimit: -1})
	if err != nil {
		t.Logf("unverified Open: %v", err)
		return
	}
	defer s.Close()
	s.Jobs(func(*Job) error { return nil })
	s.ForEachDue(func(DueItem) bool { return true })
	s.DueItems(math.MaxInt64, 1000)
	s.NextDue()
	s.Schedules()
	s.Lookup(1151)
	s.FindUnique("u1151")
	s.Cancel(1152)
	s.Fire(0, []uint64{1153}, nil, nil)
	s.Delete(151)
	err = s.Put(&Job{ID: 9999, Function: "f", Data: []byte("after the damage")}).Wait()
	t.Logf("unverified store: a Put after the damage: %v", err)
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
// with random bytes: Open, a store opened without the full check, Verify
// and Salvage all return, and each salvage is a database Verify finds
// clean.
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
		if s, err := Open(path, Options{NoSync: true}); err == nil {
			s.Close()
		}
		exerciseUnverified(t, path)
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

// TestDamagedRecordsSkipped: a database whose pages are sound but some of
// whose records are damaged opens; every read skips those records and
// logs each once with its bucket and key, and the scheduler's NextDue
// passes over a damaged pending job instead of waking for it forever.
func TestDamagedRecordsSkipped(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "records.db")
	s, err := Open(path, Options{NoSync: true})
	must(t, err)
	for id := uint64(1); id <= 3; id++ {
		waitBatch(t, s.Put(&Job{ID: id, Function: "f", Data: []byte(fmt.Sprint("ready ", id))}))
		waitBatch(t, s.PutPending(&Job{ID: 10 + id, Function: "p", Unique: fmt.Sprint("u", id), Due: int64(id) * 1e9,
			Data: []byte(fmt.Sprint("pending ", id))}, ""))
		mustPutSchedule(t, s, &Schedule{ID: 20 + id, Function: "s", Spec: "@hourly", Zone: "UTC", Enabled: true,
			Next: int64(10+id) * 1e9, FireAt: int64(10+id) * 1e9}, "")
	}
	s.Close()
	vals, _, err := storetest.Values(path, "jobs", "sched", "schedules")
	must(t, err)
	var damaged []storetest.Value
	for _, v := range vals {
		if id := binary.BigEndian.Uint64(v.Key); id == 2 || id == 11 || id == 21 {
			damaged = append(damaged, v)
		}
	}
	if len(damaged) != 3 {
		t.Fatalf("found %d of the records to damage", len(damaged))
	}
	for i := range damaged {
		_, err := storetest.FlipBytes(path, damaged[i:i+1], 1, rand.New(rand.NewPCG(uint64(i), 7)))
		must(t, err)
	}

	var logs bytes.Buffer
	s, err = Open(path, Options{NoSync: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	must(t, err)
	defer s.Close()
	for range 3 { // every read skips them; the log names them once
		got := storedIDs(t, s)
		if ids := slices.Sorted(maps.Keys(got.ready)); !slices.Equal(ids, []uint64{1, 3}) {
			t.Errorf("ready jobs %v, want [1 3]", ids)
		}
		if ids := slices.Sorted(maps.Keys(got.pending)); !slices.Equal(ids, []uint64{12, 13}) {
			t.Errorf("pending jobs %v, want [12 13]", ids)
		}
		if ids := slices.Sorted(maps.Keys(got.schedules)); !slices.Equal(ids, []uint64{22, 23}) {
			t.Errorf("schedules %v, want [22 23]", ids)
		}
		all, err := s.Schedules()
		if err != nil || len(all) != 2 {
			t.Errorf("Schedules: %d, %v; want the 2 undamaged", len(all), err)
		}
		if due, ok, err := s.NextDue(); err != nil || !ok || due != 2e9 {
			t.Errorf("NextDue %d %v %v, want the undamaged pending job 12's", due, ok, err)
		}
	}
	for _, key := range []string{"bucket=jobs key=\"id 2\"", "bucket=due key=\"1970-01-01T00:00:01Z id 11\"", "bucket=schedules key=\"id 21\""} {
		if n := strings.Count(logs.String(), key); n != 1 {
			t.Errorf("%s logged %d times by the reads, want once:\n%s", key, n, logs.String())
		}
	}
}
