// Package httpapi is gearsched's HTTP face: a JSON API over what is
// scheduled (list, explain, schedule, cancel, pause, resume), the
// functions and upstream servers, health and readiness probes, an online
// backup of the database, and a web page for people, served from
// templates and assets built into the binary.
//
// It reaches the rest of gearsched through the small interfaces of
// backend.go, which *store.Store and *server.Server implement; the
// command wires them. Where things are:
//
//   - httpapi.go: Config, New, the routes.
//   - backend.go: the interfaces it needs.
//   - api.go: the JSON API; view.go: how items and runs look in JSON;
//     cursor.go: listing pages.
//   - auth.go: the bearer token, cross-origin and host checks.
//   - health.go: /healthz and /readyz.
//   - backup.go: the online backup.
//   - page.go, chart.go, templates/, assets/: the web page.
//   - serve.go: the HTTP server's timeouts and shutdown.
package httpapi

import (
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Config configures the HTTP face.
type Config struct {
	// Store and Jobs are required.
	Store Store
	Jobs  Jobs
	// Upstreams reports the upstream servers of a sidecar; nil in
	// job-server mode.
	Upstreams func() []Upstream
	// Ready are the readiness checks of /readyz, run in order.
	Ready []Check
	// Token, when not empty, is the bearer token that mutating requests
	// (POST, DELETE) and backups must carry. Without one, anybody who
	// can connect may change what is scheduled: the command allows that
	// only on a loopback address.
	Token string
	// Loopback says the listener is on a loopback address: requests
	// must then name a loopback host, so that a web page elsewhere
	// cannot reach the API through DNS rebinding.
	Loopback bool
	// Metrics, when set, serves /metrics.
	Metrics http.Handler
	// Version and Mode ("server" or "sidecar") are shown on the page.
	Version, Mode string
	Logger        *slog.Logger
	// Now returns the current time; default time.Now.
	Now func() time.Time
}

// API serves the HTTP face; it is an http.Handler.
type API struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	handler http.Handler
	cross   *http.CrossOriginProtection
	page    *pageRenderer
}

// New returns the HTTP face over cfg.
func New(cfg Config) (*API, error) {
	if cfg.Store == nil || cfg.Jobs == nil {
		return nil, errors.New("httpapi: Config needs a Store and Jobs")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	page, err := newPageRenderer()
	if err != nil {
		return nil, err
	}
	a := &API{cfg: cfg, log: log, mux: http.NewServeMux(), cross: http.NewCrossOriginProtection(), page: page}
	a.routes()
	a.handler = a.guard(a.mux)
	return a, nil
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// routes registers every path once; each handler answers the methods it
// takes and a JSON 405 to the others (the mux's own 405 is plain text).
func (a *API) routes() {
	m := a.mux
	m.Handle("/healthz", methods{http.MethodGet: a.healthz})
	m.Handle("/readyz", methods{http.MethodGet: a.readyz})
	m.Handle("/api/v1/scheduled", methods{http.MethodGet: a.listScheduled, http.MethodPost: a.createScheduled})
	m.Handle("/api/v1/scheduled/{handle}", methods{http.MethodGet: a.getScheduled, http.MethodDelete: a.cancelScheduled})
	m.Handle("/api/v1/scheduled/{handle}/pause", methods{http.MethodPost: a.pauseScheduled})
	m.Handle("/api/v1/scheduled/{handle}/resume", methods{http.MethodPost: a.resumeScheduled})
	m.Handle("/api/v1/runs", methods{http.MethodGet: a.listRuns})
	m.Handle("/api/v1/functions", methods{http.MethodGet: a.listFunctions})
	m.Handle("/api/v1/upstreams", methods{http.MethodGet: a.listUpstreams})
	m.Handle("/api/v1/backup", methods{http.MethodGet: a.backup})
	if a.cfg.Metrics != nil {
		m.Handle("/metrics", a.cfg.Metrics)
	}
	m.Handle("/assets/", methods{http.MethodGet: a.page.assets})
	m.Handle("/", methods{http.MethodGet: a.servePage})
}

// methods routes a path's requests by method. HEAD goes where GET does.
type methods map[string]http.HandlerFunc

func (ms methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if h := ms[method]; h != nil {
		h(w, r)
		return
	}
	w.Header().Set("Allow", strings.Join(slices.Sorted(maps.Keys(ms)), ", "))
	writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed here")
}
