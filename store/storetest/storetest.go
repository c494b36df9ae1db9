// Package storetest damages database files the way failing disks, crashes
// and careless copies do, for the tests of the store's checks and of
// `gearsched check` and `gearsched salvage`. It knows bbolt's file layout
// only as far as bbolt itself reports it.
package storetest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// Value is where one record's value lies in a database file.
type Value struct {
	Bucket string
	Key    []byte
	Offset int64 // from the start of the file
	Size   int
}

// Page is the page the value starts on.
func (v Value) Page(pageSize int) int64 { return v.Offset / int64(pageSize) }

// Values returns where the non-empty values of the given buckets lie in
// the database file at path, which must not be open, and its page size.
func Values(path string, buckets ...string) ([]Value, int, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, 0, err
	}
	defer db.Close()
	info := db.Info()
	file, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	var out []Value
	err = db.View(func(tx *bolt.Tx) error {
		// An inline bucket lives in its parent's page: the root page.
		root := int64(tx.Cursor().Bucket().Root()) * int64(info.PageSize)
		rootPage := file[root:min(root+int64(info.PageSize), int64(len(file)))]
		for _, name := range buckets {
			b := tx.Bucket([]byte(name))
			if b == nil {
				return fmt.Errorf("no bucket %q", name)
			}
			err := b.ForEach(func(k, v []byte) error {
				if len(v) == 0 {
					return nil
				}
				off := int64(uintptr(unsafe.Pointer(unsafe.SliceData(v)))) - int64(info.Data)
				if off < 0 || off+int64(len(v)) > int64(len(file)) {
					// bbolt copied it (an unaligned inline bucket): find
					// the bytes themselves in the root page.
					if off = int64(bytes.Index(rootPage, v)); off < 0 || bytes.Count(rootPage, v) != 1 {
						return fmt.Errorf("value of %s %x not found once in the root page", name, k)
					}
					off += root
				}
				out = append(out, Value{Bucket: name, Key: append([]byte(nil), k...), Offset: off, Size: len(v)})
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, info.PageSize, err
}

// Truncate cuts the file at path to size bytes.
func Truncate(path string, size int64) error { return os.Truncate(path, size) }

// OverwritePage fills page id of the file at path with random bytes.
func OverwritePage(path string, id int64, pageSize int, rng *rand.Rand) error {
	junk := make([]byte, pageSize)
	for i := range junk {
		junk[i] = byte(rng.UintN(256))
	}
	return writeAt(path, junk, id*int64(pageSize))
}

// FlipBytes changes n bytes of the file at path, each inside one of vals,
// no byte twice, and returns the indexes of the values it changed.
func FlipBytes(path string, vals []Value, n int, rng *rand.Rand) (map[int]bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	changed, done := map[int]bool{}, map[int64]bool{}
	for len(done) < n {
		i := rng.IntN(len(vals))
		off := vals[i].Offset + int64(rng.IntN(vals[i].Size))
		if done[off] {
			continue
		}
		done[off] = true
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, off); err != nil {
			return nil, err
		}
		b[0] ^= byte(1 + rng.UintN(255)) // never 0: always a change
		if _, err := f.WriteAt(b, off); err != nil {
			return nil, err
		}
		changed[i] = true
	}
	return changed, f.Sync()
}

// ZeroMetas zeroes both meta pages of the file at path.
func ZeroMetas(path string, pageSize int) error {
	return writeAt(path, make([]byte, 2*pageSize), 0)
}

func writeAt(path string, b []byte, off int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
