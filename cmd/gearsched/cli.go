package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/spf13/pflag"
)

// clientFlags are the flags every client subcommand takes.
type clientFlags struct {
	server  string
	timeout time.Duration
	tls     tlsFiles
}

// newCommandFlags returns the flag set of the subcommand `gearsched
// name`, whose usage message is the line `Usage: gearsched USAGE`, about
// (when not empty) and the flags.
func newCommandFlags(name, usage, about string, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("gearsched "+name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: gearsched %s\n\n", usage)
		if about != "" {
			fmt.Fprintf(stderr, "%s\n\n", about)
		}
		fmt.Fprintf(stderr, "Flags:\n%s", fs.FlagUsages())
	}
	return fs
}

func newClientFlags(name, usage string, stderr io.Writer) (*pflag.FlagSet, *clientFlags) {
	fs := newCommandFlags(name, usage, "", stderr)
	cf := &clientFlags{}
	fs.StringVarP(&cf.server, "server", "s", "127.0.0.1:4730", "Gearman server address (host:port)")
	fs.DurationVar(&cf.timeout, "timeout", 10*time.Second, "give up on the server after this long")
	registerClientTLS(fs, &cf.tls)
	return fs, cf
}

// parse parses a client command line and checks its TLS flags.
func (cf *clientFlags) parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if err := cf.tls.check(fs, "ssl", "ssl-certificate", "ssl-key", "ssl-ca-file"); err != nil {
		return usageError{err}
	}
	return nil
}

// dial connects to --server, over TLS with --ssl.
func (cf *clientFlags) dial(ctx context.Context) (*gearman.Client, error) {
	tlsCfg, err := cf.tls.clientConfig()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	var c *gearman.Client
	if tlsCfg != nil {
		c, err = gearman.DialTLS(ctx, cf.server, tlsCfg)
	} else {
		c, err = gearman.Dial(ctx, cf.server)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Gearman server at %s: %w", cf.server, err)
	}
	c.SetDeadline(time.Now().Add(cf.timeout))
	return c, nil
}

