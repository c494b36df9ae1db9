package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"
)

// Kinds of entries in the due index.
const (
	KindJob      byte = 1 // a one-shot job in sched
	KindSchedule byte = 2 // a recurring schedule's next fire
)

// DueItem is one entry of the due index with its record: a one-shot job
// (Job set) or a recurring schedule (Schedule set).
type DueItem struct {
	Due      int64 // unix ns
	ID       uint64
	Job      *Job
	Schedule *Schedule
}

func dueKey(due int64, id uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(max(due, 0)))
	binary.BigEndian.PutUint64(k[8:], id)
	return k
}

func idKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

func uniqKey(function, unique string) []byte {
	return append(append([]byte(function), 0), unique...)
}

// pendingKey is j's key in the unique index. A trigger job's includes its
// upstream, since each server holding epoch jobs for a second gets its own
// trigger; it can never equal a client's key, whose unique has no NUL.
func pendingKey(j *Job) []byte {
	k := uniqKey(j.Function, j.Unique)
	if j.Kind == JobTrigger {
		k = append(append(k, 0), j.Upstream...)
	}
	return k
}

// counted reports whether j counts as a pending job of its function in
// `status`; trigger jobs are the sidecar's own.
func counted(j *Job) bool { return j.Kind != JobTrigger }

func addCount(tx *bolt.Tx, function string, delta int64) error {
	b := tx.Bucket(bucketCounts)
	var n int64
	if v := b.Get([]byte(function)); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	n += delta
	if n <= 0 {
		return b.Delete([]byte(function))
	}
	return b.Put([]byte(function), binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// PutScheduled queues a job that must wait until j.Due: it is indexed by
// due time and, when its unique is not empty, by (function, unique).
func (s *Store) PutScheduled(j *Job) *Batch {
	return s.update(func(tx *bolt.Tx) error { return putScheduled(tx, j) })
}

func putScheduled(tx *bolt.Tx, j *Job) error {
	if err := tx.Bucket(bucketSched).Put(idKey(j.ID), j.appendTo(nil)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketDue).Put(dueKey(j.Due, j.ID), []byte{KindJob}); err != nil {
		return err
	}
	if j.Unique != "" {
		if err := tx.Bucket(bucketUniq).Put(pendingKey(j), idKey(j.ID)); err != nil {
			return err
		}
	}
	if !counted(j) {
		return nil
	}
	return addCount(tx, j.Function, 1)
}

// removeScheduled deletes a pending job's record and index entries and
// returns the record, or nil if it is not pending.
func removeScheduled(tx *bolt.Tx, id uint64) (*Job, error) {
	v := tx.Bucket(bucketSched).Get(idKey(id))
	if v == nil {
		return nil, nil
	}
	j, err := decodeJob(id, v)
	if err != nil {
		return nil, fmt.Errorf("store: scheduled job %d: %w", id, err)
	}
	if err := tx.Bucket(bucketSched).Delete(idKey(id)); err != nil {
		return nil, err
	}
	if err := tx.Bucket(bucketDue).Delete(dueKey(j.Due, id)); err != nil {
		return nil, err
	}
	if j.Unique != "" {
		u := tx.Bucket(bucketUniq)
		if v := u.Get(pendingKey(j)); len(v) == 8 && binary.BigEndian.Uint64(v) == id {
			if err := u.Delete(pendingKey(j)); err != nil {
				return nil, err
			}
		}
	}
	if !counted(j) {
		return j, nil
	}
	return j, addCount(tx, j.Function, -1)
}

// CancelScheduled removes a pending job. It returns the removed record, or
// nil when no job with that id is pending.
func (s *Store) CancelScheduled(id uint64) (*Job, error) {
	var j *Job
	err := s.update(func(tx *bolt.Tx) (err error) {
		j, err = removeScheduled(tx, id)
		return err
	}).Wait()
	return j, err
}

// Occurrence is one firing of a recurring schedule: the job it releases
// and the schedule as it is after the firing (its Next, Last, LastHandle).
type Occurrence struct {
	Job      *Job // nil when the occurrence is skipped
	Schedule *Schedule
}

// Fire records a release in one transaction: the pending jobs ids move
// from waiting to ready, and each occurrence's job is stored as ready while
// its schedule advances. Because both happen in one commit, a crash either
// keeps an item waiting or has it ready: it never fires twice. It returns
// the moved jobs; ids no longer pending (cancelled meanwhile) are left out.
func (s *Store) Fire(ids []uint64, occs []Occurrence) ([]*Job, error) {
	var moved []*Job
	err := s.update(func(tx *bolt.Tx) error {
		moved = moved[:0]
		jobs := tx.Bucket(bucketJobs)
		for _, id := range ids {
			j, err := removeScheduled(tx, id)
			if err != nil {
				return err
			}
			if j == nil {
				continue
			}
			if err := jobs.Put(idKey(id), j.appendTo(nil)); err != nil {
				return err
			}
			moved = append(moved, j)
		}
		for _, o := range occs {
			if o.Job != nil {
				if err := jobs.Put(idKey(o.Job.ID), o.Job.appendTo(nil)); err != nil {
					return err
				}
			}
			if err := putSchedule(tx, o.Schedule); err != nil {
				return err
			}
		}
		return nil
	}).Wait()
	return moved, err
}

// Scheduled returns the pending job with that id, or nil.
func (s *Store) Scheduled(id uint64) (*Job, error) {
	var j *Job
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		if v := tx.Bucket(bucketSched).Get(idKey(id)); v != nil {
			j, err = decodeJob(id, v)
		}
		return err
	})
	return j, err
}

