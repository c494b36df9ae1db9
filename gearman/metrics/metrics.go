// Package metrics serves gearsched's state and counters in the Prometheus
// text format, for an HTTP listener to mount at /metrics.
//
// Nothing here counts. The packages count for themselves, with atomics
// and the lock-free histograms of package stats, or with plain integers
// under a mutex they already hold (the job server's per-function counts):
// that keeps Prometheus out of them and their hot paths at an atomic add.
// This package reads their snapshots when scraped and turns them into
// constant metrics on a registry of its own (no global registry, so two
// servers in one process, or tests, never share series). State that
// belongs to a mutex (queues, running jobs) is copied under it in one
// short pass per scrape; pending jobs and schedules come from the store's
// in-memory counts, never from a scan.
//
// Per-function series are capped (Config.MaxFunctions): the first
// functions seen keep their own function label, sorted by name among
// those first seen in the same scrape, and every later one is added into
// function="other". The choice lasts for the process's life, so a series
// never changes meaning; the counters behind "other" never decrease, since
// the job server keeps a function's counters after `drop function`.
package metrics

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"reflect"

	"github.com/gearsched/gearsched/gearman/server"
	"github.com/gearsched/gearsched/gearman/sidecar"
	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultMaxFunctions is how many functions get their own function label
// by default.
const DefaultMaxFunctions = 100

// StoreSource is what the metrics read from the store; *store.Store is
// one.
type StoreSource interface {
	Stats() (store.Stats, error)
	PendingCounts() map[string]int
	ScheduleCounts() map[string]int
	NextDue() (due int64, ok bool, err error)
}

// ServerSource is what the metrics read from the job server or the
// sidecar's listener; *server.Server is one.
type ServerSource interface {
	Stats() server.Stats
	AppendFunctionStats([]server.FunctionStats) []server.FunctionStats
}

// SchedulerSource is the scheduler's loop; *scheduler.Scheduler is one.
type SchedulerSource interface {
	Stats() scheduler.Stats
}

// ForwarderSource is the sidecar's forwarder; *sidecar.Forwarder is one.
type ForwarderSource interface {
	Stats() sidecar.Stats
}

// WatcherSource is the sidecar's watcher of gearmand's queues, for when
// it exists: how many queues it watches.
type WatcherSource interface {
	WatchedQueues() int
}

// Config says what the metrics read.
type Config struct {
	Store  StoreSource  // required
	Server ServerSource // required: the job server, or the sidecar's listener
	// Scheduler is the due-time loop; nil leaves its counters out.
	Scheduler SchedulerSource
	// Forwarder makes these a sidecar's metrics: upstream series, and
	// lateness from the forwarder; the job server's worker-side series
	// (queues, running jobs, workers, results) are left out.
	Forwarder ForwarderSource
	// Watcher, in sidecar mode, adds the number of watched queues.
	Watcher WatcherSource
	// MaxFunctions caps the values of the function label; default
	// DefaultMaxFunctions.
	MaxFunctions int
	// Version is reported by gearsched_build_info.
	Version string
	// Logger receives the errors of reads that failed during a scrape;
	// the page is served without the metrics they would have given.
	Logger *slog.Logger
}

// Metrics is the /metrics endpoint over its own registry.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler
}

// New returns the endpoint for cfg's sources. It reads them only when
// scraped.
func New(cfg Config) (*Metrics, error) {
	if absent(cfg.Store) || absent(cfg.Server) {
		return nil, errors.New("metrics: Config.Store and Config.Server are required")
	}
	// A mode's missing part is often a nil pointer in a non-nil interface
	// (a nil *sidecar.Forwarder in job-server mode): treat it as absent
	// rather than call it at the first scrape.
	if absent(cfg.Scheduler) {
		cfg.Scheduler = nil
	}
	if absent(cfg.Forwarder) {
		cfg.Forwarder = nil
	}
	if absent(cfg.Watcher) {
		cfg.Watcher = nil
	}
	if cfg.MaxFunctions < 0 {
		return nil, errors.New("metrics: Config.MaxFunctions must not be negative")
	}
	if cfg.MaxFunctions == 0 {
		cfg.MaxFunctions = DefaultMaxFunctions
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(newCollector(cfg, log)); err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: errorLog{log},
		// A read that failed (the database file's size, say) costs its
		// own metrics, not the whole page.
		ErrorHandling: promhttp.ContinueOnError,
	})
	return &Metrics{reg: reg, handler: h}, nil
}

// ServeHTTP serves the metrics to GET and HEAD; other methods get 405
// with a JSON reason.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMethodNotAllowed)
		json.NewEncoder(w).Encode(map[string]string{"error": "method " + r.Method + " not allowed: /metrics is read-only"})
		return
	}
	m.handler.ServeHTTP(w, r)
}

// Gatherer returns the registry, for whatever else wants the numbers (a
// status page, tests).
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// absent reports whether a source is missing: nil, or a nil pointer.
func absent(src any) bool {
	if src == nil {
		return true
	}
	v := reflect.ValueOf(src)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// errorLog hands promhttp's errors to slog.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) {
	l.log.Warn("metrics: a scrape could not read everything", "err", v)
}
