package main

import (
	"os"
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	f, err := os.Open("../../testdata/bench/make-bench.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := parse(f)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	write(&out, rows)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"| Benchmark | Metric | gearsched | gearmand (memory) | gearmand -q libsqlite3 | gearsched vs gearmand (memory) |",
		"|---|---|---|---|---|---|",
		// Runs shown as a range, compared by median: 11,000 / 22,524.
		"| BackgroundThroughput | jobs/s | 10,246–12,246 | 21,524–23,524 | 441 | 0.49× |",
		// A cost: less is better, so the factor is gearmand's over ours.
		"| ForegroundRoundTrip | p50_ms | 0.359 | 0.257 | – | 0.72× |",
		"| ForegroundRoundTrip | p99_ms | 0.880 | 0.513 | – | 0.58× |",
		// gearsched's alone: no comparison; the log line is not a result.
		"| EpochLateness/jobs=1000 | drain_jobs/s | 16,799 | – | – | – |",
		"| EpochLateness/jobs=1000 | early | 0.00 | – | – | – |",
		"| EpochLateness/jobs=1000 | first_ms | 1.48 | – | – | – |",
		"| EpochLateness/jobs=1000 | max_ms | 61.0 | – | – | – |",
		"| EpochSubmit/clients=32 | p50_ms | – | – | 1.81 | – |",
		"| EpochSubmit/clients=32 | p99_ms | – | – | 6.42 | – |",
		"| EpochSubmit/clients=32 | subs/s | – | – | 477 | – |",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want[i])
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0.00"}, {0.0421, "0.042"}, {0.6, "0.600"}, {1.477, "1.48"}, {61, "61.0"}, {441, "441"},
		{16799, "16,799"}, {1234567, "1,234,567"}, {-2500, "-2,500"},
	} {
		if got := format(tc.in); got != tc.want {
			t.Errorf("format(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
