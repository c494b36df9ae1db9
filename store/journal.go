package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// The journal makes a group commit durable with one fsync. bbolt syncs
// twice per transaction (its pages, then its meta page), so a write
// acknowledged straight from a bbolt commit costs two fsyncs and a page
// write per touched page. Instead the committer keeps one bbolt write
// transaction open, applies each group of writes to it, appends what the
// group changed (its puts and deletes, byte for byte) to the journal and
// syncs that: the group is durable, and its writers are answered. Every
// Options.CheckpointInterval, and before a backup or a close, the transaction is
// committed (a checkpoint) and the journal starts over.
//
// After a crash, Open replays the journal's records into the database. A
// record holds physical writes, so replaying them again on a database that
// already has them changes nothing: the last write of each key wins. A
// record torn by the crash fails its checksum and ends the replay; its
// group was never acknowledged.
//
// Layout: two header slots of journalSlot bytes, written alternately, each
// holding the journal's epoch; records follow, each tagged with the epoch
// it was written in. A checkpoint moves to the next epoch in the other
// slot, so the records of earlier epochs still in the file are not
// replayed. The file is allocated ahead (journalAlloc), so that a sync
// flushes data, not the file's size.
const (
	journalSlot      = 4096
	journalStart     = 2 * journalSlot
	journalAlloc     = 1 << 20
	journalMagic     = "gearsched journal v1\x00"
	recordHeaderSize = 16 // epoch, length, CRC-32C
)

// Kinds of journaled writes.
const (
	journalPut    byte = 1
	journalDelete byte = 2
)

var journalCRC = crc32.MakeTable(crc32.Castagnoli)

// journal is the committer's; nothing else touches it.
type journal struct {
	f      *os.File
	noSync bool
	epoch  uint64
	off    int64 // where the next record goes
	size   int64 // allocated
	rec    []byte
	// slotStale is set while the header slot does not yet hold epoch:
	// a record tagged with epoch would not be replayed, so none is
	// written until the slot is.
	slotStale bool
}

// journalPath is where the journal of the database at path lives.
func journalPath(path string) string { return path + ".journal" }

// openJournal opens (creating) the journal of the database at path and
// finds its current epoch and records.
func openJournal(path string, noSync bool) (*journal, error) {
	f, err := os.OpenFile(journalPath(path), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: journal: %w", err)
	}
	j := &journal{f: f, noSync: noSync}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store: journal: %w", err)
	}
	j.size = fi.Size()
	for slot := range 2 {
		if e, ok := j.readSlot(slot); ok && e > j.epoch {
			j.epoch = e
		}
	}
	if j.epoch == 0 { // new, or both slots lost: nothing to replay
		j.epoch = 1
		if err := j.writeSlot(); err != nil {
			f.Close()
			return nil, err
		}
	}
	j.off = journalStart
	return j, nil
}

func (j *journal) readSlot(slot int) (uint64, bool) {
	b := make([]byte, len(journalMagic)+12)
	if _, err := j.f.ReadAt(b, int64(slot)*journalSlot); err != nil || string(b[:len(journalMagic)]) != journalMagic {
		return 0, false
	}
	body := b[len(journalMagic) : len(journalMagic)+8]
	if crc32.Checksum(body, journalCRC) != binary.BigEndian.Uint32(b[len(journalMagic)+8:]) {
		return 0, false
	}
	return binary.BigEndian.Uint64(body), true
}

// writeSlot writes the current epoch into its slot and syncs it.
func (j *journal) writeSlot() error {
	j.slotStale = true
	b := append([]byte(journalMagic), make([]byte, 12)...)
	binary.BigEndian.PutUint64(b[len(journalMagic):], j.epoch)
	binary.BigEndian.PutUint32(b[len(journalMagic)+8:], crc32.Checksum(b[len(journalMagic):len(journalMagic)+8], journalCRC))
	if _, err := j.f.WriteAt(b, int64(j.epoch%2)*journalSlot); err != nil {
		return fmt.Errorf("store: journal: %w", err)
	}
	if err := j.sync(); err != nil {
		return err
	}
	j.slotStale = false
	return nil
}

func (j *journal) sync() error {
	if j.noSync {
		return nil
	}
	if err := syscall.Fdatasync(int(j.f.Fd())); err != nil {
		return fmt.Errorf("store: journal: sync: %w", err)
	}
	return nil
}

// replay applies the current epoch's records to tx, oldest first, and
// reports how many there were.
func (j *journal) replay(tx *bolt.Tx) (int, error) {
	n := 0
	err := j.scan(func(body []byte) error {
		n++
		return applyRecord(tx, body)
	})
	return n, err
}

// scan calls fn with the body of each of the current epoch's records,
// oldest first, up to the first that is not whole: a record torn by a
// crash was never acknowledged.
func (j *journal) scan(fn func(body []byte) error) error {
	hdr := make([]byte, recordHeaderSize)
	for off := int64(journalStart); ; {
		if _, err := j.f.ReadAt(hdr, off); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("store: journal: %w", err)
		}
		epoch, size := binary.BigEndian.Uint64(hdr), int64(binary.BigEndian.Uint32(hdr[8:]))
		if epoch != j.epoch || size == 0 || off+recordHeaderSize+size > j.size {
			return nil // the end: older records, or nothing yet
		}
		body := make([]byte, size)
		if _, err := j.f.ReadAt(body, off+recordHeaderSize); err != nil {
			return fmt.Errorf("store: journal: %w", err)
		}
		if crc32.Checksum(body, journalCRC) != binary.BigEndian.Uint32(hdr[12:]) {
			return nil
		}
		if err := fn(body); err != nil {
			return fmt.Errorf("store: journal record at %d: %w", off, err)
		}
		off += recordHeaderSize + size
	}
}

