// Package scheduler releases jobs at their due time. It owns one loop that
// sleeps until the earliest due time in the store's index (never longer
// than a second, re-reading the wall clock on every wake-up so clock steps
// and suspend cannot make it fire early or stall), then hands everything
// due, in bounded batches, to a Sink.
//
// Recurring schedules are advanced here: occurrences are computed with
// ParseCron, missed runs (daemon down, clock jumped forward) follow each
// schedule's policy, and overlap and jitter are applied.
//
// # One owner for every pending job and schedule
//
// Jobs and schedules waiting for their time live in the store, and the
// store's committer goroutine owns them: every change is a function run
// inside its write transaction, which reads the record as it is at that
// moment and decides there. Nothing reads a record, decides elsewhere and
// writes its decision back unchecked:
//
//   - Creating is create-if-absent. A new pending job or schedule whose
//     (function, unique), or whose request key, is held already is not
//     written, and the submitter gets the holder's handle
//     (store.PutPending, store.PutSchedule).
//   - Cancelling removes the record in one transaction (store.Cancel), and
//     a reload of the schedules file compares and writes in one (Sync,
//     through store.EditSchedules). Pausing and resuming a schedule
//     (store.SetPaused) is a definition change made the same way.
//   - Firing is the one change planned from an earlier read: this loop reads
//     what is due, the sink hands it over (to workers, or to gearmand over
//     the network), and only then commits. The commit names the generation
//     of each schedule it planned from (store.Schedule.Gen), and a schedule
//     cancelled or redefined since refuses the plan: a cancel is never
//     undone and a reload never overwritten. Pending one-shot jobs never
//     change, so their commit only checks that they are still there.
//
// The loop reads due items through a claim (store.Claim), which the
// firing's commit ends. With bbolt one process owns the database and the
// claim locks nothing: the rule above is the committer's order, and the
// generation check catches what came between the read and the commit.
//
// Several sidecars sharing one PostgreSQL database (package pgstore) each
// run this loop, and the database's row locks take the committer's place:
//
//   - A claim is a transaction that locks the due rows it reads
//     (SELECT … FOR UPDATE SKIP LOCKED): rows another sidecar's claim
//     holds are passed over, so no two sidecars plan or fire the same job
//     or occurrence, and the sink's commit, in the same transaction,
//     records what went out and releases the locks. A sidecar that dies
//     mid-firing leaves its transaction to roll back: the rows are due
//     again for any sidecar, and only what it had already submitted goes
//     upstream twice, under the same uniques.
//   - Every other change locks the rows it changes, so it waits for a
//     claim holding them and acts on the record as the claim left it:
//     a cancel of a schedule being fired deletes it once the firing
//     committed, and it never fires again; a cancel of a one-shot job
//     being fired finds it gone (it went out). Creating is
//     create-if-absent on a primary key of (function, unique), so two
//     sidecars taking the same submission store it once. A reload of the
//     schedules file locks every schedule, under an advisory lock that
//     keeps two reloads apart, so each sidecar may carry the same file and
//     one set of schedules results, by name.
//   - The generation check stays: it still refuses a plan whose
//     schedule was redefined, and the database's clock bounds what is due
//     (never early by the sidecar's clock or the database's).
//   - A commit that failed and is retried outside its claim (the
//     forwarder's, after the database went away) may find its items
//     fired meanwhile by another sidecar, whose claim found them rolled
//     back: its advance is refused if the schedule has moved past it (an
//     advance never goes backward), and jobs the ledger already holds are
//     not taken for cancelled ones.
//
// State in memory has one owner too: the loop's parsed specs are this
// goroutine's, and the job server's queues and connections belong to its
// mutex, which is never held across disk or network I/O.
package scheduler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gearsched/gearsched/store"
)

// Store is what the loop reads: due items, through claims, and when the
// next one falls due. *store.Store and *pgstore.Store are stores.
type Store interface {
	// Claim returns up to max items due by until (unix ns), earliest
	// first, in a claim that the sink's commit ends (see store.Claim).
	Claim(ctx context.Context, until int64, max int) (store.Claim, []store.DueItem, error)
	// NextDue returns the earliest due time of any item, claimed or not.
	NextDue() (due int64, ok bool, err error)
}

