package scheduler

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/gearsched/gearsched/store"
	"github.com/pelletier/go-toml/v2"
)

// Definition is one [[schedule]] of the schedules file.
type Definition struct {
	Name      string `toml:"name"`
	Cron      string `toml:"cron"`
	Timezone  string `toml:"timezone"`
	Function  string `toml:"function"`
	Data      string `toml:"data"`
	Priority  string `toml:"priority"`
	Unique    string `toml:"unique"`
	Missed    string `toml:"missed"`
	MissedCap int    `toml:"missed_cap"`
	CatchUp   string `toml:"catch_up"`
	Overlap   string `toml:"overlap"`
	Jitter    string `toml:"jitter"`
	Enabled   *bool  `toml:"enabled"`
}

type fileFormat struct {
	Schedule []Definition `toml:"schedule"`
}

// Defaults for keys a definition leaves out.
const (
	DefaultCatchUp   = time.Hour
	DefaultMissedCap = 10
)

// LoadFile reads and validates a schedules file (TOML, an example is in
// configs/schedules.toml). Every problem is reported as FILE:LINE: and
// none is ignored: unknown keys, bad cron specs, unknown zones, bad
// policies, duplicate names.
func LoadFile(path string) ([]*store.Schedule, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(text)) == 0 {
		// An empty file is more likely a write in progress (an editor, a
		// config tool) than a wish to remove every schedule; a file that
		// says so with a comment removes them.
		return nil, fmt.Errorf("%s is empty; to remove every schedule, leave a comment in it", path)
	}
	var f fileFormat
	dec := toml.NewDecoder(bytes.NewReader(text)).DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var strict *toml.StrictMissingError
		var derr *toml.DecodeError
		switch {
		case errors.As(err, &strict) && len(strict.Errors) > 0:
			var msgs []string
			for _, e := range strict.Errors {
				row, _ := e.Position()
				msgs = append(msgs, fmt.Sprintf("%s:%d: unknown key %q", path, row, strings.Join(e.Key(), ".")))
			}
			return nil, errors.New(strings.Join(msgs, "\n"))
		case errors.As(err, &derr):
			row, _ := derr.Position()
			return nil, fmt.Errorf("%s:%d: %s", path, row, derr.Error())
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	entries := entryPositions(text)
	seen := map[string]int{}
	var out []*store.Schedule
	var errs []string
	for i, d := range f.Schedule {
		at := func(key string) string {
			return fmt.Sprintf("%s:%d", path, lineOf(entries, i, key))
		}
		sc, key, err := d.build()
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: schedule %q: %v", at(key), d.Name, err))
			continue
		}
		if prev, dup := seen[d.Name]; dup {
			errs = append(errs, fmt.Sprintf("%s: schedule %q: name already used at line %d", at("name"), d.Name, lineOf(entries, prev, "name")))
			continue
		}
		seen[d.Name] = i
		out = append(out, sc)
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "\n"))
	}
	return out, nil
}

