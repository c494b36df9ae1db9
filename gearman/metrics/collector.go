package metrics

import (
	"log/slog"
	"sync"
	"time"

	"github.com/gearsched/gearsched/gearman/stats"
	"github.com/prometheus/client_golang/prometheus"
)

// descs are every series the collector makes, by family.
type descs struct {
	buildInfo *prometheus.Desc

	// Per function.
	queued, running, workers, pending, schedules *prometheus.Desc
	submitted, completed, failed, retried        *prometheus.Desc

	lateness *prometheus.Desc

	connections, accepted, refused, slow, cancels *prometheus.Desc

	commitDuration, commitWrites, commitErrors, checkpointDuration *prometheus.Desc
	queuedWrites, fileSize, freeBytes, nextDue                     *prometheus.Desc

	releaseErrors, skippedRuns *prometheus.Desc

	// Per upstream (sidecar).
	upstreamUp, forwarded, upstreamRefused, upstreamFailures, late *prometheus.Desc
	triggersSent, triggersCancelled, triggersDelivered             *prometheus.Desc
	watchedQueues                                                  *prometheus.Desc
}

func newDescs() *descs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("gearsched_"+name, help, labels, nil)
	}
	return &descs{
		buildInfo: d("build_info", "Always 1; the version label says which gearsched this is.", "version"),

		queued:    d("jobs_queued", "Jobs in memory waiting for a worker (jobs waiting for their time are gearsched_scheduled_jobs_pending).", "function", "priority"),
		running:   d("jobs_running", "Jobs a worker is running.", "function", "priority"),
		workers:   d("workers", "Worker registrations (CAN_DO) for the function, as `status` counts them.", "function"),
		pending:   d("scheduled_jobs_pending", "One-shot jobs waiting for their due time (in sidecar mode: every job not yet forwarded).", "function"),
		schedules: d("schedules", "Recurring schedules.", "function"),
		submitted: d("jobs_submitted_total", "Submissions accepted (SUBMIT_JOB*, SUBMIT_JOB_SCHED, schedule requests), coalesced ones included.", "function"),
		completed: d("jobs_completed_total", "Jobs a worker completed (WORK_COMPLETE).", "function"),
		failed:    d("jobs_failed_total", "Jobs that failed: WORK_FAIL, WORK_EXCEPTION, or retries exhausted.", "function"),
		retried:   d("jobs_retried_total", "Jobs requeued because their worker left or timed out.", "function"),

		lateness: d("lateness_seconds", "From a scheduled job's due time to its release (stage=released: ready to run, or recorded as forwarded), "+
			"its first hand-out to a worker (stage=assigned, job server) or gearmand's acknowledgement (stage=acknowledged, sidecar).", "stage"),

		connections: d("connections", "Client, worker and admin connections being served."),
		accepted:    d("connections_accepted_total", "Connections accepted and served."),
		refused:     d("connections_refused_total", "Connections refused over --max-connections."),
		slow:        d("slow_consumers_closed_total", "Connections closed because the peer did not read its replies."),
		cancels:     d("cancels_total", "Cancels by what they removed: a job in memory (live), a job waiting for its time (pending), a recurring schedule.", "kind"),

		commitDuration:     d("store_commit_duration_seconds", "Time of each store transaction, fsync included (failed ones too)."),
		commitWrites:       d("store_commit_writes", "Writes (job puts and deletes, other updates) per store transaction."),
		commitErrors:       d("store_commit_errors_total", "Store transactions that failed; their writes were refused."),
		checkpointDuration: d("store_checkpoint_duration_seconds", "Time of each checkpoint: the journaled writes committed to the database file. Writes wait meanwhile."),
		queuedWrites:       d("store_queued_writes", "Writes waiting for the next store transaction."),
		fileSize:           d("store_size_bytes", "Size of the database file."),
		freeBytes:          d("store_free_bytes", "Free space inside the database file, reused before it grows; what compacting would give back."),
		nextDue:            d("scheduled_next_due_timestamp_seconds", "Due time of the earliest pending job or schedule (absent when there is none)."),

		releaseErrors: d("scheduler_release_errors_total", "Releases of due work that failed and were retried (an upstream down, a commit failed)."),
		skippedRuns:   d("schedule_runs_skipped_total", "Occurrences of recurring schedules not run: the previous one still live (overlap), or missed while down and dropped by policy (missed).", "reason"),

		upstreamUp:        d("upstream_up", "1 while the connection to the upstream gearmand is up.", "upstream"),
		forwarded:         d("upstream_forwarded_total", "Jobs the upstream acknowledged with JOB_CREATED, trigger jobs included.", "upstream"),
		upstreamRefused:   d("upstream_refused_total", "Submissions the upstream answered with ERROR; they are offered again later.", "upstream"),
		upstreamFailures:  d("upstream_connection_failures_total", "Connections to the upstream lost or timed out.", "upstream"),
		late:              d("upstream_late_total", "Jobs acknowledged by the upstream 1 s or more after their due time.", "upstream"),
		triggersSent:      d("upstream_triggers_sent_total", "Trigger jobs the upstream acknowledged.", "upstream"),
		triggersCancelled: d("upstream_triggers_cancelled_total", "Trigger jobs cancelled while queued because their epoch jobs were taken.", "upstream"),
		triggersDelivered: d("upstream_triggers_delivered_total", "Trigger jobs seen taken by a worker.", "upstream"),
		watchedQueues:     d("sidecar_watched_queues", "Upstream queues the sidecar watches."),
	}
}

