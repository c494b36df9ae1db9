package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestParseWhen reads every WHEN form at a fixed now, in zones with and
// without daylight saving, including times a DST change skips or repeats.
func TestParseWhen(t *testing.T) {
	berlin := mustZone(t, "Europe/Berlin")
	saoPaulo := mustZone(t, "America/Sao_Paulo")
	// 2026-06-10 14:25:30.5 CEST (12:25:30.5 UTC).
	summer := time.Date(2026, 6, 10, 12, 25, 30, 5e8, time.UTC)
	// Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST and falls
	// back 2026-10-25 03:00 CEST -> 02:00 CET.
	beforeSpring := time.Date(2026, 3, 28, 11, 0, 0, 0, time.UTC) // 12:00 CET
	beforeFall := time.Date(2026, 10, 24, 10, 0, 0, 0, time.UTC)  // 12:00 CEST
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		when string
		now  time.Time
		loc  *time.Location
		want time.Time
	}{
		{"now", summer, berlin, summer},
		{"+90s", summer, berlin, utc("2026-06-10T12:27:01Z")}, // rounded up to the second
		{"1798761600", summer, berlin, time.Unix(1798761600, 0)},
		{"2026-12-24T18:00:00+01:00", summer, berlin, utc("2026-12-24T17:00:00Z")},
		{"2026-12-24T18:00:00.2Z", summer, berlin, utc("2026-12-24T18:00:01Z")},
		// A time of day: today if still ahead, else tomorrow.
		{"15:00", summer, berlin, utc("2026-06-10T13:00:00Z")},
		{"14:25", summer, berlin, utc("2026-06-11T12:25:00Z")}, // this minute has begun: tomorrow
		{"9:05", summer, berlin, utc("2026-06-11T07:05:00Z")},
		{"15:00 today", summer, berlin, utc("2026-06-10T13:00:00Z")},
		{"15:00 tomorrow", summer, berlin, utc("2026-06-11T13:00:00Z")},
		{"15:00 TOMORROW", summer, berlin, utc("2026-06-11T13:00:00Z")},
		{"noon", summer, berlin, utc("2026-06-11T10:00:00Z")},
		{"noon today", time.Date(2026, 6, 10, 8, 0, 0, 0, time.UTC), berlin, utc("2026-06-10T10:00:00Z")},
		{"midnight", summer, berlin, utc("2026-06-10T22:00:00Z")},
		{"teatime", summer, berlin, utc("2026-06-10T14:00:00Z")},
		{"15:00", summer, time.UTC, utc("2026-06-10T15:00:00Z")},
		// now + N units: minutes and hours elapse, days and weeks are
		// calendar days.
		{"now + 5 minutes", summer, berlin, utc("2026-06-10T12:30:31Z")},
		{"now + 1 minute", summer, berlin, utc("2026-06-10T12:26:31Z")},
		{"now+5min", summer, berlin, utc("2026-06-10T12:30:31Z")},
		{"now + 2 hours", summer, berlin, utc("2026-06-10T14:25:31Z")},
		{"now + 1 day", summer, berlin, utc("2026-06-11T12:25:31Z")},
		{"now + 2 weeks", summer, berlin, utc("2026-06-24T12:25:31Z")},
		{"now + 0 minutes", summer, berlin, utc("2026-06-10T12:25:31Z")},
		{"2026-12-24 18:00", summer, berlin, utc("2026-12-24T17:00:00Z")},
		{"2026-07-01 09:30", summer, time.UTC, utc("2026-07-01T09:30:00Z")},
		{"2020-01-01 00:00", summer, time.UTC, utc("2020-01-01T00:00:00Z")}, // past: runs at once
		// Spring forward: 02:30 does not exist on 2026-03-29 in Berlin; it
		// runs at the end of the gap, 03:00 CEST. A day later is 23 hours.
		{"02:30 tomorrow", beforeSpring, berlin, utc("2026-03-29T01:00:00Z")},
		{"2026-03-29 02:30", beforeSpring, berlin, utc("2026-03-29T01:00:00Z")},
		{"now + 1 day", beforeSpring, berlin, utc("2026-03-29T10:00:00Z")},
		{"now + 24 hours", beforeSpring, berlin, utc("2026-03-29T11:00:00Z")},
		{"noon tomorrow", beforeSpring, berlin, utc("2026-03-29T10:00:00Z")},
		// Fall back: 02:30 happens twice on 2026-10-25; the first counts.
		{"02:30 tomorrow", beforeFall, berlin, utc("2026-10-25T00:30:00Z")},
		{"now + 1 day", beforeFall, berlin, utc("2026-10-25T11:00:00Z")}, // 25 hours
		// Sao Paulo sprang forward at midnight (2018-11-04 00:00 -> 01:00):
		// midnight that day is the end of the gap.
		{"midnight", time.Date(2018, 11, 3, 20, 0, 0, 0, time.UTC), saoPaulo, utc("2018-11-04T03:00:00Z")},
	} {
		got, err := parseWhen(tc.when, tc.now, tc.loc)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseWhen(%q) at %s in %s = %s, %v; want %s", tc.when, tc.now.In(tc.loc), tc.loc,
				got.UTC().Format(time.RFC3339), err, tc.want.UTC().Format(time.RFC3339))
		}
	}
}