// Sink receives due work. The embedded job server and the sidecar's
// upstream forwarder are sinks.
type Sink interface {
	// Release hands over due one-shot jobs and schedule occurrences, and
	// records in the store, in the same commit, each one it handed over:
	// a job leaves the due index, a schedule advances. A sink that
	// commits through the claim the items came in (the forwarder) ends
	// it so; the scheduler releases it afterwards in any case. What it
	// could not hand over stays due, and the scheduler offers it again
	// when it next reads the index. It returns an error when it handed
	// over nothing, so that the scheduler backs off (an upstream outage,
	// say).
	Release(ctx context.Context, claim store.Claim, jobs []*store.Job, occs []Occurrence) error
	// Live reports whether the job with that handle is still queued or
	// running, for the overlap policy.
	Live(ctx context.Context, handle string) (bool, error)
}

// Occurrence is one due occurrence of a recurring schedule.
type Occurrence struct {
	// Schedule is the schedule already advanced past this occurrence
	// (Next, FireAt, Last). The sink sets LastHandle when it fires one.
	Schedule *store.Schedule
	At       time.Time // the nominal occurrence time
	Unique   string    // deterministic per occurrence, at most 63 bytes
	// Fire is false when the occurrence is skipped (overlap, missed-run
	// policy): only the schedule advances.
	Fire bool
}

// Clock is the scheduler's time source; tests inject a fake one. It has
// two clocks because Run tells a wall-clock step from time passing by
// comparing them: the monotonic reading is asked for explicitly instead
// of being the one hidden in a time.Time, which a fake clock cannot set
// independently of the wall time.
type Clock interface {
	// Now returns the wall-clock time. It decides what is due, and it
	// may step forward or backward (NTP, settimeofday, suspend).
	Now() time.Time
	// Elapsed returns the time since a fixed point of the clock's
	// choosing on a monotonic clock, which never steps. Only differences
	// between two readings mean anything.
	Elapsed() time.Duration
	// After returns a channel that receives the wall time once d has
	// passed, as time.After does.
	After(d time.Duration) <-chan time.Time
}

// realClock is the system's clocks. Elapsed is time.Since a start time:
// time.Now carries a monotonic reading, so the difference is monotonic.
type realClock struct{ start time.Time }

func (realClock) Now() time.Time                         { return time.Now() }
func (c realClock) Elapsed() time.Duration               { return time.Since(c.start) }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Policies for missed runs and overlap.
const (
	MissedSkip   = "skip"
	MissedOnce   = "once"
	MissedAll    = "all"
	OverlapAllow = "allow"
	OverlapSkip  = "skip"
)

const (
	// MaxSleep bounds every sleep so that a wall-clock step is noticed
	// within a second.
	MaxSleep = time.Second
	// DefaultBatch is how many due items one Release carries at most.
	DefaultBatch = 1000
	// firstBatch is how many due items the first Release of a Tick
	// carries; each next one carries twice as many, up to the batch. The
	// first jobs due at a second go out after a short read instead of
	// waiting for a thousand records to be read and committed.
	firstBatch = 32
	// jumpThreshold is how far the wall clock may run ahead of the
	// monotonic clock between two wake-ups before it counts as a jump.
	jumpThreshold = 5 * time.Second
	// failureReport spaces the logs of a run of failed releases.
	failureReport = 30 * time.Second
	// sharedPoll is how soon a loop sharing its store with other
	// schedulers looks again at items that are due but that it could not
	// claim: another scheduler is firing them, and its commit either
	// removes them or, if it fails, leaves them for anyone.
	sharedPoll = 25 * time.Millisecond
	// maxEnumerate bounds how many missed occurrences are walked.
	maxEnumerate = 1_000_000
	// MaxUnique is the longest unique the scheduler generates: gearmand
	// silently cuts 64-byte uniques, so stay at 63 for upstreams.
	MaxUnique = 63
)

// Config configures a Scheduler.
type Config struct {
	Store  Store
	Sink   Sink
	Logger *slog.Logger
	Clock  Clock // default: the real clock
	Batch  int   // default DefaultBatch
	// Shared says that other schedulers claim from the same store
	// (several sidecars on one PostgreSQL database): an item that is due
	// but was not claimed is another's, so the loop looks again after
	// sharedPoll instead of at once.
	Shared bool
}

// Scheduler is the due-time engine. Create it with New and run it with Run.
type Scheduler struct {
	st    Store
	sink  Sink
	log   *slog.Logger
	clock Clock
	batch int
	wake  chan struct{}
	specs map[[2]string]Schedule // parsed specs by (spec, zone), owned by Run
	// sleepUntil is when the loop will next look at the index (unix ns),
	// 0 while it is awake, or 1 after a failed release (then only Wake
	// wakes it early); WakeFor compares against it.
	sleepUntil atomic.Int64
	stats      counters
	shared     bool // Config.Shared
}

