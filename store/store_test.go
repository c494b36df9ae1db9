package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func openTemp(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func readAll(t *testing.T, s *Store) []*Job {
	t.Helper()
	var jobs []*Job
	if err := s.Jobs(func(j *Job) error { jobs = append(jobs, j); return nil }); err != nil {
		t.Fatal(err)
	}
	return jobs
}

func TestJobEncodingRoundTrip(t *testing.T) {
	for _, j := range []Job{
		{ID: 1},
		{ID: 2, Handle: "H:vm:2", Function: "f", Unique: "u", Priority: 2, Data: []byte("x")},
		{ID: 3, Handle: "H:vm:3", Function: "reduce", Unique: string(bytes.Repeat([]byte("u"), 64)), Reducer: "r", Due: -5, Data: []byte("a\x00b")},
		{ID: 1 << 60, Handle: "H:x:1152921504606846976", Function: "big", Due: 1 << 62, Data: bytes.Repeat([]byte{0xff}, 1<<16)},
	} {
		t.Run(fmt.Sprint(j.ID), func(t *testing.T) {
			b := j.appendTo(nil)
			if len(b) > j.encodedSize() {
				t.Errorf("encoded %d bytes, encodedSize says at most %d", len(b), j.encodedSize())
			}
			got, err := decodeJob(j.ID, b)
			if err != nil {
				t.Fatal(err)
			}
			if got.Handle != j.Handle || got.Function != j.Function || got.Unique != j.Unique || got.Reducer != j.Reducer ||
				got.Priority != j.Priority || got.Due != j.Due || !bytes.Equal(got.Data, j.Data) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, j)
			}
			for cut := range len(b) {
				if _, err := decodeJob(j.ID, b[:cut]); err == nil {
					t.Fatalf("record cut to %d of %d bytes decoded without error", cut, len(b))
				}
			}
		})
	}
}

func TestPutDeleteSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reopen.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var batches []*Write
	for i := uint64(1); i <= 5; i++ {
		batches = append(batches, s.Put(&Job{ID: i, Handle: fmt.Sprintf("H:t:%d", i), Function: "f", Data: []byte{byte(i)}}))
	}
	s.Delete(2)
	s.Delete(99) // unknown: harmless
	for _, b := range batches {
		if err := b.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Close() != ErrClosed {
		t.Error("second Close did not report ErrClosed")
	}
	if err := s.Put(&Job{ID: 9}).Wait(); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close: %v, want ErrClosed", err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ids []uint64
	for _, j := range readAll(t, s) {
		ids = append(ids, j.ID)
		if j.Data[0] != byte(j.ID) {
			t.Errorf("job %d came back with data %v", j.ID, j.Data)
		}
	}
	if fmt.Sprint(ids) != "[1 3 4 5]" {
		t.Errorf("stored ids %v, want [1 3 4 5] in submission order", ids)
	}
}

func TestReserveIDsNeverRepeat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ids.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.ReserveIDs(10).Wait()
	if err != nil || a != 1 {
		t.Fatalf("first reservation: %d, %v; want 1", a, err)
	}
	b, err := s.ReserveIDs(10).Wait()
	if err != nil || b != 11 {
		t.Errorf("second reservation starts at %d, want 11", b)
	}
	// A stored job above the high-water mark (a database written by a
	// version that reserved differently) still pushes new IDs past it.
	if err := s.Put(&Job{ID: 500}).Wait(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.ReserveIDs(1).Wait()
	if err != nil || c != 501 {
		t.Errorf("after reopen the next ID is %d, want 501", c)
	}
}

func TestConcurrentPutsAllDurable(t *testing.T) {
	s, _ := openTemp(t, Options{})
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Put(&Job{ID: uint64(i + 1), Function: "f"}).Wait()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := len(readAll(t, s)); got != n {
		t.Errorf("%d jobs stored, want %d", got, n)
	}
}

