package sidecar

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/scheduler"
)

// ErrNoUpstream is the error of a submission no upstream server can take
// now: all are down, or the one it is pinned to is.
var ErrNoUpstream = errors.New("sidecar: no upstream server reachable")

// UpstreamConfig configures an Upstream.
type UpstreamConfig struct {
	// Addrs are the job servers, "host:port" each. Required.
	Addrs []string
	// Logger receives connection state changes; nil discards them.
	Logger *slog.Logger
	// Timeout bounds every dial and every request; default 5 s.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts, which doubles after each failure; default 100 ms and 2 s, so
	// a server that comes back is used again within 2 s.
	MinBackoff, MaxBackoff time.Duration
	// OnUp is called (from Run's goroutine) when a server becomes
	// reachable, so held work can drain at once; at start-up once, with
	// an empty address, after every server was dialled.
	OnUp func(addr string)
	// Dial connects to a server; default gearman.Dial (plain TCP). A
	// sidecar whose upstreams speak TLS dials with gearman.DialTLS.
	Dial Dialer
}

// Dialer connects a Gearman client to a server at addr within ctx.
type Dialer func(ctx context.Context, addr string) (*gearman.Client, error)

// UpstreamJob is one background submission to an upstream server, and its
// outcome once Submit returns.
type UpstreamJob struct {
	Type     gearman.Type // gearman.SubmitJobBg, gearman.SubmitJobHighBg, gearman.SubmitJobLowBg or gearman.SubmitJobEpoch
	Function string
	Unique   string
	When     int64 // gearman.SubmitJobEpoch's time, unix seconds
	Data     []byte
	// Pin sends the job to this server only; empty chooses one by hash.
	Pin string

	Server string // the server that answered
	Handle string // its handle from JOB_CREATED
	Err    error  // nil once JOB_CREATED came back
}

// UpstreamStats are one server's counters.
type UpstreamStats struct {
	Addr      string
	Up        bool
	Submitted uint64 // jobs acknowledged with JOB_CREATED
	Refused   uint64 // submissions answered with ERROR
	Failures  uint64 // connections lost or timed out
}

// Upstream is the sidecar's connection set to its job servers: one client
// connection per server, reconnected with capped exponential backoff.
// Requests on a connection are serialised; a batch of submissions is
// pipelined (one write, then the replies in order). Safe for concurrent
// use.
type Upstream struct {
	cfg   UpstreamConfig
	log   *slog.Logger
	peers []*peer
	kick  chan struct{}
}

// peer is one upstream server.
type peer struct {
	addr string
	seed uint64 // the address's hash, for rendezvous hashing
	log  *slog.Logger
	up   atomic.Bool

	mu      sync.Mutex      // one request at a time on cl
	cl      *gearman.Client // nil while down
	backoff backoff
	retryAt time.Time

	submitted, refused, failures atomic.Uint64
}

// NewUpstream returns the server set; nothing is dialled until Run.
func NewUpstream(cfg UpstreamConfig) (*Upstream, error) {
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("sidecar: no upstream servers")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Dial == nil {
		cfg.Dial = gearman.Dial
	}
	cfg.MinBackoff, cfg.MaxBackoff = backoffLimits(cfg.MinBackoff, cfg.MaxBackoff)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u := &Upstream{cfg: cfg, log: log, kick: make(chan struct{}, 1)}
	seen := map[string]bool{}
	for _, a := range cfg.Addrs {
		if seen[a] {
			return nil, fmt.Errorf("sidecar: upstream %s listed twice", a)
		}
		seen[a] = true
		h := fnv.New64a()
		h.Write([]byte(a))
		u.peers = append(u.peers, &peer{addr: a, seed: h.Sum64(), log: log.With("upstream", a),
			backoff: backoff{min: cfg.MinBackoff, max: cfg.MaxBackoff}})
	}
	return u, nil
}

// Addrs returns the servers in configuration order.
func (u *Upstream) Addrs() []string {
	out := make([]string, len(u.peers))
	for i, p := range u.peers {
		out[i] = p.addr
	}
	return out
}

// pingInterval is how often an idle connection is checked with ECHO, so a
// server that went away is noticed before work for it is due.
const pingInterval = 5 * time.Second

