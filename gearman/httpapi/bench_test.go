package httpapi

// BenchmarkListScheduled measures the API's latency listing 100 items
// from a large pending set, through HTTP on loopback: the first page,
// a page from a cursor in the middle of the index, and a page filtered to
// a function that holds 1% of the jobs.
//
//	go test ./gearman/httpapi -run '^$' -bench ListScheduled -benchtime 2000x
//	GEARSCHED_BENCH_10M=1 go test ./gearman/httpapi -run '^$' -bench 'ListScheduled/pending=10000000' -benchtime 2000x -timeout 2h
//
// GEARSCHED_BENCH_DIR keeps the databases it builds there, so that a
// second run skips building them.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman/server"
	"github.com/gearsched/gearsched/store"
)

func BenchmarkListScheduled(b *testing.B) {
	sizes := []int{100_000, 1_000_000}
	if os.Getenv("GEARSCHED_BENCH_10M") != "" {
		sizes = append(sizes, 10_000_000)
	}
	for _, n := range sizes {
		b.Run("pending="+strconv.Itoa(n), func(b *testing.B) {
			st := pendingStore(b, n)
			srv, err := server.New(server.Config{Store: st, HandlePrefix: "H:bench"})
			if err != nil {
				b.Fatal(err)
			}
			api, err := New(Config{Store: st, Jobs: srv, Loopback: true})
			if err != nil {
				b.Fatal(err)
			}
			hs := httptest.NewServer(api)
			defer hs.Close()
			// A cursor half way through the index: a seek, as deep as any.
			mid := encodeCursor(store.DueCursor{Due: benchDue(n / 2), ID: uint64(n / 2)})
			for _, q := range []struct{ name, query string }{
				{"first", "?limit=100"},
				{"middle", "?limit=100&cursor=" + mid},
				{"function-1pct", "?limit=100&function=rare"},
			} {
				b.Run(q.name, func(b *testing.B) {
					benchGet(b, hs.URL+"/api/v1/scheduled"+q.query)
				})
			}
		})
	}
}

// benchGet GETs url b.N times and reports the latency's p50 and p99.
func benchGet(b *testing.B, url string) {
	client := &http.Client{}
	lat := make([]time.Duration, 0, b.N)
	var l listing
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		res, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		lat = append(lat, time.Since(start))
		if err != nil || res.StatusCode != http.StatusOK {
			b.Fatalf("status %d, %v: %s", res.StatusCode, err, body)
		}
		if len(l.Items) == 0 {
			if err := json.Unmarshal(body, &l); err != nil || len(l.Items) != 100 {
				b.Fatalf("page of %d items (%v), want 100", len(l.Items), err)
			}
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(l.Scanned), "scanned/page")
}

// benchDue is the due time of pending job i: one every 3 s from 2030 on.
func benchDue(i int) int64 {
	return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 3 * time.Second).UnixNano()
}

// pendingStore returns a store holding n pending jobs (36-byte uniques,
// 10-byte payloads; every 100th of function "rare"), built through the
// store's own writes in large group commits, or reused from
// GEARSCHED_BENCH_DIR.
func pendingStore(b *testing.B, n int) *store.Store {
	b.Helper()
	dir := os.Getenv("GEARSCHED_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("pending-%d.db", n))
	st, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if have := st.PendingCount("bench") + st.PendingCount("rare"); have == n {
		return st
	} else if have != 0 {
		b.Fatalf("%s holds %d pending jobs, want %d or none", path, have, n)
	}
	start := time.Now()
	const batch = 50_000
	for from := 0; from < n; from += batch {
		var last *store.Write
		for i := from; i < min(from+batch, n); i++ {
			fn := "bench"
			if i%100 == 0 {
				fn = "rare"
			}
			id := uint64(i + 1)
			last = st.PutPending(&store.Job{ID: id, Handle: "H:bench:" + strconv.FormatUint(id, 10), Function: fn,
				Unique: fmt.Sprintf("%036d", i), Due: benchDue(i), Data: []byte("0123456789")}, "")
		}
		if err := last.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	fi, _ := os.Stat(path)
	b.Logf("built %d pending jobs in %s: %d MB", n, time.Since(start).Round(time.Second), fi.Size()>>20)
	return st
}
