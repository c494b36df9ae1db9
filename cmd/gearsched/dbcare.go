package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gearsched/gearsched/store"
	"github.com/spf13/pflag"
)

// runBackup implements `gearsched backup FILE`: a consistent copy of the
// running server's database, fetched from its HTTP API (GET
// /api/v1/backup), written next to FILE and renamed onto it once
// complete, synced and checked.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommandFlags("backup", "backup [flags] FILE",
		"Copies the database of a running gearsched into FILE, consistently and without\n"+
			"stopping it. FILE is replaced only once the copy is complete.", stderr)
	addr := fs.String("http", defaultHTTP, "the running gearsched's --http address")
	tokenFile := fs.String("token-file", "", "file holding its --http-token-file token, if it has one")
	timeout := fs.Duration("timeout", 30*time.Second, "give up if the server does not start sending within this long")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		fs.Usage()
		return usageError{errors.New("backup takes one FILE")}
	}
	dst := fs.Arg(0)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+*addr+"/api/v1/backup", nil)
	if err != nil {
		return usageError{fmt.Errorf("--http %q: %w", *addr, err)}
	}
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return usageError{fmt.Errorf("--token-file: %w", err)}
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(b)))
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: *timeout}).DialContext,
		ResponseHeaderTimeout: *timeout,
	}}
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach gearsched's HTTP API at %s: %w", *addr, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return fmt.Errorf("backup from %s: %s: %s", *addr, res.Status, strings.TrimSpace(string(body)))
	}
	n, err := store.SaveBackup(dst, res.Body, res.ContentLength)
	if err != nil {
		return fmt.Errorf("backup to %s: %w", dst, err)
	}
	fmt.Fprintf(stdout, "backed up %s (%s) to %s\n", *addr, byteSize(n), dst)
	return nil
}

// runCompact implements `gearsched compact SRC DST`.
func runCompact(args []string, stdout, stderr io.Writer) error {
	src, dst, err := parseSrcDst("compact", "Copies the database SRC into the new file DST without its free pages, which bbolt\n"+
		"keeps after a backlog drained. Offline: stop gearsched first (or compact a backup),\n"+
		"then serve DST in SRC's place.\n", args, stderr)
	if err != nil {
		return err
	}
	if _, err := os.Stat(src); err != nil {
		return usageError{err}
	}
	before, after, err := store.Compact(src, dst)
	if errors.As(err, new(*store.InUseError)) {
		return fmt.Errorf("%s is in use by a running gearsched: stop it first, or compact a copy taken with `gearsched backup`", src)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "compacted %s (%s) into %s (%s)\n", src, byteSize(before), dst, byteSize(after))
	return nil
}

// parseSrcDst parses the command line of a command that takes SRC DST
// and no flags.
func parseSrcDst(name, about string, args []string, stderr io.Writer) (src, dst string, err error) {
	fs := pflag.NewFlagSet("gearsched "+name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, "Usage: gearsched %s SRC DST\n\n%s", name, about) }
	if err := fs.Parse(args); err != nil {
		return "", "", flagError(err)
	}
	if fs.NArg() != 2 || fs.Arg(0) == "" || fs.Arg(1) == "" {
		fs.Usage()
		return "", "", usageError{errors.New(name + " takes SRC DST")}
	}
	return fs.Arg(0), fs.Arg(1), nil
}

// byteSize shows n bytes in binary units.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
