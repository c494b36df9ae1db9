package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
)

func TestBuildInfoString(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   buildInfo
		want string
	}{
		{"release", buildInfo{version: "v1.2.0"}, "v1.2.0"},
		{"pseudo-version", buildInfo{version: "v0.0.0-20261129134309-fdb6c5ba73ab", revision: "fdb6c5ba73ab02cb39df5aaff1dd01a9cf57dc50", time: "2026-11-29T13:43:09Z"},
			"v0.0.0-20261129134309-fdb6c5ba73ab"},
		{"pseudo-version, dirty", buildInfo{version: "v0.0.0-20261129134309-fdb6c5ba73ab+dirty", modified: true}, "v0.0.0-20261129134309-fdb6c5ba73ab+dirty"},
		{"release, modified", buildInfo{version: "v1.2.0", modified: true}, "v1.2.0+dirty"},
		{"devel, no vcs", buildInfo{version: "(devel)"}, "devel"},
		{"devel with vcs", buildInfo{version: "(devel)", revision: "fdb6c5ba73ab02cb39df5aaff1dd01a9cf57dc50", time: "2026-11-29T13:43:09Z", modified: true},
			"devel-20261129134309-fdb6c5ba73ab+dirty"},
	} {
		if got := tc.bi.String(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
		if strings.ContainsAny(tc.bi.String(), " \t\n") {
			t.Errorf("%s: version %q is not one word", tc.name, tc.bi.String())
		}
	}
}

// TestVersion checks `gearsched version` and the admin `version` command
// of the built binary against what `go version -m` reads from it.
func TestVersion(t *testing.T) {
	s := startGearsched(t)
	out, err := exec.Command(gearschedBin, "version").Output()
	if err != nil {
		t.Fatalf("gearsched version: %v", err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	word := strings.TrimPrefix(first, "gearsched ")
	if got := admin(t, s.Addr, "version"); got != "OK gearsched "+word+"\n" {
		t.Errorf("admin version %q, want %q", got, "OK gearsched "+word+"\n")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	m, err := exec.CommandContext(context.Background(), goTool, "version", "-m", gearschedBin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	stamped := map[string]string{}
	for _, l := range strings.Split(string(m), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[0] == "mod":
			stamped["mod"] = f[2]
		case len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs."):
			k, v, _ := strings.Cut(f[1], "=")
			stamped[k] = v
		}
	}
	if !bytes.Contains(out, []byte("github.com/gearsched/gearsched "+stamped["mod"]+"\n")) {
		t.Errorf("gearsched version:\n%s\ndoes not name the module version %q", out, stamped["mod"])
	}
	for _, k := range []string{"vcs.revision", "vcs.time", "vcs.modified"} {
		if v, ok := stamped[k]; ok && !bytes.Contains(out, []byte(" "+v+"\n")) {
			t.Errorf("gearsched version:\n%s\ndoes not show %s=%s", out, k, v)
		}
	}
	t.Logf("gearsched version:\n%s", out)
}
