package store

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the whole database to w, as of one
// moment, while gearsched keeps running, and returns how many bytes it
// wrote. size, when not nil, is told the copy's size before the first
// byte.
//
// The copy is read in one read transaction (bbolt's Tx.WriteTo), which
// does not stop the committer: bbolt's readers and its writer do not wait
// for each other, except when a commit must grow the memory map, which
// Open makes rare for big databases (see mmapSize). Pages freed during
// the copy are reused only after it, so a long backup of a busy database
// lets the file grow meanwhile.
func (s *Store) Backup(w io.Writer, size func(n int64)) (int64, error) {
	var n int64
	err := s.snapshot(func(tx *bolt.Tx) error {
		if size != nil {
			size(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	return n, nil
}

// Ping reports whether the database can be read: it fails once the store
// is closed.
func (s *Store) Ping() error {
	return s.view(func(*bolt.Tx) error { return nil })
}

// compactTxSize bounds each transaction of Compact's copy, so that a
// database of any size is copied in bounded memory.
const compactTxSize = 64 << 20

// Compact copies the database at src into a new file dst, leaving out the
// free pages that bbolt keeps and never returns to the file system: after
// a backlog of millions of jobs has drained, the file keeps its size
// until it is compacted. It works offline: a database that a running
// gearsched holds is refused with an *InUseError. dst must not exist; it
// appears only once complete (written beside it, synced, then linked).
// Unlike Salvage it copies through bbolt, every bucket as it is, so it is
// for a sound database (see Verify).
func Compact(src, dst string) (before, after int64, err error) {
	if _, err := os.Lstat(dst); err == nil {
		return 0, 0, fmt.Errorf("store: compact: %s exists; give a new file", dst)
	}
	// Acknowledged writes a crash left in the journal go into the file
	// first: opening the store applies them.
	if n, err := journalRecords(src); err != nil {
		return 0, 0, fmt.Errorf("store: compact: %w", err)
	} else if n > 0 {
		st, err := Open(src, Options{})
		if err != nil {
			return 0, 0, fmt.Errorf("store: compact: apply the journal of %s: %w", src, err)
		}
		if err := st.Close(); err != nil {
			return 0, 0, fmt.Errorf("store: compact: apply the journal of %s: %w", src, err)
		}
	}
	f, err := lockFile(src, false)
	if err != nil {
		return 0, 0, err
	}
	from, err := bolt.Open(src, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockWait,
		OpenFile: func(string, int, os.FileMode) (*os.File, error) { return f, nil }})
	if err != nil {
		f.Close()
		return 0, 0, fmt.Errorf("store: compact: open %s: %w", src, err)
	}
	defer from.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".tmp-*")
	if err != nil {
		return 0, 0, fmt.Errorf("store: compact: %w", err)
	}
	tmpPath := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpPath) // after the link, only the temporary name goes
	// Each transaction of the copy need not be durable on its own: the
	// whole file is synced once at the end, before it gets its name.
	to, err := bolt.Open(tmpPath, 0o600, &bolt.Options{NoSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return 0, 0, fmt.Errorf("store: compact: create %s: %w", tmpPath, err)
	}
	err = protect(func() error { return bolt.Compact(to, from, compactTxSize) })
	if err == nil {
		err = to.Sync()
	}
	if cerr := to.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, 0, fmt.Errorf("store: compact %s: %w", src, err)
	}
	// A link, unlike a rename, fails if dst appeared meanwhile.
	if err := os.Link(tmpPath, dst); err != nil {
		return 0, 0, fmt.Errorf("store: compact: %w", err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return 0, 0, fmt.Errorf("store: compact: %w", err)
	}
	return fileSize(src), fileSize(dst), nil
}

// SaveBackup writes a copy of a database, read from r, to dst: to a
// temporary file beside it first, which must hold want bytes (when want
// >= 0) and be a gearsched database (CheckFile), and is synced, then
// renamed onto dst. A failed or short copy leaves dst as it was.
func SaveBackup(dst string, r io.Reader, want int64) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".tmp-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name()) // gone after the rename
	n, err := io.Copy(tmp, r)
	if err == nil && want >= 0 && n != want {
		err = fmt.Errorf("the copy ended after %d of %d bytes", n, want)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = CheckFile(tmp.Name())
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err == nil {
		err = syncDir(filepath.Dir(dst))
	}
	return n, err
}

// syncDir makes a new name in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// CheckFile reports whether path holds a bbolt database that gearsched
// can open: its meta pages check out and it has gearsched's buckets. It
// opens the file read-only and reads no more than that, so it is quick
// for a database of any size.
func CheckFile(path string) error {
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
	if err != nil {
		return fmt.Errorf("store: %s: %w", path, err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketJobs, bucketSched, bucketMeta} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("store: %s has no %s bucket: not a gearsched database", path, b)
			}
		}
		return nil
	})
}
