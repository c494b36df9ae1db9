// Package store keeps gearsched's durable state in a bbolt database: the
// background jobs that must survive a crash, the jobs and schedules waiting
// for their time, the sidecar's fire ledger, and the job-id high-water mark
// that keeps handles from ever being reused.
//
// Writes go through a single committer goroutine that folds every write
// waiting at that moment into one transaction (group commit), so concurrent
// submitters share one fsync without a fixed batching delay. The committer
// is the owner of every record: a write is a function run inside its
// transaction, which reads the record as it is then and decides there (see
// the scheduler package for the rule this serves).
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets. A background job is in jobs while it is ready to run; a job
// waiting for its due time is in sched instead, indexed by due, so that a
// restart never loads the pending ones and the next due ones are a cursor
// seek away.
var (
	bucketJobs      = []byte("jobs")       // id -> job record, ready to run
	bucketSched     = []byte("sched")      // id -> job record, waiting for its due time
	bucketSchedules = []byte("schedules")  // id -> recurring schedule (JSON)
	bucketDue       = []byte("due")        // due ns (BE) + id (BE) -> kind
	bucketUniq      = []byte("uniq")       // function \0 unique -> id, for pending jobs and schedules
	bucketCounts    = []byte("counts")     // function -> pending scheduled jobs (BE)
	bucketRequests  = []byte("requests")   // request key -> id of what it made
	bucketRequestOf = []byte("request_of") // id -> its request key
	bucketMeta      = []byte("meta")
)

// allBuckets lists every bucket of a database.
var allBuckets = [][]byte{bucketJobs, bucketSched, bucketSchedules, bucketDue, bucketUniq, bucketCounts,
	bucketRequests, bucketRequestOf, bucketMeta, bucketFired, bucketFiredAt}

// knownBucket reports whether name is one of allBuckets.
func knownBucket(name string) bool {
	for _, b := range allBuckets {
		if string(b) == name {
			return true
		}
	}
	return false
}

// ErrClosed is returned by writes made after Close.
var ErrClosed = errors.New("store: closed")

// Options tunes Open.
type Options struct {
	// Logger receives failures of writes nobody waits for (deletes).
	Logger *slog.Logger
	// NoSync skips fsync; for benchmarks and tests of non-durable paths only.
	NoSync bool
	// BeforeCommit, when set, runs inside every write transaction of the
	// committer before the queued writes are applied; an error fails the
	// transaction. Tests use it to hold a commit while other goroutines
	// act, or to make one fail.
	BeforeCommit func() error
}

// Store is an open database. Its methods are safe for concurrent use.
type Store struct {
	db     *bolt.DB
	log    *slog.Logger
	before func() error

	counts *counts

	mu      sync.Mutex
	cur     *batch // batch that writes queued now will join
	ops     []op
	closed  bool
	wake    chan struct{}
	stopped chan struct{}
}

// Open opens or creates the database at path and starts its committer.
func Open(path string, opts Options) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: time.Second, // another process holds the file lock
		NoSync:  opts.NoSync,
		// The freelist is written with each commit (the default) so that
		// opening a database with millions of pending jobs reads one page
		// instead of scanning the whole file to rebuild it.
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	c := new(counts)
	if err == nil {
		err = db.View(c.load)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: initialise %s: %w", path, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		db:      db,
		log:     log,
		before:  opts.BeforeCommit,
		counts:  c,
		cur:     newBatch(),
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
	go s.commitLoop()
	return s, nil
}

// Close commits the writes still queued, stops the committer and closes the
// database.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	s.signal()
	<-s.stopped
	return s.db.Close()
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.db.Path() }

// keyMode records the mode the database was last served in.
var keyMode = []byte("mode")

// keyCommit counts the committer's transactions: bbolt's pages carry no
// transaction id, so this is how Salvage tells the live root page from
// older copies when both meta pages are lost (see findRoot). The root
// page is rewritten by every commit anyway, so counting costs nothing.
var keyCommit = []byte("commit")

// countCommit counts one more commit.
func countCommit(t *txn) error {
	meta := t.bucket(bucketMeta)
	var n uint64
	if v := meta.Get(keyCommit); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	return meta.Put(keyCommit, binary.BigEndian.AppendUint64(nil, n+1))
}

// Mode returns the mode recorded by SetMode, or "" for a database that
// has none.
func (s *Store) Mode() (string, error) {
	var mode string
	err := s.db.View(func(tx *bolt.Tx) error {
		mode = string(tx.Bucket(bucketMeta).Get(keyMode))
		return nil
	})
	return mode, err
}

// SetMode records the mode the database is served in ("server" or
// "sidecar"), so that a restart in the other mode can refuse records it
// would mishandle.
func (s *Store) SetMode(mode string) error {
	return s.update(func(t *txn) error {
		return t.bucket(bucketMeta).Put(keyMode, []byte(mode))
	}).Wait()
}
