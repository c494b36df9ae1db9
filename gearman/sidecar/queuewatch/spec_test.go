package queuewatch

import (
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	good := []struct {
		in                            string
		upstream, backend, table, loc string
	}{
		{"127.0.0.1:4730=sqlite:///var/lib/gearman/q.db", "127.0.0.1:4730", BackendSQLite, "gearman_queue", "sqlite:///var/lib/gearman/q.db"},
		{"gm=sqlite://rel/q.db?table=jobs", "gm:4730", BackendSQLite, "jobs", "sqlite://rel/q.db"},
		{"gm:4731=postgres://u:secret@db:5432/g?table=public.queue&sslmode=disable", "gm:4731", BackendPostgres, "public.queue", "postgres://u:xxxxx@db:5432/g?"},
		{"gm=postgresql://db/g", "gm:4730", BackendPostgres, "queue", "postgresql://db/g?"},
		{"gm=mysql://u:secret@tcp(db:3306)/g?table=gq", "gm:4730", BackendMySQL, "gq", "mysql://u:xxxxx@tcp(db:3306)/g"},
		{"gm=mysql://u@db/g", "gm:4730", BackendMySQL, "gearman_queue", "mysql://u@tcp(db:3306)/g"},
	}
	for _, tc := range good {
		sp, err := ParseSpec(tc.in)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", tc.in, err)
			continue
		}
		if sp.Upstream != tc.upstream || sp.Backend != tc.backend || sp.Table != tc.table || !strings.HasPrefix(sp.Location, tc.loc) {
			t.Errorf("ParseSpec(%q) = %+v", tc.in, sp)
		}
		if strings.Contains(sp.Location, "secret") {
			t.Errorf("ParseSpec(%q): the location shows the password: %s", tc.in, sp.Location)
		}
	}
	bad := map[string]string{
		"sqlite:///q.db":                        "UPSTREAM=URL",
		"gm=":                                   "UPSTREAM=URL",
		"gm=/var/q.db":                          "scheme",
		"gm=redis://x":                          "unknown scheme",
		"gm=sqlite://":                          "no database file",
		"gm=sqlite:///q.db?mode=rw":             "unknown parameters",
		"gm=sqlite:///q.db?table=q-1":           "plain SQL name",
		"gm=mysql://u@tcp(db:3306)/g?table=a.b": "plain SQL name",
		"gm=mysql://u@tcp(db:3306)/":            "no database",
		"gm:99999=sqlite:///q.db":               "host:port",
	}
	for in, want := range bad {
		if _, err := ParseSpec(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSpec(%q) = %v, want an error about %q", in, err, want)
		}
	}
}
