package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gearsched/gearsched/gearman/server"
	"github.com/gearsched/gearsched/store"
)

// MaxBody bounds a POST body: a schedule request's JSON, data included.
// Larger payloads go through the Gearman port, which takes up to
// --max-packet-size.
const MaxBody = 1 << 20

// DefaultRuns is how many runs /api/v1/runs returns unless told.
const DefaultRuns = 50

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// writeError writes {"error": msg} with status.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// internalError logs err and answers 500 without it: it may name files.
func (a *API) internalError(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Error("HTTP request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error; see the server's log")
}

// GET /api/v1/scheduled?function=&limit=&cursor=
func (a *API) listScheduled(w http.ResponseWriter, r *http.Request) {
	lq, err := parseListQuery(r.URL.Query(), DefaultLimit)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	l, err := a.list(lq)
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

// GET /api/v1/scheduled/{handle}: the explain view.
func (a *API) getScheduled(w http.ResponseWriter, r *http.Request) {
	handle := r.PathValue("handle")
	d, found, err := a.explain(handle)
	switch {
	case err != nil:
		a.internalError(w, r, err)
	case !found:
		writeError(w, http.StatusNotFound, "no pending job or schedule "+strconv.Quote(handle))
	default:
		writeJSON(w, http.StatusOK, d)
	}
}

// explain looks handle up: a pending job, a schedule, or a one-shot job
// that fired and whose run is still recorded.
func (a *API) explain(handle string) (detail, bool, error) {
	id, ok := a.cfg.Jobs.ParseHandle(handle)
	if !ok {
		return detail{}, false, nil
	}
	st := a.cfg.Store
	runs, err := st.Runs(id)
	if err != nil {
		return detail{}, false, err
	}
	var d detail
	if j, err := st.Scheduled(id); err != nil {
		return detail{}, false, err
	} else if j != nil {
		d.item, d.NextRuns = jobItem(j), []string{formatTime(j.Due)}
	} else if sc, err := st.GetSchedule(id); err != nil {
		return detail{}, false, err
	} else if sc != nil {
		d.item, d.NextRuns = scheduleItem(sc), scheduleNextRuns(sc, nextRuns)
	} else if len(runs) > 0 {
		d.item = item{Handle: handle, Kind: "job", State: stateFired, Function: runs[0].Function, Priority: "normal"}
		d.NextRuns = []string{}
	} else {
		return detail{}, false, nil
	}
	d.Runs = make([]run, len(runs))
	for i := range runs {
		d.Runs[i] = runView(&runs[i], handle)
	}
	return d, true, nil
}

// POST /api/v1/scheduled: the control function's JSON.
func (a *API) createScheduled(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "send the request as Content-Type: application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			writeError(w, http.StatusRequestEntityTooLarge, "request body over 1 MiB; submit large payloads over Gearman")
			return
		}
		writeError(w, http.StatusBadRequest, "reading the request: "+err.Error())
		return
	}
	req, err := server.ParseScheduleRequest(body, a.cfg.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		// A retried request finds what the first one made, for as long
		// as the store knows it.
		req.Request = "http:" + key
	}
	handle, next, err := a.cfg.Jobs.Schedule(req)
	switch {
	case errors.As(err, new(*server.InvalidError)):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, server.ErrShuttingDown):
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		a.internalError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/scheduled/"+url.PathEscape(handle))
	writeJSON(w, http.StatusCreated, map[string]string{"handle": handle, "next_run": formatTime(next.UnixNano())})
}

// DELETE /api/v1/scheduled/{handle}
func (a *API) cancelScheduled(w http.ResponseWriter, r *http.Request) {
	handle := r.PathValue("handle")
	found, err := a.cfg.Jobs.Cancel(handle)
	switch {
	case errors.Is(err, server.ErrFileSchedule):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		a.internalError(w, r, err)
	case !found:
		writeError(w, http.StatusNotFound, "no job or schedule "+strconv.Quote(handle))
	default:
		writeJSON(w, http.StatusOK, map[string]any{"handle": handle, "cancelled": true})
	}
}

// POST /api/v1/scheduled/{handle}/pause
func (a *API) pauseScheduled(w http.ResponseWriter, r *http.Request) {
	a.setPaused(w, r, a.cfg.Jobs.Pause)
}

