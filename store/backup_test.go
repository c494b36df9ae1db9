package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestBackupWhileCommitting: a backup is a whole database as of one
// moment, taken while writes go on; it opens as a store with the jobs
// committed before it.
func TestBackupWhileCommitting(t *testing.T) {
	s, _ := openTemp(t, Options{NoSync: true})
	for id := uint64(1); id <= 100; id++ {
		waitBatch(t, s.Put(&Job{ID: id, Handle: "H:t", Function: "f", Data: bytes.Repeat([]byte{'x'}, 100)}))
	}
	var buf bytes.Buffer
	var size int64
	// A commit made while the backup is being written neither waits for
	// it nor appears in it.
	n, err := s.Backup(writerFunc(func(p []byte) (int, error) {
		if buf.Len() == 0 {
			waitBatch(t, s.Put(&Job{ID: 101, Function: "late"}))
		}
		return buf.Write(p)
	}), func(n int64) { size = n })
	if err != nil {
		t.Fatal(err)
	}
	if n != size || int64(buf.Len()) != n {
		t.Fatalf("backup wrote %d bytes, announced %d, buffered %d", n, size, buf.Len())
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := readAll(t, c); len(got) != 100 {
		t.Errorf("backup holds %d jobs, want the 100 committed before it", len(got))
	}
}

// checkpoint has s commit what it has journaled to the database file.
func checkpoint(t *testing.T, s *Store) {
	t.Helper()
	if err := s.snapshot(func(*bolt.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestCompact: a closed database is copied without its free pages; an
// open one, or an existing destination, is refused.
func TestCompact(t *testing.T) {
	s, path := openTemp(t, Options{NoSync: true})
	for id := uint64(1); id <= 2000; id++ {
		waitBatch(t, s.Put(&Job{ID: id, Function: "f", Data: bytes.Repeat([]byte{'x'}, 1000)}))
	}
	// A checkpoint puts the 2,000 jobs in the file, which then keeps the
	// pages they leave when they are deleted.
	checkpoint(t, s)
	for id := uint64(1); id <= 1990; id++ {
		s.Delete(id)
	}
	waitBatch(t, s.ReserveIDs(1).w)
	dst := filepath.Join(t.TempDir(), "small.db")
	if _, _, err := Compact(path, dst); !errors.As(err, new(*InUseError)) {
		t.Fatalf("Compact of an open database = %v, want an *InUseError", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before, after, err := Compact(path, dst)
	if err != nil {
		t.Fatal(err)
	}
	if after >= before/2 {
		t.Errorf("compacted %d bytes to %d; want well under half", before, after)
	}
	c, err := Open(dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c); len(got) != 10 {
		t.Errorf("compacted copy holds %d jobs, want 10", len(got))
	}
	c.Close()
	if _, _, err := Compact(path, dst); err == nil {
		t.Error("Compact over an existing file succeeded")
	}
	if m, _ := filepath.Glob(dst + ".tmp-*"); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

// TestSaveBackup: a complete copy replaces the file; a short one, or one
// that is not a database, leaves it as it was.
func TestSaveBackup(t *testing.T) {
	s, _ := openTemp(t, Options{NoSync: true})
	waitBatch(t, s.Put(&Job{ID: 1, Function: "f"}))
	var buf bytes.Buffer
	if _, err := s.Backup(&buf, nil); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "b.db")
	if err := os.WriteFile(dst, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	whole := buf.Bytes()
	for _, tc := range []struct {
		name string
		data []byte
		want int64
	}{
		{"short", whole[:len(whole)/2], int64(len(whole))},
		{"not a database", bytes.Repeat([]byte{'x'}, 1<<14), -1},
	} {
		if _, err := SaveBackup(dst, bytes.NewReader(tc.data), tc.want); err == nil {
			t.Errorf("%s copy saved", tc.name)
		}
		if b, _ := os.ReadFile(dst); string(b) != "old" {
			t.Errorf("%s copy replaced the file", tc.name)
		}
	}
	if n, err := SaveBackup(dst, bytes.NewReader(whole), int64(len(whole))); err != nil || n != int64(len(whole)) {
		t.Fatalf("SaveBackup = %d, %v", n, err)
	}
	if err := CheckFile(dst); err != nil {
		t.Error(err)
	}
	if m, _ := filepath.Glob(dst + ".tmp-*"); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}
