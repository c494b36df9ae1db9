package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Batch is one group-committed transaction. Every write queued while the
// previous transaction was running joins the same Batch.
type Batch struct {
	done chan struct{}
	err  error
}

func newBatch() *Batch { return &Batch{done: make(chan struct{})} }

// Wait blocks until the batch is committed and returns its error: nil means
// every write in it is durable.
func (b *Batch) Wait() error {
	<-b.done
	return b.err
}

// Done is closed once the batch is committed.
func (b *Batch) Done() <-chan struct{} { return b.done }

// Err is the batch's result; valid only after Done is closed.
func (b *Batch) Err() error { return b.err }

// Write is one queued write. Once its batch is committed it also tells
// what the write did: writes that create a record unless another one holds
// its key (a (function, unique) or a request key) report which record
// holds it.
type Write struct {
	*Batch
	// Set by the committer before the batch is released.
	created bool
	holder  Holder
}

// Created reports whether the write stored its record. It is false when
// another record held the key (Holder names it) or the commit failed.
// Valid after Done.
func (w *Write) Created() bool { return w.created && w.err == nil }

// Holder names the record that holds the write's key: the one it created,
// or the one found. Valid after Done, when the commit succeeded.
func (w *Write) Holder() Holder { return w.holder }

// Holder names a record that holds a key.
type Holder struct {
	ID uint64
	// Due is when it next runs (unix ns); for a job already forwarded, when
	// it was due.
	Due int64
}

// doneWrite returns a Write whose batch is already done with err.
func doneWrite(err error) *Write {
	b := newBatch()
	b.err = err
	close(b.done)
	return &Write{Batch: b}
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
}

// txn is one write transaction of the committer, with the changes it makes
// to the in-memory counts; they are applied only when it commits.
type txn struct {
	tx        *bolt.Tx
	pending   map[string]int // pending-job count deltas by function
	schedules map[string]int // schedule count deltas by function
	maxRuns   int            // Options.MaxRuns
}

func (t *txn) bucket(name []byte) *bolt.Bucket { return t.tx.Bucket(name) }

// Put queues j to be written as a ready job and returns its write; j is
// durable once the write's Wait returns nil. If j has a unique that a
// pending job or schedule holds, nothing is written and the write's
// Holder names that record: the submission coalesces onto it. j must not
// change until the write is done.
func (s *Store) Put(j *Job) *Write {
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
// fails the whole transaction fails, so fn returns errors only for
// corruption and I/O; outcomes such as "not found" go in captured variables
// or the write.
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
		w.Batch = s.cur
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

// commitLoop owns all writes: it takes whatever has queued up, commits it in
// one transaction, and releases the waiters. It exits once Close was called
// and nothing is left to write.
func (s *Store) commitLoop() {
	defer close(s.stopped)
	var spare []op
	for range s.wake {
		for {
			s.mu.Lock()
			ops, b, closed := s.ops, s.cur, s.closed
			if len(ops) == 0 {
				s.mu.Unlock()
				if closed {
					return
				}
				break
			}
			s.ops, s.cur = spare[:0], newBatch()
			s.mu.Unlock()

			t := &txn{pending: map[string]int{}, schedules: map[string]int{}, maxRuns: s.maxRuns}
			b.err = s.db.Update(func(tx *bolt.Tx) error {
				t.tx = tx
				if s.before != nil {
					if err := s.before(); err != nil {
						return err
					}
				}
				return apply(t, ops)
			})
			if b.err != nil {
				b.err = fmt.Errorf("store: commit %d writes: %w", len(ops), b.err)
				s.log.Error("store commit failed", "writes", len(ops), "err", b.err)
			} else {
				s.counts.apply(t)
			}
			close(b.done)
			clear(ops) // drop references to jobs
			spare = ops
		}
	}
}

func apply(t *txn, ops []op) error {
	var key [8]byte
	for _, o := range ops {
		switch {
		case o.fn != nil:
			if err := o.fn(t); err != nil {
				return err
			}
		case o.put != nil:
			if err := putReady(t, o.put, o.w); err != nil {
				return err
			}
		default:
			binary.BigEndian.PutUint64(key[:], o.id)
			if err := t.bucket(bucketJobs).Delete(key[:]); err != nil {
				return err
			}
			if o.outcome != nil {
				if err := finishRun(t, o.id, o.outcome); err != nil {
					return err
				}
			}
		}
	}
	return nil
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
