package metrics

import (
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/gearman/server"
)

// otherFunctions is the function label of every function past the cap. A
// function really named "other" shares it.
const otherFunctions = "other"

// maxLabelBytes bounds a function label: Gearman function names may be
// long, and a label is repeated on every series of the function.
const maxLabelBytes = 128

// priorityNames are the priority label's values, by gearman.Priority.
var priorityNames = [gearman.NumPriorities]string{gearman.High: "high", gearman.Normal: "normal", gearman.Low: "low"}

// functionLabels decides which functions get their own function label:
// the first max seen, sorted by name among those first seen in the same
// scrape. The choice is sticky: a label once given is kept, so a series
// never changes meaning, and once the cap is reached no name is sorted or
// remembered any more.
type functionLabels struct {
	max int
	own map[string]bool
}

// admit gives labels to the names in fresh, in name order, while the cap
// allows; fresh is sorted in place and may repeat a name.
func (l *functionLabels) admit(fresh []string) {
	slices.Sort(fresh)
	for _, name := range fresh {
		if len(l.own) >= l.max {
			return
		}
		l.own[name] = true
	}
}

// full reports whether no more names can get their own label.
func (l *functionLabels) full() bool { return len(l.own) >= l.max }

// of returns name's label value.
func (l *functionLabels) of(name string) string {
	if l.own[name] {
		return name
	}
	return otherFunctions
}

// labelValue turns a function name, which may be any bytes, into a valid
// label value: invalid UTF-8 replaced, cut to maxLabelBytes. Names that
// become equal are added together.
func labelValue(name string) string {
	if len(name) <= maxLabelBytes && utf8.ValidString(name) {
		return name
	}
	v := strings.ToValidUTF8(name, "\uFFFD")
	if len(v) > maxLabelBytes {
		cut := maxLabelBytes
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		v = v[:cut]
	}
	return v
}

// functionTotals is what the series of one function label add up.
type functionTotals struct {
	queued, running                       [gearman.NumPriorities]int
	workers, pending, schedules           int
	submitted, completed, failed, retried uint64
}

func (t *functionTotals) addServer(fs *server.FunctionStats) {
	for p := range t.queued {
		t.queued[p] += fs.Queued[p]
		t.running[p] += fs.Running[p]
	}
	t.workers += fs.Workers
	t.submitted += fs.Submitted
	t.completed += fs.Completed
	t.failed += fs.Failed
	t.retried += fs.Retried
}

// functionSeries adds up, by function label, the server's per-function
// numbers and the store's pending jobs and schedules. It owns buffers
// reused from one scrape to the next; the collector serialises scrapes.
type functionSeries struct {
	labels functionLabels
	fns    []server.FunctionStats
	fresh  []string
	totals map[string]*functionTotals
}

func newFunctionSeries(max int) *functionSeries {
	return &functionSeries{labels: functionLabels{max: max, own: map[string]bool{}}, totals: map[string]*functionTotals{}}
}

// gather reads the sources and returns the totals by label value.
func (s *functionSeries) gather(srv ServerSource, pending, schedules map[string]int) map[string]*functionTotals {
	s.fns = srv.AppendFunctionStats(s.fns[:0])
	if !s.labels.full() {
		s.fresh = s.fresh[:0]
		seen := func(name string) {
			if v := labelValue(name); !s.labels.own[v] {
				s.fresh = append(s.fresh, v)
			}
		}
		for i := range s.fns {
			seen(s.fns[i].Name)
		}
		for name := range pending {
			seen(name)
		}
		for name := range schedules {
			seen(name)
		}
		s.labels.admit(s.fresh)
	}
	clear(s.totals)
	total := func(name string) *functionTotals {
		v := s.labels.of(labelValue(name))
		t := s.totals[v]
		if t == nil {
			t = new(functionTotals)
			s.totals[v] = t
		}
		return t
	}
	for i := range s.fns {
		total(s.fns[i].Name).addServer(&s.fns[i])
	}
	for name, n := range pending {
		total(name).pending += n
	}
	for name, n := range schedules {
		total(name).schedules += n
	}
	return s.totals
}
