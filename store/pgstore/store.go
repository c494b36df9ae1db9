// Package pgstore keeps a sidecar's state in PostgreSQL, so that several
// sidecars share one scheduler: pending jobs, schedules, the fire ledger,
// runs, trigger records and job ids live in one database, and each
// sidecar's scheduler claims what is due with SELECT … FOR UPDATE SKIP
// LOCKED (claim.go), so that no two sidecars fire the same item.
//
// It answers the same interfaces as the bbolt store (package store): the
// scheduler's Store, the forwarder's Ledger, the handles' IDSource and the
// schedules file's ScheduleStore, with store's types. The ownership rule
// of package scheduler holds with the database's row locks in place of
// the bbolt committer; its package doc says how.
//
// Where things are:
//   - store.go: Open, the pool, the clock check, Close.
//   - migrate.go and migrations/: the schema, versioned, applied at Open
//     under an advisory lock.
//   - pending.go: one-shot jobs (create-if-absent through keys.go), Cancel;
//     commit.go: clients' creates, group-committed.
//   - schedule.go: schedules, EditSchedules (the schedules file), pausing.
//   - claim.go: claims of due items, NextDue; listing.go: pages of what
//     is due, FindUnique.
//   - ledger.go: the forwarder's commit, the fire ledger, triggers;
//     runs.go: run records.
//   - ids.go: job ids from a sequence.
//   - notify.go: LISTEN/NOTIFY wake-ups between sidecars.
//   - counts.go: per-function counts, refreshed each second.
//   - sidecaronly.go: what only a job server asks, refused.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults of Options.
const (
	// DefaultMaxSkew is how far the sidecar's clock may be from the
	// database's at Open.
	DefaultMaxSkew = 2 * time.Second
	// defaultMaxConns is each sidecar's connections to the database:
	// the committers, a claim, lookups, the counts.
	defaultMaxConns = 12
	// minConns is the fewest connections a sidecar works with: the
	// committers, a claim, and one more its firing may need.
	minConns = committers + 2
	// opTimeout bounds one statement or transaction the store runs on
	// its own (not a claim, which its holder ends).
	opTimeout = 30 * time.Second
)

// Options configures Open.
type Options struct {
	Logger *slog.Logger
	// MaxSkew is how far the local clock may be from the database's at
	// Open before Open refuses; default DefaultMaxSkew.
	MaxSkew time.Duration
	// Now is the local clock; default time.Now.
	Now func() time.Time
}

// Store is a sidecar's state in one PostgreSQL database, which other
// sidecars may share. Safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	now  func() time.Time

	// writes tracks the goroutines completing id reservations; workers
	// the committers (commit.go). Close waits for both.
	writes  sync.WaitGroup
	workers sync.WaitGroup
	bg      sync.WaitGroup // refreshCounts
	counts  counts
	ops     chan createOp // to the committers; closed by Close
	closeMu sync.RWMutex  // held by senders on ops, taken by Close
	closed  bool
	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
}

// Open connects to the database at url (a postgres:// URL or key=value
// string), applies the migrations this binary carries, and checks that
// the local clock agrees with the database's within opts.MaxSkew: due
// times are compared on the database's clock, and a sidecar whose own
// clock is far off would log and plan by a different time.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxSkew <= 0 {
		opts.MaxSkew = DefaultMaxSkew
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	// pgxpool's default (4 on a small machine) would leave a claim
	// waiting behind the committers; the URL's pool_max_conns wins, down
	// to minConns: a claim holds a connection while its firing may need
	// another (an id block, a retried commit).
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	cfg.MaxConns = max(cfg.MaxConns, minConns)
	// A claim is a transaction left idle while its jobs go to gearmand.
	// If this host dies without closing its connections, PostgreSQL
	// keeps the claim's row locks until it notices the connection is
	// dead: by default after two hours of silence. Ask it to probe
	// after 10 s, so another sidecar can fire those rows within about
	// half a minute.
	for k, v := range map[string]string{"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"} {
		if _, set := cfg.ConnConfig.RuntimeParams[k]; !set {
			cfg.ConnConfig.RuntimeParams[k] = v
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Store{pool: pool, log: opts.Logger, now: opts.Now, ctx: sctx, cancel: cancel,
		ops: make(chan createOp, queueSize)}
	s.startCommitters()
	if err := s.migrate(ctx); err != nil {
		s.Close()
		if unreachable(err) {
			err = fmt.Errorf("%w: %w", ErrUnreachable, err)
		}
		return nil, err
	}
	if err := s.checkSkew(ctx, opts.MaxSkew); err != nil {
		s.Close()
		return nil, err
	}
	// The tables exist from here on.
	s.bg.Go(func() { s.refreshCounts(sctx) })
	return s, nil
}

// ErrUnreachable is Open's error when no connection to the database
// could be made: unlike the others, waiting may cure it.
var ErrUnreachable = errors.New("pgstore: PostgreSQL unreachable")

// unreachable reports whether err is a failure to reach the server at all,
// which waiting may cure, rather than the server's refusal (a wrong
// password, a missing database: pgconn wraps those in a ConnectError too).
func unreachable(err error) bool {
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	if !errors.As(err, &ce) {
		return false
	}
	if errors.As(err, &pe) {
		// Class 57P: the server is shutting down or starting up.
		return strings.HasPrefix(pe.Code, "57P")
	}
	return true
}

// ErrSkew is Open's refusal of a local clock too far from the database's.
var ErrSkew = errors.New("pgstore: the local clock is too far from the database's")

// checkSkew compares the local clock with the database's, allowing for the
// round trip.
func (s *Store) checkSkew(ctx context.Context, bound time.Duration) error {
	before := s.now()
	db, err := s.dbNow(ctx)
	if err != nil {
		return err
	}
	after := s.now()
	mid := before.Add(after.Sub(before) / 2)
	skew := time.Unix(0, db).Sub(mid)
	if skew < 0 {
		skew = -skew
	}
	if skew > bound+after.Sub(before)/2 {
		return fmt.Errorf("%w: %v apart, more than %v (synchronise both with NTP)", ErrSkew, skew.Round(time.Millisecond), bound)
	}
	return nil
}

// nowSQL is the database's current time in unix ns. clock_timestamp, not
// now(): now() is the transaction's start, and a claim must not see a time
// earlier than the one it reads by.
const nowSQL = `(extract(epoch from clock_timestamp()) * 1000000000)::bigint`

// dbNow returns the database's clock (unix ns).
func (s *Store) dbNow(ctx context.Context) (int64, error) {
	var ns int64
	if err := s.pool.QueryRow(ctx, `SELECT `+nowSQL).Scan(&ns); err != nil {
		return 0, fmt.Errorf("pgstore: reading the database's clock: %w", err)
	}
	return ns, nil
}

// pingTimeout bounds a readiness probe's wait for the database.
const pingTimeout = 2 * time.Second

// Ping reports whether the database answers, for readiness probes: a
// sidecar whose database is down holds nothing new and says so.
func (s *Store) Ping() error {
	ctx, cancel := context.WithTimeout(s.ctx, pingTimeout)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pgstore: the database does not answer: %w", err)
	}
	return nil
}

// Close commits the writes queued, waits for those under way, and closes
// the connections. Writes queued after Close fail with ErrClosed.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if !s.closed {
		s.closed = true
		close(s.ops)
	}
	s.closeMu.Unlock()
	s.workers.Wait()
	s.writes.Wait()
	s.cancel()
	s.bg.Wait()
	s.pool.Close()
	return nil
}

// opContext is the context of an operation the store runs on its own.
func (s *Store) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, opTimeout)
}
