package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gearsched/gearsched/scheduler"
)

// whenHelp lists the forms parseWhen reads, for usage and error messages.
const whenHelp = `now; +DURATION (+90s, +2h30m); unix seconds; RFC 3339 (2026-12-01T09:00:00+01:00);
or at(1)'s words, read in --tz: HH:MM, HH:MM today, HH:MM tomorrow, noon, midnight,
teatime (16:00), each optionally followed by today or tomorrow;
now + N minutes|hours|days|weeks; YYYY-MM-DD HH:MM`

// maxWhenWords is how many command-line words a WHEN can span
// ("now + 5 minutes").
const maxWhenWords = 4

// parseWhen reads an `at` time. now is the current instant; loc is the
// zone at(1)'s wall-clock words are read in.
//
// A bare time of day (HH:MM, noon, midnight, teatime) is its next
// occurrence: today if still ahead, else tomorrow, as in at(1); with
// "today" it must still be ahead. Minutes and hours after "now +" are
// elapsed time, days and weeks are calendar days (the same wall-clock time,
// 23 or 25 hours away across a DST change), as at(1) counts them. A wall
// time that a DST change skips runs at the end of the gap, and one that
// happens twice runs the first time: the rules the schedules follow.
// Absolute times in the past (unix seconds, RFC 3339, a date) are allowed:
// the job runs at once. Sub-second times round up, since the protocol
// carries whole seconds and a job must never run early.
func parseWhen(s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "now":
		return now, nil
	case strings.HasPrefix(s, "+"):
		d, err := time.ParseDuration(s[1:])
		if err != nil || d < 0 {
			return time.Time{}, fmt.Errorf("WHEN %q: want a duration such as +90s or +2h30m", s)
		}
		return ceilSecond(now.Add(d)), nil
	case s != "" && strings.Trim(s, "0123456789") == "":
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n > math.MaxInt64/int64(time.Second) {
			return time.Time{}, fmt.Errorf("WHEN %q: unix seconds out of range", s)
		}
		return time.Unix(n, 0), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return ceilSecond(t), nil
	}
	t, err := parseAtWords(strings.Fields(strings.ToLower(strings.ReplaceAll(s, "+", " + "))), now, loc)
	switch {
	case errors.Is(err, errNotATime):
		return time.Time{}, fmt.Errorf("WHEN %q is %w; want %s", s, err, whenHelp)
	case err != nil:
		return time.Time{}, fmt.Errorf("WHEN %q: %w", s, err)
	}
	return ceilSecond(t), nil
}

// errNotATime says that words are no time at all (rather than a time
// with a fault, such as 25:00).
var errNotATime = errors.New("not a time")

// parseAtWords reads at(1)'s forms, split into lower-case words.
func parseAtWords(w []string, now time.Time, loc *time.Location) (time.Time, error) {
	now = now.In(loc)
	if len(w) >= 2 && w[0] == "now" && w[1] == "+" {
		return parseNowPlus(w[2:], now)
	}
	if len(w) == 2 && strings.Count(w[0], "-") == 2 {
		d, err := time.ParseInLocation("2006-01-02", w[0], loc)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a date (YYYY-MM-DD)", w[0])
		}
		h, m, err := parseClock(w[1])
		if err != nil {
			return time.Time{}, err
		}
		return scheduler.WallInstant(d.Year(), d.Month(), d.Day(), h, m, 0, loc), nil
	}
	if len(w) == 0 || len(w) > 2 {
		return time.Time{}, errNotATime
	}
	h, m, err := parseClock(w[0])
	if err != nil {
		return time.Time{}, err
	}
	y, mo, d := now.Date()
	at := func(days int) time.Time { return scheduler.WallInstant(y, mo, d+days, h, m, 0, loc) }
	day := ""
	if len(w) == 2 {
		day = w[1]
	}
	switch day {
	case "":
		if t := at(0); t.After(now) {
			return t, nil
		}
		return at(1), nil
	case "today":
		if t := at(0); t.After(now) {
			return t, nil
		}
		return time.Time{}, fmt.Errorf("%02d:%02d today has passed (%s now)", h, m, now.Format("15:04 MST"))
	case "tomorrow":
		return at(1), nil
	}
	return time.Time{}, fmt.Errorf("%q: want today or tomorrow after the time", day)
}

