package store

import (
	"encoding/binary"
	"fmt"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// batch is one group commit: every write queued while the previous one
// was being committed joins it, and all of them are released together.
type batch struct {
	done chan struct{}
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// Write is one queued write. Once its batch is committed it tells the
// write's own outcome: its error (nil means it is durable), and for writes
// that create a record unless another one holds its key (a (function,
// unique) or a request key), which record holds it.
type Write struct {
	b *batch
	// Set by the committer before the batch is released.
	err     error
	created bool
	holder  Holder
}

// Wait blocks until the write's batch is committed and returns the write's
// error: nil means it is durable. Another write of the same batch failing
// does not fail this one.
func (w *Write) Wait() error {
	<-w.b.done
	return w.err
}

// Done is closed once the write's batch is committed.
func (w *Write) Done() <-chan struct{} { return w.b.done }

// Err is the write's result; valid only after Done is closed.
func (w *Write) Err() error { return w.err }

// Created reports whether the write stored its record. It is false when
// another record held the key (Holder names it) or the write failed.
// Valid after Done.
func (w *Write) Created() bool { return w.created && w.err == nil }

// Holder names the record that holds the write's key: the one it created,
// or the one found. Valid after Done, when the write succeeded.
func (w *Write) Holder() Holder { return w.holder }

// Holder names a record that holds a key.
type Holder struct {
	ID uint64
	// Due is when it next runs (unix ns); for a job already forwarded, when
	// it was due.
	Due int64
}

// doneWrite returns a Write that is already done with err.
func doneWrite(err error) *Write {
	w := &Write{b: newBatch(), err: err}
	close(w.b.done)
	return w
}

// Committed returns a write that is already durable and created, standing
// for the writes of records read back from the store. Its Holder is
// empty; it may be shared.
func Committed() *Write {
	w := doneWrite(nil)
	w.created = true
	return w
}

// op is one queued write: a ready job's put or delete, or any other update.
type op struct {
	put     *Job               // a ready job put
	id      uint64             // a ready job delete, when put and fn are nil
	outcome *Outcome           // with a delete: how the job ended (Finish)
	fn      func(t *txn) error // a general update
	w       *Write             // receives the outcome; nil for deletes
	// A read (see view) or a checkpoint (see snapshot) instead of a
	// write: its result goes to done.
	read       func(tx *bolt.Tx) error
	checkpoint bool
	done       chan error
}

// isWrite reports whether o changes the database.
func (o *op) isWrite() bool { return o.read == nil && !o.checkpoint }

// txn is one write transaction of the committer, with the changes it makes
// to the in-memory counts; they are applied only when it commits.
type txn struct {
	tx        *bolt.Tx
	jr        *journal       // records what the transaction writes
	pending   map[string]int // pending-job count deltas by function
	schedules map[string]int // schedule count deltas by function
	counts    *counts        // the store's, for early deltas
	early     map[string]int // pending deltas shown before the commit (see counts.early)
	damaged   damageFunc     // reports the damaged records a write skips
	maxRuns   int            // Options.MaxRuns
}

// bucket returns one of the transaction's buckets, whose writes go to the
// journal as well.
func (t *txn) bucket(name []byte) bucket {
	return bucket{Bucket: t.tx.Bucket(name), name: name, jr: t.jr}
}

// bucket is a bucket of the committer's transaction: what it writes is
// also added to the journal record of the group being applied.
type bucket struct {
	*bolt.Bucket
	name []byte
	jr   *journal
}

// Put writes key and value, journaled.
func (b bucket) Put(key, value []byte) error {
	if err := b.Bucket.Put(key, value); err != nil {
		return err
	}
	b.jr.put(b.name, key, value)
	return nil
}

// Delete removes key, journaled.
func (b bucket) Delete(key []byte) error {
	if err := b.Bucket.Delete(key); err != nil {
		return err
	}
	b.jr.del(b.name, key)
	return nil
}

// Put queues j to be written as a ready job and returns its write; j is
// durable once the write's Wait returns nil. If j has a unique that a
// pending job or schedule holds, nothing is written and the write's
// Holder names that record: the submission coalesces onto it. j must not
// change until the write is done. A job the store cannot hold (see
// MaxFunctionSize) is refused at once with an error wrapping ErrInvalid.
func (s *Store) Put(j *Job) *Write {
	if err := checkJob(j, false); err != nil {
		return doneWrite(err)
	}
	w := &Write{}
	return s.queue(op{put: j, w: w}, w)
}

// Delete queues the removal of ready job id. Nobody waits for it: a delete
// lost in a crash means the job runs again (at-least-once), never that it
// is lost. It is applied after every write queued before it.
func (s *Store) Delete(id uint64) {
	s.queue(op{id: id}, nil)
}

// update queues fn to run in the next group-committed transaction. If fn
// fails, its write fails and nothing it wrote is kept; the other writes of
// the batch are committed without it (see commit). fn may run more than
// once, in transactions that roll back, so it sets what it captures afresh
// each time. It returns errors only for what cannot be written, damage and
// I/O; outcomes such as "not found" go in captured variables or the write.
func (s *Store) update(fn func(t *txn) error) *Write {
	w := &Write{}
	return s.queue(op{fn: fn, w: w}, w)
}

func (s *Store) queue(o op, w *Write) *Write {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return doneWrite(ErrClosed)
	}
	s.ops = append(s.ops, o)
	if w != nil {
		w.b = s.cur
	}
	s.mu.Unlock()
	s.signal()
	return w
}

// QueuedWrites returns how many writes wait for the committer's next
// transaction.
func (s *Store) QueuedWrites() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ops)
}

