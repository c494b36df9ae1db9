package store

import (
	"bytes"
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
// anyway. It costs B-tree writes in those transactions instead: the
// record and its time-index entry (and a schedule's index entry), the
// pruning of the oldest run, and the outcome's rewrite of the record;
// BenchmarkFire measures them. Runs are bounded three ways: RunsPerItem
// per schedule (a one-shot job runs once), Options.MaxRuns in all (the
// oldest go first), and they go with their schedule when it is deleted
// and with the fire ledger's entry of the same job (PruneFired).
var (
	bucketRuns     = []byte("runs")      // run id (BE) -> run record
	bucketItemRuns = []byte("item_runs") // schedule id (BE) + run id (BE) -> nothing: a schedule's runs
	bucketRunsAt   = []byte("runs_at")   // released ns (BE) + run id (BE) -> item id (BE)
)

// keyRunCount is the meta key of the number of run records.
var keyRunCount = []byte("run_count")

// Bounds of the run records.
const (
	// RunsPerItem is how many runs are kept per schedule: enough to see
	// a pattern of lateness, few enough that a schedule firing every
	// second keeps a bounded record.
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
	b = binary.AppendUvarint(b, r.Item)
	for _, n := range []int64{r.Due, r.Released, r.Assigned, r.Ended, int64(r.Attempts)} {
		b = binary.AppendVarint(b, n)
	}
	for _, s := range []string{r.Handle, r.Function, r.Upstream, r.UpstreamHandle, r.Result, r.Worker} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeRun(id uint64, b []byte) (*Run, error) {
	if len(b) < 1 || b[0] != runRecordVersion {
		return nil, fmt.Errorf("store: run %d: %w", id, errCorrupt)
	}
	r := &Run{ID: id}
	item, n := binary.Uvarint(b[1:])
	if n <= 0 {
		return nil, fmt.Errorf("store: run %d: %w", id, errCorrupt)
	}
	r.Item, b = item, b[1+n:]
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

func itemRunKey(item, id uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(make([]byte, 0, 16), item), id)
}

// addRun records r, replacing an earlier record of the same run (a
// sidecar forwarding a job again after a crash), then drops a schedule's
// oldest runs beyond RunsPerItem and the oldest of all beyond the bound.
// A one-shot job's run is keyed by its own id and needs no other index.
func addRun(t *txn, r *Run) error {
	n := runCount(t)
	runs := t.bucket(bucketRuns)
	if removed, err := removeRun(t, r.ID); err != nil {
		return err
	} else if removed {
		n--
	}
	if err := runs.Put(idKey(r.ID), r.appendTo(nil)); err != nil {
		return err
	}
	if err := t.bucket(bucketRunsAt).Put(dueKey(r.Released, r.ID), idKey(r.Item)); err != nil {
		return err
	}
	n++
	if r.Item != r.ID {
		if err := t.bucket(bucketItemRuns).Put(itemRunKey(r.Item, r.ID), nil); err != nil {
			return err
		}
		// The schedule's runs, oldest first (ids only grow): drop those
		// beyond the bound.
		ids := scheduleRuns(t.tx, r.Item)
		for _, id := range ids[:max(len(ids)-RunsPerItem, 0)] {
			if _, err := removeRun(t, id); err != nil {
				return err
			}
			n--
		}
	}
	if n > t.maxRuns {
		pruned, err := pruneOldest(t, n-t.maxRuns)
		if err != nil {
			return err
		}
		n -= pruned
	}
	return setRunCount(t, n)
}

// pruneOldest deletes up to k of the oldest runs of all, read off the time
// index alone, and returns how many it deleted. The keys are gathered
// first and deleted after: a cursor seeking the first entry again after
// each delete would walk every leaf emptied before it, each time.
func pruneOldest(t *txn, k int) (int, error) {
	type entry struct{ key, item []byte }
	old := make([]entry, 0, k)
	c := t.bucket(bucketRunsAt).Cursor()
	for key, v := c.First(); len(old) < k && len(key) == 16 && len(v) == 8; key, v = c.Next() {
		old = append(old, entry{bytes.Clone(key), bytes.Clone(v)})
	}
	for _, e := range old {
		id, item := binary.BigEndian.Uint64(e.key[8:]), binary.BigEndian.Uint64(e.item)
		if err := t.bucket(bucketRuns).Delete(idKey(id)); err != nil {
			return 0, err
		}
		if item != id {
			if err := t.bucket(bucketItemRuns).Delete(itemRunKey(item, id)); err != nil {
				return 0, err
			}
		}
		if err := t.bucket(bucketRunsAt).Delete(e.key); err != nil {
			return 0, err
		}
	}
	return len(old), nil
}

// scheduleRuns returns the ids of a schedule's runs, oldest first.
func scheduleRuns(tx *bolt.Tx, item uint64) []uint64 {
	var ids []uint64
	prefix := idKey(item)
	c := tx.Bucket(bucketItemRuns).Cursor()
	for k, _ := c.Seek(prefix); len(k) == 16 && string(k[:8]) == string(prefix); k, _ = c.Next() {
		ids = append(ids, binary.BigEndian.Uint64(k[8:]))
	}
	return ids
}

// runCount is the number of run records; setRunCount stores it.
func runCount(t *txn) int {
	if v := t.bucket(bucketMeta).Get(keyRunCount); len(v) == 8 {
		return int(binary.BigEndian.Uint64(v))
	}
	return 0
}

func setRunCount(t *txn, n int) error {
	return t.bucket(bucketMeta).Put(keyRunCount, binary.BigEndian.AppendUint64(nil, uint64(max(n, 0))))
}

// removeRun deletes the record of run id and its index entries, and
// reports whether there was one; the caller counts it.
func removeRun(t *txn, id uint64) (bool, error) {
	runs := t.bucket(bucketRuns)
	rec := runs.Get(idKey(id))
	if rec == nil {
		return false, nil
	}
	r, err := decodeRun(id, rec)
	if err != nil {
		return false, err
	}
	if err := t.bucket(bucketRunsAt).Delete(dueKey(r.Released, id)); err != nil {
		return false, err
	}
	if r.Item != id {
		if err := t.bucket(bucketItemRuns).Delete(itemRunKey(r.Item, id)); err != nil {
			return false, err
		}
	}
	return true, runs.Delete(idKey(id))
}

// dropRuns deletes the records of runs ids, those there are, and counts
// them out.
func dropRuns(t *txn, ids ...uint64) error {
	n := runCount(t)
	for _, id := range ids {
		removed, err := removeRun(t, id)
		if err != nil {
			return err
		}
		if removed {
			n--
		}
	}
	return setRunCount(t, n)
}

// removeRunsOf deletes every run of schedule item: it is gone.
func removeRunsOf(t *txn, item uint64) error {
	return dropRuns(t, scheduleRuns(t.tx, item)...)
}

// finishRun records how run id ended, if it is a run.
func finishRun(t *txn, id uint64, o *Outcome) error {
	rec := t.bucket(bucketRuns).Get(idKey(id))
	if rec == nil {
		return nil // a plain background job: no run to record
	}
	r, err := decodeRun(id, rec)
	if err != nil {
		return err
	}
	r.Outcome = *o
	return t.bucket(bucketRuns).Put(idKey(id), r.appendTo(nil))
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
// first: a one-shot job's own, or a schedule's occurrences'.
func (s *Store) Runs(item uint64) ([]Run, error) {
	var runs []Run
	err := s.view(func(tx *bolt.Tx) error {
		ids := scheduleRuns(tx, item)
		if len(ids) == 0 {
			ids = []uint64{item}
		}
		for i := len(ids) - 1; i >= 0; i-- {
			rec := tx.Bucket(bucketRuns).Get(idKey(ids[i]))
			if rec == nil {
				continue // a one-shot job that has not run
			}
			r, err := decodeRun(ids[i], rec)
			if err != nil {
				return err
			}
			runs = append(runs, *r)
		}
		return nil
	})
	return runs, err
}

// RecentRuns returns up to n runs of any item, the most recently
// released first.
func (s *Store) RecentRuns(n int) ([]Run, error) {
	var runs []Run
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRunsAt).Cursor()
		for k, v := c.Last(); len(k) == 16 && len(runs) < n; k, v = c.Prev() {
			if len(v) != 8 {
				return fmt.Errorf("store: run index entry: %w", errCorrupt)
			}
			id := binary.BigEndian.Uint64(k[8:])
			rec := tx.Bucket(bucketRuns).Get(idKey(id))
			if rec == nil {
				return fmt.Errorf("store: run %d without its record: %w", id, errCorrupt)
			}
			r, err := decodeRun(id, rec)
			if err != nil {
				return err
			}
			runs = append(runs, *r)
		}
		return nil
	})
	return runs, err
}
