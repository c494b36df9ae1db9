package server

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // "tz" cases must not depend on the host's zoneinfo

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store"
)

// controlNow is the fixed "now" every ParseScheduleRequest case runs at.
var controlNow = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

func TestParseScheduleRequest(t *testing.T) {
	unique64 := strings.Repeat("u", gearman.MaxUniqueSize)
	tests := []struct {
		name    string
		payload string
		want    ScheduleRequest
	}{
		{
			name:    "at as JSON number",
			payload: `{"function":"f","at":1700000000}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.Normal, At: time.Unix(1700000000, 0)},
		},
		{
			name:    "at as numeric string",
			payload: `{"function":"f","at":"1700000000"}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.Normal, At: time.Unix(1700000000, 0)},
		},
		{
			name:    "at zero is the epoch",
			payload: `{"function":"f","at":0}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.Normal, At: time.Unix(0, 0)},
		},
		{
			name:    "at as RFC 3339 with offset",
			payload: `{"function":"f","at":"2025-06-01T12:30:00+02:00"}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.Normal, At: time.Date(2025, 6, 1, 10, 30, 0, 0, time.UTC)},
		},
		{
			name:    "at as RFC 3339 with fraction",
			payload: `{"function":"f","at":"2025-06-01T10:30:00.25Z"}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.Normal, At: time.Date(2025, 6, 1, 10, 30, 0, 250e6, time.UTC)},
		},
		{
			name:    "at the last representable second",
			payload: `{"function":"f","at":9223372036}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.Normal, At: time.Unix(9223372036, 0)},
		},
		{
			name:    "in 90s",
			payload: `{"function":"f","in":"90s"}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.Normal, At: controlNow.Add(90 * time.Second)},
		},
		{
			name:    "in zero is now",
			payload: `{"function":"f","in":"0s"}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.Normal, At: controlNow},
		},
		{
			name:    "in compound duration",
			payload: `{"function":"f","in":"1h2m3s"}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.Normal, At: controlNow.Add(time.Hour + 2*time.Minute + 3*time.Second)},
		},
		{
			name:    "cron without tz is UTC",
			payload: `{"function":"f","cron":"*/5 * * * *"}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.Normal, Cron: "*/5 * * * *", Zone: time.UTC},
		},
		{
			name:    "cron with tz",
			payload: `{"function":"f","cron":"0 9 * * 1-5","tz":"Europe/Berlin"}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.Normal, Cron: "0 9 * * 1-5", Zone: mustLoadLocation(t, "Europe/Berlin")},
		},
		{
			name:    "data as text",
			payload: `{"function":"f","in":"1s","data":"hello \u00e9"}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.Normal, At: controlNow.Add(time.Second), Data: []byte("hello \xc3\xa9")},
		},
		{
			name:    "data_base64 is decoded",
			payload: `{"function":"f","in":"1s","data_base64":"AAEC/w=="}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.Normal, At: controlNow.Add(time.Second), Data: []byte{0, 1, 2, 0xff}},
		},
		{
			name:    "unique of exactly 64 bytes",
			payload: `{"function":"f","in":"1s","unique":"` + unique64 + `"}`,
			want:    ScheduleRequest{Function: "f", Unique: unique64, Priority: gearman.Normal, At: controlNow.Add(time.Second)},
		},
		{
			name:    "priority high",
			payload: `{"function":"f","in":"1s","priority":"high"}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.High, At: controlNow.Add(time.Second)},
		},
		{
			name:    "priority is case-insensitive",
			payload: `{"function":"f","in":"1s","priority":"HIGH"}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.High, At: controlNow.Add(time.Second)},
		},
		{
			name:    "priority normal",
			payload: `{"function":"f","in":"1s","priority":"normal"}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.Normal, At: controlNow.Add(time.Second)},
		},
		{
			name:    "priority low",
			payload: `{"function":"f","in":"1s","priority":"low"}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.Low, At: controlNow.Add(time.Second)},
		},
		{
			name:    "priority empty is normal",
			payload: `{"function":"f","in":"1s","priority":""}`,
			want:    ScheduleRequest{Function: "f", Priority: gearman.Normal, At: controlNow.Add(time.Second)},
		},
		{
			name:    "trailing whitespace",
			payload: "{\"function\":\"f\",\"in\":\"1s\"}\n\t ",
			want:    ScheduleRequest{Function: "f", Priority: gearman.Normal, At: controlNow.Add(time.Second)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScheduleRequest([]byte(tt.payload), controlNow)
			if err != nil {
				t.Fatalf("ParseScheduleRequest(%s): %v", tt.payload, err)
			}
			checkScheduleRequest(t, got, tt.want)
		})
	}
}

func mustLoadLocation(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func checkScheduleRequest(t *testing.T, got, want ScheduleRequest) {
	t.Helper()
	if got.Function != want.Function {
		t.Errorf("Function = %q, want %q", got.Function, want.Function)
	}
	if got.Unique != want.Unique {
		t.Errorf("Unique = %q, want %q", got.Unique, want.Unique)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Errorf("Data = %q, want %q", got.Data, want.Data)
	}
	if got.Priority != want.Priority {
		t.Errorf("Priority = %d, want %d", got.Priority, want.Priority)
	}
	if !got.At.Equal(want.At) {
		t.Errorf("At = %v, want %v", got.At, want.At)
	}
	if got.Cron != want.Cron {
		t.Errorf("Cron = %q, want %q", got.Cron, want.Cron)
	}
	switch {
	case want.Zone == nil && got.Zone != nil:
		t.Errorf("Zone = %v, want nil for a one-shot request", got.Zone)
	case want.Zone != nil && got.Zone == nil:
		t.Errorf("Zone = nil, want %v", want.Zone)
	case want.Zone != nil && got.Zone.String() != want.Zone.String():
		t.Errorf("Zone = %v, want %v", got.Zone, want.Zone)
	}
}

func TestParseScheduleRequestErrors(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		// mention are substrings the error must contain, so that a
		// client can see what was wrong: the offending fields' names.
		mention []string
	}{
		{name: "missing function", payload: `{"in":"1s"}`, mention: []string{`"function"`}},
		{name: "empty function", payload: `{"function":"","in":"1s"}`, mention: []string{`"function"`}},
		{name: "unknown field", payload: `{"function":"f","in":"1s","when":5}`, mention: []string{`when`}},
		{name: "wrong type of data", payload: `{"function":"f","in":"1s","data":5}`, mention: []string{`data`}},
		{name: "data and data_base64", payload: `{"function":"f","in":"1s","data":"x","data_base64":"eA=="}`, mention: []string{`"data"`, `"data_base64"`}},
		{name: "bad base64", payload: `{"function":"f","in":"1s","data_base64":"not base64!"}`, mention: []string{`"data_base64"`}},
		{name: "unpadded base64", payload: `{"function":"f","in":"1s","data_base64":"eA"}`, mention: []string{`"data_base64"`}},
		{name: "bad priority", payload: `{"function":"f","in":"1s","priority":"urgent"}`, mention: []string{`"priority"`, `urgent`}},
		{name: "none of at in cron", payload: `{"function":"f"}`, mention: []string{`"at"`, `"in"`, `"cron"`}},
		{name: "at and in", payload: `{"function":"f","at":1700000000,"in":"1s"}`, mention: []string{`"at"`, `"in"`}},
		{name: "in and cron", payload: `{"function":"f","in":"1s","cron":"* * * * *"}`, mention: []string{`"in"`, `"cron"`}},
		{name: "at and cron", payload: `{"function":"f","at":"1700000000","cron":"* * * * *"}`, mention: []string{`"at"`, `"cron"`}},
		{name: "tz without cron", payload: `{"function":"f","in":"1s","tz":"UTC"}`, mention: []string{`"tz"`}},
		{name: "bad tz", payload: `{"function":"f","cron":"* * * * *","tz":"Mars/Olympus_Mons"}`, mention: []string{`"tz"`, `Mars/Olympus_Mons`}},
		{name: "negative in", payload: `{"function":"f","in":"-5s"}`, mention: []string{`"in"`}},
		{name: "in of minus one nanosecond", payload: `{"function":"f","in":"-1ns"}`, mention: []string{`"in"`}},
		{name: "unparsable in", payload: `{"function":"f","in":"soon"}`, mention: []string{`"in"`}},
		{name: "in without unit", payload: `{"function":"f","in":"90"}`, mention: []string{`"in"`}},
		{name: "bad at text", payload: `{"function":"f","at":"tomorrow"}`, mention: []string{`"at"`}},
		{name: "at negative", payload: `{"function":"f","at":-1}`, mention: []string{`"at"`}},
		{name: "at fractional seconds", payload: `{"function":"f","at":1700000000.5}`, mention: []string{`"at"`}},
		{name: "at boolean", payload: `{"function":"f","at":true}`, mention: []string{`"at"`}},
		{name: "at RFC 3339 without zone", payload: `{"function":"f","at":"2025-06-01T10:30:00"}`, mention: []string{`"at"`}},
		{name: "at seconds after 2262", payload: `{"function":"f","at":9223372037}`, mention: []string{`"at"`}},
		{name: "at string seconds after 2262", payload: `{"function":"f","at":"99999999999"}`, mention: []string{`"at"`}},
		{
			name: "at RFC 3339 after 2262", payload: `{"function":"f","at":"2300-01-01T00:00:00Z"}`, mention: []string{`"at"`},
		},
		{
			name: "at RFC 3339 in the last second of 2262", payload: `{"function":"f","at":"2262-04-11T23:47:16.9Z"}`, mention: []string{`"at"`},
		},
		{
			name: "in reaching past 2262", payload: `{"function":"f","in":"2562047h"}`, mention: []string{`"in"`},
		},
		{name: "unique longer than 64 bytes", payload: `{"function":"f","in":"1s","unique":"` + strings.Repeat("u", gearman.MaxUniqueSize+1) + `"}`, mention: []string{`"unique"`, `64`}},
		{name: "function longer than the store keys", payload: `{"function":"` + strings.Repeat("f", store.MaxFunctionSize+1) + `","in":"1s"}`,
			mention: []string{`"function"`, strconv.Itoa(store.MaxFunctionSize)}},
		{name: "NUL in function", payload: `{"function":"a\u0000b","in":"1s"}`, mention: []string{`"function"`, `NUL`}},
		{name: "NUL in unique", payload: `{"function":"f","unique":"a\u0000b","in":"1s"}`, mention: []string{`"unique"`, `NUL`}},
		{name: "trailing object", payload: `{"function":"f","in":"1s"} {}`, mention: []string{`after`}},
		{name: "trailing word", payload: `{"function":"f","in":"1s"} x`, mention: []string{`after`}},
		{
			name: "trailing close brace", payload: `{"function":"f","in":"1s"}}`, mention: []string{`after`},
		},
		{
			name: "trailing close bracket", payload: `{"function":"f","in":"1s"}]`, mention: []string{`after`},
		},
		{name: "empty payload", payload: ``, mention: []string{`JSON`}},
		{name: "array", payload: `[]`, mention: []string{`JSON`}},
		{name: "truncated object", payload: `{"function":"f","in":"1s"`, mention: []string{`JSON`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScheduleRequest([]byte(tt.payload), controlNow)
			if err == nil {
				t.Fatalf("ParseScheduleRequest(%s) = %+v, want an error", tt.payload, got)
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %s", err, m)
				}
			}
		})
	}
}
