package sidecar

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/gearman/server"
	"github.com/gearsched/gearsched/gearman/stats"
	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
)

// Forwarder defaults.
const (
	// DefaultLedgerRetention is how long the fire ledger remembers a
	// forwarded job (for GET_STATUS and the overlap policy).
	DefaultLedgerRetention = 7 * 24 * time.Hour
	// lateThreshold is the lateness from which a forwarded job is logged
	// and counted as late.
	lateThreshold = time.Second
	// refusedRetry is how long an item upstream refused waits before it
	// is offered again.
	refusedRetry = 5 * time.Second
)

// Ledger is what the forwarder keeps in the store: the record of what
// went upstream. *store.Store (one sidecar's bbolt file) and
// *pgstore.Store (several sidecars' PostgreSQL database) are ledgers.
type Ledger interface {
	// Forwarded commits one release on its own, outside any claim: the
	// forwarder's retry of a commit that failed.
	Forwarded(store.Forward) (store.ForwardResult, error)
	// FiredJob returns the ledger entry of job id, or nil.
	FiredJob(id uint64) (*store.Fired, error)
	// PruneFired deletes up to max entries recorded before before (unix
	// ns) and says how many it deleted.
	PruneFired(before int64, max int) (int, error)
}

// ForwarderConfig configures a Forwarder.
type ForwarderConfig struct {
	Store    Ledger
	Upstream *Upstream
	// Handles allocates the handles of occurrences and trigger jobs; the
	// sidecar's listener uses the same.
	Handles *server.Handles
	Logger  *slog.Logger
	// TriggerPayload is the data of trigger jobs; default empty.
	TriggerPayload []byte
	// LedgerRetention bounds the fire ledger's age; default
	// DefaultLedgerRetention.
	LedgerRetention time.Duration
	// Now returns the current time; default time.Now.
	Now func() time.Time
}

// Forwarder is the sidecar's scheduler.Sink: due jobs and occurrences are
// submitted to the upstream servers as background jobs. An item counts as
// fired only once JOB_CREATED came back and the fire ledger recorded it; until
// then it stays due and is offered again, so nothing is dropped while
// upstream is down and the backlog drains in due order when it returns.
//
// It also sends trigger jobs for the epoch jobs it passed through, and
// cancels a trigger once the epoch job behind it was taken.
type Forwarder struct {
	cfg     ForwarderConfig
	st      Ledger
	up      *Upstream
	handles *server.Handles
	log     *slog.Logger

	stats map[string]*forwardStats // by upstream address; fixed at creation
	// released and acked measure lateness (ns): due time to the commit
	// recording an item as fired, and to gearmand's JOB_CREATED.
	released, acked *stats.Histogram

	// unsaved is a release upstream acknowledged whose commit failed;
	// owned by the scheduler's goroutine (Release).
	unsaved *unsaved

	mu      sync.Mutex
	watches []*watch
	signal  chan struct{}
}

// forwardStats counts one upstream's forwarding.
type forwardStats struct {
	late      atomic.Uint64 // jobs forwarded lateThreshold or more after due
	maxLateMs atomic.Int64
	triggers  atomic.Uint64 // trigger jobs acknowledged
	cancelled atomic.Uint64 // triggers cancelled before a worker took them
	delivered atomic.Uint64 // triggers seen taken by a worker
}

