package server

import (
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store"
)

// jobState is where a job is in its life.
type jobState uint8

const (
	// statePersisting: a new background job whose record is being
	// written; it enters its queue once the write is durable.
	statePersisting jobState = iota
	stateQueued
	stateRunning
	stateDone
)

// job is a job known to the server. The embedded record holds the fields
// that never change after submission and is what the store writes, so a
// background job costs no second copy of its payload.
type job struct {
	store.Job
	fn *function

	state  jobState
	bg     bool // has a background submission: its record is stored
	ignore bool // cancelled or abandoned; reaped when it reaches a queue head
	// uniqKey is the job's key in fn.uniques, "" when it is not indexed.
	uniqKey string

	// write is the job's record being written, or written.
	write *store.Write

	worker    *conn
	listeners []*conn // fg clients waiting for WORK_* packets
	num, den  string  // last WORK_STATUS
	retries   int

	timer      *time.Timer // CAN_DO_TIMEOUT of the current assignment
	assignGen  uint64      // tells a stale timer from the current one
	assignedAt int64       // unix ns of the last assignment, for its run record

	prev, next *job // in fn.queue[gearman.Priority] while queued
}

// jobList is an intrusive FIFO: O(1) append, pop and removal without an
// allocation per job.
type jobList struct {
	head, tail *job
	n          int
}

func (l *jobList) pushBack(j *job) {
	j.prev, j.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = j
	} else {
		l.head = j
	}
	l.tail = j
	l.n++
}

func (l *jobList) remove(j *job) {
	if j.prev != nil {
		j.prev.next = j.next
	} else {
		l.head = j.next
	}
	if j.next != nil {
		j.next.prev = j.prev
	} else {
		l.tail = j.prev
	}
	j.prev, j.next = nil, nil
	l.n--
}

// function is everything the server knows about one function name. Once
// named it is kept (as gearmand does) until `drop function`.
type function struct {
	name     string
	queue    [gearman.NumPriorities]jobList
	running  int
	total    int // jobs of any state, as `status` TOTAL and maxqueue count them
	maxQueue [gearman.NumPriorities]int
	uniques  map[string]*job
	// workers holds one entry per registration, duplicates included, for
	// the WORKERS count and for NOOP wake-ups.
	workers   []*conn
	wakeStart int // rotates the first worker -w wakes

	// runningBy splits running by priority, for metrics; count is the
	// function's counters, which outlive it (Server.counters).
	runningBy [gearman.NumPriorities]int
	count     *funcCounters
}

func newFunction(name string) *function {
	return &function{name: name, uniques: make(map[string]*job)}
}

func (f *function) removeWorker(c *conn) {
	w := f.workers[:0]
	for _, x := range f.workers {
		if x != c {
			w = append(w, x)
		}
	}
	clear(f.workers[len(w):])
	f.workers = w
}
