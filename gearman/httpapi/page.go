package httpapi

import (
	"bytes"
	"cmp"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The page's template and assets are built into the binary: it needs no
// CDN and works offline.
//
//go:embed templates assets
var files embed.FS

// Page sizes.
const (
	pageItems = 50  // upcoming jobs per page
	pageRuns  = 20  // recent runs listed
	chartRuns = 200 // recent runs in the lateness chart
)

// pageRenderer holds the parsed page template and the assets.
type pageRenderer struct {
	tmpl   *template.Template
	static http.Handler
}

func newPageRenderer() (*pageRenderer, error) {
	tmpl, err := template.New("page.html").Funcs(template.FuncMap{
		"ms":  formatMillis,
		"rel": relative,
		"or":  func(a, b string) string { return cmp.Or(a, b) },
	}).ParseFS(files, "templates/page.html")
	if err != nil {
		return nil, fmt.Errorf("httpapi: page template: %w", err)
	}
	static, err := fs.Sub(files, "assets")
	if err != nil {
		return nil, err
	}
	return &pageRenderer{tmpl: tmpl, static: http.StripPrefix("/assets/", http.FileServerFS(static))}, nil
}

// assets serves the page's style sheet and script.
func (p *pageRenderer) assets(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/") {
		writeError(w, http.StatusNotFound, "no such asset")
		return
	}
	p.static.ServeHTTP(w, r)
}

// pageData is what the page shows.
type pageData struct {
	Version, Mode string
	Now           time.Time
	// AuthRequired makes the page ask for the token, which its script
	// sends with every change.
	AuthRequired bool
	Error        string
	Functions    []function
	Upstreams    []upstream
	Schedules    []item
	// Upcoming is a page of the due index; Function filters it.
	Upcoming    listing
	Function    string
	Filtered    bool
	FirstPage   bool
	NextURL     string
	Runs        []run
	Chart       chart
	Explain     *detail
	ExplainName string
}

// GET /: the web page. It is rendered on the server from the same reads
// as the API; its buttons call the API.
func (a *API) servePage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		writeError(w, http.StatusNotFound, "no such page: "+r.URL.Path)
		return
	}
	d, status, err := a.pageData(r)
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	var buf bytes.Buffer
	if err := a.page.tmpl.Execute(&buf, d); err != nil {
		a.internalError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (a *API) pageData(r *http.Request) (*pageData, int, error) {
	status := http.StatusOK
	d := &pageData{Version: a.cfg.Version, Mode: a.mode(), Now: a.cfg.Now().UTC(), AuthRequired: a.cfg.Token != "",
		Functions: a.functions(), Upstreams: a.upstreams()}
	q := r.URL.Query()
	lq, err := parseListQuery(q, pageItems)
	if err != nil {
		d.Error, status = err.Error(), http.StatusBadRequest
		lq = listQuery{first: true, limit: pageItems}
	}
	d.Function, d.Filtered, d.FirstPage = lq.function, lq.filter, lq.first
	if d.Upcoming, err = a.list(lq); err != nil {
		return nil, 0, err
	}
	if d.Upcoming.NextCursor != "" {
		next := url.Values{"cursor": {d.Upcoming.NextCursor}}
		if lq.filter {
			next.Set("function", lq.function)
		}
		d.NextURL = "/?" + next.Encode()
	}
	scheds, err := a.cfg.Store.Schedules()
	if err != nil {
		return nil, 0, err
	}
	for _, sc := range scheds {
		d.Schedules = append(d.Schedules, scheduleItem(sc))
	}
	slices.SortStableFunc(d.Schedules, func(x, y item) int { return compareNext(x.NextRun, y.NextRun) })
	runs, err := a.recentRuns(chartRuns)
	if err != nil {
		return nil, 0, err
	}
	d.Runs = runs[:min(len(runs), pageRuns)]
	d.Chart = latenessChart(runs)
	if h := q.Get("explain"); h != "" {
		ex, found, err := a.explain(h)
		switch {
		case err != nil:
			return nil, 0, err
		case !found:
			d.Error, status = "no pending job or schedule "+h, http.StatusNotFound
		default:
			d.Explain = &ex
		}
	}
	return d, status, nil
}

// compareNext orders next runs soonest first, none last.
func compareNext(x, y *string) int {
	switch {
	case x == nil && y == nil:
		return 0
	case x == nil:
		return 1
	case y == nil:
		return -1
	}
	return strings.Compare(*x, *y) // RFC 3339 in UTC sorts as time, but for fractions
}

// formatMillis shows a lateness: milliseconds below ten seconds, else
// seconds, minutes or hours.
func formatMillis(ms float64) string {
	d := time.Duration(ms * float64(time.Millisecond))
	switch {
	case ms < 10:
		return fmt.Sprintf("%.1f ms", ms)
	case ms < 10_000:
		return fmt.Sprintf("%.0f ms", ms)
	}
	return d.Round(time.Second).String()
}

// relative says how far t (RFC 3339) is from now: "in 5m0s", "3s ago".
func relative(now time.Time, t *string) string {
	if t == nil {
		return ""
	}
	at, err := time.Parse(time.RFC3339Nano, *t)
	if err != nil {
		return ""
	}
	d := at.Sub(now).Round(time.Second)
	switch {
	case d > 0:
		return "in " + d.String()
	case d < 0:
		return (-d).String() + " ago"
	}
	return "now"
}
