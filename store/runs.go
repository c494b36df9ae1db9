package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Runs record what became of each firing of a pending job or schedule:
// when it was due, when it was released, where it went and, where the job
// server learns it, how it ended. They answer "why did my job run late, or
// not at all" (the HTTP API's explain view) without a log search.
//
// A run is written in the transaction that fires its item (Fire,
// Forwarded), so it costs no commit of its own, and its outcome in the
// one that deletes the finished job (Finish), which the job server makes
// anyway. Runs are bounded three ways: RunsPerItem per item,
// Options.MaxRuns in all (the oldest go first), and they go with their item (a deleted
// schedule) or with the fire ledger entry of the same job (PruneFired).
var (
	bucketRuns   = []byte("runs")    // item id (BE) + run id (BE) -> run record
	bucketRunsAt = []byte("runs_at") // released ns (BE) + run id (BE) -> item id (BE)
	bucketRunOf  = []byte("run_of")  // run id (BE) -> item id (BE)
)

// keyRunCount is the meta key of the number of run records.
var keyRunCount = []byte("run_count")

// Bounds of the run records.
const (
	// RunsPerItem is how many runs are kept per pending job or schedule:
	// enough to see a pattern of lateness, few enough that a schedule
	// firing every second keeps a bounded record.
	RunsPerItem = 10
	// DefaultMaxRuns bounds the run records in all (about 100 bytes
	// each, with their indexes), so that ten million one-shot jobs
	// firing leave a record of the latest ones only.
	DefaultMaxRuns = 100_000
)

// Results of a run, as the job server learns them.
const (
	ResultCompleted        = "completed"         // WORK_COMPLETE
	ResultFailed           = "failed"            // WORK_FAIL
	ResultException        = "exception"         // WORK_EXCEPTION
	ResultCancelled        = "cancelled"         // cancel job while queued
	ResultRetriesExhausted = "retries_exhausted" // its workers kept leaving (-j)
)

// Run is one firing of a pending job (Item is its own ID) or of a
// schedule's occurrence (Item is the schedule's ID, ID the occurrence
// job's).
type Run struct {
	Item     uint64
	ID       uint64 // the job that ran: its handle's number
	Handle   string
	Function string
	Due      int64 // unix ns it was due (schedules: with jitter)
	Released int64 // unix ns it was made ready, or acknowledged upstream
	// Upstream and UpstreamHandle say where a sidecar forwarded it.
	Upstream       string
	UpstreamHandle string
	Outcome
}

// Outcome is how a run ended, as far as the job server knows: nothing
// in sidecar mode, where gearmand runs the job.
type Outcome struct {
	Result   string // one of the Result constants; "" while running or unknown
	Worker   string // the worker that ran it last: its address and client id
	Assigned int64  // unix ns a worker last took it; 0 when unknown
	Ended    int64  // unix ns the result came
	Attempts int    // assignments, counting the last
}

const runRecordVersion = 1

func (r *Run) appendTo(b []byte) []byte {
	b = append(b, runRecordVersion)
	for _, n := range []int64{r.Due, r.Released, r.Assigned, r.Ended, int64(r.Attempts)} {
		b = binary.AppendVarint(b, n)
	}
	for _, s := range []string{r.Handle, r.Function, r.Upstream, r.UpstreamHandle, r.Result, r.Worker} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeRun(item, id uint64, b []byte) (*Run, error) {
	if len(b) < 1 || b[0] != runRecordVersion {
		return nil, fmt.Errorf("store: run %d: %w", id, errCorrupt)
	}
	b = b[1:]
	r := &Run{Item: item, ID: id}
	var attempts int64
	for _, p := range []*int64{&r.Due, &r.Released, &r.Assigned, &r.Ended, &attempts} {
		v, n := binary.Varint(b)
		if n <= 0 {
			return nil, fmt.Errorf("store: run %d: %w", id, errCorrupt)
		}
		*p, b = v, b[n:]
	}
	r.Attempts = int(attempts)
	for _, p := range []*string{&r.Handle, &r.Function, &r.Upstream, &r.UpstreamHandle, &r.Result, &r.Worker} {
		f, rest, ok := readBytes(b)
		if !ok {
			return nil, fmt.Errorf("store: run %d: %w", id, errCorrupt)
		}
		*p, b = string(f), rest
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("store: run %d: %w", id, errCorrupt)
	}
	return r, nil
}

func runKey(item, id uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(make([]byte, 0, 16), item), id)
}

