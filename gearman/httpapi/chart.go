package httpapi

import (
	"math"
	"slices"
	"strconv"
	"time"
)

// Chart geometry, in SVG user units.
const (
	chartWidth  = 800
	chartHeight = 160
	// The scale is logarithmic, from chartLowMs at the bottom to a power
	// of ten at the top, a second at least: lateness spans microseconds
	// (on time) to hours (a backlog), and both must be readable at once.
	chartLowMs = 0.1
	// lateMs is where a bar turns red: a second late, as the sidecar
	// counts late jobs.
	lateMs = 1000
)

// chart is the lateness chart: one bar per recent run, oldest left, its
// height the time from due to released on a logarithmic scale.
type chart struct {
	Width, Height int
	Bars          []bar
	Grid          []gridLine
	// P50, P99 and Max summarise the runs drawn.
	P50, P99, Max float64
}

// bar is one run in the chart.
type bar struct {
	X, Y, W, H float64
	Late       bool
	Title      string
}

// gridLine is a decade of the scale: 1 ms, 10 ms, ...
type gridLine struct {
	Y     float64
	Label string
}

// latenessChart draws runs (newest first, as RecentRuns returns them).
func latenessChart(runs []run) chart {
	c := chart{Width: chartWidth, Height: chartHeight}
	if len(runs) == 0 {
		return c
	}
	ms := make([]float64, len(runs))
	for i := range runs {
		ms[i] = max(runs[i].Lateness, 0)
	}
	sorted := slices.Sorted(slices.Values(ms))
	c.P50, c.P99, c.Max = percentile(sorted, 0.50), percentile(sorted, 0.99), sorted[len(sorted)-1]
	top := math.Pow(10, math.Ceil(math.Log10(max(c.Max, lateMs))))
	height := func(v float64) float64 {
		return math.Log10(max(v, chartLowMs)/chartLowMs) / math.Log10(top/chartLowMs) * chartHeight
	}
	for d := chartLowMs * 10; d <= top; d *= 10 {
		c.Grid = append(c.Grid, gridLine{Y: chartHeight - height(d), Label: decadeLabel(d)})
	}
	w := float64(chartWidth) / float64(len(runs))
	for i := range runs {
		r := &runs[len(runs)-1-i] // oldest first
		late := max(r.Lateness, 0)
		h := max(height(late), 1) // a run on time still shows
		title := r.Handle
		if r.Function != "" {
			title += " (" + r.Function + ")"
		}
		c.Bars = append(c.Bars, bar{X: float64(i) * w, Y: chartHeight - h, W: max(w-1, 1), H: h,
			Late: late >= lateMs, Title: title + ": " + formatMillis(late) + " late"})
	}
	return c
}

// decadeLabel names a power of ten of milliseconds: 1 ms, 10 ms, 100 ms,
// 1s, 10s, 1m40s ...
func decadeLabel(ms float64) string {
	if ms < 1000 {
		return strconv.FormatFloat(ms, 'g', 3, 64) + " ms"
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

// percentile returns the p-th quantile of sorted values (nearest rank).
func percentile(sorted []float64, p float64) float64 {
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