// build validates a definition into a schedule record; on error it names
// the key at fault.
func (d *Definition) build() (*store.Schedule, string, error) {
	if d.Name == "" {
		return nil, "name", errors.New("name is required")
	}
	switch {
	case d.Function == "":
		return nil, "function", errors.New("function is required")
	case len(d.Function) > store.MaxFunctionSize:
		return nil, "function", fmt.Errorf("function is %d bytes; at most %d", len(d.Function), store.MaxFunctionSize)
	case strings.IndexByte(d.Function, 0) >= 0:
		return nil, "function", errors.New("function must not contain NUL: no worker could register it")
	}
	zone := d.Timezone
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, "timezone", fmt.Errorf("unknown time zone %q (use an IANA name such as Europe/London)", zone)
	}
	if d.Cron == "" {
		return nil, "cron", errors.New("cron is required")
	}
	spec, err := ParseCron(d.Cron, loc)
	if err != nil {
		return nil, "cron", err
	}
	prio, ok := map[string]uint8{"high": 0, "": 1, "normal": 1, "low": 2}[strings.ToLower(d.Priority)]
	if !ok {
		return nil, "priority", fmt.Errorf("priority %q: want high, normal or low", d.Priority)
	}
	missed := strings.ToLower(d.Missed)
	switch missed {
	case "":
		missed = MissedOnce
	case MissedSkip, MissedOnce, MissedAll:
	default:
		return nil, "missed", fmt.Errorf("missed %q: want skip, once or all", d.Missed)
	}
	if d.MissedCap < 0 {
		return nil, "missed_cap", errors.New("missed_cap must not be negative")
	}
	missedCap := d.MissedCap
	if missedCap == 0 {
		missedCap = DefaultMissedCap
	}
	catchUp := DefaultCatchUp
	if d.CatchUp != "" {
		if catchUp, err = time.ParseDuration(d.CatchUp); err != nil || catchUp < 0 {
			return nil, "catch_up", fmt.Errorf("catch_up %q: want a duration such as 30m", d.CatchUp)
		}
	}
	overlap := strings.ToLower(d.Overlap)
	switch overlap {
	case "":
		overlap = OverlapAllow
	case OverlapAllow, OverlapSkip:
	default:
		return nil, "overlap", fmt.Errorf("overlap %q: want allow or skip", d.Overlap)
	}
	var jitter time.Duration
	if d.Jitter != "" {
		if jitter, err = time.ParseDuration(d.Jitter); err != nil || jitter < 0 {
			return nil, "jitter", fmt.Errorf("jitter %q: want a duration such as 30s", d.Jitter)
		}
		// A delay as long as the gap between two runs would let one run
		// fall due after the next one: runs would pile up or reorder.
		if gap := shortestGap(spec); jitter >= gap {
			return nil, "jitter", fmt.Errorf("jitter %s is not shorter than the %s between runs", jitter, gap)
		}
	}
	if len(d.Unique) > MaxUnique {
		return nil, "unique", fmt.Errorf("unique is %d bytes; at most %d", len(d.Unique), MaxUnique)
	}
	return &store.Schedule{
		Name: d.Name, Source: store.SourceFile, Spec: d.Cron, Zone: zone, Function: d.Function, Data: []byte(d.Data),
		Priority: prio, Unique: d.Unique, Missed: missed, MissedCap: missedCap, CatchUp: int64(catchUp),
		Overlap: overlap, Jitter: int64(jitter), Enabled: d.Enabled == nil || *d.Enabled,
	}, "", nil
}

// gapSamples is how many consecutive runs shortestGap looks at.
const gapSamples = 400

// shortestGap returns the shortest time between two consecutive runs of
// spec among its first gapSamples from a fixed instant: its period, or
// for irregular specs (weekdays, month ends) the closest two runs.
func shortestGap(spec Schedule) time.Duration {
	gap := time.Duration(math.MaxInt64)
	prev := spec.Next(neverProbe)
	for range gapSamples {
		next := spec.Next(prev)
		if next.IsZero() {
			break
		}
		gap = min(gap, next.Sub(prev))
		prev = next
	}
	return gap
}

// ScheduleStore is where Sync applies the schedules file: *store.Store
// and *pgstore.Store are.
type ScheduleStore interface {
	// Schedules returns every schedule.
	Schedules() ([]*store.Schedule, error)
	// EditSchedules runs fn in one write transaction, with the schedules
	// as they are then, and commits what it writes together.
	EditSchedules(fn func(store.ScheduleEditor) error) error
}

// SyncResult says what Sync changed, by schedule name.
type SyncResult struct {
	Added, Changed, Removed, Unchanged []string
}