// TestOpenLockedFileFails: a database in use is refused, by Open, Verify
// and Salvage alike, with an error that says so and names the holder (here
// this process; the cmd tests check another process's pid).
func TestOpenLockedFileFails(t *testing.T) {
	_, path := openTemp(t, Options{})
	for name, open := range map[string]func() error{
		"Open": func() error {
			s, err := Open(path, Options{})
			if err == nil {
				s.Close()
			}
			return err
		},
		"Verify":  func() error { _, err := Verify(path); return err },
		"Salvage": func() error { _, err := Salvage(path, path+".new"); return err },
	} {
		var inUse *InUseError
		if err := open(); !errors.As(err, &inUse) || inUse.PID != os.Getpid() ||
			!strings.Contains(err.Error(), "already open in this process") {
			t.Errorf("%s of a database in use: %v, want an *InUseError naming this process", name, err)
		}
	}
	if _, err := os.Stat(path + ".new"); err == nil {
		t.Error("Salvage of a database in use created its destination")
	}
}

// BenchmarkPut measures durable writes: sequential (one fsync per job) and
// from many goroutines (group commit shares fsyncs).
//
//	go test ./store -run '^$' -bench Put -benchtime 2000x
func BenchmarkPut(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 100)
	b.Run("sequential", func(b *testing.B) {
		s, _ := openTemp(b, Options{})
		for i := range b.N {
			if err := s.Put(&Job{ID: uint64(i + 1), Function: "f", Data: payload}).Wait(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel64", func(b *testing.B) {
		s, _ := openTemp(b, Options{})
		var mu sync.Mutex
		next := uint64(0)
		b.SetParallelism(32) // 64 goroutines on 2 cores
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				mu.Lock()
				next++
				id := next
				mu.Unlock()
				if err := s.Put(&Job{ID: id, Function: "f", Data: payload}).Wait(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// TestSealFindsDamage: flipping any bit of a job's or a schedule's record
// makes it fail to decode, with ErrDamaged, instead of decoding as another
// record; records written before seals still decode.
func TestSealFindsDamage(t *testing.T) {
	sc := &Schedule{ID: 9, Handle: "H:t:9", Source: SourceProtocol, Spec: "@hourly", Zone: "UTC", Function: "f",
		Unique: "u", Data: []byte("payload"), Enabled: true, Next: 100, FireAt: 100}
	scRecord, err := encodeSchedule(sc)
	if err != nil {
		t.Fatal(err)
	}
	legacySchedule, _ := json.Marshal(sc)
	tests := []struct {
		name   string
		record []byte
		legacy []byte
		decode func([]byte) error
	}{
		{"job", (&Job{ID: 7, Handle: "H:t:7", Function: "f", Unique: "u", Data: []byte("payload")}).appendTo(nil),
			legacyEncoding(&Job{ID: 7, Handle: "H:t:7", Function: "f", Unique: "u", Data: []byte("payload")}),
			func(b []byte) error { _, err := decodeJob(7, b); return err }},
		{"trigger job", (&Job{ID: 7, Function: "f", Kind: JobTrigger, Upstream: "gm:4730", Watch: []string{"H:up:1"}}).appendTo(nil),
			nil, func(b []byte) error { _, err := decodeJob(7, b); return err }},
		{"schedule", scRecord, legacySchedule, func(b []byte) error { _, err := decodeSchedule(9, b); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.decode(tt.record); err != nil {
				t.Fatal(err)
			}
			if tt.legacy != nil {
				if err := tt.decode(tt.legacy); err != nil {
					t.Errorf("record written before seals: %v", err)
				}
			}
			for i := range tt.record {
				for bit := range 8 {
					b := bytes.Clone(tt.record)
					b[i] ^= 1 << bit
					if err := tt.decode(b); !errors.Is(err, ErrDamaged) {
						t.Fatalf("bit %d of byte %d flipped: %v, want ErrDamaged", bit, i, err)
					}
				}
			}
		})
	}
}
