package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store"
)

// sidecar holds the parts that exist only with --upstream: the upstream
// connections, the forwarder (the scheduler's sink) and the control
// functions' workers. A nil *sidecar is job-server mode.
type sidecar struct {
	cfg *serveConfig
	log *slog.Logger
	up  *gearman.Upstream
	fwd *gearman.Forwarder
}

func newSidecar(c *serveConfig, st *store.Store, handles *gearman.Handles, log *slog.Logger, wake func()) (*sidecar, error) {
	if len(c.upstreams) == 0 {
		return nil, nil
	}
	up, err := gearman.NewUpstream(gearman.UpstreamConfig{
		Addrs:   c.upstreams,
		Logger:  log,
		Timeout: c.upstreamTimeout,
		OnUp:    func(string) { wake() },
	})
	if err != nil {
		return nil, err
	}
	fwd, err := gearman.NewForwarder(gearman.ForwarderConfig{
		Store:           st,
		Upstream:        up,
		Handles:         handles,
		Logger:          log,
		TriggerPayload:  []byte(c.triggerPayload),
		LedgerRetention: c.ledgerRetention,
	})
	if err != nil {
		return nil, err
	}
	return &sidecar{cfg: c, log: log, up: up, fwd: fwd}, nil
}

// upstreams returns what the listener asks of the upstream servers: nil
// in job-server mode.
func (s *sidecar) upstreams() gearman.Upstreams {
	if s == nil {
		return nil
	}
	return s.fwd
}

// start runs the sidecar's loops under ctx, tracked by wg.
func (s *sidecar) start(ctx context.Context, wg *sync.WaitGroup, srv *gearman.Server) {
	if s == nil {
		return
	}
	wg.Go(func() { s.up.Run(ctx) })
	wg.Go(func() { s.fwd.Run(ctx) })
	if s.cfg.controlSchedule != "" {
		ctl := gearman.NewControl(gearman.ControlConfig{
			Holder: srv, Addrs: s.cfg.upstreams, Logger: s.log,
			Schedule: s.cfg.controlSchedule, Cancel: s.cfg.controlCancel,
		})
		wg.Go(func() { ctl.Run(ctx) })
	}
}
