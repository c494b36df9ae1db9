package metrics

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/gearman/server"
)

// loadFunctions gives r n functions, each with a queued job, a pending
// job and a worker registration, as a busy server has.
func loadFunctions(b *testing.B, r *rig, n int) {
	b.Helper()
	c, w := dial(b, r.addr), dial(b, r.addr)
	later := strconv.FormatInt(rigStart.Add(time.Hour).Unix(), 10)
	for i := range n {
		fn := "function-" + strconv.Itoa(i)
		c.Queue(gearman.SubmitJobBg, []byte(fn), nil, []byte("x"))
		c.Queue(gearman.SubmitJobEpoch, []byte(fn), nil, []byte(later), []byte("x"))
		w.Queue(gearman.CanDo, []byte(fn))
	}
	if err := c.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	for range 2 * n {
		if p, err := c.Recv(); err != nil || p.Type != gearman.JobCreated {
			b.Fatalf("submission: %v %v", p, err)
		}
	}
	w.sync()
}

// BenchmarkScrape measures a scrape of the whole page with 1,000
// functions, with the default cap of 100 function labels and with every
// function labelled, and reports the page's size.
//
//	go test ./gearman/metrics -run '^$' -bench Scrape -benchtime 200x
func BenchmarkScrape(b *testing.B) {
	for _, tc := range []struct {
		name         string
		maxFunctions int
	}{
		{"functions=1000/cap=100", 0},
		{"functions=1000/cap=1000", 1000},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := newRig(b, tc.maxFunctions)
			loadFunctions(b, r, 1000)
			var size int
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				rec := httptest.NewRecorder()
				r.m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("GET /metrics: %d", rec.Code)
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size), "page_bytes")
		})
	}
}

// BenchmarkFunctionStats measures what a scrape holds the job server's
// mutex for: copying the per-function numbers of 1,000 functions. The
// whole call runs under the mutex, so its time per op is the hold time.
//
//	go test ./gearman/metrics -run '^$' -bench FunctionStats
func BenchmarkFunctionStats(b *testing.B) {
	r := newRig(b, 0)
	loadFunctions(b, r, 1000)
	buf := make([]server.FunctionStats, 0, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		buf = r.srv.AppendFunctionStats(buf[:0])
	}
	if len(buf) != 1000 {
		b.Fatalf("%d functions, want 1000", len(buf))
	}
}