// NewForwarder returns a forwarder: the scheduler's sink, and the
// Upstreams of the sidecar's listener (Config.Upstreams). Run it with Run.
func NewForwarder(cfg ForwarderConfig) (*Forwarder, error) {
	if cfg.Store == nil || cfg.Upstream == nil || cfg.Handles == nil {
		return nil, errors.New("sidecar: Forwarder needs a Store, an Upstream and Handles")
	}
	if cfg.LedgerRetention <= 0 {
		cfg.LedgerRetention = DefaultLedgerRetention
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Forwarder{cfg: cfg, st: cfg.Store, up: cfg.Upstream, handles: cfg.Handles, log: log,
		stats: map[string]*forwardStats{}, signal: make(chan struct{}, 1),
		released: stats.NewHistogram(stats.LatenessBounds), acked: stats.NewHistogram(stats.LatenessBounds)}
	for _, a := range cfg.Upstream.Addrs() {
		f.stats[a] = &forwardStats{}
	}
	return f, nil
}

// forwardItem is one due item on its way upstream.
type forwardItem struct {
	up     UpstreamJob
	job    *store.Job            // a pending job, or nil
	occ    *scheduler.Occurrence // an occurrence, or nil
	id     uint64
	handle string
	due    int64
	// trigger is the trigger job to store for a passthrough job,
	// allocated before submission so that nothing after JOB_CREATED can
	// fail but the commit.
	trigger *store.Job
}

// item is the id of the pending job or schedule the item fires, for its
// run record.
func (it *forwardItem) item() uint64 {
	if it.occ != nil {
		return it.occ.Schedule.ID
	}
	return it.id
}

// fireAt is when the item was due to run (unix ns): for an occurrence its
// time plus its schedule's jitter, which is a delay by design, not
// lateness.
func (it *forwardItem) fireAt() int64 {
	if it.occ != nil {
		return it.occ.At.Add(scheduler.JitterFor(it.occ.Schedule)).UnixNano()
	}
	return it.due
}

// refused reports whether an item failed on its own (gearmand answered
// ERROR, or the server it is pinned to is down) rather than with its
// connection: such an item is deferred so that it cannot hold up the
// items due after it.
func (it *forwardItem) refused() bool {
	var se *gearman.ServerError
	return errors.As(it.up.Err, &se) || (it.up.Pin != "" && errors.Is(it.up.Err, ErrNoUpstream))
}

// Release implements scheduler.Sink. Items gearmand refuses are deferred
// by refusedRetry; items that failed with their connection stay due and
// are offered again (Release fails only when nothing could be forwarded,
// so the scheduler backs off during an outage). The record is committed
// through claim, the one the items were read in, so that a store several
// sidecars share keeps them locked from that read to this commit; a nil
// claim commits on its own.
func (f *Forwarder) Release(ctx context.Context, claim store.Claim, jobs []*store.Job, occs []scheduler.Occurrence) error {
	if f.unsaved != nil {
		// The claim may hold the rows that record changes (its commit
		// failed, so they were due again and this read took them): give
		// it up first, or the record would wait for this goroutine's own
		// locks. The items are read again (errRecovered).
		if claim != nil {
			claim.Release()
		}
		return f.commitUnsaved()
	}
	items, err := f.items(jobs, occs)
	if err != nil {
		return err
	}
	ups := make([]*UpstreamJob, len(items))
	for i := range items {
		ups[i] = &items[i].up
	}
	f.up.Submit(ctx, ups)

	now := f.cfg.Now()
	var fw store.Forward
	var watches []*watch
	forwarded, refused, failed, late := 0, 0, 0, 0
	var firstErr error
	var maxLate time.Duration
	for i := range items {
		it := &items[i]
		if it.up.Err != nil {
			if firstErr == nil {
				firstErr = it.up.Err
			}
			if !it.refused() {
				failed++
				continue
			}
			refused++
			if it.job != nil {
				fw.Defer = append(fw.Defer, store.Deferral{ID: it.id, Due: now.Add(refusedRetry).UnixNano()})
			}
			continue
		}
		forwarded++
		f.acked.ObserveLateness(now, it.fireAt())
		if it.job != nil {
			fw.Done = append(fw.Done, it.id)
		}
		if it.job != nil && it.job.Kind == store.JobTrigger {
			f.stats[it.up.Server].triggers.Add(1)
			if len(it.job.Watch) > 0 {
				watches = append(watches, &watch{addr: it.up.Server, trigger: it.up.Handle,
					epochs: it.job.Watch, job: it.job, until: now.Add(watchFor)})
			}
		} else {
			fw.Ledger = append(fw.Ledger, store.Fired{ID: it.id, Upstream: it.up.Server,
				UpstreamHandle: it.up.Handle, Due: it.due, At: now.UnixNano()})
			fw.Runs = append(fw.Runs, store.Run{Item: it.item(), ID: it.id, Handle: it.handle, Function: it.up.Function,
				Due: it.fireAt(), Released: now.UnixNano(), Upstream: it.up.Server, UpstreamHandle: it.up.Handle})
		}
		if it.trigger != nil {
			it.trigger.Upstream = it.up.Server
			it.trigger.Watch = []string{it.up.Handle}
			fw.Triggers = append(fw.Triggers, it.trigger)
		}
		if d := f.countLate(it.up.Server, now, it.due); d > 0 {
			late++
			maxLate = max(maxLate, d)
		}
	}
	fw.Schedules = advanceSchedules(items, occs, now)
	if late > 0 {
		f.log.Warn("forwarded late", "jobs", late, "max_late", maxLate)
	}
	if refused > 0 {
		f.log.Warn("upstream refused due jobs; retrying them later", "jobs", refused, "retry_in", refusedRetry, "err", firstErr)
	}
	if failed > 0 && forwarded+refused == 0 {
		return fmt.Errorf("sidecar: %d due jobs not forwarded: %w", failed, firstErr)
	}
	if err := f.commit(claim, fw, items); err != nil {
		return err
	}
	if len(watches) > 0 {
		f.mu.Lock()
		f.watches = append(f.watches, watches...)
		f.mu.Unlock()
		select {
		case f.signal <- struct{}{}:
		default:
		}
	}
	return nil
}

// items turns due jobs and occurrences into submissions, allocating the
// handles of occurrences and of the triggers passthrough jobs will need.
func (f *Forwarder) items(jobs []*store.Job, occs []scheduler.Occurrence) ([]forwardItem, error) {
	items := make([]forwardItem, 0, len(jobs)+len(occs))
	for _, j := range jobs {
		it := forwardItem{job: j, id: j.ID, handle: j.Handle, due: j.Due, up: UpstreamJob{
			Type: bgType(j.Priority), Function: j.Function, Unique: forwardUnique(j.Unique, j.Handle), Data: j.Data}}
		switch j.Kind {
		case store.JobPassthrough:
			it.up.Type, it.up.When = gearman.SubmitJobEpoch, j.When
			t, err := f.trigger(j)
			if err != nil {
				return nil, err
			}
			it.trigger = t
		case store.JobTrigger:
			it.up.Unique, it.up.Pin = j.Unique, j.Upstream
		}
		items = append(items, it)
	}
	for i := range occs {
		o := &occs[i]
		if !o.Fire {
			continue
		}
		id, handle, err := f.handles.Next()
		if err != nil {
			return nil, err
		}
		sc := o.Schedule
		items = append(items, forwardItem{occ: o, id: id, handle: handle, due: o.At.UnixNano(), up: UpstreamJob{
			Type: bgType(sc.Priority), Function: sc.Function, Unique: o.Unique, Data: sc.Data}})
	}
	return items, nil
}

// advanceSchedules returns each schedule of occs advanced past the
// occurrences that were forwarded. A schedule whose occurrence failed
// resumes at that occurrence: at once after a connection failure (the
// scheduler backs off), refusedRetry later after a refusal. Its earlier
// occurrences are not offered again.
func advanceSchedules(items []forwardItem, occs []scheduler.Occurrence, now time.Time) []*store.Schedule {
	type outcome struct {
		failed  *forwardItem // first failed occurrence
		lastOK  *forwardItem
		refused bool
	}
	byOcc := map[*scheduler.Occurrence]*forwardItem{}
	for i := range items {
		if items[i].occ != nil {
			byOcc[items[i].occ] = &items[i]
		}
	}
	results := map[*store.Schedule]*outcome{}
	var order []*store.Schedule
	for i := range occs {
		sc := occs[i].Schedule
		r := results[sc]
		if r == nil {
			r = &outcome{}
			results[sc] = r
			order = append(order, sc)
		}
		it := byOcc[&occs[i]]
		switch {
		case it == nil || r.failed != nil: // skipped, or after a failure
		case it.up.Err != nil:
			r.failed, r.refused = it, it.refused()
		default:
			r.lastOK = it
		}
	}
	out := make([]*store.Schedule, 0, len(order))
	for _, sc := range order {
		r := results[sc]
		if r.lastOK != nil {
			sc.LastHandle = r.lastOK.handle
		}
		if r.failed != nil {
			adv := *sc
			at := r.failed.occ.At
			adv.Next = at.UnixNano()
			adv.FireAt = at.Add(scheduler.JitterFor(sc)).UnixNano()
			if r.refused {
				adv.FireAt = max(adv.FireAt, now.Add(refusedRetry).UnixNano())
			}
			if r.lastOK != nil {
				adv.Last = r.lastOK.occ.At.UnixNano()
			}
			sc = &adv
		}
		out = append(out, sc)
	}
	return out
}

// commit records fw, through claim when there is one. If the commit
// fails (disk full, database down), fw is kept and retried on its own
// before anything else is submitted: upstream already has its jobs, and
// offering them again would create new copies of those a worker already
// took.
func (f *Forwarder) commit(claim store.Claim, fw store.Forward, items []forwardItem) error {
	var res store.ForwardResult
	var err error
	if claim != nil {
		res, err = claim.Forwarded(fw)
	} else {
		res, err = f.st.Forwarded(fw)
	}
	if err != nil {
		f.unsaved = &unsaved{fw: fw, items: items}
		return fmt.Errorf("sidecar: recording %d forwarded jobs: %w", len(fw.Ledger), err)
	}
	now := f.cfg.Now()
	for i := range items {
		if items[i].up.Err == nil {
			f.released.ObserveLateness(now, items[i].fireAt())
		}
	}
	f.cancelOrphans(items, res.Cancelled)
	return nil
}

// unsaved is a release upstream acknowledged whose commit failed.
type unsaved struct {
	fw    store.Forward
	items []forwardItem
}

// commitUnsaved retries the commit of a release whose jobs upstream
// already took.
func (f *Forwarder) commitUnsaved() error {
	u := f.unsaved
	if u == nil {
		return nil
	}
	f.unsaved = nil
	if err := f.commit(nil, u.fw, u.items); err != nil {
		return err
	}
	f.log.Info("recorded forwarded jobs after an earlier failure", "jobs", len(u.fw.Ledger))
	// The due items read before this commit may include the jobs it
	// recorded: have the scheduler read them again.
	return errRecovered
}

// errRecovered makes the scheduler re-read the due items after a delayed
// commit.
var errRecovered = errors.New("sidecar: recorded an earlier release; reading due jobs again")

// cancelOrphans cancels upstream what was cancelled in the sidecar while
// it was being submitted: jobs no longer pending, and occurrences of
// schedules no longer there. Their client was told they were cancelled. A
// job a worker already took cannot be stopped.
func (f *Forwarder) cancelOrphans(items []forwardItem, cancelled []uint64) {
	if len(cancelled) == 0 {
		return
	}
	gone := make(map[uint64]bool, len(cancelled))
	for _, id := range cancelled {
		gone[id] = true
	}
	for i := range items {
		it := &items[i]
		orphan := (it.job != nil && gone[it.id]) || (it.occ != nil && gone[it.occ.Schedule.ID])
		if !orphan || it.up.Err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), f.up.cfg.Timeout)
		ok, err := f.up.Cancel(ctx, it.up.Server, it.up.Handle)
		cancel()
		f.log.Warn("job cancelled while it was being forwarded", "handle", it.handle,
			"upstream", it.up.Server, "upstream_handle", it.up.Handle, "cancelled_upstream", ok, "err", err)
	}
}

