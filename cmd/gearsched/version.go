package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// buildInfo is what the go command recorded about this binary: the main
// module's version and, when it was built from a checkout with VCS
// stamping, the commit, its time and whether the tree had local changes.
type buildInfo struct {
	module   string // module path
	version  string // module version; "(devel)" when built from a checkout
	revision string
	time     string // of the commit, RFC 3339
	modified bool
	goVer    string
}

// readBuildInfo reads this binary's build info.
func readBuildInfo() buildInfo {
	bi := buildInfo{version: "(devel)", goVer: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return bi
	}
	bi.module = info.Main.Path
	if info.Main.Version != "" {
		bi.version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			bi.revision = s.Value
		case "vcs.time":
			bi.time = s.Value
		case "vcs.modified":
			bi.modified = s.Value == "true"
		}
	}
	return bi
}

// String is the version in one word, as the admin `version` command and
// the logs report it (clients split that reply on spaces). A release or
// a pseudo-version (v0.0.0-20261129134309-fdb6c5ba73ab) is used as it
// is; a build from a checkout that the go command gave no version is
// "devel" plus the commit's time and revision in the pseudo-version's
// form, and "+dirty" marks local changes either way.
func (b buildInfo) String() string {
	v := b.version
	if v == "(devel)" {
		v = "devel"
		if b.revision != "" {
			v += "-" + compactTime(b.time) + "-" + short(b.revision)
		}
	}
	if b.modified && !strings.HasSuffix(v, "+dirty") {
		v += "+dirty"
	}
	return v
}

// writeVersion prints `gearsched version`: the one-word version, then
// what it is made of.
func (b buildInfo) writeVersion(w io.Writer) {
	fmt.Fprintln(w, "gearsched", b)
	row := func(k, v string) { fmt.Fprintf(w, "  %-9s %s\n", k, v) }
	if b.module != "" {
		row("module", b.module+" "+b.version)
	}
	if b.revision != "" {
		row("revision", b.revision)
		row("time", b.time)
		row("modified", fmt.Sprint(b.modified))
	} else {
		row("revision", "unknown: the go command stamped none (-buildvcs=false, or not built in a git clone)")
	}
	row("go", b.goVer+" "+runtime.GOOS+"/"+runtime.GOARCH)
}

// compactTime turns an RFC 3339 time into the yyyymmddhhmmss of a
// pseudo-version; it returns "unknown" when t does not parse.
func compactTime(t string) string {
	p, err := time.Parse(time.RFC3339, t)
	if err != nil {
		return "unknown"
	}
	return p.UTC().Format("20060102150405")
}

// short is a revision's first 12 characters, as in pseudo-versions.
func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