// POST /api/v1/scheduled/{handle}/resume
func (a *API) resumeScheduled(w http.ResponseWriter, r *http.Request) {
	a.setPaused(w, r, a.cfg.Jobs.Resume)
}

func (a *API) setPaused(w http.ResponseWriter, r *http.Request, op func(string) (*store.Schedule, error)) {
	handle := r.PathValue("handle")
	sc, err := op(handle)
	switch {
	case errors.Is(err, server.ErrUnknownJob):
		writeError(w, http.StatusNotFound, "no schedule "+strconv.Quote(handle))
	case errors.Is(err, server.ErrNotSchedule):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		a.internalError(w, r, err)
	default:
		writeJSON(w, http.StatusOK, scheduleItem(sc))
	}
}

// GET /api/v1/runs?limit=: the latest runs of any item.
func (a *API) listRuns(w http.ResponseWriter, r *http.Request) {
	limit := DefaultRuns
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			writeError(w, http.StatusBadRequest, "limit "+strconv.Quote(s)+": want 1 to "+strconv.Itoa(MaxLimit))
			return
		}
		limit = n
	}
	runs, err := a.recentRuns(limit)
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": runs})
}

// recentRuns returns the latest runs, each labelled with its item: the
// schedule's name (or unique, or handle), or the one-shot job's handle.
func (a *API) recentRuns(n int) ([]run, error) {
	runs, err := a.cfg.Store.RecentRuns(n)
	if err != nil {
		return nil, err
	}
	scheds, err := a.cfg.Store.Schedules()
	if err != nil {
		return nil, err
	}
	byID := make(map[uint64]*store.Schedule, len(scheds))
	for _, sc := range scheds {
		byID[sc.ID] = sc
	}
	out := make([]run, len(runs))
	for i := range runs {
		label := runs[i].Handle
		if sc := byID[runs[i].Item]; sc != nil {
			label = sc.Handle
		}
		out[i] = runView(&runs[i], label)
	}
	return out, nil
}

// function is one function in JSON: what `status` and `prioritystatus`
// show.
type function struct {
	Name      string         `json:"name"`
	Total     int            `json:"total"`
	Running   int            `json:"running"`
	Workers   int            `json:"workers"`
	Queued    map[string]int `json:"queued"` // high, normal, low
	Pending   int            `json:"pending"`
	Schedules int            `json:"schedules"`
}

// GET /api/v1/functions
func (a *API) listFunctions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"functions": a.functions()})
}

func (a *API) functions() []function {
	fs := a.cfg.Jobs.Functions()
	out := make([]function, len(fs))
	for i, f := range fs {
		out[i] = function{Name: f.Name, Total: f.Total, Running: f.Running, Workers: f.Workers,
			Queued:  map[string]int{"high": f.Queued[0], "normal": f.Queued[1], "low": f.Queued[2]},
			Pending: f.Pending, Schedules: f.Schedules}
	}
	return out
}

// upstream is one upstream server in JSON.
type upstream struct {
	Addr              string `json:"addr"`
	Up                bool   `json:"up"`
	Submitted         uint64 `json:"submitted"`
	Refused           uint64 `json:"refused"`
	Failures          uint64 `json:"failures"`
	Late              uint64 `json:"late"`
	MaxLateMs         int64  `json:"max_late_ms"`
	Triggers          uint64 `json:"triggers"`
	TriggersCancelled uint64 `json:"triggers_cancelled"`
}

// GET /api/v1/upstreams: a sidecar's upstream servers; none in job-server
// mode.
func (a *API) listUpstreams(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"mode": a.mode(), "upstreams": a.upstreams()})
}

func (a *API) upstreams() []upstream {
	out := []upstream{}
	if a.cfg.Upstreams == nil {
		return out
	}
	for _, u := range a.cfg.Upstreams() {
		out = append(out, upstream{Addr: u.Addr, Up: u.Up, Submitted: u.Submitted, Refused: u.Refused,
			Failures: u.Failures, Late: u.Late, MaxLateMs: u.MaxLate.Milliseconds(), Triggers: u.Triggers,
			TriggersCancelled: u.TriggersCancelled})
	}
	return out
}

func (a *API) mode() string {
	if a.cfg.Mode != "" {
		return a.cfg.Mode
	}
	if a.cfg.Upstreams != nil {
		return "sidecar"
	}
	return "server"
}