// countLate counts a job forwarded lateThreshold or more after its due
// time and returns its lateness, or 0 when it was on time.
func (f *Forwarder) countLate(addr string, now time.Time, due int64) time.Duration {
	late := now.Sub(time.Unix(0, due))
	if late < lateThreshold {
		return 0
	}
	st := f.stats[addr]
	st.late.Add(1)
	ms := late.Milliseconds()
	for {
		old := st.maxLateMs.Load()
		if ms <= old || st.maxLateMs.CompareAndSwap(old, ms) {
			break
		}
	}
	return late
}

// bgType is the background submission type for a priority.
func bgType(p uint8) gearman.Type {
	switch gearman.Priority(p) {
	case gearman.High:
		return gearman.SubmitJobHighBg
	case gearman.Low:
		return gearman.SubmitJobLowBg
	}
	return gearman.SubmitJobBg
}

// forwardUnique is the unique a job is forwarded with. A job submitted
// without one gets "gearsched:<handle>", so that a resubmission after a
// crash coalesces with the copy upstream still holds. A 64-byte unique
// becomes its first 46 bytes, "~" and 16 hex digits of its SHA-256:
// gearmand 1.1.20 keeps 63 bytes of a unique, so two uniques differing only
// in the last byte, cut, would merge there and one job would never run.
// The same unique always maps to the same value, so a resubmission still
// coalesces.
func forwardUnique(unique, handle string) string {
	if len(unique) > scheduler.MaxUnique {
		sum := sha256.Sum256([]byte(unique))
		return unique[:scheduler.MaxUnique-17] + "~" + hex.EncodeToString(sum[:8])
	}
	if unique != "" {
		return unique
	}
	u := "gearsched:" + handle
	if len(u) <= scheduler.MaxUnique {
		return u
	}
	sum := sha256.Sum256([]byte(handle))
	return "gearsched:" + hex.EncodeToString(sum[:16])
}

