package scheduler

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule computes occurrences, as robfig/cron's interface does.
type Schedule interface {
	// Next returns the first occurrence strictly after t, or the zero
	// time if there is none within five years.
	Next(t time.Time) time.Time
}

// cronParser accepts 5 fields (minute first), an optional leading seconds
// field, and descriptors such as @hourly and @every 90s.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// starBit is robfig/cron's marker for a field written as "*" or "?".
const starBit = 1 << 63

// ParseCron parses a cron spec evaluated in loc. Fixed-time specs (no "*"
// in the minute or hour field, and not @hourly or @every) follow ISC cron at
// daylight-saving changes: a time in a spring-forward gap runs once, at the
// transition, and a time in a repeated fall-back hour runs once, the first
// time. Other specs follow the wall clock, which keeps their cadence.
//
// The zone is a separate argument: a TZ= or CRON_TZ= prefix is an error.
func ParseCron(spec string, loc *time.Location) (Schedule, error) {
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, errors.New("time zone prefixes are not allowed in the spec; set the zone separately")
	}
	if loc == nil {
		return nil, errors.New("no time zone")
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("cron spec %q: %w", spec, err)
	}
	var sched Schedule
	switch ss := s.(type) {
	case cron.ConstantDelaySchedule: // @every: elapsed time, zone-independent
		// robfig/cron raises intervals under a second (even negative ones)
		// to one second; a typo like that should be an error instead.
		if d, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(spec, "@every"))); err != nil || d < time.Second {
			return nil, fmt.Errorf("cron spec %q: interval must be at least 1s", spec)
		}
		sched = ss
	case *cron.SpecSchedule:
		ss.Location = loc
		sched = ss
		if fixedTime(spec, ss) {
			sched = &iscSchedule{spec: ss}
		}
	default:
		return nil, fmt.Errorf("cron spec %q: unsupported schedule type %T", spec, s)
	}
	if sched.Next(neverProbe).IsZero() {
		return nil, fmt.Errorf("cron spec %q never matches", spec)
	}
	return sched, nil
}

// neverProbe is where ParseCron looks for a first occurrence; a spec with
// none in the five years after it (February 30) can never fire.
var neverProbe = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// fixedTime reports whether neither the minute nor the hour field is a
// wildcard, which is when ISC cron applies its daylight-saving rules.
func fixedTime(spec string, ss *cron.SpecSchedule) bool {
	if strings.HasPrefix(spec, "@") {
		return ss.Minute&starBit == 0 && ss.Hour&starBit == 0
	}
	f := strings.Fields(spec)
	if len(f) == 6 { // leading seconds field
		f = f[1:]
	}
	return !strings.ContainsAny(f[0], "*?") && !strings.ContainsAny(f[1], "*?")
}

// iscSchedule evaluates a fixed-time spec day by day in its zone.
type iscSchedule struct {
	spec *cron.SpecSchedule
}

// maxDays bounds the search, as robfig/cron gives up after five years.
const maxDays = 5*366 + 1

func (s *iscSchedule) Next(after time.Time) time.Time {
	loc := s.spec.Location
	y, m, d := after.In(loc).Date()
	for i := range maxDays {
		// Noon exists on every day in every zone; only the date is used.
		day := time.Date(y, m, d+i, 12, 0, 0, 0, loc)
		if s.spec.Month&(1<<uint(day.Month())) == 0 || !s.dayMatches(day) {
			continue
		}
		for h := range eachBit(s.spec.Hour, 24) {
			for min := range eachBit(s.spec.Minute, 60) {
				for sec := range eachBit(s.spec.Second, 60) {
					t := WallInstant(day.Year(), day.Month(), day.Day(), h, min, sec, loc)
					if t.After(after) {
						return t
					}
				}
			}
		}
	}
	return time.Time{}
}

// dayMatches applies cron's rule: when both day fields are restricted, a
// day matching either one matches.
func (s *iscSchedule) dayMatches(t time.Time) bool {
	dom := s.spec.Dom&(1<<uint(t.Day())) != 0
	dow := s.spec.Dow&(1<<uint(t.Weekday())) != 0
	if s.spec.Dom&starBit != 0 || s.spec.Dow&starBit != 0 {
		return dom && dow
	}
	return dom || dow
}

// WallInstant returns the instant a wall-clock time names in loc, by the
// ISC cron rules the schedules follow (gearsched at uses them too). A time
// that does not exist (a spring-forward gap) maps to the end of the gap;
// a time that exists twice (fall back) maps to its first instant, which is
// what time.Date returns.
func WallInstant(y int, mo time.Month, d, h, mi, se int, loc *time.Location) time.Time {
	t := time.Date(y, mo, d, h, mi, se, 0, loc)
	want := time.Date(y, mo, d, h, mi, se, 0, time.UTC)
	got := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
	switch {
	case got.Before(want): // normalised back into the zone before the gap
		_, end := t.ZoneBounds()
		return end
	case got.After(want): // normalised forward into the zone after it
		start, _ := t.ZoneBounds()
		return start
	}
	// time.Date may pick either instant of a repeated wall time; when the
	// zone began by setting clocks back, the same wall time may also exist
	// before that, and the first instant is the one that counts.
	start, _ := t.ZoneBounds()
	if start.IsZero() {
		return t
	}
	_, prevOff := start.Add(-time.Nanosecond).Zone()
	_, curOff := t.Zone()
	if back := time.Duration(prevOff-curOff) * time.Second; back > 0 {
		if alt := t.Add(-back); alt.Before(start) && sameWall(alt, y, mo, d, h, mi, se) {
			return alt
		}
	}
	return t
}

func sameWall(t time.Time, y int, mo time.Month, d, h, mi, se int) bool {
	ty, tmo, td := t.Date()
	th, tmi, tse := t.Clock()
	return ty == y && tmo == mo && td == d && th == h && tmi == mi && tse == se
}

// eachBit yields the set bits of field below n, in ascending order.
func eachBit(field uint64, n int) func(func(int) bool) {
	return func(yield func(int) bool) {
		f := field &^ starBit
		for f != 0 {
			b := bits.TrailingZeros64(f)
			if b >= n || !yield(b) {
				return
			}
			f &^= 1 << uint(b)
		}
	}
}
