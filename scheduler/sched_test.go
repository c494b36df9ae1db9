package scheduler

import (
	"testing"
	"time"
)

func TestSchedWeekdayTranslation(t *testing.T) {
	for _, tc := range []struct {
		dow, want string
		cron      bool
	}{
		{"0", "0 9 * * 1", false},           // Monday
		{"6", "0 9 * * 0", false},           // Sunday
		{"5", "0 9 * * 6", false},           // Saturday
		{"0-4", "0 9 * * 1,2,3,4,5", false}, // weekdays
		{"4-6", "0 9 * * 0,5,6", false},     // Friday to Sunday is not a cron range
		{"5-6", "0 9 * * 0,6", false},       // weekend
		{"*/2", "0 9 * * 0,1,3,5", false},   // Mon, Wed, Fri, Sun
		{"MON,SUN", "0 9 * * 0,1", false},   // names mean the same days
		{"", "0 9 * * *", false},
		{"*", "0 9 * * *", false},
		{"1", "0 9 * * 1", true}, // g2 clients: cron numbering passes through
	} {
		got, err := SchedSpec(SchedFields{Minute: "0", Hour: "9", DayOfWeek: tc.dow}, tc.cron)
		if err != nil {
			t.Errorf("dow %q: %v", tc.dow, err)
			continue
		}
		if got != tc.want {
			t.Errorf("dow %q (cron numbering %v): spec %q, want %q", tc.dow, tc.cron, got, tc.want)
		}
	}
	// And the spec fires on the right day: protocol 6 = Sunday.
	spec, _ := SchedSpec(SchedFields{Minute: "0", Hour: "9", DayOfWeek: "6"}, false)
	s, err := ParseCron(spec, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if next := s.Next(utc("2025-03-03T00:00:00Z")); next.Weekday() != time.Sunday {
		t.Errorf("protocol day 6 fired on %s, want Sunday", next.Weekday())
	}
}

func TestSchedSpecErrors(t *testing.T) {
	for _, f := range []SchedFields{
		{DayOfWeek: "7"}, {DayOfWeek: "-1"}, {DayOfWeek: "5-2"}, {DayOfWeek: "x"}, {DayOfWeek: "*/0"},
		{Minute: "1 2"},
	} {
		if spec, err := SchedSpec(f, false); err == nil {
			if _, err := ParseCron(spec, time.UTC); err == nil {
				t.Errorf("%+v accepted as %q", f, spec)
			}
		}
	}
	for _, f := range []SchedFields{{Minute: "60"}, {Hour: "24"}, {DayOfMonth: "0"}, {Month: "13"}} {
		spec, err := SchedSpec(f, false)
		if err != nil {
			continue
		}
		if _, err := ParseCron(spec, time.UTC); err == nil {
			t.Errorf("%+v accepted as %q", f, spec)
		}
	}
}
