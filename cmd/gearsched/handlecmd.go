package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// handleCommand is a client command that names one job or schedule and
// sends one admin line for it: cancel, pause, resume.
type handleCommand struct {
	about string // what the command does, for --help
	admin string // the admin command, followed by the handle
	done  string // what stdout says once it is done
}

// handleCommandFor describes the command name: cancel, pause or resume.
func handleCommandFor(name string) handleCommand {
	switch name {
	case "pause":
		return handleCommand{"Pauses a recurring schedule: it keeps its next run but fires nothing until resumed.",
			"pause job", "paused"}
	case "resume":
		return handleCommand{"Resumes a paused schedule. The runs that fell due while it was paused follow its\n" +
			"missed-run policy (SUBMIT_JOB_SCHED schedules: the latest one, if within the hour).", "resume job", "resumed"}
	}
	return handleCommand{"Cancels a scheduled job, a queued job or a SUBMIT_JOB_SCHED schedule.", "cancel job", "cancelled"}
}

// runHandleCommand implements `gearsched cancel|pause|resume HANDLE`
// through the Gearman port's admin protocol.
func runHandleCommand(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	hc := handleCommandFor(name)
	fs, cf := newClientFlags(name, name+" [flags] HANDLE\n\n"+hc.about, stderr)
	if err := cf.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" || strings.ContainsAny(fs.Arg(0), " \r\n") {
		fs.Usage()
		return usageError{errors.New(name + " takes one HANDLE")}
	}
	handle := fs.Arg(0)
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	reply, err := c.Admin(hc.admin + " " + handle)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", name, cf.server, err)
	}
	switch reply = strings.TrimSpace(reply); {
	case reply == "OK":
		fmt.Fprintln(stdout, hc.done, handle)
		return nil
	case reply == "ERR UNKNOWN_JOB":
		return fmt.Errorf("no job or schedule %s on %s", handle, cf.server)
	case strings.HasPrefix(reply, "ERR NOT_A_SCHEDULE"):
		return fmt.Errorf("%s is a one-shot job: only recurring schedules pause (cancel it instead)", handle)
	case strings.HasPrefix(reply, "ERR UNKNOWN_COMMAND"):
		return fmt.Errorf("%s does not know `%s` (is it gearsched?)", cf.server, hc.admin)
	}
	return fmt.Errorf("%s %s: %s", name, handle, reply)
}
