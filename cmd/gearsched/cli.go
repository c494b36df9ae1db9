package main

import (
	"context"
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
}

func newClientFlags(name, usage string, stderr io.Writer) (*pflag.FlagSet, *clientFlags) {
	fs := pflag.NewFlagSet("gearsched "+name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	cf := &clientFlags{}
	fs.StringVarP(&cf.server, "server", "s", "127.0.0.1:4730", "Gearman server address (host:port)")
	fs.DurationVar(&cf.timeout, "timeout", 10*time.Second, "give up on the server after this long")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: gearsched %s\n\nFlags:\n%s", usage, fs.FlagUsages())
	}
	return fs, cf
}

func (cf *clientFlags) dial(ctx context.Context) (*gearman.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	c, err := gearman.Dial(ctx, cf.server)
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
	if err := fs.Parse(args); err != nil {
		return flagError(err)
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

// runLs implements `gearsched ls`: the server's `show schedules` as a table.
func runLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("ls", "ls [flags]\n\nLists scheduled jobs and recurring schedules (admin command `show schedules`).", stderr)
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("ls takes no arguments, got %q", fs.Arg(0))}
	}
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	reply, err := c.Admin("show schedules")
	if err != nil {
		return fmt.Errorf("show schedules on %s: %w", cf.server, err)
	}
	if strings.HasPrefix(reply, "ERR") {
		return fmt.Errorf("%s does not list schedules (is it gearsched?): %s", cf.server, strings.TrimSpace(reply))
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HANDLE\tFUNCTION\tUNIQUE\tNEXT RUN (UTC)\tIN\tSCHEDULE\tZONE")
	for _, row := range strings.Split(strings.TrimSuffix(reply, ".\n"), "\n") {
		f := strings.Split(row, "\t")
		if len(f) != 6 {
			continue
		}
		in := "-"
		if t, err := time.Parse(time.RFC3339, f[3]); err == nil {
			in = t.Sub(now).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f[0], f[1], f[2], f[3], in, f[4], f[5])
	}
	return tw.Flush()
}

// runCancel implements `gearsched cancel HANDLE`.
func runCancel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("cancel", "cancel [flags] HANDLE\n\nCancels a scheduled job, a queued job or a SUBMIT_JOB_SCHED schedule.", stderr)
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" || strings.ContainsAny(fs.Arg(0), " \r\n") {
		fs.Usage()
		return usageError{errors.New("cancel takes one HANDLE")}
	}
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	reply, err := c.Admin("cancel job " + fs.Arg(0))
	if err != nil {
		return fmt.Errorf("cancel on %s: %w", cf.server, err)
	}
	switch strings.TrimSpace(reply) {
	case "OK":
		fmt.Fprintln(stdout, "cancelled", fs.Arg(0))
		return nil
	case "ERR UNKNOWN_JOB":
		return fmt.Errorf("no job or schedule %s on %s", fs.Arg(0), cf.server)
	}
	return fmt.Errorf("cancel %s: %s", fs.Arg(0), strings.TrimSpace(reply))
}

// flagError passes --help through and marks other flag errors as usage
// errors.
func flagError(err error) error {
	if errors.Is(err, pflag.ErrHelp) {
		return err
	}
	return usageError{err}
}