// New returns a scheduler; it does nothing until Run.
func New(cfg Config) *Scheduler {
	s := &Scheduler{
		st:     cfg.Store,
		sink:   cfg.Sink,
		log:    cfg.Logger,
		clock:  cfg.Clock,
		batch:  cfg.Batch,
		wake:   make(chan struct{}, 1),
		specs:  make(map[[2]string]Schedule),
		shared: cfg.Shared,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = realClock{start: time.Now()}
	}
	if s.batch <= 0 {
		s.batch = DefaultBatch
	}
	return s
}

// WakeFor tells the loop that something due at due (unix ns) was stored.
// It wakes the loop only if that is earlier than it would look anyway, so
// a job scheduled for next year costs the loop nothing. It never blocks.
func (s *Scheduler) WakeFor(due int64) {
	if until := s.sleepUntil.Load(); until == 0 || due < until {
		s.Wake()
	}
}

// Wake makes the loop re-read the index now. It never blocks.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run releases due work until ctx is done. Occurrences that fell due
// before Run started were missed while the daemon was down: their
// schedules' missed-run policy applies (one-shot jobs just run).
func (s *Scheduler) Run(ctx context.Context) error {
	start := s.clock.Now()
	missedBefore := start
	prev, prevElapsed := start, s.clock.Elapsed()
	var failingSince time.Time // first of a run of failed releases
	var lastReport time.Time
	var storeDownSince time.Time // first of a run of failed reads of the store
	for {
		s.sleepUntil.Store(0)
		now, elapsed := s.clock.Now(), s.clock.Elapsed()
		// Wall time ahead of monotonic time: the clock was stepped
		// forward or the machine slept (on Linux the monotonic clock
		// stops in suspend). Treat the gap as downtime. Round(0) drops the
		// monotonic reading the real clock's times carry, so that the
		// first difference is the wall clock's alone. A step backward
		// needs nothing here: what is due is read off the wall clock, so
		// nothing fires early, and a fired occurrence has advanced its
		// schedule, so nothing fires twice.
		if jump := now.Round(0).Sub(prev.Round(0)) - (elapsed - prevElapsed); jump > jumpThreshold {
			s.log.Warn("wall clock jumped forward; applying missed-run policies", "jump", jump)
			missedBefore = now
		}
		// A store that could not be read for a while (a PostgreSQL
		// outage) is downtime for the schedules, as if gearsched had been
		// down: what fell due meanwhile follows their missed-run
		// policies in the Tick that finds the store back.
		if !storeDownSince.IsZero() && now.Sub(storeDownSince) > jumpThreshold {
			missedBefore = now
		}
		prev, prevElapsed = now, elapsed
		err := s.Tick(ctx, now, missedBefore)
		var unreadable *storeError
		switch {
		case errors.As(err, &unreadable):
			if storeDownSince.IsZero() {
				storeDownSince = now
			}
		case !storeDownSince.IsZero():
			if down := now.Sub(storeDownSince); down > jumpThreshold {
				s.log.Warn("the store was unreadable; missed-run policies applied", "for", down.Round(time.Second))
			}
			storeDownSince = time.Time{}
		}
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			s.stats.releaseErrors.Add(1)
			// Report the first failure of a run, then once every
			// failureReport: an upstream outage must not flood the log.
			if failingSince.IsZero() {
				failingSince = now
			}
			if lastReport.IsZero() || now.Sub(lastReport) >= failureReport {
				lastReport = now
				s.log.Error("releasing due jobs failed; retrying", "err", err, "retry_in", MaxSleep,
					"failing_for", now.Sub(failingSince).Round(time.Second))
			}
		case !failingSince.IsZero():
			s.log.Info("releasing due jobs again", "failed_for", now.Sub(failingSince).Round(time.Second))
			failingSince, lastReport = time.Time{}, time.Time{}
		}
		sleep := MaxSleep
		wakeAt := s.clock.Now().Round(0)
		// After a failure (the sink's upstream is down, say) the due items
		// wait MaxSleep or a Wake, instead of being retried in a busy loop.
		if due, ok, nerr := s.st.NextDue(); err == nil && nerr == nil && ok {
			wait := time.Unix(0, due).Sub(wakeAt)
			if wait <= 0 && s.shared {
				wait = sharedPoll // due, yet not ours to claim: another scheduler fires it
			}
			sleep = min(sleep, max(wait, 0))
		}
		// Anything stored from here on that is due before this wake-up
		// signals the loop (and anything stored since the top of the
		// loop already did, while sleepUntil was 0).
		s.sleepUntil.Store(max(wakeAt.Add(sleep).UnixNano(), 1))
		if err != nil {
			// After a failure new work does not wake the loop (each
			// wake-up would only fail again); Wake does, when the sink
			// recovers.
			s.sleepUntil.Store(1)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-s.clock.After(sleep):
		}
	}
}