func TestParseWhenErrors(t *testing.T) {
	berlin := mustZone(t, "Europe/Berlin")
	now := time.Date(2026, 6, 10, 12, 25, 30, 0, time.UTC) // 14:25:30 CEST
	for _, tc := range []struct{ when, msg string }{
		{"", "is not a time"},
		{"tomorrow", "is not a time"},
		{"yesterday", "is not a time"},
		{"25:00", "not a time of day"},
		{"12:60", "not a time of day"},
		{"12:5", "is not a time"},
		{"123:00", "is not a time"},
		{"-5:00", "is not a time"},
		{"14:00 today", "has passed"},
		{"noon yesterday", "want today or tomorrow"},
		{"12:00 tomorrow extra", "is not a time"},
		{"now + 5 fortnights", `unit "fortnights"`},
		{"now + minutes", `want "now + N minutes"`},
		{"now + -5 minutes", "want a whole number"},
		{"now + 5", `want "now + N minutes"`},
		{"now - 5 minutes", "is not a time"},
		{"now + 99999999 weeks", "want a whole number"},
		{"2026-02-30 10:00", "is not a date"},
		{"2026-12-24 24:00", "not a time of day"},
		{"2026-12-24", "is not a time"},
		{"+-5s", "want a duration"},
		{"99999999999999999999", "out of range"},
	} {
		_, err := parseWhen(tc.when, now, berlin)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("parseWhen(%q): %v; want an error containing %q", tc.when, err, tc.msg)
		}
	}
}

// TestSplitWhen checks how `at`'s arguments divide into WHEN, FUNCTION
// and DATA when WHEN is several words.
func TestSplitWhen(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 25, 30, 0, time.UTC)
	for _, tc := range []struct {
		args []string
		when string
		rest string
		err  string
	}{
		{args: []string{"now", "+", "5", "minutes", "f", "data"}, when: "now + 5 minutes", rest: "f data"},
		{args: []string{"now + 5 minutes", "f"}, when: "now + 5 minutes", rest: "f"},
		{args: []string{"10:00", "tomorrow", "f"}, when: "10:00 tomorrow", rest: "f"},
		{args: []string{"10:00", "report", "data"}, when: "10:00", rest: "report data"},
		{args: []string{"2026-12-24", "18:00", "greet", "-"}, when: "2026-12-24 18:00", rest: "greet -"},
		{args: []string{"+90s", "f", "x"}, when: "+90s", rest: "f x"},
		{args: []string{"10:00", "tomorrow"}, err: `no FUNCTION after WHEN "10:00 tomorrow"`},
		{args: []string{"now", "+", "5", "fortnights", "f"}, err: `unit "fortnights"`},
		{args: []string{"now", "f", "a", "b"}, err: "at takes WHEN FUNCTION"},
	} {
		_, text, rest, err := splitWhen(tc.args, now, time.UTC)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("splitWhen(%q): %v; want an error containing %q", tc.args, err, tc.err)
			}
		case err != nil || text != tc.when || strings.Join(rest, " ") != tc.rest:
			t.Errorf("splitWhen(%q) = %q, %q, %v; want %q, %q", tc.args, text, rest, err, tc.when, tc.rest)
		}
	}
}

// TestAtTimeWords submits with at(1)'s words through the binary and
// reads the due times back with ls --json.
func TestAtTimeWords(t *testing.T) {
	t.Parallel()
	s := startGearsched(t)
	srv := "--server=" + s.Addr
	before := time.Now()
	plus, _ := runTool(t, "", gearschedBin, "at", srv, "--tz", "UTC", "now", "+", "5", "minutes", "words", "data")
	tomorrow, _ := runTool(t, "", gearschedBin, "at", srv, "--tz", "Asia/Tokyo", "09:00 tomorrow", "words")
	after := time.Now()
	out, _ := runTool(t, "", gearschedBin, "ls", srv, "--json", "--function", "words")
	due := map[string]time.Time{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r lsRow
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.NextRun == nil {
			t.Fatalf("ls --json row %q: %v", l, err)
		}
		at, err := time.Parse(time.RFC3339, *r.NextRun)
		if err != nil {
			t.Fatal(err)
		}
		due[r.Handle] = at
	}
	if d := due[strings.TrimSpace(plus)]; d.Before(before.Add(5*time.Minute)) || d.After(after.Add(5*time.Minute+time.Second)) {
		t.Errorf("now + 5 minutes is due %s, want between %s and %s", d, before.Add(5*time.Minute), after.Add(5*time.Minute))
	}
	tokyo := mustZone(t, "Asia/Tokyo")
	nextNine := func(at time.Time) time.Time {
		y, m, d := at.In(tokyo).Date()
		return time.Date(y, m, d+1, 9, 0, 0, 0, tokyo)
	}
	// Midnight in Tokyo may pass between before and after.
	if got := due[strings.TrimSpace(tomorrow)]; !got.Equal(nextNine(before)) && !got.Equal(nextNine(after)) {
		t.Errorf("09:00 tomorrow in Asia/Tokyo is due %s, want %s", got, nextNine(before))
	}
}