// addRun records r, replacing an earlier record of the same run (a
// sidecar forwarding a job again after a crash), then drops the item's
// oldest runs beyond RunsPerItem and the oldest of all beyond MaxRuns.
func addRun(t *txn, r *Run) error {
	if err := removeRun(t, r.ID); err != nil {
		return err
	}
	if err := t.bucket(bucketRuns).Put(runKey(r.Item, r.ID), r.appendTo(nil)); err != nil {
		return err
	}
	if err := t.bucket(bucketRunsAt).Put(dueKey(r.Released, r.ID), idKey(r.Item)); err != nil {
		return err
	}
	if err := t.bucket(bucketRunOf).Put(idKey(r.ID), idKey(r.Item)); err != nil {
		return err
	}
	n, err := addRunCount(t, 1)
	if err != nil {
		return err
	}
	// The item's runs, oldest first (ids only grow): drop those beyond
	// the bound.
	var old []uint64
	prefix := idKey(r.Item)
	c := t.bucket(bucketRuns).Cursor()
	kept := 0
	for k, _ := c.Seek(prefix); len(k) == 16 && string(k[:8]) == string(prefix); k, _ = c.Next() {
		kept++
		old = append(old, binary.BigEndian.Uint64(k[8:]))
	}
	for _, id := range old[:max(kept-RunsPerItem, 0)] {
		if err := removeRun(t, id); err != nil {
			return err
		}
		n--
	}
	for ; n > t.maxRuns; n-- {
		k, _ := t.bucket(bucketRunsAt).Cursor().First()
		if len(k) != 16 {
			break
		}
		if err := removeRun(t, binary.BigEndian.Uint64(k[8:])); err != nil {
			return err
		}
	}
	return nil
}

// addRunCount changes the number of run records by delta and returns it.
func addRunCount(t *txn, delta int) (int, error) {
	meta := t.bucket(bucketMeta)
	var n int64
	if v := meta.Get(keyRunCount); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	n = max(n+int64(delta), 0)
	return int(n), meta.Put(keyRunCount, binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// removeRun deletes the record of run id, if there is one.
func removeRun(t *txn, id uint64) error {
	v := t.bucket(bucketRunOf).Get(idKey(id))
	if len(v) != 8 {
		return nil
	}
	item := binary.BigEndian.Uint64(v)
	key := runKey(item, id)
	if rec := t.bucket(bucketRuns).Get(key); rec != nil {
		r, err := decodeRun(item, id, rec)
		if err != nil {
			return err
		}
		if err := t.bucket(bucketRunsAt).Delete(dueKey(r.Released, id)); err != nil {
			return err
		}
		if err := t.bucket(bucketRuns).Delete(key); err != nil {
			return err
		}
	}
	if err := t.bucket(bucketRunOf).Delete(idKey(id)); err != nil {
		return err
	}
	_, err := addRunCount(t, -1)
	return err
}

// removeRunsOf deletes every run of item: it is gone.
func removeRunsOf(t *txn, item uint64) error {
	var ids []uint64
	prefix := idKey(item)
	c := t.bucket(bucketRuns).Cursor()
	for k, _ := c.Seek(prefix); len(k) == 16 && string(k[:8]) == string(prefix); k, _ = c.Next() {
		ids = append(ids, binary.BigEndian.Uint64(k[8:]))
	}
	for _, id := range ids {
		if err := removeRun(t, id); err != nil {
			return err
		}
	}
	return nil
}

// finishRun records how run id ended, if it is a run.
func finishRun(t *txn, id uint64, o *Outcome) error {
	v := t.bucket(bucketRunOf).Get(idKey(id))
	if len(v) != 8 {
		return nil // a plain background job: no run to record
	}
	item := binary.BigEndian.Uint64(v)
	key := runKey(item, id)
	rec := t.bucket(bucketRuns).Get(key)
	if rec == nil {
		return nil
	}
	r, err := decodeRun(item, id, rec)
	if err != nil {
		return err
	}
	r.Outcome = *o
	return t.bucket(bucketRuns).Put(key, r.appendTo(nil))
}

// Finish queues the removal of ready job id, as Delete does, and records
// o as the outcome of its run if it has one (a released pending job or
// schedule occurrence). Like Delete, nobody waits for it: it joins the
// next group commit, so recording outcomes costs one index lookup per
// finished job and no commit of its own.
func (s *Store) Finish(id uint64, o Outcome) {
	s.queue(op{id: id, outcome: &o}, nil)
}

// Runs returns the recorded runs of pending job or schedule item, newest
// first.
func (s *Store) Runs(item uint64) ([]Run, error) {
	var runs []Run
	err := s.db.View(func(tx *bolt.Tx) error {
		prefix := idKey(item)
		c := tx.Bucket(bucketRuns).Cursor()
		for k, v := c.Seek(prefix); len(k) == 16 && string(k[:8]) == string(prefix); k, v = c.Next() {
			r, err := decodeRun(item, binary.BigEndian.Uint64(k[8:]), v)
			if err != nil {
				return err
			}
			runs = append(runs, *r)
		}
		return nil
	})
	for i, j := 0, len(runs)-1; i < j; i, j = i+1, j-1 {
		runs[i], runs[j] = runs[j], runs[i]
	}
	return runs, err
}

// RecentRuns returns up to n runs of any item, the most recently
// released first.
func (s *Store) RecentRuns(n int) ([]Run, error) {
	var runs []Run
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRunsAt).Cursor()
		for k, v := c.Last(); len(k) == 16 && len(runs) < n; k, v = c.Prev() {
			if len(v) != 8 {
				return fmt.Errorf("store: run index entry: %w", errCorrupt)
			}
			item, id := binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(k[8:])
			rec := tx.Bucket(bucketRuns).Get(runKey(item, id))
			if rec == nil {
				return fmt.Errorf("store: run %d without its record: %w", id, errCorrupt)
			}
			r, err := decodeRun(item, id, rec)
			if err != nil {
				return err
			}
			runs = append(runs, *r)
		}
		return nil
	})
	return runs, err
}
