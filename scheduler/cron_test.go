package scheduler

import (
	"strings"
	"testing"
	"time"
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load zone %s: %v", name, err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestCronAcrossDST checks occurrences around daylight-saving transitions
// against ISC cron's rules (scheduling-lessons.md §4.3): from `from`, the
// next len(want) occurrences, as UTC instants.
func TestCronAcrossDST(t *testing.T) {
	for _, tc := range []struct {
		name, zone, spec, from string
		want                   []string
	}{
		// America/Los_Angeles: 2025-03-09 02:00-02:59 missing, 2025-11-02 01:00-01:59 twice.
		{"LA gap fixed 02:30 runs at the transition", "America/Los_Angeles", "30 2 * * *", "2025-03-08T12:00:00Z",
			[]string{"2025-03-09T10:00:00Z", "2025-03-10T09:30:00Z"}},
		{"LA gap fixed 02:00", "America/Los_Angeles", "0 2 * * *", "2025-03-09T00:00:00Z",
			[]string{"2025-03-09T10:00:00Z", "2025-03-10T09:00:00Z"}},
		{"LA gap 03:00 unaffected", "America/Los_Angeles", "0 3 * * *", "2025-03-09T00:00:00Z",
			[]string{"2025-03-09T10:00:00Z", "2025-03-10T10:00:00Z"}},
		{"LA gap 02:00 and 03:00 merge into one run", "America/Los_Angeles", "0 2,3 * * *", "2025-03-09T00:00:00Z",
			[]string{"2025-03-09T10:00:00Z", "2025-03-10T09:00:00Z", "2025-03-10T10:00:00Z"}},
		{"LA gap wildcard keeps cadence", "America/Los_Angeles", "*/30 * * * *", "2025-03-09T08:59:00Z",
			[]string{"2025-03-09T09:00:00Z", "2025-03-09T09:30:00Z", "2025-03-09T10:00:00Z", "2025-03-09T10:30:00Z"}},
		{"LA gap minute 30 every hour", "America/Los_Angeles", "30 * * * *", "2025-03-09T09:00:00Z",
			[]string{"2025-03-09T09:30:00Z", "2025-03-09T10:30:00Z"}},
		{"LA fall back fixed 01:30 runs once", "America/Los_Angeles", "30 1 * * *", "2025-11-02T00:00:00Z",
			[]string{"2025-11-02T08:30:00Z", "2025-11-03T09:30:00Z"}},
		{"LA fall back fixed 01:00 runs once", "America/Los_Angeles", "0 1 * * *", "2025-11-02T00:00:00Z",
			[]string{"2025-11-02T08:00:00Z", "2025-11-03T09:00:00Z"}},
		{"LA fall back wildcard every 30 min in real time", "America/Los_Angeles", "*/30 * * * *", "2025-11-02T07:59:00Z",
			[]string{"2025-11-02T08:00:00Z", "2025-11-02T08:30:00Z", "2025-11-02T09:00:00Z", "2025-11-02T09:30:00Z", "2025-11-02T10:00:00Z"}},
		{"LA fall back minute 30 hourly in real time", "America/Los_Angeles", "30 * * * *", "2025-11-02T08:00:00Z",
			[]string{"2025-11-02T08:30:00Z", "2025-11-02T09:30:00Z", "2025-11-02T10:30:00Z"}},
		{"LA @daily", "America/Los_Angeles", "@daily", "2025-03-08T09:00:00Z",
			[]string{"2025-03-09T08:00:00Z", "2025-03-10T07:00:00Z"}},
		// Europe/London: 2025-03-30 01:00-01:59 missing, 2025-10-26 01:00-01:59 twice.
		{"London gap 01:30", "Europe/London", "30 1 * * *", "2025-03-29T12:00:00Z",
			[]string{"2025-03-30T01:00:00Z", "2025-03-31T00:30:00Z"}},
		{"London fall back 01:30 once", "Europe/London", "30 1 * * *", "2025-10-25T12:00:00Z",
			[]string{"2025-10-26T00:30:00Z", "2025-10-27T01:30:00Z"}},
		{"London seconds field", "Europe/London", "15 30 1 * * *", "2025-10-25T12:00:00Z",
			[]string{"2025-10-26T00:30:15Z", "2025-10-27T01:30:15Z"}},
		// Europe/Berlin: 02:00-02:59 missing on 2025-03-30, twice on 2025-10-26.
		{"Berlin gap 02:30", "Europe/Berlin", "30 2 * * *", "2025-03-29T12:00:00Z",
			[]string{"2025-03-30T01:00:00Z", "2025-03-31T00:30:00Z"}},
		{"Berlin fall back 02:30 once", "Europe/Berlin", "30 2 * * *", "2025-10-25T12:00:00Z",
			[]string{"2025-10-26T00:30:00Z", "2025-10-27T01:30:00Z"}},
		// Australia/Lord_Howe: 30-minute shifts. 2025-10-05 02:00 -> 02:30; 2025-04-06 01:30-01:59 twice.
		{"Lord Howe gap 02:15 at the transition", "Australia/Lord_Howe", "15 2 * * *", "2025-10-04T00:00:00Z",
			[]string{"2025-10-04T15:30:00Z", "2025-10-05T15:15:00Z"}},
		{"Lord Howe fall back 01:45 once", "Australia/Lord_Howe", "45 1 * * *", "2025-04-05T00:00:00Z",
			[]string{"2025-04-05T14:45:00Z", "2025-04-06T15:15:00Z"}},
		{"Lord Howe wildcard every 15 min across the gap", "Australia/Lord_Howe", "*/15 * * * *", "2025-10-04T15:14:00Z",
			[]string{"2025-10-04T15:15:00Z", "2025-10-04T15:30:00Z", "2025-10-04T15:45:00Z"}},
		// Midnight gaps: @daily must not lose the day.
		{"Santiago midnight gap", "America/Santiago", "0 0 * * *", "2025-09-06T12:00:00Z",
			[]string{"2025-09-07T04:00:00Z", "2025-09-08T03:00:00Z"}},
		{"Cairo midnight gap", "Africa/Cairo", "@daily", "2025-04-24T12:00:00Z",
			[]string{"2025-04-24T22:00:00Z", "2025-04-25T21:00:00Z"}},
		// Day-of-month and day-of-week are ORed when both are restricted.
		{"dom or dow", "UTC", "0 9 1 * 1", "2025-02-28T12:00:00Z",
			[]string{"2025-03-01T09:00:00Z", "2025-03-03T09:00:00Z", "2025-03-10T09:00:00Z", "2025-03-17T09:00:00Z"}},
		{"every 90s is elapsed time", "America/Los_Angeles", "@every 90s", "2025-03-09T09:59:00Z",
			[]string{"2025-03-09T10:00:30Z", "2025-03-09T10:02:00Z"}},
		{"leap day", "UTC", "0 0 29 2 *", "2025-01-01T00:00:00Z",
			[]string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseCron(tc.spec, mustLoad(t, tc.zone))
			if err != nil {
				t.Fatal(err)
			}
			at := utc(tc.from)
			var got []string
			for range tc.want {
				at = s.Next(at)
				got = append(got, at.UTC().Format(time.RFC3339))
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("%s in %s from %s:\n got %v\nwant %v", tc.spec, tc.zone, tc.from, got, tc.want)
			}
		})
	}
}

func TestParseCronErrors(t *testing.T) {
	for _, spec := range []string{
		"", "* * *", "61 * * * *", "0 24 * * *", "0 0 32 * *", "0 0 * 13 *", "0 0 * * 7",
		"CRON_TZ=UTC 0 0 * * *", "@often", "@every -1s", "0 0 30 2 *", "a b c d e",
	} {
		if _, err := ParseCron(spec, time.UTC); err == nil {
			t.Errorf("ParseCron(%q) accepted", spec)
		}
	}
}
