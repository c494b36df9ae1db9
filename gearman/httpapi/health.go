package httpapi

import "net/http"

// GET /healthz: the process is alive and serving HTTP. It checks nothing
// else, so that a supervisor restarts only a daemon that stopped
// answering, never one that waits for its upstream.
func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// GET /readyz: every readiness check passes (the store is open, the
// Gearman listener is up; in a sidecar, an upstream server is reachable).
// 200 or 503, with each check's result.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	status, ready := http.StatusOK, true
	checks := make(map[string]string, len(a.cfg.Ready))
	for _, c := range a.cfg.Ready {
		checks[c.Name] = "ok"
		if err := c.Fn(); err != nil {
			checks[c.Name] = err.Error()
			status, ready = http.StatusServiceUnavailable, false
		}
	}
	writeJSON(w, status, map[string]any{"ready": ready, "checks": checks})
}
