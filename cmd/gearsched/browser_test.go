package main

// The web page in a real browser: Debian's headless Chromium, driven by
// chromedp, against the gearsched binary. The test also saves the
// screenshot README shows (docs/web.png), so it is regenerated from the
// page as it is, never drawn by hand.

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gearsched/gearsched/gearman"
)

// chromiumPath is Debian's chromium package's binary.
const chromiumPath = "/usr/bin/chromium"

// newBrowser starts headless Chromium with a fresh profile; it is
// stopped at cleanup.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("chromium is required (make deps installs it): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first action starts the browser; it lives as long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// within runs steps with a deadline, without ending the browser.
func within(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestWebPageCancel loads the page in Chromium, finds a scheduled job,
// cancels it with its button, sees the row go, and checks that the API
// and the admin protocol agree it is gone.
func TestWebPageCancel(t *testing.T) {
	t.Parallel()
	srv := startGearsched(t, "--http", "127.0.0.1:0")
	base := httpBase(t, srv)
	populate(t, srv, base)
	server := "--server=" + srv.Addr
	target, _ := runTool(t, "", gearschedBin, "at", server, "-u", "invoice-2041", "+3h", "billing.invoice", "order 2041")
	target = strings.TrimSpace(target)

	ctx := newBrowser(t)
	row := chromedp.CSS(`#upcoming tr[data-handle="` + target + `"]`)
	button := chromedp.CSS(`#upcoming button[data-action="cancel"][data-handle="` + target + `"]`)
	within(t, ctx, "load the page", chromedp.Navigate(base+"/"), chromedp.WaitVisible(row), chromedp.WaitVisible(button))

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(repoRoot(t), "docs", "web.png"), shot, 0o644); err != nil {
		t.Fatalf("save the screenshot: %v", err)
	}

	within(t, ctx, "cancel with the button", chromedp.Click(button), chromedp.WaitNotPresent(row))
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#status")))
	if err != nil || !strings.Contains(status, "Cancelled "+target) {
		t.Errorf("status line after the cancel: %q, %v", status, err)
	}
	apiJSON(t, 404, "GET", base+"/api/v1/scheduled/"+target, "", "", nil)
	if rows := admin(t, srv.Addr, "show schedules"); strings.Contains(rows, target+"\t") {
		t.Errorf("show schedules still lists %s:\n%s", target, rows)
	}
	// Reloaded, the page agrees too.
	within(t, ctx, "reload", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#upcoming")),
		chromedp.WaitNotPresent(row))
}

// populate gives the page something to show: functions with queued jobs,
// schedules (one paused), upcoming jobs, and runs with their lateness for
// the chart.
func populate(t *testing.T, srv *daemon, base string) {
	t.Helper()
	c := dialClient(t, srv.Addr)
	// Due over the next two seconds: the scheduler releases them then,
	// and their runs feed the chart.
	next := time.Now().Truncate(time.Second).Add(time.Second)
	for i := range 40 {
		due := next.Add(time.Duration(i%2) * time.Second)
		if _, err := c.Submit(gearman.SubmitJobEpoch, "mail.send", "welcome-"+strconv.Itoa(i),
			[]byte(strconv.FormatInt(due.Unix(), 10)), []byte("to: user"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	worker := startTool(t, "", "gearman", "-h", "127.0.0.1", "-p", strconv.Itoa(srv.Port), "-w", "-c", "40",
		"-f", "mail.send", "--", "cat")
	worker.wait(t)
	for i := range 6 {
		if _, err := c.Submit(gearman.SubmitJobLowBg, "thumbnails.resize", "img-"+strconv.Itoa(i), []byte("photo")); err != nil {
			t.Fatal(err)
		}
	}
	for i, spec := range []string{`{"function":"reports.daily","cron":"0 6 * * *","tz":"Europe/Paris","unique":"daily-sales"}`,
		`{"function":"cache.warm","cron":"*/15 * * * *","unique":"warm-cache"}`,
		`{"function":"billing.invoice","cron":"0 0 1 * *","tz":"America/New_York","unique":"monthly-invoices"}`} {
		var out struct{ Handle string }
		apiJSON(t, 201, "POST", base+"/api/v1/scheduled", spec, "", &out)
		if i == 1 {
			apiJSON(t, 200, "POST", base+"/api/v1/scheduled/"+out.Handle+"/pause", "", "", nil)
		}
	}
	for i, in := range []string{"+10m", "+45m", "+2h", "+26h"} {
		runTool(t, "", gearschedBin, "at", "--server="+srv.Addr, "-u", "reminder-"+strconv.Itoa(i), in, "mail.remind", "ping")
	}
	eventually(t, 10*time.Second, func() string {
		var runs struct{ Runs []struct{ Outcome string } }
		apiJSON(t, 200, "GET", base+"/api/v1/runs?limit=100", "", "", &runs)
		done := 0
		for _, r := range runs.Runs {
			if r.Outcome == "completed" {
				done++
			}
		}
		if done < 40 {
			return strconv.Itoa(done) + " of 40 runs completed"
		}
		return ""
	})
}
