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
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"syscall"
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
	bucketRequests, bucketRequestOf, bucketMeta, bucketFired, bucketFiredAt, bucketRuns, bucketRunsAt,
	bucketItemRuns}

// knownBucket reports whether name is one of allBuckets.
func knownBucket(name string) bool {
	for _, b := range allBuckets {
		if string(b) == name {
			return true
		}
	}
	return false
}

// mmapSize is the memory map Open reserves for a database of size bytes.
// A commit that outgrows bbolt's map must remap it, and that waits for
// every read transaction to end, a backup's among them. bbolt maps a
// database of a gigabyte or more in 1 GiB steps, so a long backup of a
// big, growing database could hold the committer up; such a database
// gets twice its size reserved at start (address space, not memory: pages
// are read in when touched), so it must double while gearsched runs
// before a commit remaps. bbolt then grows the file in 16 MiB steps, a
// trifle at that size. A smaller database, whose backup takes a second
// or so, maps as it grows, and so does any where the address space is
// limited (ulimit -v, 32-bit platforms).
func mmapSize(size int64) int {
	const big = 1 << 30
	var lim syscall.Rlimit
	switch {
	case size < big || strconv.IntSize < 64:
		return 0
	case syscall.Getrlimit(syscall.RLIMIT_AS, &lim) != nil || lim.Cur < 4*uint64(size): // RLIM_INFINITY is all ones
		return 0
	}
	return int(2 * size)
}

// ErrClosed is returned by writes made after Close.
var ErrClosed = errors.New("store: closed")

// Options tunes Open.
type Options struct {
	// Logger receives failures of writes nobody waits for (deletes), and
	// the damaged records that reads skip.
	Logger *slog.Logger
	// NoSync skips fsync; for benchmarks and tests of non-durable paths only.
	NoSync bool
	// MaxRuns bounds the run records kept in all (see Run); default
	// DefaultMaxRuns.
	MaxRuns int
	// BeforeCommit, when set, runs inside every write transaction of the
	// committer before the queued writes are applied; an error fails the
	// transaction. Tests use it to hold a commit while other goroutines
	// act, or to make one fail.
	BeforeCommit func() error
	// BeforeSync, when set, runs once the queued writes are applied,
	// before they are journaled and synced: none is acknowledged yet. An
	// error fails the transaction as a failed write to the disk would.
	BeforeSync func() error
	// VerifyLimit is the largest file Open checks in full, as Verify does,
	// before serving it; 0 means DefaultVerifyLimit, a negative value
	// never. Larger files get the cheap checks only (see Open).
	VerifyLimit int64
	// CheckpointInterval is how long the committer applies journaled
	// groups to one bbolt transaction before it commits it (see
	// journal.go); 0 means DefaultCheckpointInterval. Tests set it long
	// to keep acknowledged writes in the journal alone.
	CheckpointInterval time.Duration
	// CheckpointPages bounds the pages the open transaction may have
	// changed, held in memory until the checkpoint; 0 means
	// DefaultCheckpointPages.
	CheckpointPages int
}

// DefaultVerifyLimit is the largest file Open checks in full by default:
// 32 MiB, about 80,000 pending jobs, which takes about 0.35 s (measured:
// 82 MiB in 0.9 s). The start-up of a common deployment pays that little,
// while a database of millions of pending jobs still starts in
// milliseconds, with the cheap checks, and reads that survive damage.
const DefaultVerifyLimit = 32 << 20

// Store is an open database. Its methods are safe for concurrent use.
type Store struct {
	db         *bolt.DB
	log        *slog.Logger
	before     func() error // Options.BeforeCommit
	beforeSync func() error // Options.BeforeSync
	maxRuns    int

	counts *counts
	stats  *commitStats

	// The committer's own (see journal.go): the journal, the write
	// transaction kept open between checkpoints, and whether that
	// transaction must first be given the journal's records (after it was
	// rolled back).
	jr              *journal
	tx              *bolt.Tx
	txStart         time.Time
	needReplay      bool
	checkpointGap   time.Duration // Options.CheckpointInterval
	checkpointPages int           // Options.CheckpointPages

	damageMu sync.Mutex
	reported map[string]bool // damaged records already logged, by bucket NUL key
	badDue   map[string]bool // due-index keys whose record is damaged

	mu      sync.Mutex
	cur     *batch // batch that writes queued now will join
	ops     []op
	closed  bool
	wake    chan struct{}
	stopped chan struct{}
}