// storeError is a Tick that failed because the store could not be read:
// Run counts a long run of them as downtime.
type storeError struct{ err error }

func (e *storeError) Error() string { return "scheduler: reading due items: " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// Tick releases everything due by now, batch by batch. Schedule
// occurrences with a fire time before missedBefore count as missed. Jobs
// that fell due before missedBefore (while gearsched was down) are
// reported in one log line per Tick, not one per job.
func (s *Scheduler) Tick(ctx context.Context, now, missedBefore time.Time) error {
	var overdue overdueJobs
	defer overdue.report(s.log, now)
	size := min(firstBatch, s.batch)
	for {
		claim, items, err := s.st.Claim(ctx, now.UnixNano(), size)
		if err != nil {
			return &storeError{err}
		}
		err = s.release(ctx, claim, items, missedBefore, &overdue)
		claim.Release()
		if err != nil || len(items) < size {
			return err
		}
		size = min(2*size, s.batch)
	}
}

// release plans the claimed items and hands them to the sink. The
// claim's bound is the time it read by, no later than Tick's now, so an
// occurrence is planned by the clock that found its schedule due.
func (s *Scheduler) release(ctx context.Context, claim store.Claim, items []store.DueItem, missedBefore time.Time,
	overdue *overdueJobs) error {
	if len(items) == 0 {
		return nil
	}
	now := time.Unix(0, claim.Until())
	var jobs []*store.Job
	var occs []Occurrence
	var late overdueJobs
	for _, it := range items {
		if it.Job != nil {
			if it.Due < missedBefore.UnixNano() {
				late.add(it.Due)
			}
			jobs = append(jobs, it.Job)
			continue
		}
		o, err := s.plan(ctx, it.Schedule, now, missedBefore)
		if err != nil {
			return err
		}
		occs = append(occs, o...)
	}
	if err := s.sink.Release(ctx, claim, jobs, occs); err != nil {
		return err
	}
	overdue.merge(late)
	return nil
}

// overdueJobs summarises the released jobs that fell due while gearsched
// was down: after a long outage there may be millions.
type overdueJobs struct {
	n      int
	oldest int64 // due time, unix ns
}

func (o *overdueJobs) add(due int64) {
	if o.n == 0 || due < o.oldest {
		o.oldest = due
	}
	o.n++
}

func (o *overdueJobs) merge(other overdueJobs) {
	if other.n > 0 {
		o.add(other.oldest)
		o.n += other.n - 1
	}
}

func (o *overdueJobs) report(log *slog.Logger, now time.Time) {
	if o.n > 0 {
		oldest := time.Unix(0, o.oldest)
		log.Info("released jobs that fell due while gearsched was down", "jobs", o.n,
			"oldest_due", oldest.UTC(), "max_late", now.Sub(oldest).Round(time.Millisecond))
	}
}

func (s *Scheduler) parse(sc *store.Schedule) (Schedule, error) {
	key := [2]string{sc.Spec, sc.Zone}
	if p, ok := s.specs[key]; ok {
		return p, nil
	}
	loc, err := time.LoadLocation(sc.Zone)
	if err != nil {
		return nil, fmt.Errorf("schedule %s: zone %q: %w", sc.Handle, sc.Zone, err)
	}
	p, err := ParseCron(sc.Spec, loc)
	if err != nil {
		return nil, fmt.Errorf("schedule %s: %w", sc.Handle, err)
	}
	s.specs[key] = p
	return p, nil
}

// plan decides what a due schedule does: which of its due occurrences
// fire and where it goes next. The returned occurrences share one advanced
// copy of the schedule. Occurrences that fell due while it was paused
// count as missed, as those of a daemon that was down do.
func (s *Scheduler) plan(ctx context.Context, orig *store.Schedule, now, missedBefore time.Time) ([]Occurrence, error) {
	sc := *orig
	if resumed := time.Unix(0, sc.ResumedAt); sc.ResumedAt > 0 && resumed.After(missedBefore) {
		missedBefore = resumed
	}
	spec, err := s.parse(&sc)
	if err != nil {
		// A schedule whose spec no longer parses (a zone removed from
		// tzdata) stops instead of blocking every other release.
		s.log.Error("disabling schedule", "handle", sc.Handle, "name", sc.Name, "err", err)
		sc.Enabled = false
		return []Occurrence{{Schedule: &sc}}, nil
	}
	jitter := JitterFor(&sc)
	var due []time.Time // occurrences due now, oldest first; missed ones trimmed
	missed, dropped := 0, 0
	at := time.Unix(0, sc.Next)
	for n := 0; !at.IsZero() && !at.Add(jitter).After(now); n++ {
		if n == maxEnumerate {
			s.log.Warn("too many missed occurrences; skipping ahead", "handle", sc.Handle, "name", sc.Name)
			at = spec.Next(now)
			break
		}
		fireAt := at.Add(jitter)
		if fireAt.Before(missedBefore) {
			missed++
			if sc.Missed == MissedSkip || now.Sub(fireAt) > time.Duration(sc.CatchUp) {
				dropped++
			} else {
				due = append(due, at)
			}
		} else {
			due = append(due, at)
		}
		sc.Last = at.UnixNano()
		at = spec.Next(at)
	}
	// Of the missed occurrences still in the window keep the newest one
	// (once) or the newest MissedCap (all); current ones all stay.
	if missed > 0 {
		current := 0
		for _, t := range due {
			if !t.Add(jitter).Before(missedBefore) {
				current++
			}
		}
		keep := 0
		if sc.Missed == MissedOnce {
			keep = 1
		} else if sc.Missed == MissedAll {
			keep = max(sc.MissedCap, 1)
		}
		inWindow := len(due) - current
		if inWindow > keep {
			dropped += inWindow - keep
			due = due[inWindow-keep:]
		}
		s.stats.droppedMissed.Add(uint64(dropped))
		s.log.Warn("schedule missed runs while gearsched was down or the schedule paused", "handle", sc.Handle, "name", sc.Name,
			"missed", missed, "running", missed-dropped, "dropped", dropped, "policy", sc.Missed)
	}
	if at.IsZero() {
		sc.Next, sc.FireAt = 0, 0
	} else {
		sc.Next = at.UnixNano()
		sc.FireAt = at.Add(jitter).UnixNano()
	}
	if len(due) > 0 && sc.Overlap == OverlapSkip {
		live := false
		if sc.LastHandle != "" {
			if live, err = s.sink.Live(ctx, sc.LastHandle); err != nil {
				return nil, err
			}
		}
		if live {
			s.stats.skippedOverlap.Add(uint64(len(due)))
			s.log.Info("skipped occurrence: previous one still queued or running", "handle", sc.Handle, "name", sc.Name,
				"occurrences", len(due), "previous", sc.LastHandle)
			due = nil
		} else if len(due) > 1 {
			due = due[len(due)-1:] // one at a time
		}
	}
	if len(due) == 0 {
		return []Occurrence{{Schedule: &sc}}, nil
	}
	occs := make([]Occurrence, len(due))
	for i, t := range due {
		occs[i] = Occurrence{Schedule: &sc, At: t, Unique: OccurrenceUnique(&sc, t), Fire: true}
	}
	return occs, nil
}

// JitterFor returns a schedule's delay: deterministic (a hash of its name
// or handle), so it is stable across restarts, and never negative, so a
// job never runs before its time.
func JitterFor(sc *store.Schedule) time.Duration {
	if sc.Jitter <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(sc.Name + "\x00" + sc.Handle))
	return time.Duration(h.Sum64() % uint64(sc.Jitter))
}

// OccurrenceUnique is the unique of one occurrence: the schedule's unique
// (or name, or handle) and the occurrence's unix time, hashed down when
// longer than MaxUnique. A duplicate submission of the same occurrence
// therefore coalesces; different occurrences never do.
func OccurrenceUnique(sc *store.Schedule, at time.Time) string {
	base := sc.Unique
	if base == "" {
		base = sc.Name
	}
	if base == "" {
		base = sc.Handle
	}
	u := base + "@" + strconv.FormatInt(at.Unix(), 10)
	if len(u) <= MaxUnique {
		return u
	}
	sum := sha256.Sum256([]byte(u))
	return hex.EncodeToString(sum[:16]) + "@" + strconv.FormatInt(at.Unix(), 10)
}