// Live implements scheduler.Sink for the overlap policy: the previous
// occurrence is live while upstream knows its handle.
// An unreachable upstream counts as not live: one server down must not
// stop every other release, and delivery is at least once anyway.
func (f *Forwarder) Live(ctx context.Context, handle string) (bool, error) {
	st, ok, err := f.Status(ctx, handle)
	if err != nil {
		f.log.Warn("overlap check: upstream unreachable; treating the previous run as finished", "handle", handle, "err", err)
		return false, nil
	}
	return ok && st.Known, nil
}

// Status asks the upstream that took one of the sidecar's jobs for its
// status; ok is false when the ledger has no such job. It implements
// Upstreams.
func (f *Forwarder) Status(ctx context.Context, handle string) (gearman.JobStatus, bool, error) {
	id, ok := f.handles.Parse(handle)
	if !ok {
		return gearman.JobStatus{}, false, nil
	}
	e, err := f.st.FiredJob(id)
	if err != nil || e == nil {
		return gearman.JobStatus{}, false, err
	}
	st, err := f.up.Status(ctx, e.Upstream, e.UpstreamHandle)
	return st, err == nil, err
}

// Run watches trigger jobs and prunes the ledger until ctx is done.
func (f *Forwarder) Run(ctx context.Context) {
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	f.prune()
	for {
		f.mu.Lock()
		busy := len(f.watches) > 0
		f.mu.Unlock()
		var poll <-chan time.Time
		if busy {
			poll = time.After(watchPoll)
		}
		select {
		case <-ctx.Done():
			return
		case <-prune.C:
			f.prune()
		case <-f.signal:
		case <-poll:
			f.pollWatches(ctx)
		}
	}
}

func (f *Forwarder) prune() {
	before := f.cfg.Now().Add(-f.cfg.LedgerRetention).UnixNano()
	for {
		n, err := f.st.PruneFired(before, 10_000)
		if err != nil {
			f.log.Error("pruning the fire ledger failed", "err", err)
			return
		}
		if n < 10_000 {
			return
		}
	}
}

// AppendRows appends `show upstreams` rows: address, state, jobs
// submitted, refused, connection failures, jobs forwarded late, the worst
// lateness in ms, trigger jobs sent, and triggers cancelled before a
// worker took them. It implements Upstreams.
func (f *Forwarder) AppendRows(b []byte) []byte {
	for _, s := range f.Stats().Upstreams {
		state := "down"
		if s.Up {
			state = "up"
		}
		b = append(b, s.Addr...)
		b = append(b, '\t')
		b = append(b, state...)
		for _, n := range []uint64{s.Submitted, s.Refused, s.Failures, s.Late, uint64(s.MaxLate.Milliseconds()),
			s.TriggersSent, s.TriggersCancelled} {
			b = append(b, '\t')
			b = strconv.AppendUint(b, n, 10)
		}
		b = append(b, '\n')
	}
	return b
}