// Open opens or creates the database at path and starts its committer.
//
// Before bbolt maps the file, Open checks what would make bbolt crash the
// process: a valid meta page, and a file as long as the meta page says
// (a truncated file faults when bbolt reads past its end). A file up to
// Options.VerifyLimit is then checked in full: every page and record, read
// without bbolt (see Verify), then bbolt's own Tx.Check. A damaged page or
// a failed check opens nothing: the error, wrapping ErrDamaged, tells the
// operator to run `gearsched check` and `gearsched salvage`. Damaged
// records on sound pages are logged and skipped by every read, so one bad
// record does not keep every other job from running; a record that fails
// its seal is never read as another. A database another process has open
// gives an *InUseError.
func Open(path string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f, err := lockFile(path, true)
	if err != nil {
		return nil, err
	}
	verified, err := checkOnOpen(path, f, opts.VerifyLimit, log)
	if err != nil {
		f.Close()
		return nil, err
	}
	db, err := openBolt(path, f, opts.NoSync)
	if err != nil {
		return nil, err
	}
	jr, err := openJournal(path, opts.NoSync)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{
		db:              db,
		jr:              jr,
		log:             log,
		before:          opts.BeforeCommit,
		beforeSync:      opts.BeforeSync,
		maxRuns:         cmp.Or(opts.MaxRuns, DefaultMaxRuns),
		checkpointGap:   cmp.Or(opts.CheckpointInterval, DefaultCheckpointInterval),
		checkpointPages: cmp.Or(opts.CheckpointPages, DefaultCheckpointPages),
		counts:          new(counts),
		stats:           newCommitStats(),
		reported:        map[string]bool{},
		badDue:          map[string]bool{},
		cur:             newBatch(),
		wake:            make(chan struct{}, 1),
		stopped:         make(chan struct{}),
	}
	if err := s.initialise(verified); err != nil {
		jr.close()
		db.Close()
		return nil, fmt.Errorf("store: initialise %s: %w", path, err)
	}
	go s.commitLoop()
	return s, nil
}

// recoverJournal applies what the journal holds (the groups acknowledged
// since the last checkpoint before a crash) and starts it over.
func (s *Store) recoverJournal() error {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) (err error) {
		n, err = s.jr.replay(tx)
		return err
	})
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Info("store: applied the journal of acknowledged writes", "db", s.db.Path(), "records", n)
	}
	return s.jr.restart()
}

// openBolt has bbolt open the locked file f. bbolt reads the meta and
// freelist pages as it opens; a fault there is a panic on this goroutine
// for the while, recovered into an error.
func openBolt(path string, f *os.File, noSync bool) (db *bolt.DB, err error) {
	var size int64
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	err = protect(func() error {
		db, err = bolt.Open(path, 0o600, &bolt.Options{
			Timeout: lockWait,
			NoSync:  noSync,
			// The freelist is written with each commit (the default) so
			// that opening a database with millions of pending jobs reads
			// one page instead of scanning the whole file to rebuild it.
			FreelistType:    bolt.FreelistMapType,
			InitialMmapSize: mmapSize(size),
			// The file checkOnOpen locked and checked; bbolt locks it
			// again (the lock is the open file's) and closes it.
			OpenFile: func(string, int, os.FileMode) (*os.File, error) { return f, nil },
		})
		return err
	})
	if err != nil {
		// bbolt closed the file on an error, not on a panic, after which
		// its mapping still holds the open file, and so the lock: unlock
		// it explicitly. A second Close is harmless.
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return db, nil
}

// initialise creates the buckets, runs bbolt's check when the pages were
// verified, and loads the counts.
func (s *Store) initialise(verified bool) error {
	return protect(func() error {
		err := s.db.Update(func(tx *bolt.Tx) error {
			for _, b := range allBuckets {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := s.recoverJournal(); err != nil {
			return err
		}
		if verified {
			var damage []Damage
			s.db.View(func(tx *bolt.Tx) error {
				for err := range tx.Check() {
					damage = append(damage, Damage{Why: "bbolt check: " + err.Error()})
				}
				return nil
			})
			if len(damage) > 0 {
				return damagedError(s.db.Path(), damage)
			}
		}
		return s.db.View(func(tx *bolt.Tx) error { return s.counts.load(tx, s.damaged) })
	})
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
	jerr := s.jr.close()
	if err := s.db.Close(); err != nil {
		return err
	}
	return jerr
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
func countCommit(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
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
	err := s.view(func(tx *bolt.Tx) error {
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