// collector reads every source at scrape time.
type collector struct {
	cfg Config
	log *slog.Logger
	d   *descs

	mu  sync.Mutex // one scrape at a time: fns owns reused buffers
	fns *functionSeries
}

func newCollector(cfg Config, log *slog.Logger) *collector {
	return &collector{cfg: cfg, log: log, d: newDescs(), fns: newFunctionSeries(cfg.MaxFunctions)}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	d := c.d
	for _, desc := range []*prometheus.Desc{d.buildInfo,
		d.queued, d.running, d.workers, d.pending, d.schedules, d.submitted, d.completed, d.failed, d.retried,
		d.lateness, d.connections, d.accepted, d.refused, d.slow, d.cancels,
		d.commitDuration, d.commitWrites, d.commitErrors, d.checkpointDuration, d.queuedWrites, d.fileSize, d.freeBytes, d.nextDue,
		d.releaseErrors, d.skippedRuns,
		d.upstreamUp, d.forwarded, d.upstreamRefused, d.upstreamFailures, d.late,
		d.triggersSent, d.triggersCancelled, d.triggersDelivered, d.watchedQueues} {
		ch <- desc
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := emitter{ch}
	e.gauge(c.d.buildInfo, 1, c.cfg.Version)
	c.collectFunctions(e)
	c.collectServer(e)
	c.collectStore(e)
	if c.cfg.Scheduler != nil {
		st := c.cfg.Scheduler.Stats()
		e.counter(c.d.releaseErrors, float64(st.ReleaseErrors))
		e.counter(c.d.skippedRuns, float64(st.SkippedOverlap), "overlap")
		e.counter(c.d.skippedRuns, float64(st.DroppedMissed), "missed")
	}
	c.collectForwarder(e)
}

// sidecar reports whether these are a sidecar's metrics.
func (c *collector) sidecar() bool { return c.cfg.Forwarder != nil }

func (c *collector) collectFunctions(e emitter) {
	totals := c.fns.gather(c.cfg.Server, c.cfg.Store.PendingCounts(), c.cfg.Store.ScheduleCounts())
	d := c.d
	for fn, t := range totals {
		e.gauge(d.pending, float64(t.pending), fn)
		e.gauge(d.schedules, float64(t.schedules), fn)
		e.counter(d.submitted, float64(t.submitted), fn)
		if c.sidecar() { // no workers: nothing is queued, run or finished here
			continue
		}
		for p, prio := range priorityNames {
			e.gauge(d.queued, float64(t.queued[p]), fn, prio)
			e.gauge(d.running, float64(t.running[p]), fn, prio)
		}
		e.gauge(d.workers, float64(t.workers), fn)
		e.counter(d.completed, float64(t.completed), fn)
		e.counter(d.failed, float64(t.failed), fn)
		e.counter(d.retried, float64(t.retried), fn)
	}
}

func (c *collector) collectServer(e emitter) {
	st := c.cfg.Server.Stats()
	d := c.d
	e.gauge(d.connections, float64(st.Connections))
	e.counter(d.accepted, float64(st.Accepted))
	e.counter(d.refused, float64(st.Refused))
	e.counter(d.slow, float64(st.SlowConsumers))
	e.counter(d.cancels, float64(st.CancelledLive), "live")
	e.counter(d.cancels, float64(st.CancelledPending), "pending")
	e.counter(d.cancels, float64(st.CancelledSchedules), "schedule")
	if !c.sidecar() {
		e.seconds(d.lateness, st.ReleaseLateness, "released")
		e.seconds(d.lateness, st.AssignLateness, "assigned")
	}
}

func (c *collector) collectStore(e emitter) {
	d := c.d
	st, err := c.cfg.Store.Stats()
	if err != nil {
		e.invalid(d.fileSize, err)
	} else {
		e.gauge(d.fileSize, float64(st.FileSize))
	}
	e.seconds(d.commitDuration, st.CommitDuration)
	e.histogram(d.commitWrites, st.CommitWrites, 1)
	e.seconds(d.checkpointDuration, st.CheckpointDuration)
	e.counter(d.commitErrors, float64(st.CommitErrors))
	e.gauge(d.queuedWrites, float64(st.QueuedWrites))
	e.gauge(d.freeBytes, float64(st.FreeBytes))
	switch due, ok, err := c.cfg.Store.NextDue(); {
	case err != nil:
		e.invalid(d.nextDue, err)
	case ok:
		e.gauge(d.nextDue, float64(due)/float64(time.Second))
	}
}

func (c *collector) collectForwarder(e emitter) {
	if c.cfg.Forwarder == nil {
		return
	}
	st := c.cfg.Forwarder.Stats()
	d := c.d
	e.seconds(d.lateness, st.ReleaseLateness, "released")
	e.seconds(d.lateness, st.AckLateness, "acknowledged")
	for _, u := range st.Upstreams {
		up := 0.0
		if u.Up {
			up = 1
		}
		e.gauge(d.upstreamUp, up, u.Addr)
		for _, n := range []struct {
			desc *prometheus.Desc
			v    uint64
		}{{d.forwarded, u.Submitted}, {d.upstreamRefused, u.Refused}, {d.upstreamFailures, u.Failures},
			{d.late, u.Late}, {d.triggersSent, u.TriggersSent}, {d.triggersCancelled, u.TriggersCancelled},
			{d.triggersDelivered, u.TriggersDelivered}} {
			e.counter(n.desc, float64(n.v), u.Addr)
		}
	}
	if c.cfg.Watcher != nil {
		e.gauge(d.watchedQueues, float64(c.cfg.Watcher.WatchedQueues()))
	}
}

// emitter sends constant metrics. A label value Prometheus refuses
// becomes an error of that series rather than a panic.
type emitter struct{ ch chan<- prometheus.Metric }

func (e emitter) send(m prometheus.Metric, err error, desc *prometheus.Desc) {
	if err != nil {
		m = prometheus.NewInvalidMetric(desc, err)
	}
	e.ch <- m
}

func (e emitter) invalid(desc *prometheus.Desc, err error) { e.send(nil, err, desc) }

func (e emitter) gauge(desc *prometheus.Desc, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	e.send(m, err, desc)
}

func (e emitter) counter(desc *prometheus.Desc, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(desc, prometheus.CounterValue, v, labels...)
	e.send(m, err, desc)
}

// seconds sends a histogram of nanoseconds in seconds.
func (e emitter) seconds(desc *prometheus.Desc, h stats.HistogramSnapshot, labels ...string) {
	e.histogram(desc, h, float64(time.Second), labels...)
}

// histogram sends h with its bounds and sum divided by unit (dividing
// keeps bounds such as 1e6 ns exactly 0.001 s).
func (e emitter) histogram(desc *prometheus.Desc, h stats.HistogramSnapshot, unit float64, labels ...string) {
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[float64(b)/unit] = h.Cumulative[i]
	}
	m, err := prometheus.NewConstHistogram(desc, h.Count, float64(h.Sum)/unit, buckets, labels...)
	e.send(m, err, desc)
}
