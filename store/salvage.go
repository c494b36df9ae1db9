package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Salvage copies every record it can read from the database at src into a
// new database at dst, which must not exist, so that a server can be
// started on dst. It reads src as Verify does (without bbolt, under a
// shared lock), so neither damaged pages nor a truncated file or lost meta
// pages stop it; it copies the records that decode and pass their seals:
// ready and pending jobs, schedules, the ledger, request keys whose record
// survives, the mode and the job-id high-water mark (raised above every id
// it saw, so no handle is reused). The indexes (due times, uniques,
// counts, the ledger's time index) are rebuilt from the copied records
// rather than copied. The report lists what could not be read; its Copied
// says how many records of each bucket were copied.
func Salvage(src, dst string) (*Report, error) {
	f, raw, rep, err := readLocked(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if raw == nil {
		return rep, fmt.Errorf("store: salvage %s: nothing can be read: %s", src, rep.Damage[len(rep.Damage)-1].Why)
	}
	out, err := newSalvageWriter(dst)
	if err != nil {
		return rep, err
	}
	cat := scan(raw, out)
	rep.Records, rep.Damage, rep.Copied = cat.records, append(rep.Damage, cat.damage...), out.copied
	if out.err == nil {
		// Acknowledged writes a crash left in the journal, on top.
		rep.Journal, out.err = applyJournal(src, out.db)
	}
	if err := errors.Join(out.err, out.db.Close()); err != nil {
		os.Remove(dst)
		return rep, fmt.Errorf("store: salvage into %s: %w", dst, err)
	}
	return rep, nil
}

// salvageWriter writes a salvage's records to the new database, in
// transactions of salvageBatch writes. Its methods do nothing on a nil
// writer (Verify's scan) or after an error.
type salvageWriter struct {
	db     *bolt.DB
	tx     *bolt.Tx
	puts   int
	err    error
	counts map[string]int // rebuilt counts bucket
	copied map[string]int
}

const salvageBatch = 10_000

func newSalvageWriter(dst string) (*salvageWriter, error) {
	// O_EXCL: never write into an existing file, least of all the source.
	f, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: salvage: the new database must not exist yet: %w", err)
	}
	f.Close()
	db, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true, FreelistType: bolt.FreelistMapType})
	if err == nil {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range allBuckets {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		if db != nil {
			db.Close()
		}
		os.Remove(dst)
		return nil, fmt.Errorf("store: salvage: create %s: %w", dst, err)
	}
	return &salvageWriter{db: db, counts: map[string]int{}, copied: map[string]int{}}, nil
}

// put writes one key; records are counted in copied, index entries not.
func (w *salvageWriter) put(bucket, k, v []byte, record bool) {
	if w == nil || w.err != nil {
		return
	}
	if w.tx == nil {
		if w.tx, w.err = w.db.Begin(true); w.err != nil {
			return
		}
	}
	if w.err = w.tx.Bucket(bucket).Put(k, v); w.err != nil {
		return
	}
	if record {
		w.copied[string(bucket)]++
	}
	if w.puts++; w.puts >= salvageBatch {
		w.commit()
	}
}

func (w *salvageWriter) commit() {
	if w.tx != nil && w.err == nil {
		w.err, w.tx, w.puts = w.tx.Commit(), nil, 0
	}
}

func (w *salvageWriter) putJob(k, v []byte) { w.put(bucketJobs, k, v, true) }

func (w *salvageWriter) putPending(k, v []byte, j *Job) {
	if w == nil {
		return
	}
	w.put(bucketSched, k, v, true)
	w.put(bucketDue, dueKey(j.Due, j.ID), []byte{KindJob}, false)
	if indexed(j.Unique) {
		w.put(bucketUniq, pendingKey(j), k, false)
	}
	if counted(j) {
		w.counts[j.Function]++
	}
}

func (w *salvageWriter) putSchedule(k, v []byte, sc *Schedule) {
	w.put(bucketSchedules, k, v, true)
	if sc.Active() {
		w.put(bucketDue, dueKey(sc.FireAt, sc.ID), []byte{KindSchedule}, false)
	}
	if indexed(sc.Unique) && sc.Source != SourceFile {
		w.put(bucketUniq, uniqKey(sc.Function, sc.Unique), k, false)
	}
}

func (w *salvageWriter) putFired(k, v []byte, f *Fired) {
	w.put(bucketFired, k, v, true)
	w.put(bucketFiredAt, dueKey(f.At, f.ID), nil, false)
}

// finish writes what only the whole walk tells: counts, request keys
// whose record was copied, the mode and the id high-water mark.
func (w *salvageWriter) finish(c *catalog) {
	if w == nil {
		return
	}
	for _, fn := range sortedKeys(w.counts) {
		w.put(bucketCounts, countsKey(fn), binary.BigEndian.AppendUint64(nil, uint64(w.counts[fn])), false)
	}
	for req, id := range c.requests {
		_, pending := c.pending[id]
		_, schedule := c.schedules[id]
		_, fired := c.fired[id]
		if c.requestOf[id] == req && (pending || schedule || fired) {
			w.put(bucketRequests, []byte(req), idKey(id), true)
			w.put(bucketRequestOf, idKey(id), []byte(req), false)
		}
	}
	if c.mode != "" {
		w.put(bucketMeta, keyMode, []byte(c.mode), false)
	}
	w.put(bucketMeta, keyCommit, binary.BigEndian.AppendUint64(nil, c.commits), false)
	w.put(bucketMeta, keyNextID, binary.BigEndian.AppendUint64(nil, max(c.nextID, c.maxID+1)), false)
	w.commit()
	if w.err == nil {
		w.err = w.db.Sync()
	}
}
