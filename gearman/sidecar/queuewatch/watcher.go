package queuewatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gearsched/gearsched/gearman/sidecar"
	"github.com/gearsched/gearsched/store"
)

// Pacing defaults (Config overrides them, for tests).
const (
	// DefaultPoll is how often the database is asked for new rows.
	DefaultPoll = 250 * time.Millisecond
	// costFactor paces full passes: the next one starts costFactor times
	// the last one's duration after it ends, so passes take at most about
	// 1/costFactor of the time.
	costFactor = 50
	// quickFactor paces the passes brought forward (after the upstream
	// reconnected, after the database recovered, when SQLite's poll lost
	// track of new rows): at least quickFactor times the last pass's
	// duration after it, so that even an upstream that reconnects every
	// few seconds keeps the passes under 1/quickFactor of the time.
	quickFactor = 20
	// minFull and maxFull are the shortest and longest gaps between full
	// passes; polls see new rows between them.
	minFull = 10 * time.Second
	maxFull = 5 * time.Minute
	// minHorizon is the least a scan looks ahead; it looks three gaps
	// between full passes ahead, so a row is registered at least two gaps
	// before its time.
	minHorizon = time.Minute
	// DefaultMaxKeys bounds the triggers remembered (see tracker).
	DefaultMaxKeys = 100_000
	// flushAt is the batch of triggers stored in one commit.
	flushAt = 1000
	// Backoff of a database that fails, and how often a failure that
	// lasts is logged again.
	minRetry   = time.Second
	maxRetry   = 30 * time.Second
	logAgainIn = time.Minute
)

// TriggerStore stores trigger jobs create-if-absent by (upstream,
// function, second), in the committer's transaction: *store.Store.
type TriggerStore interface {
	PutTriggers(triggers []*store.Job) (created int, err error)
}

// Config configures a Watcher.
type Config struct {
	Spec  Spec
	Store TriggerStore
	// NextID allocates a trigger's id and handle: the sidecar's
	// server.Handles.Next.
	NextID func() (uint64, string, error)
	// Wake is told the earliest due time (unix ns) of triggers just
	// stored, so the scheduler does not sleep past it.
	Wake func(due int64)
	// Payload is the trigger jobs' data (--trigger-payload).
	Payload []byte
	Logger  *slog.Logger
	// Now returns the current time; default time.Now.
	Now func() time.Time
	// Poll, MinFull and MaxKeys override DefaultPoll, the shortest gap
	// between full passes and DefaultMaxKeys.
	Poll    time.Duration
	MinFull time.Duration
	MaxKeys int
}

// Watcher reads one upstream's persistent queue and stores a trigger job
// for each (function, second) that has jobs with a time. Run it with Run.
type Watcher struct {
	cfg Config
	sp  Spec
	log *slog.Logger
	// upAgain is signalled when the upstream reconnects; capacity 1.
	upAgain chan struct{}

	mu sync.Mutex
	st Stats
}

// Stats is what `show queues` says about a watched queue.
type Stats struct {
	Rows     int   // rows with a time at the last full pass
	Next     int64 // the earliest future when_to_run seen (unix s), 0 if none
	Triggers uint64
	LastErr  string // the last read error, "" once a read succeeded again
}

