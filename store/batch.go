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
// every Put in it is durable.
func (b *Batch) Wait() error {
	<-b.done
	return b.err
}

// Done is closed once the batch is committed.
func (b *Batch) Done() <-chan struct{} { return b.done }

// Err is the batch's result; valid only after Done is closed.
func (b *Batch) Err() error { return b.err }

// op is one queued write: a job put, a job delete, or any other update.
type op struct {
	put *Job                    // a job put
	id  uint64                  // a job delete, when put and fn are nil
	fn  func(tx *bolt.Tx) error // a general update
}

// Put queues j to be written and returns the batch that will carry it. The
// job is durable once the batch's Wait returns nil. j must not change until
// then.
func (s *Store) Put(j *Job) *Batch {
	return s.queue(op{put: j})
}

// Delete queues the removal of job id. Nobody waits for it: a delete lost in
// a crash means the job runs again (at-least-once), never that it is lost.
// It is applied after every Put queued before it.
func (s *Store) Delete(id uint64) {
	s.queue(op{id: id})
}

// update queues fn to run in the next group-committed transaction. If fn
// fails the whole transaction fails, so fn returns errors only for
// corruption and I/O; outcomes such as "not found" go in captured variables.
func (s *Store) update(fn func(tx *bolt.Tx) error) *Batch {
	return s.queue(op{fn: fn})
}

func (s *Store) queue(o op) *Batch {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		b := newBatch()
		b.err = ErrClosed
		close(b.done)
		return b
	}
	s.ops = append(s.ops, o)
	b := s.cur
	s.mu.Unlock()
	s.signal()
	return b
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

			b.err = s.db.Update(func(tx *bolt.Tx) error { return apply(tx, ops) })
			if b.err != nil {
				b.err = fmt.Errorf("store: commit %d writes: %w", len(ops), b.err)
				s.log.Error("store commit failed", "writes", len(ops), "err", b.err)
			}
			close(b.done)
			clear(ops) // drop references to jobs
			spare = ops
		}
	}
}

func apply(tx *bolt.Tx, ops []op) error {
	jobs := tx.Bucket(bucketJobs)
	var key [8]byte
	for _, o := range ops {
		if o.fn != nil {
			if err := o.fn(tx); err != nil {
				return err
			}
			continue
		}
		if o.put == nil {
			binary.BigEndian.PutUint64(key[:], o.id)
			if err := jobs.Delete(key[:]); err != nil {
				return err
			}
			continue
		}
		// bbolt keeps key and value until the commit, so each Put gets
		// its own buffer: one allocation holding both.
		kv := make([]byte, 8, 8+o.put.encodedSize())
		binary.BigEndian.PutUint64(kv, o.put.ID)
		kv = o.put.appendTo(kv)
		if err := jobs.Put(kv[:8], kv[8:]); err != nil {
			return err
		}
	}
	return nil
}

// Committed returns a batch that is already durable, for jobs that were
// read back from the store.
func Committed() *Batch {
	b := newBatch()
	close(b.done)
	return b
}
