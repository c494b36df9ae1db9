package sidecar

// Trigger jobs wake the epoch jobs the sidecar passed through to gearmand
// (--epoch-passthrough): gearmand 1.1.x checks when_to_run only when a
// worker asks for work, and sleeping workers never ask. A trigger is a
// plain job on the same function submitted just after the second, one per
// (upstream, function, second); its arrival wakes the workers. The
// forwarder watches it until an epoch job was taken, then cancels it if it
// is still queued, and sends another when gearmand's clock lagged.

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
)

// Trigger timings.
const (
	// watchPoll is how often the epoch jobs behind a trigger are polled,
	// and watchFor how long before the trigger is left alone.
	watchPoll = 20 * time.Millisecond
	watchFor  = 10 * time.Second
	// triggerDelay puts a trigger job just after its second: gearmand
	// compares when_to_run with time(2), which reads a coarse clock that
	// can lag the real one by a few milliseconds; a trigger handed out
	// before gearmand sees the epoch job as due wakes nothing.
	triggerDelay = 20 * time.Millisecond
	// maxRetriggers bounds the extra triggers sent when a trigger was
	// taken but its epoch job still waits (clock skew between hosts);
	// they follow at retriggerAfter, doubling each time.
	maxRetriggers  = 5
	retriggerAfter = 200 * time.Millisecond
)

// TriggerUniquePrefix starts every trigger job's unique, so that workers
// can recognise and skip trigger jobs.
const TriggerUniquePrefix = "gearsched-trigger:"

// watchByUnique marks an entry of a trigger's watch list (store.Job.Watch)
// that names an epoch job by its unique rather than by its upstream
// handle: jobs found in gearmand's persistent queue (package queuewatch)
// have no handle the sidecar knows. A handle from JOB_CREATED never holds
// a NUL, so the marker cannot be mistaken for one.
const watchByUnique = "\x00unique:"

// UniqueWatch returns the watch-list entry for the epoch job with that
// unique, and false when the unique cannot be watched: empty, or 64 bytes
// or more (gearmand never answers GET_STATUS_UNIQUE for those, D10). A
// trigger that watches nothing is simply left to a worker.
func UniqueWatch(unique string) (string, bool) {
	if unique == "" || len(unique) > scheduler.MaxUnique {
		return "", false
	}
	return watchByUnique + unique, true
}

// NewTrigger returns a trigger job for the epoch jobs of function due at
// second when on upstream server addr, watching the given entries (handles,
// or UniqueWatch entries). id and handle come from the sidecar's handle
// allocator. Its due time and unique are those of the forwarder's own
// triggers, so a trigger for the same (server, function, second) from
// either source is one record in the store.
func NewTrigger(id uint64, handle, addr, function string, when int64, payload []byte, watch []string) *store.Job {
	return &store.Job{ID: id, Handle: handle, Function: function,
		Unique:   TriggerUniquePrefix + strconv.FormatInt(when, 10),
		Priority: uint8(gearman.Normal), Due: when*int64(time.Second) + int64(triggerDelay), Data: payload,
		Kind: store.JobTrigger, When: when, Upstream: addr, Watch: watch}
}

// watch follows one trigger job until its epoch jobs were taken.
type watch struct {
	addr    string
	trigger string   // the trigger's upstream handle
	epochs  []string // upstream handles of epoch jobs it wakes
	job     *store.Job
	until   time.Time
	retries int
	retryAt time.Time
	// delivered is set once the current trigger was seen taken.
	delivered bool
}

// trigger returns the trigger job that will wake passthrough job j once
// an upstream holds it (Upstream and Watch are set then): a NORMAL
// background job on the same function just after j's second, so it queues
// behind the epoch job in gearmand's FIFO (a LOW one would be blocked by
// any future epoch job on the same function: gearmand defect D2).
func (f *Forwarder) trigger(j *store.Job) (*store.Job, error) {
	id, handle, err := f.handles.Next()
	if err != nil {
		return nil, err
	}
	return NewTrigger(id, handle, "", j.Function, j.When, f.cfg.TriggerPayload, nil), nil
}

