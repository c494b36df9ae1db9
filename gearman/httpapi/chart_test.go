package httpapi

import (
	"strings"
	"testing"
)

func TestLatenessChart(t *testing.T) {
	if c := latenessChart(nil); len(c.Bars) != 0 {
		t.Errorf("no runs drew %d bars", len(c.Bars))
	}
	// Newest first, as RecentRuns returns them.
	runs := []run{{Handle: "c", Lateness: 2500}, {Handle: "b", Lateness: 10}, {Handle: "a", Function: "f", Lateness: 0.01}}
	c := latenessChart(runs)
	var labels []string
	for _, g := range c.Grid {
		labels = append(labels, g.Label)
	}
	if got := strings.Join(labels, ","); got != "1 ms,10 ms,100 ms,1s,10s" {
		t.Errorf("grid %s, want decades up to 10s", got)
	}
	if len(c.Bars) != 3 || c.Bars[0].Title != "a (f): 0.0 ms late" || c.Bars[2].Title != "c: 2500 ms late" {
		t.Fatalf("bars %+v, want oldest (a) first", c.Bars)
	}
	a, b, cc := c.Bars[0], c.Bars[1], c.Bars[2]
	if a.H != 1 || a.Late || b.Late || !cc.Late {
		t.Errorf("on-time bar %+v, late bar %+v", a, cc)
	}
	// 10 ms is two decades above 0.1 ms of five: 40% of the height.
	if b.H != 0.4*chartHeight || b.Y != chartHeight-b.H {
		t.Errorf("10 ms bar %+v, want 40%% of %d", b, chartHeight)
	}
	if c.P50 != 10 || c.Max != 2500 || c.P99 != 2500 {
		t.Errorf("p50 %v p99 %v max %v", c.P50, c.P99, c.Max)
	}
}