// LookupUnique returns the id of the pending job or schedule that holds
// (function, unique), or 0.
func (s *Store) LookupUnique(function, unique string) (uint64, error) {
	var id uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketUniq).Get(uniqKey(function, unique)); len(v) == 8 {
			id = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return id, err
}

// PendingCounts returns how many jobs wait for their due time, by function.
func (s *Store) PendingCounts() (map[string]int, error) {
	counts := map[string]int{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCounts).ForEach(func(k, v []byte) error {
			if len(v) == 8 {
				counts[string(k)] = int(binary.BigEndian.Uint64(v))
			}
			return nil
		})
	})
	return counts, err
}

// NextDue returns the earliest due time in the index.
func (s *Store) NextDue() (due int64, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketDue).Cursor().First(); len(k) == 16 {
			due, ok = int64(binary.BigEndian.Uint64(k)), true
		}
		return nil
	})
	return due, ok, err
}

// DueItems returns up to max entries of the due index from the earliest,
// with due <= until, and their records: a cursor seek, never a scan of the
// pending set.
func (s *Store) DueItems(until int64, max int) ([]DueItem, error) {
	return s.dueItems(-1, 0, until, max)
}

// ForEachDue calls fn for every entry of the due index in due order, in
// pages so that no read transaction stays open long; fn returns false to
// stop.
func (s *Store) ForEachDue(fn func(DueItem) bool) error {
	var after int64 = -1
	var afterID uint64
	for {
		items, err := s.dueItems(after, afterID, math.MaxInt64, 1000)
		if err != nil || len(items) == 0 {
			return err
		}
		for _, it := range items {
			if !fn(it) {
				return nil
			}
		}
		last := items[len(items)-1]
		after, afterID = last.Due, last.ID
	}
}

// dueItems returns up to max entries strictly after (due, id), from the
// start when due < 0, with due <= until.
func (s *Store) dueItems(due int64, id uint64, until int64, max int) ([]DueItem, error) {
	var items []DueItem
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		var k, v []byte
		if due < 0 {
			k, v = c.First()
		} else {
			start := dueKey(due, id)
			if k, v = c.Seek(start); string(k) == string(start) {
				k, v = c.Next()
			}
		}
		for ; len(k) == 16 && len(items) < max; k, v = c.Next() {
			at := int64(binary.BigEndian.Uint64(k))
			if at > until {
				break
			}
			it, err := loadItem(tx, at, binary.BigEndian.Uint64(k[8:]), v)
			if err != nil {
				return err
			}
			items = append(items, it)
		}
		return nil
	})
	return items, err
}

func loadItem(tx *bolt.Tx, due int64, id uint64, kind []byte) (DueItem, error) {
	it := DueItem{Due: due, ID: id}
	if len(kind) != 1 {
		return it, fmt.Errorf("store: due entry %d: %w", id, errCorrupt)
	}
	var err error
	switch kind[0] {
	case KindJob:
		v := tx.Bucket(bucketSched).Get(idKey(id))
		if v == nil {
			return it, fmt.Errorf("store: due entry %d without its job: %w", id, errCorrupt)
		}
		it.Job, err = decodeJob(id, v)
	case KindSchedule:
		it.Schedule, err = getSchedule(tx, id)
		if err == nil && it.Schedule == nil {
			err = fmt.Errorf("store: due entry %d without its schedule: %w", id, errCorrupt)
		}
	default:
		err = fmt.Errorf("store: due entry %d of kind %d: %w", id, kind[0], errCorrupt)
	}
	return it, err
}

// Sources of schedules.
const (
	SourceProtocol = "protocol" // SUBMIT_JOB_SCHED
	SourceFile     = "file"     // the schedules file, keyed by Name
	SourceControl  = "control"  // the sidecar's control function
)

