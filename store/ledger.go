package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the sidecar's fire ledger: what was submitted upstream, where,
// and under which upstream handle. Entries are pruned by age through the
// time index, so pruning seeks instead of scanning.
var (
	bucketFired   = []byte("fired")    // id -> Fired record
	bucketFiredAt = []byte("fired_at") // fired ns (BE) + id (BE) -> nothing
)

// MaxWatch bounds a trigger job's watched handles. One taken epoch job
// proves the trigger woke the workers, so a few suffice, and a trigger for
// a second holding 100,000 epoch jobs stays small.
const MaxWatch = 4

// Fired is one ledger entry: a job, an occurrence or a passthrough epoch
// job that an upstream server acknowledged with JOB_CREATED.
type Fired struct {
	ID             uint64 // the sidecar's job id (its handle's number)
	Upstream       string // host:port of the server that took it
	UpstreamHandle string
	Due            int64 // unix ns it was due
	At             int64 // unix ns JOB_CREATED came back
}

func (f *Fired) appendTo(b []byte) []byte {
	b = binary.AppendVarint(b, f.Due)
	b = binary.AppendVarint(b, f.At)
	for _, s := range []string{f.Upstream, f.UpstreamHandle} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeFired(id uint64, b []byte) (*Fired, error) {
	f := &Fired{ID: id}
	var n int
	if f.Due, n = binary.Varint(b); n <= 0 {
		return nil, errCorrupt
	}
	b = b[n:]
	if f.At, n = binary.Varint(b); n <= 0 {
		return nil, errCorrupt
	}
	b = b[n:]
	up, b, ok := readBytes(b)
	if !ok {
		return nil, errCorrupt
	}
	h, b, ok := readBytes(b)
	if !ok || len(b) != 0 {
		return nil, errCorrupt
	}
	f.Upstream, f.UpstreamHandle = string(up), string(h)
	return f, nil
}

// Forward is one commit of the sidecar's forwarder.
type Forward struct {
	// Done are pending jobs that upstream acknowledged: they leave the
	// due index.
	Done []uint64
	// Ledger records what was acknowledged. The entry of a job in Done
	// that is no longer pending (cancelled while it was being submitted)
	// is not recorded.
	Ledger []Fired
	// Defer moves pending jobs that upstream refused to a later due time.
	Defer []Deferral
	// Schedules are advanced past the occurrences they fired or skipped.
	Schedules []*Schedule
	// Triggers are trigger jobs to create, or to join when one for the
	// same (upstream, function, second) is already pending: the new one's
	// Watch is added to it (up to MaxWatch).
	Triggers []*Job
	// Runs record each forwarded job or occurrence (see Run). The run of
	// a job or schedule that is gone (cancelled while it was being
	// forwarded) is not recorded.
	Runs []Run
}

// ForwardResult says what Forwarded removed, and what had gone.
type ForwardResult struct {
	// Removed are the pending jobs of Done it removed.
	Removed []*Job
	// Cancelled are the ids of Done no longer pending, and of Schedules
	// no longer there: they were cancelled while being forwarded.
	Cancelled []uint64
}

// Forwarded commits f in one transaction, so a crash either leaves an item
// pending (it is resubmitted, with the same unique) or records it as
// fired: never both, never neither. A schedule advances only if its plan
// is not stale (see advanceSchedule).
func (s *Store) Forwarded(f Forward) (ForwardResult, error) {
	// A trigger only wakes workers sooner, so one the store cannot hold
	// is left out rather than failing the ledger's commit.
	triggers := make([]*Job, 0, len(f.Triggers))
	for _, tr := range f.Triggers {
		if err := checkJob(tr, true); err != nil {
			s.log.Error("store: trigger job not stored", "handle", tr.Handle, "err", err)
			continue
		}
		triggers = append(triggers, tr)
	}
	var res ForwardResult
	err := s.update(func(t *txn) error {
		res = ForwardResult{}
		gone := map[uint64]bool{}
		for _, id := range f.Done {
			j, err := removePending(t, id)
			if err != nil {
				return err
			}
			if j != nil {
				res.Removed = append(res.Removed, j)
			} else {
				gone[id] = true
				res.Cancelled = append(res.Cancelled, id)
			}
		}
		for _, d := range f.Defer {
			if err := deferPending(t, d); err != nil {
				return err
			}
		}
		fired, at := t.bucket(bucketFired), t.bucket(bucketFiredAt)
		for i := range f.Ledger {
			e := &f.Ledger[i]
			if gone[e.ID] {
				continue
			}
			if err := fired.Put(idKey(e.ID), e.appendTo(nil)); err != nil {
				return err
			}
			if err := at.Put(dueKey(e.At, e.ID), nil); err != nil {
				return err
			}
		}
		for _, sc := range f.Schedules {
			_, wasGone, err := advanceSchedule(t, sc)
			if err != nil {
				return err
			}
			if wasGone {
				res.Cancelled = append(res.Cancelled, sc.ID)
			}
		}
		for _, tr := range triggers {
			if err := joinTrigger(t, tr); err != nil {
				return err
			}
		}
		for i := range f.Runs {
			r := &f.Runs[i]
			if gone[r.ID] {
				continue
			}
			if r.Item != r.ID {
				sc, err := getSchedule(t.tx, r.Item)
				if err != nil {
					return err
				}
				if sc == nil {
					continue // cancelled while it was being forwarded
				}
			}
			if err := addRun(t, r); err != nil {
				return err
			}
		}
		return nil
	}).Wait()
	return res, err
}

// Deferral moves a pending job to a new due time (unix ns).
type Deferral struct {
	ID  uint64
	Due int64
}

// deferPending moves pending job d.ID to d.Due; a job no longer pending is
// left alone.
func deferPending(t *txn, d Deferral) error {
	v := t.bucket(bucketSched).Get(idKey(d.ID))
	if v == nil {
		return nil
	}
	j, err := decodeJob(d.ID, v)
	if err != nil {
		return fmt.Errorf("store: scheduled job %d: %w", d.ID, err)
	}
	if err := t.bucket(bucketDue).Delete(dueKey(j.Due, d.ID)); err != nil {
		return err
	}
	j.Due = d.Due
	if err := t.bucket(bucketSched).Put(idKey(d.ID), j.appendTo(nil)); err != nil {
		return err
	}
	return t.bucket(bucketDue).Put(dueKey(j.Due, d.ID), []byte{KindJob})
}

// joinTrigger stores trigger tr, or adds its watched handles to the pending
// trigger with the same key.
func joinTrigger(t *txn, tr *Job) error {
	v := t.bucket(bucketUniq).Get(pendingKey(tr))
	if len(v) != 8 {
		return putPending(t, tr)
	}
	id := binary.BigEndian.Uint64(v)
	rec := t.bucket(bucketSched).Get(idKey(id))
	if rec == nil {
		return putPending(t, tr)
	}
	old, err := decodeJob(id, rec)
	if err != nil {
		return fmt.Errorf("store: trigger %d: %w", id, err)
	}
	if len(old.Watch) >= MaxWatch {
		return nil
	}
	old.Watch = append(old.Watch, tr.Watch[:min(len(tr.Watch), MaxWatch-len(old.Watch))]...)
	return t.bucket(bucketSched).Put(idKey(id), old.appendTo(nil))
}

// PutTriggers stores trigger jobs found by a watcher of an upstream's
// persistent queue (gearman/sidecar/queuewatch), in one transaction of the
// committer. Each is created only if no trigger for its (upstream,
// function, second) is pending; otherwise its watched entries join the
// pending one, as the forwarder's own triggers do (joinTrigger). It returns
// how many it created. Every trigger needs Kind JobTrigger and Upstream
// set: the upstream is part of the key.
func (s *Store) PutTriggers(triggers []*Job) (created int, err error) {
	for _, tr := range triggers {
		if tr.Kind != JobTrigger || tr.Upstream == "" || !indexed(tr.Unique) {
			return 0, fmt.Errorf("store: PutTriggers: job %d is not a trigger with an upstream and a unique", tr.ID)
		}
	}
	err = s.update(func(t *txn) error {
		created = 0
		for _, tr := range triggers {
			if v := t.bucket(bucketUniq).Get(pendingKey(tr)); len(v) != 8 {
				created++
			}
			if err := joinTrigger(t, tr); err != nil {
				return err
			}
		}
		return nil
	}).Wait()
	return created, err
}

// FiredJob returns the ledger entry of job id, or nil.
func (s *Store) FiredJob(id uint64) (*Fired, error) {
	var f *Fired
	err := s.view(func(tx *bolt.Tx) (err error) {
		if v := tx.Bucket(bucketFired).Get(idKey(id)); v != nil {
			f, err = decodeFired(id, v)
		}
		return err
	})
	return f, err
}

// PruneFired deletes up to max ledger entries recorded before the given
// time (unix ns), with their request keys and run records, and returns
// how many it deleted.
func (s *Store) PruneFired(before int64, max int) (int, error) {
	n := 0
	err := s.update(func(t *txn) error {
		n = 0
		index, ledger := t.bucket(bucketFiredAt), t.bucket(bucketFired)
		c := index.Cursor()
		for k, _ := c.First(); len(k) == 16 && n < max; k, _ = c.First() {
			if int64(binary.BigEndian.Uint64(k)) >= before {
				break
			}
			if err := ledger.Delete(k[8:]); err != nil {
				return err
			}
			if err := forgetRequest(t, binary.BigEndian.Uint64(k[8:])); err != nil {
				return err
			}
			if err := dropRuns(t, binary.BigEndian.Uint64(k[8:])); err != nil {
				return err
			}
			if err := index.Delete(bytes.Clone(k)); err != nil {
				return err
			}
			n++
		}
		return nil
	}).Wait()
	return n, err
}