func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// DefaultCheckpointInterval is how long the committer keeps one bbolt
// transaction open, applying journaled groups to it, before it commits it
// (see journal.go). Longer gaps write each hot page (the tail of an index)
// once for many groups; measured with 32 synchronous clients, 1 s gave
// 1.45 times the rate of 100 ms and a third of the p99.
const DefaultCheckpointInterval = time.Second

// checkpointBytes bounds the journal, and so the replay after a crash:
// past it the committer checkpoints at once, whatever the interval.
const checkpointBytes = 64 << 20

// DefaultCheckpointPages is how many of the file's pages the open
// transaction may have changed, and so hold in memory as bbolt nodes,
// before the committer checkpoints at once: 64 MiB of 4 KiB pages. Writes
// in random key order (uniques) change a page each, so the journal's size
// alone would not bound them; what they add beyond those pages is bounded
// by the journal's size.
const DefaultCheckpointPages = 16384

// checkpointDue reports whether the open transaction should be committed
// now: it is old enough, its journal is large, or it holds many pages.
func (s *Store) checkpointDue() bool {
	if s.tx == nil {
		return false
	}
	if time.Since(s.txStart) >= s.checkpointGap || s.jr.off >= checkpointBytes {
		return true
	}
	st := s.tx.Stats()
	return st.GetNodeCount() >= int64(s.checkpointPages)
}

// commitLoop owns the database: it takes whatever has queued up, commits
// the writes (see commit) and releases their waiters, then serves the
// reads, and checkpoints every Options.CheckpointInterval. It exits once Close was
// called and nothing is left to do, after a last checkpoint.
func (s *Store) commitLoop() {
	defer close(s.stopped)
	// A damaged page can make bbolt read outside the mapped file; on this
	// goroutine that is a panic that commit recovers, not a crash.
	debug.SetPanicOnFault(true)
	var spare, writes []op
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		if s.tx != nil {
			timer.Reset(max(s.checkpointGap-time.Since(s.txStart), 0))
		}
		select {
		case <-s.wake:
		case <-timer.C:
			s.checkpoint()
			continue
		}
		timer.Stop()
		for {
			s.mu.Lock()
			ops, b, closed := s.ops, s.cur, s.closed
			if len(ops) == 0 {
				s.mu.Unlock()
				if closed {
					s.checkpoint()
					return
				}
				break
			}
			s.ops, s.cur = spare[:0], newBatch()
			s.mu.Unlock()

			writes = writes[:0]
			for _, o := range ops {
				if o.isWrite() {
					writes = append(writes, o)
				}
			}
			if len(writes) > 0 {
				s.commit(writes)
			}
			close(b.done)
			// Reads see every write queued with them, once durable.
			for _, o := range ops {
				switch {
				case o.read != nil:
					o.done <- s.serveRead(o.read)
				case o.checkpoint:
					o.done <- s.checkpoint()
				}
			}
			if s.checkpointDue() {
				s.checkpoint()
			}
			clear(ops) // drop references to jobs
			clear(writes)
			spare = ops
		}
	}
}