// Schedule is a recurring schedule from one of the Sources. Schedules not
// from the file are indexed by (function, unique) like pending jobs.
type Schedule struct {
	ID       uint64 `json:"id"`
	Handle   string `json:"handle"`
	Name     string `json:"name,omitempty"`
	Source   string `json:"source"`
	Spec     string `json:"spec"`
	Zone     string `json:"zone"`
	Function string `json:"function"`
	Unique   string `json:"unique,omitempty"`
	Data     []byte `json:"data,omitempty"`
	Priority uint8  `json:"priority"`

	Missed    string `json:"missed"`      // skip, once or all
	MissedCap int    `json:"missed_cap"`  // with all: at most this many
	CatchUp   int64  `json:"catch_up_ns"` // missed runs older than this are dropped
	Overlap   string `json:"overlap"`     // allow or skip
	Jitter    int64  `json:"jitter_ns"`   // delay-only, deterministic
	Enabled   bool   `json:"enabled"`
	Created   int64  `json:"created_ns"`

	Next       int64  `json:"next_ns"` // nominal next occurrence; 0 = none
	Last       int64  `json:"last_ns"` // last occurrence fired or skipped
	LastHandle string `json:"last_handle,omitempty"`
	// FireAt is Next plus jitter: the key in the due index.
	FireAt int64 `json:"fire_at_ns"`
}

func getSchedule(tx *bolt.Tx, id uint64) (*Schedule, error) {
	v := tx.Bucket(bucketSchedules).Get(idKey(id))
	if v == nil {
		return nil, nil
	}
	sc := new(Schedule)
	if err := json.Unmarshal(v, sc); err != nil {
		return nil, fmt.Errorf("store: schedule %d: %w", id, err)
	}
	return sc, nil
}

// putSchedule writes sc and keeps its due entry and unique entry in step
// with the previous version.
func putSchedule(tx *bolt.Tx, sc *Schedule) error {
	old, err := getSchedule(tx, sc.ID)
	if err != nil {
		return err
	}
	if err := unindexSchedule(tx, old); err != nil {
		return err
	}
	v, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketSchedules).Put(idKey(sc.ID), v); err != nil {
		return err
	}
	if sc.Enabled && sc.Next > 0 {
		if err := tx.Bucket(bucketDue).Put(dueKey(sc.FireAt, sc.ID), []byte{KindSchedule}); err != nil {
			return err
		}
	}
	if sc.Unique != "" && sc.Source != SourceFile {
		return tx.Bucket(bucketUniq).Put(uniqKey(sc.Function, sc.Unique), idKey(sc.ID))
	}
	return nil
}

func unindexSchedule(tx *bolt.Tx, sc *Schedule) error {
	if sc == nil {
		return nil
	}
	if sc.Enabled && sc.Next > 0 {
		if err := tx.Bucket(bucketDue).Delete(dueKey(sc.FireAt, sc.ID)); err != nil {
			return err
		}
	}
	if sc.Unique != "" && sc.Source != SourceFile {
		u := tx.Bucket(bucketUniq)
		if v := u.Get(uniqKey(sc.Function, sc.Unique)); len(v) == 8 && binary.BigEndian.Uint64(v) == sc.ID {
			return u.Delete(uniqKey(sc.Function, sc.Unique))
		}
	}
	return nil
}

// PutSchedule creates or replaces a schedule.
func (s *Store) PutSchedule(sc *Schedule) *Batch {
	return s.update(func(tx *bolt.Tx) error { return putSchedule(tx, sc) })
}

// DeleteSchedule removes a schedule; it returns the removed one, or nil.
func (s *Store) DeleteSchedule(id uint64) (*Schedule, error) {
	var sc *Schedule
	err := s.update(func(tx *bolt.Tx) (err error) {
		if sc, err = getSchedule(tx, id); err != nil || sc == nil {
			return err
		}
		if err := unindexSchedule(tx, sc); err != nil {
			return err
		}
		return tx.Bucket(bucketSchedules).Delete(idKey(id))
	}).Wait()
	return sc, err
}

// GetSchedule returns the schedule with that id, or nil.
func (s *Store) GetSchedule(id uint64) (*Schedule, error) {
	var sc *Schedule
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		sc, err = getSchedule(tx, id)
		return err
	})
	return sc, err
}

// Schedules returns every recurring schedule, in id order. Schedules are
// few (they are configuration, not jobs), so they are read whole.
func (s *Store) Schedules() ([]*Schedule, error) {
	var all []*Schedule
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSchedules).ForEach(func(k, v []byte) error {
			sc := new(Schedule)
			if err := json.Unmarshal(v, sc); err != nil {
				return fmt.Errorf("store: schedule %x: %w", k, err)
			}
			all = append(all, sc)
			return nil
		})
	})
	return all, err
}
