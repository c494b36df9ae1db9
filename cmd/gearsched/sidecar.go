package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/gearsched/gearsched/gearman/server"
	"github.com/gearsched/gearsched/gearman/sidecar"
	"github.com/gearsched/gearsched/gearman/sidecar/queuewatch"
)

// sidecarParts holds the parts that exist only with --upstream: the
// upstream connections, the forwarder (the scheduler's sink) and the
// control functions' workers. A nil *sidecarParts is job-server mode.
type sidecarParts struct {
	cfg *serveConfig
	log *slog.Logger
	up  *sidecar.Upstream
	fwd *sidecar.Forwarder
	// dial reaches an upstream: nil for plain TCP, else over TLS.
	dial sidecar.Dialer
	// watchers read the upstreams' persistent queues (--watch-queue).
	watchers []*queuewatch.Watcher
}

func newSidecar(c *serveConfig, st daemonStore, handles *server.Handles, log *slog.Logger, wake func(), wakeFor func(due int64)) (*sidecarParts, error) {
	if len(c.upstreams) == 0 {
		return nil, nil
	}
	dial, err := upstreamDialer(&c.upstreamTLS, c.upstreamTimeout)
	if err != nil {
		return nil, err
	}
	var watchers []*queuewatch.Watcher
	for _, sp := range c.watchQueues {
		w, err := queuewatch.New(queuewatch.Config{Spec: sp, Store: st, NextID: handles.Next, Wake: wakeFor,
			Payload: []byte(c.triggerPayload), Logger: log})
		if err != nil {
			return nil, err
		}
		watchers = append(watchers, w)
	}
	up, err := sidecar.NewUpstream(sidecar.UpstreamConfig{
		Addrs:   c.upstreams,
		Logger:  log,
		Timeout: c.upstreamTimeout,
		Dial:    dial,
		OnUp: func(addr string) {
			wake()
			for _, w := range watchers {
				w.UpstreamUp(addr)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	fwd, err := sidecar.NewForwarder(sidecar.ForwarderConfig{
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
	return &sidecarParts{cfg: c, log: log, up: up, fwd: fwd, dial: dial, watchers: watchers}, nil
}

// upstreamsView is the listener's view of the sidecar: the forwarder, and
// the watched queues for `show queues`.
type upstreamsView struct {
	*sidecar.Forwarder
	watchers []*queuewatch.Watcher
}

// AppendQueueRows implements server.QueueLister.
func (v upstreamsView) AppendQueueRows(b []byte) []byte {
	for _, w := range v.watchers {
		b = w.AppendRow(b)
	}
	return b
}

// upstreams returns what the listener asks of the upstream servers: nil
// in job-server mode.
func (s *sidecarParts) upstreams() server.Upstreams {
	if s == nil {
		return nil
	}
	return upstreamsView{Forwarder: s.fwd, watchers: s.watchers}
}

// start runs the sidecar's loops under ctx, tracked by wg.
func (s *sidecarParts) start(ctx context.Context, wg *sync.WaitGroup, srv *server.Server) {
	if s == nil {
		return
	}
	wg.Go(func() { s.up.Run(ctx) })
	wg.Go(func() { s.fwd.Run(ctx) })
	for _, w := range s.watchers {
		wg.Go(func() { w.Run(ctx) })
	}
	if s.cfg.controlSchedule != "" {
		ctl := sidecar.NewControl(sidecar.ControlConfig{
			Holder: srv, Addrs: s.cfg.upstreams, Logger: s.log,
			Schedule: s.cfg.controlSchedule, Cancel: s.cfg.controlCancel, Dial: s.dial,
		})
		wg.Go(func() { ctl.Run(ctx) })
	}
}
