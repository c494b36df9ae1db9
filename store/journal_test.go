package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// neverCheckpoint keeps every acknowledged write in the journal alone
// until the store is closed: the database file holds none of them.
const neverCheckpoint = 24 * time.Hour

// crashCopy copies the database at path and its journal, as a kill -9
// would leave them, to a new directory and returns the copy's path. The
// committer must be idle: the copy is of what is on disk between commits.
func crashCopy(t *testing.T, path string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "crashed.db")
	for _, suffix := range []string{"", ".journal"} {
		copyFile(t, path+suffix, dst+suffix)
	}
	return dst
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// readyIDs opens the database at path and returns the ids of its ready
// jobs.
func readyIDs(t *testing.T, path string) []uint64 {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ids := jobIDs(readAll(t, s))
	slices.Sort(ids)
	return ids
}

func putJobs(t *testing.T, s *Store, ids ...uint64) {
	t.Helper()
	var writes []*Write
	for _, id := range ids {
		writes = append(writes, s.Put(&Job{ID: id, Handle: fmt.Sprintf("H:t:%d", id), Function: "f", Data: []byte("x")}))
	}
	for _, w := range writes {
		if err := w.Wait(); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
}

// An acknowledged write is durable through the journal alone: a crash
// before any checkpoint loses none, and Open applies them.
func TestJournalCrashBeforeCheckpoint(t *testing.T) {
	s, path := openTemp(t, Options{CheckpointInterval: neverCheckpoint})
	putJobs(t, s, 1, 2, 3)
	s.Delete(2)
	putJobs(t, s, 4) // queued after the delete: once it is done, so is the delete

	crashed := crashCopy(t, path)
	if n, err := journalRecords(crashed); err != nil || n == 0 {
		t.Fatalf("journal of the crashed copy: %d records, %v; want some", n, err)
	}
	if got, want := readyIDs(t, crashed), []uint64{1, 3, 4}; !slices.Equal(got, want) {
		t.Errorf("after the crash: jobs %v, want %v", got, want)
	}
	// Open applied the records and started the journal over.
	if n, err := journalRecords(crashed); err != nil || n != 0 {
		t.Errorf("journal after Open and Close: %d records, %v; want none", n, err)
	}
}

// A record torn by the crash ends the replay; the records before it are
// applied.
func TestJournalTornRecord(t *testing.T) {
	s, path := openTemp(t, Options{CheckpointInterval: neverCheckpoint})
	putJobs(t, s, 1)
	putJobs(t, s, 2)
	crashed := crashCopy(t, path)

	// Flip a byte in the last record's body: it fails its checksum, as a
	// record half written when the power went would.
	j, err := readJournal(crashed)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	off := int64(journalStart)
	if err := j.scan(func(body []byte) error {
		last = off
		off += recordHeaderSize + int64(len(body))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	j.close()
	f, err := os.OpenFile(journalPath(crashed), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xee}, last+recordHeaderSize+2); err != nil {
		t.Fatal(err)
	}
	f.Close()

	if got, want := readyIDs(t, crashed), []uint64{1}; !slices.Equal(got, want) {
		t.Errorf("after a torn last record: jobs %v, want %v", got, want)
	}
}

// Records of an earlier epoch, left in the file after a checkpoint, are
// not replayed: they may undo what came later.
func TestJournalEpochs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "j.db")
	j, err := openJournal(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	record := func(key string) {
		t.Helper()
		j.begin()
		j.put([]byte("b"), []byte(key), []byte("v"))
		if err := j.commit(); err != nil {
			t.Fatal(err)
		}
	}
	keys := func() []string {
		t.Helper()
		r, err := readJournal(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.close()
		var got []string
		err = r.scan(func(body []byte) error {
			_, rest, _ := readBytes(body[1:])
			key, _, _ := readBytes(rest)
			got = append(got, string(key))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	for _, k := range []string{"a1", "a2", "a3"} { // records of one size
		record(k)
	}
	if got := keys(); !slices.Equal(got, []string{"a1", "a2", "a3"}) {
		t.Fatalf("epoch 1: records %v", got)
	}
	if err := j.restart(); err != nil {
		t.Fatal(err)
	}
	if got := keys(); len(got) != 0 {
		t.Errorf("just after a restart: records %v, want none", got)
	}
	record("b1") // overwrites a1 exactly; a2 and a3 follow it in the file
	if got := keys(); !slices.Equal(got, []string{"b1"}) {
		t.Errorf("epoch 2: records %v, want [b1]", got)
	}
	// And the epoch survives reopening.
	j2, err := openJournal(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if j2.epoch != j.epoch {
		t.Errorf("reopened at epoch %d, want %d", j2.epoch, j.epoch)
	}
	j2.close()
}

// A header slot that could not be written is written before the next
// record, or that record (tagged with an epoch the file does not name)
// would be lost in a crash.
func TestJournalStaleSlotIsWrittenFirst(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j, err := openJournal(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	j.epoch++ // as restart does, when its slot write then fails
	j.slotStale = true
	j.begin()
	j.put([]byte("b"), []byte("k"), []byte("v"))
	if err := j.commit(); err != nil {
		t.Fatal(err)
	}
	n, err := journalRecords(path)
	if err != nil || n != 1 {
		t.Errorf("journal holds %d records (%v), want the one written", n, err)
	}
}

// A group that fails does not take the groups acknowledged before it,
// which share its bbolt transaction until the next checkpoint: the
// transaction is rolled back and rebuilt from the journal.
func TestJournalFailedGroupKeepsEarlierGroups(t *testing.T) {
	var fail atomic.Bool
	s, path := openTemp(t, Options{
		CheckpointInterval: neverCheckpoint,
		BeforeCommit: func() error {
			if fail.Load() {
				return errors.New("injected")
			}
			return nil
		},
	})
	putJobs(t, s, 1, 2)
	fail.Store(true)
	if err := s.Put(&Job{ID: 3, Handle: "H:t:3", Function: "f"}).Wait(); err == nil {
		t.Fatal("put with a failing commit: no error")
	}
	fail.Store(false)
	// Reads, served by the rebuilt transaction, see the acknowledged jobs.
	ids := jobIDs(readAll(t, s))
	if want := []uint64{1, 2}; !slices.Equal(ids, want) {
		t.Errorf("after the failed group: jobs %v, want %v", ids, want)
	}
	putJobs(t, s, 4)
	if got, want := readyIDs(t, crashCopy(t, path)), []uint64{1, 2, 4}; !slices.Equal(got, want) {
		t.Errorf("after a crash: jobs %v, want %v", got, want)
	}
}

// A checkpoint puts everything acknowledged into the database file and
// empties the journal; a backup checkpoints first, so it holds every
// acknowledged write.
func TestJournalCheckpoint(t *testing.T) {
	s, path := openTemp(t, Options{CheckpointInterval: neverCheckpoint})
	putJobs(t, s, 1, 2)
	backup := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(backup)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backup(f, nil); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, want := readyIDs(t, backup), []uint64{1, 2}; !slices.Equal(got, want) {
		t.Errorf("backup holds jobs %v, want %v", got, want)
	}
	if n, err := journalRecords(path); err != nil || n != 0 {
		t.Errorf("journal after the backup's checkpoint: %d records, %v; want none", n, err)
	}
	// The database file alone, without its journal, has them.
	alone := filepath.Join(t.TempDir(), "alone.db")
	copyFile(t, path, alone)
	if got, want := readyIDs(t, alone), []uint64{1, 2}; !slices.Equal(got, want) {
		t.Errorf("database file after a checkpoint: jobs %v, want %v", got, want)
	}
}

// Replaying a record twice (a crash after the checkpoint's commit but
// before the journal started over) changes nothing.
func TestJournalReplayIsIdempotent(t *testing.T) {
	s, path := openTemp(t, Options{CheckpointInterval: neverCheckpoint})
	putJobs(t, s, 1, 2)
	s.Delete(1)
	putJobs(t, s, 3)
	crashed := crashCopy(t, path)
	db, err := bolt.Open(crashed, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	j, err := readJournal(crashed)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := j.replay(tx); return err }); err != nil {
		t.Fatal(err)
	}
	j.close()
	db.Close()
	// Open replays the same records again.
	if got, want := readyIDs(t, crashed), []uint64{2, 3}; !slices.Equal(got, want) {
		t.Errorf("after replaying twice: jobs %v, want %v", got, want)
	}
}

// The journal is bounded by size as well as by time: past checkpointBytes
// the committer checkpoints at once, so a burst cannot grow the open
// transaction's dirty pages (held in memory) or the replay without limit.
func TestJournalCheckpointsWhenFull(t *testing.T) {
	s, path := openTemp(t, Options{CheckpointInterval: neverCheckpoint})
	data := make([]byte, 1<<20)
	var writes []*Write
	for id := uint64(1); id <= checkpointBytes>>20+8; id++ {
		writes = append(writes, s.Put(&Job{ID: id, Function: "f", Data: data}))
	}
	for _, w := range writes {
		if err := w.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	// A read queued now runs on the committer after the round that
	// committed the last write, and so after that round's check.
	if err := s.view(func(*bolt.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	n, err := journalRecords(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + ".journal"); err != nil || fi.Size() > 2*checkpointBytes+journalAlloc {
		t.Errorf("journal file: %v, %v", fi.Size(), err)
	}
	if got := s.stats.checkpoint.Snapshot().Count; got == 0 {
		t.Errorf("no checkpoint after %d MiB journaled (%d records left)", len(writes), n)
	}
}

// The open transaction is bounded by the pages it changed too: writes in
// random key order touch a page of the tree each, far more memory than
// their journal records. (bbolt counts a page when a write first changes
// it, so the tree must have pages: the test fills it first.)
func TestJournalCheckpointsWhenManyPages(t *testing.T) {
	put := func(s *Store, from, to uint64) {
		var writes []*Write
		for id := from; id < to; id++ {
			unique := fmt.Sprintf("%016x", id*0x9e3779b97f4a7c15) // scattered keys
			writes = append(writes, s.PutPending(&Job{ID: id, Function: "f", Unique: unique, Due: int64(id * 7919 % 10007)}, ""))
		}
		for _, w := range writes {
			if err := w.Wait(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		pages int
		want  bool
	}{{64, true}, {1 << 30, false}} {
		s, _ := openTemp(t, Options{CheckpointInterval: neverCheckpoint, CheckpointPages: tc.pages})
		put(s, 1, 5001)
		checkpoint(t, s)
		before := s.stats.checkpoint.Snapshot().Count
		put(s, 5001, 10001)
		// A read queued now runs after the round of the last write, and
		// after that round's check.
		if err := s.view(func(*bolt.Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if got := s.stats.checkpoint.Snapshot().Count > before; got != tc.want {
			t.Errorf("CheckpointPages %d: checkpointed %v, want %v", tc.pages, got, tc.want)
		}
	}
}

// A clean close checkpoints: the journal is left empty and the database
// file alone holds every write, as a version without a journal reads it.
func TestJournalEmptyAfterClose(t *testing.T) {
	s, path := openTemp(t, Options{CheckpointInterval: neverCheckpoint})
	putJobs(t, s, 1, 2, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := journalRecords(path); err != nil || n != 0 {
		t.Errorf("journal after a clean close: %d records, %v; want none", n, err)
	}
	alone := filepath.Join(t.TempDir(), "alone.db")
	copyFile(t, path, alone)
	if got, want := readyIDs(t, alone), []uint64{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("database file after a clean close: jobs %v, want %v", got, want)
	}
}