// New returns a watcher for cfg.Spec.
func New(cfg Config) (*Watcher, error) {
	if cfg.Store == nil || cfg.NextID == nil {
		return nil, errors.New("queuewatch: a Watcher needs a Store and NextID")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Wake == nil {
		cfg.Wake = func(int64) {}
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.MinFull <= 0 {
		cfg.MinFull = minFull
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{cfg: cfg, sp: cfg.Spec, upAgain: make(chan struct{}, 1),
		log: log.With("upstream", cfg.Spec.Upstream, "queue", cfg.Spec.Location, "table", cfg.Spec.Table)}, nil
}

// Spec returns the watched queue.
func (w *Watcher) Spec() Spec { return w.sp }

// UpstreamUp tells the watcher that upstream addr (re)connected: gearmand
// may have restarted and replayed rows whose time passed meanwhile, which
// nothing wakes. The next pass wakes them. It never blocks.
func (w *Watcher) UpstreamUp(addr string) {
	if addr != w.sp.Upstream {
		return
	}
	select {
	case w.upAgain <- struct{}{}:
	default:
	}
}

// Stats returns the watcher's counters.
func (w *Watcher) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st
}

// AppendRow appends the `show queues` row: upstream, backend, table, rows
// with a time, next time (RFC 3339 UTC, "-" if none), triggers stored,
// last error ("-" if none).
func (w *Watcher) AppendRow(b []byte) []byte {
	st := w.Stats()
	next, lastErr := "-", "-"
	if st.Next > 0 {
		next = time.Unix(st.Next, 0).UTC().Format(time.RFC3339)
	}
	if st.LastErr != "" {
		lastErr = strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, st.LastErr)
	}
	b = append(b, w.sp.Upstream...)
	for _, f := range []string{w.sp.Backend, w.sp.Table, strconv.Itoa(st.Rows), next, strconv.FormatUint(st.Triggers, 10), lastErr} {
		b = append(b, '\t')
		b = append(b, f...)
	}
	return append(b, '\n')
}

// pacer spaces full passes by their cost.
type pacer struct {
	minGap time.Duration
	// gap is the normal wait after a pass, cost its duration, end when it
	// ended (zero before the first).
	gap, cost time.Duration
	end       time.Time
}

// next is when the next full pass may start; early for a pass brought
// forward.
func (p *pacer) next(early bool) time.Time {
	if p.end.IsZero() {
		return time.Time{}
	}
	if early {
		return p.end.Add(min(p.gap, quickFactor*p.cost))
	}
	return p.end.Add(p.gap)
}

// done records a pass that ran from start to end.
func (p *pacer) done(start, end time.Time) {
	p.cost, p.end = end.Sub(start), end
	p.gap = min(max(p.cost*costFactor, p.minGap), maxFull)
}

// Run watches the queue until ctx is done. A database that fails is
// logged, then logged again at most every logAgainIn while it keeps
// failing, and retried with backoff; it never stops the caller.
//
// Full passes are paced (pacer): a reconnection of the upstream, a
// recovery of the database or a poll that lost track of new rows brings
// the next one forward, but only to quickFactor times the last one's
// cost, so that however often those happen the passes cannot take the
// watcher's CPU.
func (w *Watcher) Run(ctx context.Context) {
	var src source
	defer func() {
		if src != nil {
			src.close()
		}
	}()
	tr := newTracker(w.cfg.MaxKeys)
	p := pacer{minGap: w.cfg.MinFull, gap: w.cfg.MinFull}
	// early is set when a full pass should come before its normal time
	// without rows whose time passed being in question (tr.first).
	early := false
	var down downLog
	retry := minRetry
	for {
		var err error
		if src == nil {
			src, err = open(w.sp)
		}
		select {
		case <-w.upAgain:
			tr.reset()
		default:
		}
		if err == nil {
			if !time.Now().Before(p.next(tr.first || early)) {
				start := time.Now()
				err = w.fullPass(ctx, src, tr, p.gap)
				if err == nil {
					p.done(start, time.Now())
					early = false
				}
			} else {
				var ok bool
				ok, err = w.scanNew(ctx, src, tr, p.gap)
				early = early || (err == nil && !ok)
			}
		}
		if ctx.Err() != nil {
			return
		}
		wait := w.cfg.Poll
		if err != nil {
			down.fail(w.log, err, retry)
			w.setErr(err)
			// Whatever happened while the queue could not be read (jobs
			// whose time passed, a restored file) is looked at afresh.
			tr.reset()
			if src != nil {
				src.close()
				src = nil
			}
			wait, retry = retry, min(retry*2, maxRetry)
		} else {
			if down.recover(w.log) {
				w.setErr(nil)
			}
			retry = minRetry
			// A paced read may come due before the next poll: wait for
			// it, not for the poll after it (once past, any poll reads).
			if d := time.Until(src.readAt()); d > 0 {
				wait = min(wait, d)
			}
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.upAgain:
			t.Stop()
			tr.reset()
		case <-t.C:
		}
	}
}

// horizon is the last second a scan at now registers.
func horizon(now time.Time, gap time.Duration) int64 {
	return now.Add(max(minHorizon, 3*gap)).Unix()
}

// fullPass reads every row with a time and registers what is due within
// the horizon; on success every second up to its start is handled.
func (w *Watcher) fullPass(ctx context.Context, src source, tr *tracker, gap time.Duration) error {
	now := w.cfg.Now()
	t, err := w.scan(tr, now, gap, func(b bounds, fn func(Row)) (tally, error) { return src.pass(ctx, b, fn) })
	if err != nil {
		return err
	}
	tr.passDone(now.Unix())
	w.mu.Lock()
	w.st.Rows, w.st.Next = t.rows, t.next
	w.mu.Unlock()
	return nil
}

// scanNew registers the rows added since the last scan, where the backend
// can tell them; it reports false when it cannot now, and a full pass is
// needed to see them.
func (w *Watcher) scanNew(ctx context.Context, src source, tr *tracker, gap time.Duration) (bool, error) {
	now := w.cfg.Now()
	ok := true
	t, err := w.scan(tr, now, gap, func(b bounds, fn func(Row)) (tally, error) {
		var t tally
		var err error
		ok, t, err = src.newRows(ctx, b, fn)
		return t, err
	})
	if err != nil || !ok {
		return ok, err
	}
	sec := now.Unix()
	w.mu.Lock()
	if t.next > 0 && (w.st.Next <= sec || t.next < w.st.Next) {
		w.st.Next = t.next
	}
	w.mu.Unlock()
	return true, nil
}

// scan runs read, registering each row it yields and storing the triggers
// in batches; it returns read's tally.
func (w *Watcher) scan(tr *tracker, now time.Time, gap time.Duration, read func(bounds, func(Row)) (tally, error)) (tally, error) {
	sec, hz := now.Unix(), horizon(now, gap)
	var flushErr error
	t, err := read(bounds{now: sec, low: tr.low(), horizon: hz}, func(r Row) {
		tr.see(r, sec, hz)
		if tr.pending() >= flushAt && flushErr == nil {
			flushErr = w.flush(tr)
		}
	})
	if err == nil {
		err = flushErr
	}
	if err == nil {
		err = w.flush(tr)
	}
	if err != nil {
		w.forgetBatch(tr)
		return tally{}, err
	}
	w.overflowed(tr)
	return t, nil
}

// forgetBatch drops a batch that was not stored, so a later scan
// registers it again.
func (w *Watcher) forgetBatch(tr *tracker) {
	keys, _ := tr.take()
	tr.forget(keys)
}

// overflowed logs rows left for later because the tracker was full.
func (w *Watcher) overflowed(tr *tracker) {
	if tr.overflow > 0 {
		w.log.Warn("more distinct (function, second) pairs ahead than the watcher keeps; the rest are registered as these pass",
			"skipped_rows", tr.overflow, "max_keys", tr.maxKeys)
		tr.overflow = 0
	}
}

// flush stores the batch as trigger jobs pinned to the upstream.
func (w *Watcher) flush(tr *tracker) error {
	if tr.pending() == 0 {
		return nil
	}
	keys, watches := tr.take()
	jobs := make([]*store.Job, 0, len(keys))
	due := int64(-1)
	for i, k := range keys {
		id, handle, err := w.cfg.NextID()
		if err != nil {
			tr.forget(keys)
			return fmt.Errorf("queuewatch: allocating a trigger's handle: %w", err)
		}
		j := sidecar.NewTrigger(id, handle, w.sp.Upstream, k.function, k.when, w.cfg.Payload, watches[i])
		if due < 0 || j.Due < due {
			due = j.Due
		}
		jobs = append(jobs, j)
	}
	n, err := w.cfg.Store.PutTriggers(jobs)
	if err != nil {
		tr.forget(keys)
		return fmt.Errorf("queuewatch: storing %d triggers: %w", len(jobs), err)
	}
	w.mu.Lock()
	w.st.Triggers += uint64(n)
	w.mu.Unlock()
	if n > 0 {
		w.log.Debug("triggers stored", "created", n, "joined", len(jobs)-n)
		w.cfg.Wake(due)
	}
	return nil
}

func (w *Watcher) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.st.LastErr = ""
	if err != nil {
		w.st.LastErr = err.Error()
	}
}

// downLog logs a failing queue once, then at most every logAgainIn, then
// its recovery.
type downLog struct {
	since, logged time.Time
	failures      int
}

func (d *downLog) fail(log *slog.Logger, err error, retry time.Duration) {
	now := time.Now()
	d.failures++
	switch {
	case d.since.IsZero():
		d.since, d.logged = now, now
		log.Warn("cannot read gearmand's queue; retrying", "err", err, "retry_in", retry)
	case now.Sub(d.logged) >= logAgainIn:
		d.logged = now
		log.Warn("still cannot read gearmand's queue", "err", err, "failures", d.failures, "for", now.Sub(d.since).Round(time.Second))
	}
}

// recover reports whether the queue had been failing, and logs its
// return.
func (d *downLog) recover(log *slog.Logger) bool {
	if d.since.IsZero() {
		return false
	}
	log.Info("reading gearmand's queue again", "after", time.Since(d.since).Round(time.Millisecond), "failures", d.failures)
	*d = downLog{}
	return true
}
