package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/gearman/server"
)

// Default names of the control functions.
const (
	DefaultScheduleFunction = "gearsched.schedule"
	DefaultCancelFunction   = "gearsched.cancel"
)

// ControlConfig configures a Control.
type ControlConfig struct {
	Holder Holder   // holds what is scheduled: the sidecar's listener
	Addrs  []string // upstream servers to register on
	Logger *slog.Logger
	// Now returns the current time; default time.Now.
	Now      func() time.Time
	Schedule string // default DefaultScheduleFunction
	Cancel   string // default DefaultCancelFunction
	// MinBackoff and MaxBackoff bound reconnection waits; default 100 ms
	// and 2 s.
	MinBackoff, MaxBackoff time.Duration
	// Dial connects to an upstream server; default gearman.Dial.
	Dial Dialer
}

// Holder keeps what the control functions schedule; *Server is one.
type Holder interface {
	Schedule(server.ScheduleRequest) (handle string, next time.Time, err error)
	Cancel(handle string) (bool, error)
}

// Control lets any Gearman client schedule through the job servers it
// already uses: it registers on every upstream server as a worker for the
// schedule and cancel functions, whose payloads are JSON. A job completes
// with a JSON result only once what it asked for is durable; bad input
// fails it with WORK_FAIL after a WORK_WARNING carrying the reason.
type Control struct {
	cfg ControlConfig
	log *slog.Logger
}

// NewControl returns a Control; it connects when Run is called.
func NewControl(cfg ControlConfig) *Control {
	if cfg.Schedule == "" {
		cfg.Schedule = DefaultScheduleFunction
	}
	if cfg.Cancel == "" {
		cfg.Cancel = DefaultCancelFunction
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Dial == nil {
		cfg.Dial = gearman.Dial
	}
	cfg.MinBackoff, cfg.MaxBackoff = backoffLimits(cfg.MinBackoff, cfg.MaxBackoff)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Control{cfg: cfg, log: log}
}

// Run serves the control functions on every upstream server until ctx is
// done, reconnecting with capped exponential backoff.
func (c *Control) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, addr := range c.cfg.Addrs {
		wg.Go(func() {
			log := c.log.With("upstream", addr, "functions", c.cfg.Schedule+","+c.cfg.Cancel)
			b := backoff{min: c.cfg.MinBackoff, max: c.cfg.MaxBackoff}
			for ctx.Err() == nil {
				started := time.Now()
				err := c.serve(ctx, addr)
				if ctx.Err() != nil {
					return
				}
				if time.Since(started) > c.cfg.MaxBackoff {
					b.reset() // it had been serving: a new outage
				}
				wait := b.fail()
				if b.warn(time.Now()) {
					log.Warn("control worker disconnected; reconnecting", "err", err, "retry_in", wait)
				}
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
			}
		})
	}
	wg.Wait()
}

// serve runs one worker connection: grab, run, report, sleep when idle.
func (c *Control) serve(ctx context.Context, addr string) error {
	cl, err := c.cfg.Dial(ctx, addr)
	if err != nil {
		return err
	}
	defer cl.Close()
	stop := context.AfterFunc(ctx, func() { cl.Close() })
	defer stop()
	for _, fn := range []string{c.cfg.Schedule, c.cfg.Cancel} {
		if err := cl.Send(gearman.CanDo, []byte(fn)); err != nil {
			return err
		}
	}
	c.log.Info("control functions registered", "upstream", addr)
	for {
		if err := cl.Send(gearman.GrabJobUniq); err != nil {
			return err
		}
		p, err := cl.Recv()
		if err != nil {
			return err
		}
		switch p.Type {
		case gearman.NoJob:
			if err := cl.Send(gearman.PreSleep); err != nil {
				return err
			}
			if err := awaitNoop(cl); err != nil {
				return err
			}
		case gearman.JobAssignUniq:
			handle := bytes.Clone(p.Args[0])
			result, err := c.run(string(p.Args[1]), string(p.Args[2]), p.Args[3])
			if err != nil {
				c.log.Warn("control job refused", "function", string(p.Args[1]), "err", err)
				err = c.refuse(cl, handle, err)
			} else {
				err = cl.Send(gearman.WorkComplete, handle, result)
			}
			if err != nil {
				return err
			}
		case gearman.Noop:
		default:
			return fmt.Errorf("sidecar: %s in reply to GRAB_JOB_UNIQ", p.Type)
		}
	}
}

// refuse fails a control job with the reason. The reason goes out as
// WORK_WARNING, then WORK_FAIL ends the job: gearmand 1.1.20 turns a
// WORK_EXCEPTION into a WORK_FAIL with a stray NUL (D17) that libgearman
// clients without the exceptions option never match, so they would hang.
func (c *Control) refuse(cl *gearman.Client, handle []byte, reason error) error {
	if err := cl.Send(gearman.WorkWarning, handle, []byte(reason.Error())); err != nil {
		return err
	}
	return cl.Send(gearman.WorkFail, handle)
}

// awaitNoop reads until the NOOP that ends a worker's sleep.
func awaitNoop(cl *gearman.Client) error {
	for {
		p, err := cl.Recv()
		if err != nil {
			return err
		}
		if p.Type == gearman.Noop {
			return nil
		}
	}
}

// run executes one control job and returns its JSON result.
func (c *Control) run(function, jobUnique string, payload []byte) ([]byte, error) {
	switch function {
	case c.cfg.Schedule:
		req, err := server.ParseScheduleRequest(payload, c.cfg.Now())
		if err != nil {
			return nil, err
		}
		if jobUnique != "" {
			// gearmand runs a control job again if this worker's
			// connection drops before WORK_COMPLETE. Keyed by the
			// control job's unique, the second run finds what the first
			// made, even once it was forwarded.
			req.Request = "control:" + c.cfg.Schedule + "\x00" + jobUnique
		}
		handle, next, err := c.cfg.Holder.Schedule(req)
		if err != nil {
			return nil, fmt.Errorf("schedule: %w", err)
		}
		return json.Marshal(scheduleResult{Handle: handle, NextRun: next.UTC().Format(time.RFC3339)})
	case c.cfg.Cancel:
		handle := strings.TrimSpace(string(payload))
		var obj struct {
			Handle string `json:"handle"`
		}
		if strings.HasPrefix(handle, "{") {
			if err := json.Unmarshal(payload, &obj); err != nil {
				return nil, fmt.Errorf("cancel: payload: %w", err)
			}
			handle = obj.Handle
		}
		found, err := c.cfg.Holder.Cancel(handle)
		switch {
		case err != nil:
			return nil, fmt.Errorf("cancel %q: %w", handle, err)
		case !found:
			return nil, fmt.Errorf("cancel: no pending job or schedule %q", handle)
		}
		return json.Marshal(map[string]any{"handle": handle, "cancelled": true})
	}
	return nil, fmt.Errorf("unknown control function %q", function)
}

type scheduleResult struct {
	Handle  string `json:"handle"`
	NextRun string `json:"next_run"`
}
