// Command gearsched is a Gearman job server with durable background jobs.
//
// Usage:
//
//	gearsched [serve] [flags]            run the job server (the default)
//	gearsched at WHEN FUNCTION [DATA|-]  submit a job that runs at WHEN
//	gearsched ls                         list scheduled jobs and schedules
//	gearsched cancel HANDLE              cancel a job or schedule
//	gearsched pause|resume HANDLE        pause or resume a schedule
//	gearsched backup FILE                copy the running server's database
//	gearsched compact SRC DST            compact a database offline
//	gearsched check [--db FILE]          check a database for damage
//	gearsched salvage SRC DST            copy what is readable of a damaged database
//	gearsched import-pg --db F --store U copy a stopped bbolt sidecar into PostgreSQL
//	gearsched version                    print the version (from the build info)
//
// Each command takes --help.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	// Zone rules for hosts without tzdata (minimal containers). The
	// system's zoneinfo is still preferred when present, so OS updates to
	// zone rules apply; this copy is only the fallback.
	_ "time/tzdata"

	"github.com/spf13/pflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit code: 0, 1
// for a failure, 2 for a bad command line.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, stderr)
	case "at":
		err = runAt(ctx, args, stdin, stdout, stderr)
	case "ls":
		err = runLs(ctx, args, stdout, stderr)
	case "cancel", "pause", "resume":
		err = runHandleCommand(ctx, cmd, args, stdout, stderr)
	case "backup":
		err = runBackup(ctx, args, stdout, stderr)
	case "compact":
		err = runCompact(args, stdout, stderr)
	case "check":
		err = runCheck(args, stdout, stderr)
	case "salvage":
		err = runSalvage(args, stdout, stderr)
	case "import-pg":
		err = runImportPG(ctx, args, stdout, stderr)
	case "version":
		readBuildInfo().writeVersion(stdout)
	case "help":
		usage(stdout)
	default:
		fmt.Fprintf(stderr, "gearsched: unknown command %q\n\n", cmd)
		usage(stderr)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, pflag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintln(stderr, "gearsched:", err)
		return 2
	}
	fmt.Fprintln(stderr, "gearsched:", err)
	return 1
}

// usageError marks errors in the command line, which exit with status 2.
type usageError struct{ error }

func usage(w io.Writer) {
	fmt.Fprint(w, `gearsched: a Gearman job server whose background jobs survive restarts.

Usage:
  gearsched [serve] [flags]             run the job server (default command)
  gearsched at WHEN FUNCTION [DATA|-]   submit a job that runs at WHEN
  gearsched ls                          list scheduled jobs and schedules
  gearsched cancel HANDLE               cancel a job or schedule
  gearsched pause|resume HANDLE         pause or resume a recurring schedule
  gearsched backup FILE                 copy the running server's database (through --http)
  gearsched compact SRC DST             copy a stopped server's database without its free pages
  gearsched check [--db FILE]           check a database for damage
  gearsched salvage SRC DST             copy what is readable of a damaged database into a new one
  gearsched import-pg --db F --store U  copy a stopped bbolt sidecar's jobs and schedules into PostgreSQL
  gearsched version                     print the version
  gearsched help                        show this help

Each command takes --help.
`)
}