// parseClock reads HH:MM (H:MM too), noon, midnight or teatime.
func parseClock(s string) (h, m int, err error) {
	switch s {
	case "noon":
		return 12, 0, nil
	case "midnight":
		return 0, 0, nil
	case "teatime":
		return 16, 0, nil
	}
	hs, ms, ok := strings.Cut(s, ":")
	if !ok || len(hs) < 1 || len(hs) > 2 || len(ms) != 2 || strings.Trim(hs+ms, "0123456789") != "" {
		return 0, 0, errNotATime
	}
	h, _ = strconv.Atoi(hs)
	m, _ = strconv.Atoi(ms)
	if h > 23 || m > 59 {
		return 0, 0, fmt.Errorf("%q is not a time of day (00:00 to 23:59)", s)
	}
	return h, m, nil
}

// parseNowPlus reads what follows "now +": a count and a unit, written
// apart ("5 minutes") or together ("5min").
func parseNowPlus(w []string, now time.Time) (time.Time, error) {
	if len(w) == 1 {
		i := strings.IndexFunc(w[0], func(r rune) bool { return r < '0' || r > '9' })
		if i > 0 {
			w = []string{w[0][:i], w[0][i:]}
		}
	}
	if len(w) != 2 {
		return time.Time{}, errors.New(`want "now + N minutes", hours, days or weeks`)
	}
	n, err := strconv.Atoi(w[0])
	if err != nil || n < 0 || n > 1e6 {
		return time.Time{}, fmt.Errorf("%q: want a whole number from 0 to 1000000", w[0])
	}
	switch strings.TrimSuffix(w[1], "s") {
	case "minute", "min":
		return now.Add(time.Duration(n) * time.Minute), nil
	case "hour":
		return now.Add(time.Duration(n) * time.Hour), nil
	case "day":
		return now.AddDate(0, 0, n), nil
	case "week":
		return now.AddDate(0, 0, 7*n), nil
	}
	return time.Time{}, fmt.Errorf("unit %q: want minutes, hours, days or weeks", w[1])
}

// splitWhen takes WHEN off the front of `at`'s arguments, WHEN FUNCTION
// [DATA | -], where WHEN may span several words (now + 5 minutes, 10:00
// tomorrow): the longest run of words that reads as a time and leaves
// FUNCTION and at most DATA after it. It returns the time, WHEN's words
// joined, and the arguments after them.
func splitWhen(args []string, now time.Time, loc *time.Location) (when time.Time, text string, rest []string, err error) {
	if n := min(maxWhenWords, len(args)); n > 0 {
		if text := strings.Join(args[:n], " "); n == len(args) {
			if _, err := parseWhen(text, now, loc); err == nil {
				return time.Time{}, "", nil, usageError{fmt.Errorf("no FUNCTION after WHEN %q", text)}
			}
		}
	}
	var fault error // the longest WHEN that reads as a time with a fault
	for k := min(maxWhenWords, len(args)-1); k >= 1; k-- {
		if len(args)-k > 2 {
			break
		}
		text := strings.Join(args[:k], " ")
		t, err := parseWhen(text, now, loc)
		if err == nil {
			return t, text, args[k:], nil
		}
		if fault == nil && !errors.Is(err, errNotATime) {
			fault = err
		}
	}
	if fault != nil {
		return time.Time{}, "", nil, usageError{fault}
	}
	if _, err := parseWhen(args[0], now, loc); err != nil {
		return time.Time{}, "", nil, usageError{err}
	}
	return time.Time{}, "", nil, usageError{fmt.Errorf("at takes WHEN FUNCTION [DATA | -]; got %q", args)}
}

func ceilSecond(t time.Time) time.Time {
	if r := t.Truncate(time.Second); !r.Equal(t) {
		return r.Add(time.Second)
	}
	return t
}
