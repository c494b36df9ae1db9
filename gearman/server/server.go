package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store"
)

// Version is the admin `version` command's answer when Config.Version is
// empty; the daemon sets Config.Version from its build info.
const Version = "0.1.0"

// Config configures a Server. Zero values mean gearmand's defaults.
type Config struct {
	// Store keeps background jobs durable. Required.
	Store Store
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Handles allocates job handles; by default the server makes its own
	// over Store with HandlePrefix. A sidecar shares its Handles with the
	// forwarder.
	Handles *Handles
	// HandlePrefix precedes ":<n>" in job handles when Handles is nil;
	// default "H:<hostname>".
	HandlePrefix string
	// JobRetries is how many attempts a job gets before it is failed
	// (gearmand -j); 0 means unlimited.
	JobRetries int
	// RoundRobin rotates a worker's functions after each grab (gearmand -R).
	RoundRobin bool
	// WorkerWakeup caps the sleeping workers woken per new job (gearmand
	// -w); 0 wakes all of them.
	WorkerWakeup int
	// Exceptions turns the `exceptions` option on for every connection.
	Exceptions bool
	// MaxPacketSize bounds a packet's payload; default DefaultMaxPacketSize.
	MaxPacketSize int
	// MaxConnections bounds the open connections; above it a new one gets
	// an ERROR and is closed. 0 means no bound.
	MaxConnections int
	// Version is what the admin `version` command reports after
	// "OK gearsched ": one word, no spaces. Default Version.
	Version string
	// TLS, when set, serves every connection over TLS with this
	// configuration (certificate, and client certificates to require):
	// the handshake runs in the connection's goroutine before anything
	// is read, and a peer that fails it is logged once and closed.
	TLS *tls.Config
	// LogLevel names the current log level for the admin `verbose` command.
	LogLevel func() string
	// Now returns the current time; default time.Now. Tests inject clocks.
	Now func() time.Time
	// Wake tells the scheduler that something due at the given time (unix
	// ns) was stored.
	Wake func(due int64)
	// SchedZone is the zone SUBMIT_JOB_SCHED fields are read in (the wire
	// carries none); it is recorded with each schedule. Default UTC.
	SchedZone *time.Location
	// SchedCronWeekdays reads SUBMIT_JOB_SCHED's day of week in cron
	// numbering (0 = Sunday, as appscode/g2's clients send) instead of
	// PROTOCOL's 0 = Monday.
	SchedCronWeekdays bool
	// Upstreams makes the server a sidecar's listener: it holds every
	// background and scheduled submission in the store until the sidecar's
	// forwarder has submitted it to an upstream server, and serves no
	// workers and no foreground jobs.
	Upstreams Upstreams
	// Passthrough (sidecar only) forwards a future SUBMIT_JOB_EPOCH to
	// upstream as SUBMIT_JOB_EPOCH at once and wakes it at its time with
	// a trigger job.
	Passthrough bool
}

// Upstreams is what a sidecar's listener asks of the servers its
// forwarder submits to.
type Upstreams interface {
	// Status reports a forwarded job's status as the upstream server that
	// took it sees it; ok is false when the handle was never forwarded.
	Status(ctx context.Context, handle string) (st gearman.JobStatus, ok bool, err error)
	// AppendRows appends one `show upstreams` row per upstream server.
	AppendRows(b []byte) []byte
}

// QueueLister is implemented by Upstreams that watch gearmand's persistent
// queues: it appends the `show queues` rows.
type QueueLister interface {
	AppendQueueRows(b []byte) []byte
}

// Server is a Gearman job server. Each connection is served by its own
// goroutine. The jobs in memory (queues, running jobs, workers) are owned
// by one mutex, as gearmand processes commands on a single thread; it is
// never held across disk or network I/O: what the store holds (pending
// jobs and schedules) is read and changed outside it.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    Store
	handles  *Handles
	schedLoc *time.Location
	handlers *[gearman.MaxType + 1]handler // the job server's or the sidecar's
	// committed stands for the write of every job read back from the
	// store.
	committed *store.Write

	mu       sync.Mutex
	funcs    map[string]*function
	jobs     map[string]*job // by handle
	conns    map[*conn]struct{}
	draining bool // shutting down: hand out no more jobs
	idle     chan struct{}

	// counters holds each function's counters by name, under mu; an
	// entry is never removed, so `drop function` does not reset them.
	counters map[string]*funcCounters
	// stats are the counts made without mu.
	stats *serverStats

	open atomic.Int64 // connections being served

	lnMu      sync.Mutex
	listeners []net.Listener
	wg        sync.WaitGroup // connection goroutines
	ctx       context.Context
	stop      context.CancelFunc
}

