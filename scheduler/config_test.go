package scheduler

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearsched/gearsched/store"
)

func TestLoadFileErrors(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"unknown-key.toml", `unknown-key.toml:5: unknown key "schedule.funtcion"`},
		{"bad-cron.toml", `bad-cron.toml:9: schedule "broken": cron spec "61 * * * *"`},
		{"bad-zone.toml", `bad-zone.toml:4: schedule "z": unknown time zone "Mars/Olympus"`},
		{"bad-policy.toml", `bad-policy.toml:5: schedule "p": missed "sometimes"`},
		{"duplicate.toml", `duplicate.toml:7: schedule "d": name already used at line 2`},
		{"syntax.toml", `syntax.toml:3:`},
		{"empty.toml", `empty.toml is empty; to remove every schedule, leave a comment in it`},
		{"long-jitter.toml", `long-jitter.toml:11: schedule "weekdays": jitter 25h0m0s is not shorter than the 24h0m0s between runs`},
		{"bad-function.toml", `bad-function.toml:5: schedule "n": function must not contain NUL`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := LoadFile(filepath.Join("../testdata/schedules", tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadCommentsOnly(t *testing.T) {
	defs, err := LoadFile("../testdata/schedules/comments-only.toml")
	if err != nil || len(defs) != 0 {
		t.Fatalf("a file of comments: %v, %v; want no schedules and no error", defs, err)
	}
}

func TestShortestGap(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want time.Duration
	}{
		{"@hourly", time.Hour},
		{"@every 90s", 90 * time.Second},
		{"*/15 * * * *", 15 * time.Minute},
		{"0 9 * * 1-5", 24 * time.Hour},
		{"0 0 1 * *", 28 * 24 * time.Hour},
		{"0 6,18 * * *", 12 * time.Hour},
	} {
		spec, err := ParseCron(tc.spec, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		if got := shortestGap(spec); got != tc.want {
			t.Errorf("shortestGap(%q) = %v, want %v", tc.spec, got, tc.want)
		}
	}
}

// TestFunctionTooLong: a function name the store could not key is an
// error of the file, not a failed commit later.
func TestFunctionTooLong(t *testing.T) {
	d := Definition{Name: "n", Cron: "@hourly", Function: strings.Repeat("f", store.MaxFunctionSize+1)}
	if _, key, err := d.build(); key != "function" || err == nil {
		t.Errorf("build: key %q, err %v; want an error of key function", key, err)
	}
	d.Function = d.Function[1:]
	if _, _, err := d.build(); err != nil {
		t.Errorf("a function of MaxFunctionSize bytes: %v", err)
	}
}

func TestLoadExampleAndSync(t *testing.T) {
	defs, err := LoadFile("../configs/schedules.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(defs) != 2 || defs[0].Name != "nightly-report" || defs[0].Zone != "Europe/London" || defs[1].Priority != 2 {
		t.Fatalf("example parsed as %+v", defs)
	}
	_, _, st := newTest(t)
	next := uint64(100)
	alloc := func() (uint64, string, error) { next++; return next, fmt.Sprintf("H:t:%d", next), nil }
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	res, err := Sync(st, defs, now, alloc)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Added, ",") != "nightly-report,cache-warm" {
		t.Errorf("added %v", res.Added)
	}
	all, err := st.Schedules()
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range all {
		if sc.Name == "nightly-report" && !time.Unix(0, sc.Next).Equal(time.Date(2026, 3, 2, 2, 30, 0, 0, time.UTC)) {
			t.Errorf("nightly-report next %v", time.Unix(0, sc.Next).UTC())
		}
	}
	// Same file again: nothing changes, next times are kept.
	if res, err = Sync(st, defs, now.Add(time.Hour), alloc); err != nil || len(res.Unchanged) != 2 || len(res.Added)+len(res.Changed) != 0 {
		t.Errorf("resync: %+v, %v", res, err)
	}
	// Change one, drop the other.
	changed := *defs[0]
	changed.Spec = "0 3 * * *"
	res, err = Sync(st, []*store.Schedule{&changed}, now, alloc)
	if err != nil || strings.Join(res.Changed, ",") != "nightly-report" || strings.Join(res.Removed, ",") != "cache-warm" {
		t.Errorf("change+remove: %+v, %v", res, err)
	}
	if all, err = st.Schedules(); err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].Spec != "0 3 * * *" || all[0].ID != 101 {
		t.Errorf("after sync the store holds %+v", all)
	}
}

// TestLoadFileErrorLines checks that error lines follow TOML's reading of
// the file, not its text: a key quoted or inside a multi-line string, and
// schedules written as inline tables.
func TestLoadFileErrorLines(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"multiline-string", `[[schedule]]
name = "m"
data = """
cron = "0 9 * * *"
"""
function = "f"
cron = "61 * * * *"
`, `:7: schedule "m": cron spec`},
		{"quoted-key", `[[schedule]]
name = "q"
function = "f"
  "cron" = "0 9 * * *"
"missed" = "never"
`, `:5: schedule "q": missed "never"`},
		{"inline-tables", `schedule = [
  { name = "a", cron = "0 9 * * *", function = "f" },
  { name = "b", function = "g",
    timezone = "Mars/Olympus", cron = "0 9 * * *" },
]
`, `:4: schedule "b": unknown time zone`},
		{"missing-key", `# comment
[[schedule]]
name = "a"
cron = "0 9 * * *"
function = "f"

[[schedule]]
name = "b"
cron = "0 9 * * *"
`, `:7: schedule "b": function is required`},
		{"duplicate-inline", `schedule = [
  { name = "a", cron = "0 9 * * *", function = "f" },

  { name = "a", cron = "0 9 * * *", function = "f" },
]
`, `:4: schedule "a": name already used at line 2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.toml")
			if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadFile(path)
			if err == nil || !strings.Contains(err.Error(), path+tc.want) {
				t.Errorf("error %v, want it to contain %q", err, path+tc.want)
			}
		})
	}
}