// Run keeps the connections up until ctx is done: it dials every server at
// once, redials each lost one when its backoff expires, and pings the
// others.
func (u *Upstream) Run(ctx context.Context) {
	tick := time.NewTicker(u.cfg.MinBackoff)
	defer tick.Stop()
	// Dial every server before anything is released, so that work held
	// at start-up is spread over all of them rather than sent to
	// whichever answered first.
	var wg sync.WaitGroup
	var anyUp atomic.Bool
	for _, p := range u.peers {
		wg.Go(func() {
			if u.connect(ctx, p) {
				anyUp.Store(true)
			}
		})
	}
	wg.Wait()
	if anyUp.Load() && u.cfg.OnUp != nil {
		u.cfg.OnUp("")
	}
	lastPing := time.Now()
	for {
		ping := time.Since(lastPing) >= pingInterval
		if ping {
			lastPing = time.Now()
		}
		for _, p := range u.peers {
			switch {
			case !p.up.Load():
				if u.connect(ctx, p) && u.cfg.OnUp != nil {
					u.cfg.OnUp(p.addr)
				}
			case ping:
				u.ping(ctx, p)
			}
		}
		select {
		case <-ctx.Done():
			for _, p := range u.peers {
				p.mu.Lock()
				p.drop()
				p.mu.Unlock()
			}
			return
		case <-tick.C:
		case <-u.kick:
		}
	}
}

// connect dials p if its backoff has expired; it reports whether p came up.
func (u *Upstream) connect(ctx context.Context, p *peer) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cl != nil || time.Now().Before(p.retryAt) {
		return false
	}
	dctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
	cl, err := u.cfg.Dial(dctx, p.addr)
	cancel()
	if err != nil {
		wait := p.backoff.fail()
		p.retryAt = time.Now().Add(wait)
		if p.backoff.warn(time.Now()) {
			p.log.Warn("upstream unreachable", "err", err, "retry_in", wait)
		}
		return false
	}
	// The backoff is reset by the first request that succeeds, not here:
	// a port that accepts and then closes must not be redialled in a loop.
	p.cl = cl
	p.up.Store(true)
	p.log.Info("upstream connected")
	return true
}

// ping checks p's connection with ECHO_REQ; a failure takes it down.
func (u *Upstream) ping(ctx context.Context, p *peer) {
	u.do(ctx, p, func(cl *gearman.Client) error {
		if err := cl.Send(gearman.EchoReq, []byte("gearsched")); err != nil {
			return err
		}
		pk, err := cl.Recv()
		if err == nil && pk.Type != gearman.EchoRes {
			err = fmt.Errorf("sidecar: %s in reply to ECHO_REQ", pk.Type)
		}
		return err
	})
}

// drop closes p's connection after a failure; called with p.mu held.
func (p *peer) drop() {
	if p.cl != nil {
		p.cl.Close()
		p.cl = nil
	}
	p.up.Store(false)
}

// fail records a lost connection; called with p.mu held.
func (u *Upstream) fail(p *peer, err error) {
	p.failures.Add(1)
	p.log.Warn("upstream connection lost", "err", err)
	p.drop()
	p.retryAt = time.Now().Add(p.backoff.fail())
	select {
	case u.kick <- struct{}{}:
	default:
	}
}

// peerFor chooses a job's server: the pinned one, else the reachable one
// with the highest rendezvous hash of (server, function, unique). The
// choice is stable while the set of reachable servers is, and when the
// chosen one fails only its jobs move.
func (u *Upstream) peerFor(j *UpstreamJob) *peer {
	key := fnv.New64a()
	key.Write([]byte(j.Function))
	key.Write([]byte{0})
	key.Write([]byte(j.Unique))
	k := key.Sum64()
	var best *peer
	var bestScore uint64
	for _, p := range u.peers {
		if j.Pin != "" {
			if p.addr == j.Pin && p.up.Load() {
				return p
			}
			continue
		}
		if !p.up.Load() {
			continue
		}
		if score := mix64(p.seed ^ k); best == nil || score > bestScore {
			best, bestScore = p, score
		}
	}
	return best
}

// mix64 is MurmurHash3's 64-bit finaliser. FNV-1a alone mixes its last
// bytes into the high bits so weakly that, for a given pair of servers,
// one of them won almost every unique.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// Submit submits jobs, grouped by server and pipelined per server, and
// fills in each job's Server, Handle and Err. A job whose server fails
// mid-batch may or may not have been queued there; resubmitting it with
// the same unique coalesces with the copy if it is still queued.
func (u *Upstream) Submit(ctx context.Context, jobs []*UpstreamJob) {
	groups := map[*peer][]*UpstreamJob{}
	for _, j := range jobs {
		p := u.peerFor(j)
		if p == nil {
			j.Err = ErrNoUpstream
			continue
		}
		groups[p] = append(groups[p], j)
	}
	var wg sync.WaitGroup
	for p, group := range groups {
		wg.Go(func() { u.submitTo(ctx, p, group) })
	}
	wg.Wait()
}