// New returns a server over cfg.Store and requeues the background
// jobs stored there, under their original handles and in submission order.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: Config.Store is required")
	}
	if cfg.JobRetries < -1 || cfg.JobRetries > 255 {
		return nil, fmt.Errorf("server: job retries %d out of range (-1 or 0 = unlimited, 1-255)", cfg.JobRetries)
	}
	if cfg.JobRetries < 0 {
		cfg.JobRetries = 0
	}
	if cfg.MaxPacketSize <= 0 {
		cfg.MaxPacketSize = gearman.DefaultMaxPacketSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Version == "" {
		cfg.Version = Version
	}
	if cfg.LogLevel == nil {
		cfg.LogLevel = func() string { return "INFO" }
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	handles := cfg.Handles
	if handles == nil {
		var err error
		if handles, err = NewHandles(cfg.Store, cfg.HandlePrefix); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:       cfg,
		log:       log,
		store:     cfg.Store,
		handles:   handles,
		schedLoc:  cfg.SchedZone,
		handlers:  &jobServerHandlers,
		committed: store.Committed(),
		funcs:     make(map[string]*function),
		counters:  make(map[string]*funcCounters),
		stats:     newServerStats(),
		jobs:      make(map[string]*job),
		conns:     make(map[*conn]struct{}),
		ctx:       ctx,
		stop:      cancel,
	}
	if cfg.Upstreams != nil {
		s.handlers = &sidecarHandlers
	}
	if s.schedLoc == nil {
		s.schedLoc = time.UTC
	}
	if err := s.restore(); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// restore requeues the stored background jobs that are ready to run. A
// job that was running when the server stopped is queued again: delivery
// is at least once. Jobs waiting for their due time stay in the store; only
// their number per function is loaded. A damaged job record is skipped
// and logged by the store (see store.Store.Jobs) rather than refused: one
// damaged job must not hold up all the others, and it is never run as
// something it is not.
func (s *Server) restore() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkMode(); err != nil {
		return err
	}
	n := 0
	err := s.store.Jobs(func(rec *store.Job) error {
		if int(rec.Priority) >= gearman.NumPriorities {
			return fmt.Errorf("server: stored job %d has priority %d", rec.ID, rec.Priority)
		}
		if s.cfg.Upstreams != nil {
			return fmt.Errorf("server: the database holds ready job %s from job-server mode; serve it without --upstream first", rec.Handle)
		}
		s.admit(rec)
		n++
		return nil
	})
	if err != nil {
		return fmt.Errorf("server: restore jobs: %w", err)
	}
	for _, fn := range s.store.Functions() {
		s.function(fn)
	}
	if n > 0 {
		s.log.Info("restored background jobs", "jobs", n)
	}
	return nil
}

// checkMode refuses a database whose pending jobs belong to sidecar mode
// (trigger and passthrough jobs, which a job server would hand to workers
// as ordinary jobs), then records the mode it is served in now. The other
// way round, restore refuses ready jobs.
func (s *Server) checkMode() error {
	mode := "server"
	if s.cfg.Upstreams != nil {
		mode = "sidecar"
	}
	prev, err := s.store.Mode()
	if err != nil {
		return fmt.Errorf("server: read the database's mode: %w", err)
	}
	if prev == "sidecar" && mode == "server" {
		_, pending, err := s.store.NextDue()
		if err != nil {
			return fmt.Errorf("server: read the due index: %w", err)
		}
		if pending {
			return errors.New("server: the database holds scheduled jobs from sidecar mode; serve it with --upstream")
		}
	}
	if prev == mode {
		return nil
	}
	return s.store.SetMode(mode)
}

// function returns the entry for name, creating it: a function is known
// from the first time anything names it.
func (s *Server) function(name string) *function {
	f := s.funcs[name]
	if f == nil {
		f = newFunction(name)
		f.count = s.counters[name]
		if f.count == nil {
			f.count = new(funcCounters)
			s.counters[name] = f.count
		}
		s.funcs[name] = f
	}
	return f
}

// Shutdown stops accepting connections, lets running jobs finish until ctx
// is done while handing out no new ones, then closes every connection and
// waits for their goroutines. Queued jobs stay in the store. It returns
// ctx.Err() if running jobs were cut short.
func (s *Server) Shutdown(ctx context.Context) error {
	s.lnMu.Lock()
	s.stop()
	for _, ln := range s.listeners {
		ln.Close()
	}
	s.lnMu.Unlock()

	s.mu.Lock()
	s.draining = true
	running := s.runningJobs()
	var idle chan struct{}
	if running > 0 {
		idle = make(chan struct{})
		s.idle = idle
	}
	s.mu.Unlock()

	var err error
	if idle != nil {
		s.log.Info("waiting for running jobs", "running", running)
		select {
		case <-idle:
		case <-ctx.Done():
			err = ctx.Err()
			s.log.Warn("shutdown timeout; running jobs will be requeued at the next start", "err", err)
		}
	}
	// Foreground clients of jobs that will not run now, or whose result
	// cannot reach them, are told the job failed rather than just seeing
	// the connection close. Background jobs stay stored and run after the
	// restart, so their clients are told nothing.
	s.mu.Lock()
	for _, j := range s.jobs {
		if j.timer != nil {
			j.timer.Stop()
		}
		if !j.bg {
			s.failListeners(j)
		}
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	flushBy := time.Now().Add(shutdownFlush)
	for _, c := range conns {
		c.out.flushBefore(flushBy)
		c.nc.Close()
	}
	s.wg.Wait()
	return err
}

// shutdownFlush bounds how long Shutdown tries to send what waits for the
// peers (the last replies, WORK_FAIL of jobs that will not run).
const shutdownFlush = time.Second

func (s *Server) runningJobs() int {
	n := 0
	for _, f := range s.funcs {
		n += f.running
	}
	return n
}

// jobEnded tells a draining Shutdown when the last running job is gone.
func (s *Server) jobEnded() {
	if s.idle != nil && s.runningJobs() == 0 {
		close(s.idle)
		s.idle = nil
	}
}