// runAt implements `gearsched at WHEN FUNCTION [DATA | -]`.
func runAt(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("at", "at [flags] WHEN FUNCTION [DATA | -]\n\n"+
		"Submits a background job that runs at WHEN (SUBMIT_JOB_EPOCH) and prints its handle.\n"+
		"WHEN: "+whenHelp+".\n"+
		"WHEN may be several words (gearsched at now + 5 minutes report); quote it to be plain.\n"+
		"DATA is the payload; - reads it from standard input; none sends an empty one.", stderr)
	unique := fs.StringP("unique", "u", "", "unique ID: a second submission with the same function and unique returns the same job")
	priority := fs.String("priority", "normal", "high, normal or low; only for WHEN=now (scheduled jobs run at NORMAL, as the protocol defines)")
	tz := fs.String("tz", "Local", "IANA time zone at(1)'s words (HH:MM, noon, YYYY-MM-DD HH:MM...) are read in; default the local zone")
	if err := cf.parse(fs, args); err != nil {
		return err
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil || *tz == "" {
		return usageError{fmt.Errorf("--tz %q: want an IANA zone name such as Europe/Berlin, or Local", *tz)}
	}
	if fs.NArg() < 2 {
		fs.Usage()
		return usageError{errors.New("at takes WHEN FUNCTION [DATA | -]")}
	}
	when, whenText, rest, err := splitWhen(fs.Args(), time.Now(), loc)
	if err != nil {
		return err
	}
	fn := rest[0]
	if fn == "" {
		return usageError{errors.New("FUNCTION must not be empty")}
	}
	if len(*unique) > gearman.MaxUniqueSize {
		return usageError{fmt.Errorf("--unique is %d bytes; at most %d", len(*unique), gearman.MaxUniqueSize)}
	}
	var data []byte
	if len(rest) == 2 {
		if data = []byte(rest[1]); rest[1] == "-" {
			if data, err = io.ReadAll(stdin); err != nil {
				return fmt.Errorf("read standard input: %w", err)
			}
		}
	}
	typ := gearman.SubmitJobEpoch
	args2 := [][]byte{[]byte(strconv.FormatInt(when.Unix(), 10)), data}
	switch strings.ToLower(*priority) {
	case "normal":
	case "high", "low":
		if whenText != "now" {
			return usageError{errors.New("--priority applies only to WHEN=now: SUBMIT_JOB_EPOCH jobs run at NORMAL priority")}
		}
		typ = map[string]gearman.Type{"high": gearman.SubmitJobHighBg, "low": gearman.SubmitJobLowBg}[strings.ToLower(*priority)]
		args2 = args2[1:]
	default:
		return usageError{fmt.Errorf("--priority %q: want high, normal or low", *priority)}
	}
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	handle, err := c.Submit(typ, fn, *unique, args2...)
	if err != nil {
		return fmt.Errorf("submit to %s: %w", cf.server, err)
	}
	fmt.Fprintln(stdout, handle)
	return nil
}

// lsPage is how many rows `gearsched ls` aligns and prints at a time:
// columns line up within a page, and memory stays one page however long
// the list is.
const lsPage = 1000

// lsRow is one row of `gearsched ls --json`.
type lsRow struct {
	Handle   string  `json:"handle"`
	Function string  `json:"function"`
	Unique   string  `json:"unique"`
	NextRun  *string `json:"next_run"` // RFC 3339 UTC; null for a schedule that will not fire again
	Schedule string  `json:"schedule"` // "once" for a one-shot job, else the cron spec
	Zone     string  `json:"zone"`
}

// runLs implements `gearsched ls`: the server's `show schedules`, printed
// as it arrives (the server streams it page by page from its due index).
func runLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("ls", "ls [flags]\n\n"+
		"Lists scheduled jobs and recurring schedules in due order (admin command `show schedules`),\n"+
		"printing rows as they arrive: it works the same with millions pending.\n"+
		"--json prints one JSON object per line. --timeout bounds each wait for the next rows.", stderr)
	function := fs.String("function", "", "list only this function's jobs and schedules")
	limit := fs.Int("limit", 0, "stop after this many rows (0: all)")
	asJSON := fs.Bool("json", false, `one JSON object per line: {"handle", "function", "unique", "next_run", "schedule", "zone"}`)
	if err := cf.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("ls takes no arguments, got %q", fs.Arg(0))}
	}
	if *limit < 0 {
		return usageError{fmt.Errorf("--limit %d must not be negative", *limit)}
	}
	if strings.ContainsAny(*function, " \t\r\n") {
		return usageError{fmt.Errorf("--function %q: a function name has no spaces", *function)}
	}
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	out := bufio.NewWriterSize(stdout, 64<<10)
	var print func(f []string) error
	var flush func() error
	if *asJSON {
		enc := json.NewEncoder(out)
		print = func(f []string) error { return enc.Encode(newLsRow(f)) }
		flush = out.Flush
	} else {
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		header := "HANDLE\tFUNCTION\tUNIQUE\tNEXT RUN (UTC)\tIN\tSCHEDULE\tZONE\n"
		fmt.Fprint(tw, header)
		now := time.Now()
		print = func(f []string) error {
			in := "-"
			if t, err := time.Parse(time.RFC3339, f[3]); err == nil {
				in = t.Sub(now).Round(time.Second).String()
			}
			_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f[0], f[1], f[2], f[3], in, f[4], f[5])
			return err
		}
		flush = func() error {
			if err := tw.Flush(); err != nil {
				return err
			}
			return out.Flush()
		}
	}
	command := "show schedules"
	if *function != "" {
		command += " " + *function
	}
	n := 0
	errLimit := errors.New("limit reached")
	err = c.AdminList(command, func(line string) error {
		f := strings.Split(line, "\t")
		if len(f) != 6 {
			return nil
		}
		if err := print(f); err != nil {
			return err
		}
		if n++; n == *limit {
			return errLimit
		}
		if n%lsPage == 0 {
			// The timeout bounds each wait, not the whole listing.
			c.SetDeadline(time.Now().Add(cf.timeout))
			return flush()
		}
		return nil
	})
	var ae *gearman.AdminError
	switch {
	case errors.As(err, &ae):
		return fmt.Errorf("%s does not list schedules (is it gearsched?): %s", cf.server, ae.Reply)
	case err != nil && err != errLimit:
		flush()
		return fmt.Errorf("show schedules on %s: %w", cf.server, err)
	}
	return flush()
}

// newLsRow is a `show schedules` row as JSON.
func newLsRow(f []string) lsRow {
	r := lsRow{Handle: f[0], Function: f[1], Unique: f[2], Schedule: f[4], Zone: f[5]}
	if f[3] != "-" {
		r.NextRun = &f[3]
	}
	return r
}

// flagError passes --help through and marks other flag errors as usage
// errors.
func flagError(err error) error {
	if errors.Is(err, pflag.ErrHelp) {
		return err
	}
	return usageError{err}
}
