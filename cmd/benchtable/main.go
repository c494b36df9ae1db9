// Command benchtable reads the output of `go test -bench` for the
// benchmarks that run gearsched and gearmand side by side and prints one
// Markdown table: each benchmark's metrics for gearsched, gearmand in
// memory and gearmand with its SQLite queue, and how gearsched compares
// with gearmand in memory. `make bench` ends with it.
//
// A benchmark names its server in one element of its name
// (BenchmarkEpochSubmit/clients=32/gearmand-sqlite); a name without one is
// gearsched's alone. Several runs of one benchmark (-count) are shown as
// their range, and compared by their medians.
//
//	go test ./cmd/gearsched -run '^$' -bench . -benchtime 1x -count 3 | tee bench.txt
//	go run ./cmd/benchtable < bench.txt
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Servers, in the table's column order.
const (
	gearsched      = "gearsched"
	gearmand       = "gearmand"
	gearmandSQLite = "gearmand-sqlite"
)

var servers = []string{gearsched, gearmand, gearmandSQLite}

// procsSuffix is the -GOMAXPROCS suffix go test appends to names.
var procsSuffix = regexp.MustCompile(`-\d+$`)

// row is one metric of one benchmark: its values per server, in the order
// they were read.
type row struct {
	bench, metric string
	values        map[string][]float64
}

func main() {
	rows, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	if len(rows) == 0 {
		fmt.Fprintln(os.Stderr, "benchtable: no benchmark results on standard input")
		os.Exit(1)
	}
	write(os.Stdout, rows)
}

// parse reads benchmark result lines and groups their metrics by
// benchmark (without the server) and metric, in the order first seen.
func parse(r io.Reader) ([]*row, error) {
	var rows []*row
	index := map[string]*row{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // a log line that starts with a benchmark's name
		}
		bench, server := split(procsSuffix.ReplaceAllString(f[0], ""))
		for i := 2; i+1 < len(f); i += 2 {
			metric := f[i+1]
			if metric == "ns/op" {
				continue
			}
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: metric %s: %w", f[0], metric, err)
			}
			key := bench + "\x00" + metric
			rw := index[key]
			if rw == nil {
				rw = &row{bench: bench, metric: metric, values: map[string][]float64{}}
				index[key] = rw
				rows = append(rows, rw)
			}
			rw.values[server] = append(rw.values[server], v)
		}
	}
	return rows, sc.Err()
}

// split takes the server's element out of a benchmark's name.
func split(name string) (bench, server string) {
	parts := strings.Split(strings.TrimPrefix(name, "Benchmark"), "/")
	for i, p := range parts {
		if slices.Contains(servers, p) {
			return strings.Join(slices.Delete(parts, i, i+1), "/"), p
		}
	}
	return strings.Join(parts, "/"), gearsched
}

// write prints rows as a Markdown table.
func write(w io.Writer, rows []*row) {
	fmt.Fprintln(w, "| Benchmark | Metric | gearsched | gearmand (memory) | gearmand -q libsqlite3 | gearsched vs gearmand (memory) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, rw := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", rw.bench, rw.metric,
			span(rw.values[gearsched]), span(rw.values[gearmand]), span(rw.values[gearmandSQLite]),
			ratio(rw.metric, rw.values[gearsched], rw.values[gearmand]))
	}
}

// span formats a metric's runs: one value, or the lowest and highest.
func span(vs []float64) string {
	switch len(vs) {
	case 0:
		return "–"
	case 1:
		return format(vs[0])
	}
	return format(slices.Min(vs)) + "–" + format(slices.Max(vs))
}

// ratio says how gearsched's median compares with gearmand's: a factor
// above 1 is better for gearsched, whichever way the metric runs. Metrics
// that are neither a rate nor a cost get none.
func ratio(metric string, ours, theirs []float64) string {
	a, b := median(ours), median(theirs)
	if len(ours) == 0 || len(theirs) == 0 || a == 0 || b == 0 {
		return "–"
	}
	switch {
	case strings.HasSuffix(metric, "/s"): // a rate: more is better
		return fmt.Sprintf("%.2f×", a/b)
	case strings.HasSuffix(metric, "_ms"), strings.HasSuffix(metric, "_s"), strings.HasSuffix(metric, "_MiB"):
		return fmt.Sprintf("%.2f×", b/a) // a cost: less is better
	}
	return "–"
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// format prints a figure with three significant digits, or three decimals
// below 1, and thousands separated by commas.
func format(v float64) string {
	switch av := max(v, -v); {
	case av >= 1000:
		return group(strconv.FormatFloat(v, 'f', 0, 64))
	case av >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case av >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case av >= 1 || av == 0:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// group puts commas between the thousands of an integer's digits.
func group(digits string) string {
	sign := ""
	if strings.HasPrefix(digits, "-") {
		sign, digits = "-", digits[1:]
	}
	var b strings.Builder
	for i, d := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	return sign + b.String()
}