// applyRecord applies one record's writes to tx.
func applyRecord(tx *bolt.Tx, b []byte) error {
	for len(b) > 0 {
		kind := b[0]
		name, rest, ok := readBytes(b[1:])
		if !ok {
			return errCorrupt
		}
		key, rest, ok := readBytes(rest)
		if !ok {
			return errCorrupt
		}
		bk := tx.Bucket(name)
		if bk == nil {
			return fmt.Errorf("no bucket %q: %w", name, errCorrupt)
		}
		switch kind {
		case journalPut:
			var val []byte
			if val, rest, ok = readBytes(rest); !ok {
				return errCorrupt
			}
			if err := bk.Put(key, val); err != nil {
				return err
			}
		case journalDelete:
			if err := bk.Delete(key); err != nil {
				return err
			}
		default:
			return errCorrupt
		}
		b = rest
	}
	return nil
}

// put and del add a write to the record being built.
func (j *journal) put(bucket, key, val []byte) {
	j.rec = append(j.rec, journalPut)
	j.rec = appendBytes(appendBytes(appendBytes(j.rec, bucket), key), val)
}

func (j *journal) del(bucket, key []byte) {
	j.rec = append(j.rec, journalDelete)
	j.rec = appendBytes(appendBytes(j.rec, bucket), key)
}

func appendBytes(b, field []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(field))), field...)
}

// begin starts a record.
func (j *journal) begin() { j.rec = append(j.rec[:0], make([]byte, recordHeaderSize)...) }

// commit writes the record begun last and syncs it. A record with no
// writes is not written.
func (j *journal) commit() error {
	body := j.rec[recordHeaderSize:]
	if len(body) == 0 {
		return nil
	}
	if j.slotStale {
		if err := j.writeSlot(); err != nil {
			return err
		}
	}
	binary.BigEndian.PutUint64(j.rec, j.epoch)
	binary.BigEndian.PutUint32(j.rec[8:], uint32(len(body)))
	binary.BigEndian.PutUint32(j.rec[12:], crc32.Checksum(body, journalCRC))
	if end := j.off + int64(len(j.rec)) + recordHeaderSize; end > j.size {
		if err := j.grow(end); err != nil {
			return err
		}
	}
	if _, err := j.f.WriteAt(j.rec, j.off); err != nil {
		return fmt.Errorf("store: journal: %w", err)
	}
	if err := j.sync(); err != nil {
		return err
	}
	j.off += int64(len(j.rec))
	return nil
}

// grow allocates the file to at least end bytes, doubling.
func (j *journal) grow(end int64) error {
	size := max(end, 2*j.size, journalAlloc)
	if err := syscall.Fallocate(int(j.f.Fd()), 0, 0, size); err != nil && !errors.Is(err, syscall.EOPNOTSUPP) {
		return fmt.Errorf("store: journal: allocate %d bytes: %w", size, err)
	} else if err != nil {
		if err := j.f.Truncate(size); err != nil {
			return fmt.Errorf("store: journal: %w", err)
		}
	}
	j.size = size
	return nil
}

// restart begins the next epoch, once everything journaled so far is in
// the database: the records written so far will not be replayed.
func (j *journal) restart() error {
	j.epoch++
	j.off = journalStart
	return j.writeSlot()
}

// pending reports whether records were written since the last restart.
func (j *journal) pending() bool { return j.off > journalStart }

func (j *journal) close() error { return j.f.Close() }

// readJournal opens the journal of the database at path, if there is one,
// for reading what it holds; nil when there is none.
func readJournal(path string) (*journal, error) {
	f, err := os.Open(journalPath(path))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: journal: %w", err)
	}
	j := &journal{f: f}
	if fi, err := f.Stat(); err == nil {
		j.size = fi.Size()
	}
	for slot := range 2 {
		if e, ok := j.readSlot(slot); ok && e > j.epoch {
			j.epoch = e
		}
	}
	return j, nil
}

// journalRecords counts the records the journal of the database at path
// holds beyond its last checkpoint: after a crash, the acknowledged writes
// that Open applies.
func journalRecords(path string) (int, error) {
	j, err := readJournal(path)
	if j == nil || err != nil {
		return 0, err
	}
	defer j.close()
	n := 0
	err = j.scan(func([]byte) error { n++; return nil })
	return n, err
}

// applyJournal applies the journal of the database at src, if any, to
// db: Salvage gives the new database the acknowledged writes a crash left
// in the journal.
func applyJournal(src string, db *bolt.DB) (int, error) {
	j, err := readJournal(src)
	if j == nil || err != nil {
		return 0, err
	}
	defer j.close()
	n := 0
	err = db.Update(func(tx *bolt.Tx) (err error) {
		n, err = j.replay(tx)
		return err
	})
	return n, err
}