// pollWatches cancels each trigger whose epoch job was taken (running, or
// already gone), and stops watching triggers a worker took or that
// expired.
func (f *Forwarder) pollWatches(ctx context.Context) {
	f.mu.Lock()
	ws := f.watches
	f.watches = nil
	f.mu.Unlock()
	now := f.cfg.Now()
	var keep []*watch
	for _, w := range ws {
		done, err := f.checkWatch(ctx, w)
		if err != nil && ctx.Err() == nil {
			f.log.Warn("stopped watching a trigger job", "upstream", w.addr, "trigger", w.trigger, "err", err)
		}
		if err == nil && !done && now.Before(w.until) {
			keep = append(keep, w)
		}
	}
	f.mu.Lock()
	f.watches = append(f.watches, keep...)
	f.mu.Unlock()
}

// checkWatch polls one trigger. While the trigger is queued and one of
// its epoch jobs was taken, the trigger is cancelled: the woken workers
// keep grabbing until the queue is empty. When a worker took the trigger
// but the epoch jobs still wait (gearmand's clock behind ours), another
// trigger follows, with backoff.
func (f *Forwarder) checkWatch(ctx context.Context, w *watch) (done bool, err error) {
	st, err := f.up.Status(ctx, w.addr, w.trigger)
	if err != nil {
		return true, err
	}
	triggerTaken := !st.Known || st.Running
	if triggerTaken && !w.delivered {
		w.delivered = true
		f.stats[w.addr].delivered.Add(1)
	}
	waiting := false
	for _, h := range w.epochs {
		es, err := f.epochStatus(ctx, w.addr, h)
		if err != nil {
			return true, err
		}
		if !es.Known || es.Running {
			if triggerTaken {
				return true, nil
			}
			ok, err := f.up.Cancel(ctx, w.addr, w.trigger)
			if ok {
				f.stats[w.addr].cancelled.Add(1)
			}
			return true, err
		}
		waiting = true
	}
	if !triggerTaken || !waiting {
		return !waiting, nil
	}
	now := f.cfg.Now()
	if w.retries >= maxRetriggers {
		f.log.Warn("epoch jobs still wait after their triggers; is the upstream's clock behind?",
			"upstream", w.addr, "function", w.job.Function, "when", w.job.When)
		return true, nil
	}
	if w.retryAt.IsZero() {
		w.retryAt = now.Add(retriggerAfter)
	}
	if now.Before(w.retryAt) {
		return false, nil
	}
	w.retries++
	w.retryAt = now.Add(retriggerAfter << w.retries)
	w.until = w.retryAt.Add(watchFor)
	j := &UpstreamJob{Type: gearman.SubmitJobBg, Function: w.job.Function, Pin: w.addr, Data: w.job.Data,
		Unique: w.job.Unique + "#" + strconv.Itoa(w.retries)}
	f.up.Submit(ctx, []*UpstreamJob{j})
	if j.Err != nil {
		return true, j.Err
	}
	f.stats[w.addr].triggers.Add(1)
	w.trigger, w.delivered = j.Handle, false
	return false, nil
}

// epochStatus asks upstream addr about one watched epoch job: by handle
// (GET_STATUS), or for an entry made by UniqueWatch by its unique
// (GET_STATUS_UNIQUE). gearmand looks a unique up across all functions, so
// a job of another function with the same unique answers for it; the cost
// of that mistake is a trigger cancelled early or kept, never a lost job.
// A unique gearmand does not hold (a row written into its queue table
// while it ran, which it never reads until a restart) is known=0: nothing
// there to wake, so the trigger is cancelled like that of a taken job.
func (f *Forwarder) epochStatus(ctx context.Context, addr, entry string) (gearman.JobStatus, error) {
	if u, ok := strings.CutPrefix(entry, watchByUnique); ok {
		return f.up.StatusUnique(ctx, addr, u)
	}
	return f.up.Status(ctx, addr, entry)
}