func (u *Upstream) submitTo(ctx context.Context, p *peer, jobs []*UpstreamJob) {
	err := u.do(ctx, p, func(cl *gearman.Client) error {
		for _, j := range jobs {
			j.Server = p.addr
			if j.Type == gearman.SubmitJobEpoch {
				cl.Queue(j.Type, []byte(j.Function), []byte(j.Unique), strconv.AppendInt(nil, j.When, 10), j.Data)
			} else {
				cl.Queue(j.Type, []byte(j.Function), []byte(j.Unique), j.Data)
			}
		}
		if err := cl.Flush(); err != nil {
			return err
		}
		for i, j := range jobs {
			if i > 0 && i%100 == 0 {
				// The timeout bounds a stall, not the whole batch: a
				// gearmand with a persistent queue may take a while for
				// 1,000 jobs.
				cl.SetDeadline(time.Now().Add(u.cfg.Timeout))
			}
			pk, err := cl.Recv()
			if err != nil {
				return err
			}
			switch pk.Type {
			case gearman.JobCreated:
				j.Handle = string(pk.Args[0])
				p.submitted.Add(1)
			case gearman.Error:
				j.Err = &gearman.ServerError{Code: string(pk.Args[0]), Text: string(pk.Args[1])}
				p.refused.Add(1)
			default:
				return fmt.Errorf("sidecar: %s in reply to %s", pk.Type, j.Type)
			}
		}
		return nil
	})
	if err != nil {
		for _, j := range jobs {
			if j.Handle == "" && j.Err == nil {
				j.Err = err
			}
		}
	}
}

// do runs fn on p's connection under the request timeout. An error that
// may leave the stream out of step (I/O, a timeout, a reply of the wrong
// type) takes p down, since the next reply read could answer another
// request; an ERROR reply, or a request the client refused before writing
// it (gearman.ErrNotSent), leaves the connection in step, and up.
func (u *Upstream) do(ctx context.Context, p *peer, fn func(*gearman.Client) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cl == nil {
		return fmt.Errorf("%w: %s is down", ErrNoUpstream, p.addr)
	}
	// A caller that gave up while waiting for the connection must not
	// start I/O with a past deadline: its timeout would take a healthy
	// connection down.
	if err := ctx.Err(); err != nil {
		return err
	}
	deadline := time.Now().Add(u.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	p.cl.SetDeadline(deadline)
	err := fn(p.cl)
	var se *gearman.ServerError
	switch {
	case err == nil || errors.As(err, &se):
		p.backoff.reset()
	case errors.Is(err, gearman.ErrNotSent):
		return fmt.Errorf("sidecar: upstream %s: %w", p.addr, err)
	default:
		u.fail(p, err)
		return fmt.Errorf("sidecar: upstream %s: %w", p.addr, err)
	}
	return err
}

func (u *Upstream) peerAt(addr string) *peer {
	for _, p := range u.peers {
		if p.addr == addr {
			return p
		}
	}
	return nil
}

// Status asks server addr for a job's status with GET_STATUS.
func (u *Upstream) Status(ctx context.Context, addr, handle string) (gearman.JobStatus, error) {
	p := u.peerAt(addr)
	if p == nil {
		return gearman.JobStatus{}, fmt.Errorf("sidecar: %s is not an upstream server", addr)
	}
	var st gearman.JobStatus
	err := u.do(ctx, p, func(cl *gearman.Client) (err error) {
		st, err = cl.Status(handle)
		return err
	})
	return st, err
}

// StatusUnique asks server addr, with GET_STATUS_UNIQUE, for the status of
// the job with that unique (1 to 63 bytes), whatever its function.
func (u *Upstream) StatusUnique(ctx context.Context, addr, unique string) (gearman.JobStatus, error) {
	p := u.peerAt(addr)
	if p == nil {
		return gearman.JobStatus{}, fmt.Errorf("sidecar: %s is not an upstream server", addr)
	}
	if unique == "" || len(unique) > scheduler.MaxUnique {
		// Refused before the request: gearmand would never answer it, and
		// the timeout would take the connection down.
		return gearman.JobStatus{}, fmt.Errorf("sidecar: no status by a unique of %d bytes", len(unique))
	}
	var st gearman.JobStatus
	err := u.do(ctx, p, func(cl *gearman.Client) (err error) {
		st, err = cl.StatusUnique(unique)
		return err
	})
	return st, err
}

// Cancel removes a queued job from server addr with the admin command
// `cancel job`. It reports false when the server no longer had it queued.
func (u *Upstream) Cancel(ctx context.Context, addr, handle string) (bool, error) {
	p := u.peerAt(addr)
	if p == nil {
		return false, fmt.Errorf("sidecar: %s is not an upstream server", addr)
	}
	var ok bool
	err := u.do(ctx, p, func(cl *gearman.Client) error {
		reply, err := cl.Admin("cancel job " + handle)
		ok = strings.HasPrefix(reply, "OK")
		return err
	})
	return ok, err
}

// Stats returns each server's counters, in configuration order.
func (u *Upstream) Stats() []UpstreamStats {
	out := make([]UpstreamStats, len(u.peers))
	for i, p := range u.peers {
		out[i] = UpstreamStats{Addr: p.addr, Up: p.up.Load(), Submitted: p.submitted.Load(),
			Refused: p.refused.Load(), Failures: p.failures.Load()}
	}
	return out
}