// Sync makes the file schedules in the store match defs, by name. An
// unchanged schedule keeps its next and last fire times, so downtime is
// handled by its missed-run policy; a changed spec, zone, jitter or
// enabled flag restarts it from now. newID allocates ids and handles.
//
// The comparison and the writes happen in one store transaction, so a
// schedule firing meanwhile is seen either before (its advance is kept) or
// after (its plan is refused if the reload changed when it fires). Handles
// of new schedules are allocated before that transaction, since
// allocation may wait for the store; calls of Sync must not overlap.
func Sync(st ScheduleStore, defs []*store.Schedule, now time.Time, newID func() (uint64, string, error)) (SyncResult, error) {
	before, err := st.Schedules()
	if err != nil {
		return SyncResult{}, err
	}
	handles := map[string]string{}
	for _, sc := range before {
		if sc.Source == store.SourceFile {
			handles[sc.Name] = sc.Handle
		}
	}
	type ident struct {
		id     uint64
		handle string
	}
	fresh := map[string]ident{}
	// Where each schedule starts if (re)started now. Computed here because
	// zones are read from disk, which the transaction below must not do.
	starts := map[string]*store.Schedule{}
	for _, d := range defs {
		h, ok := handles[d.Name]
		if !ok {
			id, nh, err := newID()
			if err != nil {
				return SyncResult{}, err
			}
			fresh[d.Name] = ident{id, nh}
			h = nh
		}
		start := *d
		start.Handle = h
		if err := restartAt(&start, now); err != nil {
			return SyncResult{}, err
		}
		starts[d.Name] = &start
	}
	var res SyncResult
	err = st.EditSchedules(func(ed store.ScheduleEditor) error {
		res = SyncResult{}
		existing, err := ed.Schedules()
		if err != nil {
			return err
		}
		byName := map[string]*store.Schedule{}
		for _, sc := range existing {
			if sc.Source == store.SourceFile {
				byName[sc.Name] = sc
			}
		}
		for _, d := range defs {
			old := byName[d.Name]
			delete(byName, d.Name)
			sc := *d
			restart := true
			switch {
			case old != nil:
				sc.ID, sc.Handle, sc.Created, sc.Last, sc.LastHandle = old.ID, old.Handle, old.Created, old.Last, old.LastHandle
				// Pausing is an operator's act the file does not record:
				// a reload keeps it.
				sc.Paused, sc.ResumedAt = old.Paused, old.ResumedAt
				if sameDefinition(old, d) {
					res.Unchanged = append(res.Unchanged, d.Name)
					continue
				}
				restart = old.Spec != d.Spec || old.Zone != d.Zone || old.Jitter != d.Jitter || old.Enabled != d.Enabled
				if !restart {
					sc.Next, sc.FireAt = old.Next, old.FireAt
				}
				res.Changed = append(res.Changed, d.Name)
			default:
				h, ok := fresh[d.Name]
				if !ok {
					return fmt.Errorf("schedule %q was removed during the reload", d.Name)
				}
				sc.ID, sc.Handle, sc.Created = h.id, h.handle, now.UnixNano()
				res.Added = append(res.Added, d.Name)
			}
			if restart {
				sc.Next, sc.FireAt = starts[d.Name].Next, starts[d.Name].FireAt
			}
			if err := ed.Put(&sc); err != nil {
				return err
			}
		}
		for name, sc := range byName {
			if err := ed.Delete(sc.ID); err != nil {
				return err
			}
			res.Removed = append(res.Removed, name)
		}
		return nil
	})
	return res, err
}

// restartAt sets a schedule's next run to its first occurrence after now.
func restartAt(sc *store.Schedule, now time.Time) error {
	loc, err := time.LoadLocation(sc.Zone)
	if err != nil {
		return err
	}
	spec, err := ParseCron(sc.Spec, loc)
	if err != nil {
		return err
	}
	sc.Next, sc.FireAt = 0, 0
	if next := spec.Next(now); !next.IsZero() {
		sc.Next = next.UnixNano()
		sc.FireAt = next.Add(JitterFor(sc)).UnixNano()
	}
	return nil
}

func sameDefinition(a, b *store.Schedule) bool {
	return a.Spec == b.Spec && a.Zone == b.Zone && a.Function == b.Function && bytes.Equal(a.Data, b.Data) &&
		a.Priority == b.Priority && a.Unique == b.Unique && a.Missed == b.Missed && a.MissedCap == b.MissedCap &&
		a.CatchUp == b.CatchUp && a.Overlap == b.Overlap && a.Jitter == b.Jitter && a.Enabled == b.Enabled
}
