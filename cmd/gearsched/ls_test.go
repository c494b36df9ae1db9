package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearsched/gearsched/store"
)

// fillPending writes n pending jobs straight into a new database at db:
// every 1,000th on function "rare", the rest on "bulk", due one second
// apart from an hour from now. The store's group commit takes them in a
// few large transactions.
func fillPending(t testing.TB, db string, n int) {
	t.Helper()
	st, err := store.Open(db, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	first, err := st.ReserveIDs(uint64(n)).Wait()
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(time.Hour).Truncate(time.Second)
	const chunk = 50_000 // writes in flight at once: memory stays bounded
	writes := make([]*store.Write, 0, chunk)
	wait := func() {
		for _, w := range writes {
			if err := w.Wait(); err != nil {
				t.Fatal(err)
			}
		}
		writes = writes[:0]
	}
	for i := range n {
		if len(writes) == chunk {
			wait()
		}
		id := first + uint64(i)
		fn := "bulk"
		if i%1000 == 0 {
			fn = "rare"
		}
		writes = append(writes, st.PutPending(&store.Job{ID: id, Handle: "H:ls:" + strconv.FormatUint(id, 10), Function: fn,
			Unique: "u" + strconv.Itoa(i), Priority: 1, Due: base.Add(time.Duration(i) * time.Second).UnixNano(),
			Data: []byte("0123456789")}, ""))
	}
	wait()
}

// lsRun runs `gearsched ls` with args, counting its output lines without
// keeping them, and returns the line count, the last line and the
// process's peak RSS. The peak comes from GNU time: the rusage that Wait
// returns would count this test process's own memory, since the child
// shares it until exec (vfork) and Linux carries that peak across exec.
func lsRun(t *testing.T, args ...string) (lines int, last string, maxRSS int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rss := filepath.Join(t.TempDir(), "rss")
	cmd := exec.CommandContext(ctx, "/usr/bin/time", append([]string{"-o", rss, "-f", "%M", gearschedBin, "ls"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("GNU time (Debian package time) is required: %v", err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		lines++
		last = sc.Text()
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("gearsched ls %q: %v\n%s", args, err, stderr.String())
	}
	kib, err := os.ReadFile(rss)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(kib)), 10, 64)
	if err != nil {
		t.Fatalf("GNU time wrote %q", kib)
	}
	return lines, last, n << 10
}

// TestLsLargeList lists 200,000 pending jobs with `gearsched ls`: all of
// them arrive, --limit and --function cut the list, --json gives one
// object per line, and the client's memory is the same whether it prints
// a thousand rows or all of them, because it prints rows as they arrive.
// GEARSCHED_LS_JOBS sets another count.
func TestLsLargeList(t *testing.T) {
	t.Parallel()
	n := 200_000
	if v, err := strconv.Atoi(os.Getenv("GEARSCHED_LS_JOBS")); err == nil && v >= 2000 {
		n = v
	}
	db := filepath.Join(t.TempDir(), "big.db")
	start := time.Now()
	fillPending(t, db, n)
	t.Logf("%d pending jobs written in %v", n, time.Since(start).Round(time.Millisecond))
	s := startGearsched(t, "--db", db)
	srv := "--server=" + s.Addr

	start = time.Now()
	lines, last, rssAll := lsRun(t, srv, "--timeout", "60s")
	took := time.Since(start)
	if lines != n+1 {
		t.Errorf("ls printed %d lines, want %d rows and the header", lines, n)
	}
	if !strings.Contains(last, "\tbulk\t") && !strings.Contains(last, " bulk ") {
		t.Errorf("last row %q", last)
	}
	lines, _, rssPage := lsRun(t, srv, "--limit", "1000")
	if lines != 1001 {
		t.Errorf("ls --limit 1000 printed %d lines", lines)
	}
	t.Logf("gearsched ls of %d rows: %v, peak RSS %.1f MiB; of 1,000 rows: peak RSS %.1f MiB",
		n, took.Round(time.Millisecond), mib(rssAll), mib(rssPage))
	// Holding the list would cost about 100 bytes a row several times
	// over; printing as it reads costs one page.
	if rssAll > rssPage+16<<20 {
		t.Errorf("peak RSS %.1f MiB listing %d rows against %.1f MiB listing 1,000: the list is held in memory",
			mib(rssAll), n, mib(rssPage))
	}

	out, code := runExit(t, gearschedBin, "ls", srv, "--json", "--function", "rare", "--limit", "3")
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(rows) != 3 {
		t.Fatalf("ls --json --function rare --limit 3: exit %d\n%s", code, out)
	}
	for i, r := range rows {
		var row lsRow
		if err := json.Unmarshal([]byte(r), &row); err != nil || row.Function != "rare" || row.Schedule != "once" ||
			row.NextRun == nil || row.Unique != "u"+strconv.Itoa(i*1000) {
			t.Errorf("row %d: %q (%v)", i, r, err)
		}
	}
	lines, _, _ = lsRun(t, srv, "--function", "rare", "--json")
	if want := (n + 999) / 1000; lines != want {
		t.Errorf("ls --function rare printed %d rows, want %d", lines, want)
	}
	if lines, _, _ = lsRun(t, srv, "--function", "none"); lines != 1 {
		t.Errorf("ls --function none printed %d lines, want the header alone", lines)
	}
}

// TestLsErrors: bad flags exit 2; a server that does not list schedules
// (gearmand) is named.
func TestLsErrors(t *testing.T) {
	t.Parallel()
	g := startGearmand(t)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"ls", "--limit", "-1"}, 2, "--limit -1 must not be negative"},
		{[]string{"ls", "--function", "a b"}, 2, "no spaces"},
		{[]string{"ls", "extra"}, 2, "ls takes no arguments"},
		{[]string{"ls", "--server", g.Addr}, 1, "does not list schedules (is it gearsched?)"},
	} {
		out, code := runExit(t, gearschedBin, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.msg) {
			t.Errorf("gearsched %v: exit %d, output %q; want exit %d and %q", tc.args, code, out, tc.code, tc.msg)
		}
	}
}