// openTx returns the committer's write transaction, beginning one (with
// the journal's records, after a rollback) when none is open.
func (s *Store) openTx() (*bolt.Tx, error) {
	if s.tx != nil {
		return s.tx, nil
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		return nil, err
	}
	if s.needReplay {
		if _, err := s.jr.replay(tx); err != nil {
			tx.Rollback()
			return nil, err
		}
		s.needReplay = false
	}
	s.tx, s.txStart = tx, time.Now()
	return tx, nil
}

// dropTx rolls back the open transaction: what it held beyond the
// journal's records is gone, and the next one starts from the journal.
func (s *Store) dropTx() {
	if s.tx != nil {
		s.tx.Rollback()
		s.tx = nil
	}
	s.needReplay = true
}

// checkpoint commits the open transaction, so that everything journaled
// is in the database, and starts the journal over. If the commit fails,
// bbolt has rolled the transaction back and the journal still holds every
// acknowledged write, so nothing is lost: the next transaction starts
// from it, and the next checkpoint tries again.
func (s *Store) checkpoint() (err error) {
	if s.tx == nil {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = panicError(r)
			s.dropTx()
		}
	}()
	tx := s.tx
	s.tx = nil
	start := time.Now()
	defer func() { s.stats.checkpoint.ObserveDuration(time.Since(start)) }()
	if err := countCommit(tx); err != nil {
		tx.Rollback()
		s.needReplay = true
		return err
	}
	if err := tx.Commit(); err != nil {
		s.needReplay = true
		s.log.Error("store: checkpoint failed; the journal keeps the writes", "err", err)
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	if err := s.jr.restart(); err != nil {
		// The database has the records: replaying them again (after a
		// crash) changes nothing.
		s.log.Error("store: restarting the journal failed", "err", err)
		return err
	}
	return nil
}

// serveRead runs a read on the committer's transaction, protected (see
// protect).
func (s *Store) serveRead(fn func(tx *bolt.Tx) error) error {
	tx, err := s.openTx()
	if err != nil {
		return err
	}
	return protect(func() error { return fn(tx) })
}

// commit writes ops, in queue order, and records each one's outcome in its
// Write.
//
// The common case is one transaction, and so one fsync, for all of them.
// When it fails, the ops are isolated so that a bad one fails only itself,
// much as bbolt's DB.Batch does:
//
//   - When an op returned the error (bbolt refused a key or value, it read
//     a damaged record, it panicked), that op alone fails, with that error,
//     and the rest run again in a new transaction, until one commits. An op
//     depends only on the database it sees, and the ops before it see the
//     same database in every run, so each run gets past them again, and the
//     failed op's error is the one it met in exactly the state it would
//     meet in sequence. Each run is a rolled-back transaction: no fsync.
//   - A failure no op returned (the commit's write or fsync, BeforeCommit)
//     cannot be pinned on one op. Then every op is committed alone, in
//     order: only the ones that cannot be written fail (one too large for
//     the space left, say). When diskFailures ops in a row fail alone so,
//     the disk itself is at fault, and the rest fail with its error
//     untried: a full disk must not cost a transaction per queued write.
//
// Each transaction gathers its own changes to the in-memory counts, which
// are applied only when it commits. A Write's outcome is reset before each
// run, so only the run that commits (or the op's failure) decides it.
func (s *Store) commit(ops []op) {
	all, failed := len(ops), 0
	var firstErr error
	fail := func(o op, err error) {
		err = fmt.Errorf("store: commit: %w", err)
		if o.w != nil {
			o.w.err = err
		} else {
			s.log.Error("store: delete of a finished job failed; it may run again after a restart", "id", o.id, "err", err)
		}
		if failed++; firstErr == nil {
			firstErr = err
		}
	}
	for len(ops) > 0 {
		bad, err := s.run(ops)
		if err == nil {
			break
		}
		if bad < 0 {
			streak := 0
			for i := range ops {
				if streak < diskFailures {
					bad, err = s.run(ops[i : i+1])
					switch {
					case err == nil:
						streak = 0
						continue
					case bad < 0:
						streak++
					default:
						streak = 0
					}
				}
				fail(ops[i], err)
			}
			break
		}
		fail(ops[bad], err)
		ops = append(ops[:bad], ops[bad+1:]...)
	}
	if failed > 0 {
		s.log.Error("store writes failed", "failed", failed, "of", all, "err", firstErr)
	}
}

