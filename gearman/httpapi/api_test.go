package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman/server"
	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
)

// t0 is the test clock's start.
var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// fixture is the HTTP face over a real store and job server, served on
// 127.0.0.1 by httptest.
type fixture struct {
	t     *testing.T
	st    *store.Store
	srv   *server.Server
	api   *API
	http  *httptest.Server
	clock atomic.Int64 // unix ns
	token string
}

// option changes the Config before New.
type option func(*Config)

func newFixture(t *testing.T, opts ...option) *fixture {
	t.Helper()
	f := &fixture{t: t}
	f.clock.Store(t0.UnixNano())
	st, err := store.Open(filepath.Join(t.TempDir(), "api.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	f.st = st
	srv, err := server.New(server.Config{Store: st, HandlePrefix: "H:test", Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	cfg := Config{Store: st, Jobs: srv, Version: "test", Now: f.now, Loopback: true,
		Ready: []Check{{Name: "store", Fn: st.Ping}}}
	for _, o := range opts {
		o(&cfg)
	}
	f.token = cfg.Token
	if f.api, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	f.http = httptest.NewServer(f.api)
	t.Cleanup(func() {
		f.http.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		srv.Shutdown(ctx)
		st.Close()
	})
	return f
}

func (f *fixture) now() time.Time      { return time.Unix(0, f.clock.Load()).UTC() }
func (f *fixture) set(at time.Time)    { f.clock.Store(at.UnixNano()) }
func withToken(tok string) option      { return func(c *Config) { c.Token = tok } }
func withReady(checks ...Check) option { return func(c *Config) { c.Ready = checks } }

// response is a reply read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into v, failing the test if it is not JSON.
func (r response) json(t *testing.T, v any) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body %s", ct, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.body)
	}
}

// errorText returns the {"error": ...} of a reply, failing if it has none.
func (r response) errorText(t *testing.T) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	r.json(t, &e)
	if e.Error == "" {
		t.Fatalf("status %d without an error text: %s", r.status, r.body)
	}
	return e.Error
}

// do sends a request with the fixture's token, if any, unless headers say
// otherwise.
func (f *fixture) do(method, path, body string, headers ...string) response {
	f.t.Helper()
	req, err := http.NewRequest(method, f.http.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if f.token != "" {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// expect sends a request and checks its status.
func (f *fixture) expect(status int, method, path, body string, headers ...string) response {
	f.t.Helper()
	r := f.do(method, path, body, headers...)
	if r.status != status {
		f.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.status, status, r.body)
	}
	return r
}

// schedule POSTs a schedule request and returns its handle.
func (f *fixture) schedule(body string) string {
	f.t.Helper()
	var out struct{ Handle, NextRun string }
	f.expect(http.StatusCreated, "POST", "/api/v1/scheduled", body).json(f.t, &out)
	return out.Handle
}

func (f *fixture) list(query string) listing {
	f.t.Helper()
	var l listing
	f.expect(http.StatusOK, "GET", "/api/v1/scheduled"+query, "").json(f.t, &l)
	return l
}

func handles(items []item) []string {
	var hs []string
	for _, it := range items {
		hs = append(hs, it.Handle)
	}
	return hs
}

func TestListScheduledPages(t *testing.T) {
	f := newFixture(t)
	var want []string
	for i := range 5 {
		fn := "even"
		if i%2 == 1 {
			fn = "odd"
		}
		want = append(want, f.schedule(`{"function":"`+fn+`","in":"`+strconv.Itoa(i+1)+`h"}`))
	}
	sc := f.schedule(`{"function":"odd","cron":"0 3 * * *","tz":"Europe/Berlin"}`)
	paused := f.schedule(`{"function":"even","cron":"*/5 * * * *"}`)
	f.expect(http.StatusOK, "POST", "/api/v1/scheduled/"+paused+"/pause", "")

	// Due order: the jobs, 13:00 to 17:00 UTC, then the schedule at 03:00
	// Berlin, 01:00 UTC the next day.
	first := f.list("?limit=2")
	if got := handles(first.Items); strings.Join(got, " ") != strings.Join(want[:2], " ") || first.NextCursor == "" {
		t.Fatalf("first page %v cursor %q, want %v and a cursor", got, first.NextCursor, want[:2])
	}
	if len(first.NotDue) != 1 || first.NotDue[0].Handle != paused || first.NotDue[0].State != statePaused {
		t.Errorf("first page not_due = %+v, want the paused schedule", first.NotDue)
	}
	rest := f.list("?limit=10&cursor=" + first.NextCursor)
	if got, w := handles(rest.Items), append(append([]string{}, want[2:]...), sc); strings.Join(got, " ") != strings.Join(w, " ") {
		t.Errorf("second page %v, want %v", got, w)
	}
	if rest.NextCursor != "" || rest.NotDue != nil {
		t.Errorf("last page: cursor %q, not_due %v; want neither", rest.NextCursor, rest.NotDue)
	}
	odd := f.list("?function=odd")
	if got := handles(odd.Items); strings.Join(got, " ") != strings.Join([]string{want[1], want[3], sc}, " ") {
		t.Errorf("function=odd lists %v", got)
	}
	if it := odd.Items[2]; it.Kind != "schedule" || it.Spec != "0 3 * * *" || it.Zone != "Europe/Berlin" ||
		*it.NextRun != "2026-06-02T01:00:00Z" {
		t.Errorf("schedule listed as %+v", it)
	}
	if none := f.list("?function="); len(none.Items) != 0 || none.Scanned != 6 {
		t.Errorf(`function="" (a valid name) lists %v after %d entries`, handles(none.Items), none.Scanned)
	}
}

func TestListScheduledBadInput(t *testing.T) {
	f := newFixture(t)
	for _, q := range []string{"?cursor=xyz", "?cursor=" + encodeCursor(store.DueCursor{Due: 1}), "?limit=0",
		"?limit=1001", "?limit=ten", "?cursor=" + strings.Repeat("A", 30)} {
		r := f.expect(http.StatusBadRequest, "GET", "/api/v1/scheduled"+q, "")
		if msg := r.errorText(t); !strings.Contains(msg, "cursor") && !strings.Contains(msg, "limit") {
			t.Errorf("%s: error %q names neither cursor nor limit", q, msg)
		}
	}
}

func TestCreateScheduled(t *testing.T) {
	f := newFixture(t)
	r := f.expect(http.StatusCreated, "POST", "/api/v1/scheduled",
		`{"function":"report","data":"x","unique":"r1","priority":"high","at":"2026-06-01T13:00:00+01:00"}`)
	var out map[string]string
	r.json(t, &out)
	if out["handle"] == "" || out["next_run"] != "2026-06-01T12:00:00Z" {
		t.Errorf("reply %v, want a handle and next_run 12:00Z", out)
	}
	if loc := r.header.Get("Location"); loc != "/api/v1/scheduled/"+url.PathEscape(out["handle"]) {
		t.Errorf("Location %q", loc)
	}
	again := f.schedule(`{"function":"report","unique":"r1","in":"5h"}`)
	if again != out["handle"] {
		t.Errorf("same (function, unique) got %s, want the holder %s", again, out["handle"])
	}
	k1 := f.schedule(`{"function":"k","in":"1h"}` + "\n")
	idem := func() string {
		var o map[string]string
		f.expect(http.StatusCreated, "POST", "/api/v1/scheduled", `{"function":"k","in":"1h"}`,
			"Idempotency-Key", "abc").json(t, &o)
		return o["handle"]
	}
	if h1, h2 := idem(), idem(); h1 != h2 || h1 == k1 {
		t.Errorf("Idempotency-Key: %s then %s (without a key: %s); want the same, new one", h1, h2, k1)
	}

	for _, tc := range []struct {
		body, ctype string
		status      int
		reason      string
	}{
		{`{"function":`, "application/json", 400, "not a JSON object"},
		{`{"function":"f","at":1,"in":"1h"}`, "application/json", 400, `exactly one of "at", "in" and "cron"`},
		{`{"in":"1h"}`, "application/json", 400, `"function" is required`},
		{`{"function":"f","in":"1h","colour":"red"}`, "application/json", 400, "colour"},
		{`{"function":"f","cron":"61 * * * *"}`, "application/json", 400, "61"},
		{`{"function":"f","cron":"* * * * *","tz":"Mars/Olympus"}`, "application/json", 400, "tz"},
		{`{"function":"f","in":"1h"}`, "text/plain", 415, "application/json"},
		{`{"function":"f","in":"1h","data":"` + strings.Repeat("x", MaxBody) + `"}`, "application/json", 413, "1 MiB"},
	} {
		r := f.do("POST", "/api/v1/scheduled", tc.body, "Content-Type", tc.ctype)
		if r.status != tc.status {
			t.Errorf("%.60s: status %d, want %d (%s)", tc.body, r.status, tc.status, r.body)
			continue
		}
		if msg := r.errorText(t); !strings.Contains(msg, tc.reason) {
			t.Errorf("%.60s: error %q, want it to mention %q", tc.body, msg, tc.reason)
		}
	}
}

func TestGetScheduledExplains(t *testing.T) {
	f := newFixture(t)
	job := f.schedule(`{"function":"j","in":"1m","data":"abc"}`)
	sc := f.schedule(`{"function":"s","cron":"*/10 * * * *"}`)
	var d detail
	f.expect(http.StatusOK, "GET", "/api/v1/scheduled/"+url.PathEscape(job), "").json(t, &d)
	if d.Kind != "job" || d.State != statePending || d.DataSize != 3 || len(d.NextRuns) != 1 ||
		d.NextRuns[0] != "2026-06-01T12:01:00Z" || len(d.Runs) != 0 {
		t.Errorf("pending job explained as %+v", d)
	}
	f.expect(http.StatusOK, "GET", "/api/v1/scheduled/"+sc, "").json(t, &d)
	want := []string{"2026-06-01T12:10:00Z", "2026-06-01T12:20:00Z", "2026-06-01T12:30:00Z", "2026-06-01T12:40:00Z",
		"2026-06-01T12:50:00Z"}
	if d.Kind != "schedule" || strings.Join(d.NextRuns, " ") != strings.Join(want, " ") {
		t.Errorf("schedule explained as %+v, want next runs %v", d, want)
	}

	// Fire both, 3 s late; the job's run and outcome are then explained.
	f.set(t0.Add(10*time.Minute + 3*time.Second))
	sched := scheduler.New(scheduler.Config{Store: f.st, Sink: f.srv})
	if err := sched.Tick(context.Background(), f.now(), t0); err != nil {
		t.Fatal(err)
	}
	f.expect(http.StatusOK, "GET", "/api/v1/scheduled/"+job, "").json(t, &d)
	if d.State != stateFired || d.Function != "j" || len(d.Runs) != 1 {
		t.Fatalf("fired job explained as %+v", d)
	}
	if r := d.Runs[0]; r.Due != "2026-06-01T12:01:00Z" || r.Released != "2026-06-01T12:10:03Z" || r.Lateness != 543000 {
		t.Errorf("run %+v, want due 12:01, released 12:10:03, 543000 ms late", r)
	}
	f.expect(http.StatusOK, "GET", "/api/v1/scheduled/"+sc, "").json(t, &d)
	if len(d.Runs) != 1 || d.Runs[0].Lateness != 3000 || d.Runs[0].Handle == sc || d.NextRuns[0] != "2026-06-01T12:20:00Z" {
		t.Errorf("schedule after its first run: %+v", d)
	}
	var runs struct{ Runs []run }
	f.expect(http.StatusOK, "GET", "/api/v1/runs?limit=10", "").json(t, &runs)
	if len(runs.Runs) != 2 || runs.Runs[0].Item != job && runs.Runs[1].Item != job {
		t.Errorf("recent runs %+v", runs.Runs)
	}
	f.expect(http.StatusBadRequest, "GET", "/api/v1/runs?limit=0", "")

	for _, h := range []string{"H:test:999999", "H:other:1", "nonsense"} {
		if msg := f.expect(http.StatusNotFound, "GET", "/api/v1/scheduled/"+h, "").errorText(t); !strings.Contains(msg, h) {
			t.Errorf("404 for %s says %q", h, msg)
		}
	}
}

func TestCancelScheduled(t *testing.T) {
	f := newFixture(t)
	job := f.schedule(`{"function":"j","in":"1h"}`)
	var out map[string]any
	f.expect(http.StatusOK, "DELETE", "/api/v1/scheduled/"+job, "").json(t, &out)
	if out["handle"] != job || out["cancelled"] != true {
		t.Errorf("cancel reply %v", out)
	}
	f.expect(http.StatusNotFound, "DELETE", "/api/v1/scheduled/"+job, "").errorText(t)
	f.expect(http.StatusNotFound, "GET", "/api/v1/scheduled/"+job, "")

	// A schedules-file entry is removed by editing the file.
	_, err := scheduler.Sync(f.st, []*store.Schedule{{Name: "nightly", Source: store.SourceFile, Spec: "0 2 * * *",
		Zone: "UTC", Function: "n", Missed: scheduler.MissedOnce, Overlap: scheduler.OverlapAllow, Enabled: true}},
		t0, func() (uint64, string, error) { return 500, "H:test:500", nil })
	if err != nil {
		t.Fatal(err)
	}
	if msg := f.expect(http.StatusConflict, "DELETE", "/api/v1/scheduled/H:test:500", "").errorText(t); !strings.Contains(msg, "file") {
		t.Errorf("409 for a file schedule says %q", msg)
	}
}

func TestPauseResume(t *testing.T) {
	f := newFixture(t)
	sc := f.schedule(`{"function":"s","cron":"0 * * * *"}`)
	job := f.schedule(`{"function":"j","in":"1h"}`)
	var it item
	f.expect(http.StatusOK, "POST", "/api/v1/scheduled/"+sc+"/pause", "").json(t, &it)
	if it.State != statePaused || *it.NextRun != "2026-06-01T13:00:00Z" {
		t.Errorf("paused: %+v, want paused keeping next run 13:00", it)
	}
	if l := f.list(""); len(l.Items) != 1 || l.Items[0].Handle != job {
		t.Errorf("a paused schedule is still in the due listing: %v", handles(l.Items))
	}
	if msg := f.expect(http.StatusConflict, "POST", "/api/v1/scheduled/"+job+"/pause", "").errorText(t); !strings.Contains(msg, "schedules") {
		t.Errorf("409 for pausing a job says %q", msg)
	}
	f.expect(http.StatusNotFound, "POST", "/api/v1/scheduled/H:test:4242/resume", "").errorText(t)
	f.expect(http.StatusOK, "POST", "/api/v1/scheduled/"+sc+"/resume", "").json(t, &it)
	if it.State != statePending {
		t.Errorf("resumed: %+v", it)
	}
	f.expect(http.StatusMethodNotAllowed, "GET", "/api/v1/scheduled/"+sc+"/pause", "")
}

func TestAuth(t *testing.T) {
	f := newFixture(t, withToken("s3cret"))
	f.token = "" // send none unless a test says so
	body := `{"function":"f","in":"1h"}`
	for _, auth := range []string{"", "Bearer wrong", "Basic s3cret", "Bearer s3cret2", "Bearer"} {
		r := f.expect(http.StatusUnauthorized, "POST", "/api/v1/scheduled", body, "Authorization", auth)
		if r.header.Get("WWW-Authenticate") == "" || !strings.Contains(r.errorText(t), "Bearer") {
			t.Errorf("401 with %q: %v %s", auth, r.header, r.body)
		}
	}
	r := f.expect(http.StatusCreated, "POST", "/api/v1/scheduled", body, "Authorization", "Bearer s3cret")
	var out map[string]string
	r.json(t, &out)
	f.expect(http.StatusUnauthorized, "DELETE", "/api/v1/scheduled/"+out["handle"], "")
	f.expect(http.StatusUnauthorized, "POST", "/api/v1/scheduled/"+out["handle"]+"/pause", "")
	f.expect(http.StatusUnauthorized, "GET", "/api/v1/backup", "")
	f.expect(http.StatusOK, "GET", "/api/v1/scheduled", "") // reads stay open
	f.expect(http.StatusOK, "GET", "/", "")
	f.expect(http.StatusOK, "DELETE", "/api/v1/scheduled/"+out["handle"], "", "Authorization", "bearer s3cret")
}

func TestBrowserGuards(t *testing.T) {
	f := newFixture(t)
	body := `{"function":"f","in":"1h"}`
	if msg := f.expect(http.StatusForbidden, "GET", "/api/v1/scheduled", "", "Host", "evil.example:4780").errorText(t); !strings.Contains(msg, "loopback") {
		t.Errorf("DNS-rebinding host refused with %q", msg)
	}
	for _, host := range []string{"localhost:1", "127.0.0.1", "[::1]:4780"} {
		f.expect(http.StatusOK, "GET", "/healthz", "", "Host", host)
	}
	f.expect(http.StatusForbidden, "POST", "/api/v1/scheduled", body, "Sec-Fetch-Site", "cross-site").errorText(t)
	f.expect(http.StatusForbidden, "POST", "/api/v1/scheduled", body, "Origin", "https://evil.example").errorText(t)
	f.expect(http.StatusCreated, "POST", "/api/v1/scheduled", body, "Sec-Fetch-Site", "same-origin")
}

func TestRoutesAnswerJSON(t *testing.T) {
	f := newFixture(t)
	r := f.expect(http.StatusMethodNotAllowed, "PUT", "/api/v1/scheduled", `{}`)
	if allow := r.header.Get("Allow"); allow != "GET, POST" {
		t.Errorf("Allow %q", allow)
	}
	r.errorText(t)
	f.expect(http.StatusNotFound, "GET", "/api/v2/anything", "").errorText(t)
	f.expect(http.StatusNotFound, "GET", "/assets/", "").errorText(t)
	f.expect(http.StatusNotFound, "GET", "/metrics", "").errorText(t) // not mounted
	if r := f.expect(http.StatusOK, "GET", "/assets/app.js", ""); !bytes.Contains(r.body, []byte("data-action")) {
		t.Errorf("app.js: %.100s", r.body)
	}
}

func TestMetricsMounted(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "gearsched_up 1\n") })
	f := newFixture(t, func(c *Config) { c.Metrics = metrics })
	if r := f.expect(http.StatusOK, "GET", "/metrics", ""); string(r.body) != "gearsched_up 1\n" {
		t.Errorf("/metrics: %q", r.body)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	upstreamDown := errors.New("no upstream server reachable")
	var down atomic.Bool
	f := newFixture(t, withReady(Check{"store", func() error { return nil }},
		Check{"upstream", func() error {
			if down.Load() {
				return upstreamDown
			}
			return nil
		}}))
	var h map[string]string
	f.expect(http.StatusOK, "GET", "/healthz", "").json(t, &h)
	if h["status"] != "ok" {
		t.Errorf("healthz %v", h)
	}
	var ready struct {
		Ready  bool
		Checks map[string]string
	}
	f.expect(http.StatusOK, "GET", "/readyz", "").json(t, &ready)
	if !ready.Ready || ready.Checks["store"] != "ok" || ready.Checks["upstream"] != "ok" {
		t.Errorf("readyz %+v", ready)
	}
	down.Store(true)
	f.expect(http.StatusServiceUnavailable, "GET", "/readyz", "").json(t, &ready)
	if ready.Ready || ready.Checks["upstream"] != upstreamDown.Error() || ready.Checks["store"] != "ok" {
		t.Errorf("readyz with the upstream down %+v", ready)
	}
	f.expect(http.StatusOK, "GET", "/healthz", "") // alive all the same
}

func TestFunctionsAndUpstreams(t *testing.T) {
	f := newFixture(t)
	f.schedule(`{"function":"alpha","in":"1h"}`)
	f.schedule(`{"function":"alpha","cron":"@hourly"}`)
	var fs struct{ Functions []function }
	f.expect(http.StatusOK, "GET", "/api/v1/functions", "").json(t, &fs)
	if len(fs.Functions) != 1 || fs.Functions[0].Name != "alpha" || fs.Functions[0].Pending != 1 ||
		fs.Functions[0].Schedules != 1 || fs.Functions[0].Total != 1 || fs.Functions[0].Queued["normal"] != 0 {
		t.Errorf("functions %+v", fs.Functions)
	}
	var ups struct {
		Mode      string
		Upstreams []upstream
	}
	f.expect(http.StatusOK, "GET", "/api/v1/upstreams", "").json(t, &ups)
	if ups.Mode != "server" || ups.Upstreams == nil || len(ups.Upstreams) != 0 {
		t.Errorf("job-server mode upstreams %+v", ups)
	}

	side := newFixture(t, func(c *Config) {
		c.Upstreams = func() []Upstream {
			return []Upstream{{Addr: "gm1:4730", Up: true, Submitted: 7, Late: 1, MaxLate: 1500 * time.Millisecond}}
		}
	})
	side.expect(http.StatusOK, "GET", "/api/v1/upstreams", "").json(t, &ups)
	if ups.Mode != "sidecar" || len(ups.Upstreams) != 1 || ups.Upstreams[0] != (upstream{Addr: "gm1:4730", Up: true,
		Submitted: 7, Late: 1, MaxLateMs: 1500}) {
		t.Errorf("sidecar upstreams %+v", ups)
	}
}

func TestBackupEndpoint(t *testing.T) {
	f := newFixture(t)
	job := f.schedule(`{"function":"keep","in":"1h"}`)
	r := f.expect(http.StatusOK, "GET", "/api/v1/backup", "")
	if r.header.Get("Content-Length") != "" && r.header.Get("Content-Length") != strconv.Itoa(len(r.body)) {
		t.Errorf("Content-Length %s, body %d bytes", r.header.Get("Content-Length"), len(r.body))
	}
	if !strings.HasPrefix(r.header.Get("Content-Disposition"), "attachment") {
		t.Errorf("Content-Disposition %q", r.header.Get("Content-Disposition"))
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, r.body, 0o600); err != nil {
		t.Fatal(err)
	}
	cp, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	id, _ := f.srv.ParseHandle(job)
	if j, err := cp.Scheduled(id); err != nil || j == nil || j.Function != "keep" {
		t.Errorf("backup lacks the pending job: %v %v", j, err)
	}
	f.expect(http.StatusMethodNotAllowed, "HEAD", "/api/v1/backup", "")
}

func TestServeStopsWithContext(t *testing.T) {
	f := newFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, f.api, nil) }()
	res, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Error("still serving after Serve returned")
	}
}