// diskFailures is how many ops in a row must fail alone, for a reason none
// of them returned, before commit takes the disk to be at fault.
const diskFailures = 8

// run applies ops to the committer's transaction and journals them. When
// an op fails, bad is its index; a failure no op returned (the journal's
// write or sync, BeforeCommit) has bad -1. On failure the transaction goes
// back to what the journal holds: nothing of ops is kept.
func (s *Store) run(ops []op) (bad int, err error) {
	bad = -1
	for _, o := range ops {
		if o.w != nil {
			o.w.created, o.w.holder = false, Holder{}
		}
	}
	start := time.Now()
	defer func() { s.stats.record(len(ops), time.Since(start), err) }()
	tx, err := s.openTx()
	if err != nil {
		return -1, err
	}
	t := &txn{tx: tx, jr: s.jr, pending: map[string]int{}, schedules: map[string]int{}, counts: s.counts,
		damaged: s.damaged, maxRuns: s.maxRuns}
	defer func() {
		if r := recover(); r != nil {
			err = panicError(r)
		}
		if err != nil {
			s.dropTx()
			s.counts.withdraw(t)
		}
	}()
	if s.before != nil {
		if err := s.before(); err != nil {
			return -1, err
		}
	}
	s.jr.begin()
	for i, o := range ops {
		if err := applyOp(t, o); err != nil {
			return i, err
		}
	}
	if s.beforeSync != nil {
		if err := s.beforeSync(); err != nil {
			return -1, err
		}
	}
	if err := s.jr.commit(); err != nil {
		return -1, err
	}
	s.counts.apply(t)
	return -1, nil
}

// applyOp applies one op; a panic in it (bbolt on a damaged page) is its
// error.
func applyOp(t *txn, o op) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError(r)
		}
	}()
	switch {
	case o.fn != nil:
		return o.fn(t)
	case o.put != nil:
		return putReady(t, o.put, o.w)
	}
	if err := t.bucket(bucketJobs).Delete(idKey(o.id)); err != nil || o.outcome == nil {
		return err
	}
	return finishRun(t, o.id, o.outcome)
}

// putReady writes a ready job unless a pending job or schedule holds its
// unique.
func putReady(t *txn, j *Job, w *Write) error {
	if h, ok, err := heldBy(t.tx, j.Function, j.Unique); err != nil || ok {
		w.holder = h
		return err
	}
	// bbolt keeps key and value until the commit, so each Put gets its own
	// buffer: one allocation holding both.
	kv := make([]byte, 8, 8+j.encodedSize())
	binary.BigEndian.PutUint64(kv, j.ID)
	kv = j.appendTo(kv)
	if err := t.bucket(bucketJobs).Put(kv[:8], kv[8:]); err != nil {
		return err
	}
	w.created, w.holder = true, Holder{ID: j.ID, Due: j.Due}
	return nil
}
