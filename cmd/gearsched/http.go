package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/gearsched/gearsched/gearman/httpapi"
	"github.com/gearsched/gearsched/gearman/metrics"
	"github.com/gearsched/gearsched/gearman/server"
	"github.com/gearsched/gearsched/scheduler"
)

// defaultHTTP is where `gearsched serve` serves HTTP unless --http says
// otherwise: loopback, so nothing is exposed by default, on a port that
// is neither Gearman's 4730 nor the 4731 a sidecar usually takes, nor
// 8080 (gearmand's HTTP plugin and countless development servers), nor
// in the 9xxx range where Prometheus exporters register theirs. A second
// gearsched on the host (a sidecar next to a job server) takes --http
// 127.0.0.1:4781, as configs/gearsched-sidecar.service does.
const defaultHTTP = "127.0.0.1:4780"

// checkHTTP validates --http and --http-token-file: an address that is
// not loopback needs a token, since anybody who reaches the port could
// otherwise change what is scheduled.
func (c *serveConfig) checkHTTP() error {
	if c.httpAddr == "" {
		if c.httpTokenFile != "" {
			return errors.New("--http-token-file needs --http")
		}
		return nil
	}
	if _, _, err := net.SplitHostPort(c.httpAddr); err != nil {
		return fmt.Errorf("--http %q: want host:port, such as %s, or \"\" to serve no HTTP", c.httpAddr, defaultHTTP)
	}
	if c.httpTokenFile != "" {
		b, err := os.ReadFile(c.httpTokenFile)
		if err != nil {
			return fmt.Errorf("--http-token-file: %w", err)
		}
		if c.httpToken = strings.TrimSpace(string(b)); c.httpToken == "" {
			return fmt.Errorf("--http-token-file %s is empty", c.httpTokenFile)
		}
	}
	if c.httpToken == "" && !httpapi.IsLoopback(c.httpAddr) {
		return fmt.Errorf("--http %s is not a loopback address: give --http-token-file, so that changes need the token", c.httpAddr)
	}
	return nil
}

// httpFace is the HTTP listener: the JSON API, probes, the web page.
type httpFace struct {
	stop context.CancelFunc
	done chan error
	once sync.Once
}

// httpParts are what the HTTP face serves from.
type httpParts struct {
	st      daemonStore
	srv     *server.Server
	sched   *scheduler.Scheduler
	side    *sidecarParts // nil in job-server mode
	version string
}

// startHTTP listens on --http and serves the HTTP face, /metrics included,
// until stopHTTP. A nil *httpFace is no HTTP (--http "").
func startHTTP(c *serveConfig, p httpParts, log *slog.Logger) (*httpFace, error) {
	if c.httpAddr == "" {
		return nil, nil
	}
	mode := "server"
	ready := []httpapi.Check{
		{Name: "store", Fn: p.st.Ping},
		{Name: "listener", Fn: func() error {
			if !p.srv.Listening() {
				return errors.New("the Gearman listener is not accepting connections")
			}
			return nil
		}},
	}
	mcfg := metrics.Config{Store: p.st, Server: p.srv, Scheduler: p.sched, Version: p.version, Logger: log}
	var upstreams func() []httpapi.Upstream
	if p.side != nil {
		mode, upstreams = "sidecar", p.side.upstreamRows
		ready = append(ready, httpapi.Check{Name: "upstream", Fn: p.side.reachable})
		mcfg.Forwarder, mcfg.Watcher = p.side.fwd, p.side
	}
	m, err := metrics.New(mcfg)
	if err != nil {
		return nil, err
	}
	api, err := httpapi.New(httpapi.Config{
		Store: p.st, Jobs: p.srv, Upstreams: upstreams, Ready: ready, Metrics: m,
		Token: c.httpToken, Loopback: httpapi.IsLoopback(c.httpAddr),
		Version: p.version, Mode: mode, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", c.httpAddr)
	if err != nil {
		return nil, fmt.Errorf("listen --http %s: %w (another gearsched? give --http ADDR, or --http \"\")", c.httpAddr, err)
	}
	ctx, stop := context.WithCancel(context.Background())
	h := &httpFace{stop: stop, done: make(chan error, 1)}
	go func() {
		err := httpapi.Serve(ctx, ln, api, log)
		if err != nil {
			log.Error("HTTP listener failed; the Gearman side goes on", "err", err)
		}
		h.done <- err
	}()
	log.Info("HTTP serving", "url", "http://"+ln.Addr().String()+"/", "token", c.httpToken != "")
	return h, nil
}

// stopHTTP stops the HTTP face, letting requests in flight finish
// briefly, and waits for it. Calls after the first do nothing.
func (h *httpFace) stopHTTP() {
	if h == nil {
		return
	}
	h.once.Do(func() {
		h.stop()
		<-h.done
	})
}

// upstreamRows reports the forwarder's upstream servers to the API.
func (s *sidecarParts) upstreamRows() []httpapi.Upstream {
	ups := s.fwd.Stats().Upstreams
	out := make([]httpapi.Upstream, len(ups))
	for i, r := range ups {
		out[i] = httpapi.Upstream{Addr: r.Addr, Up: r.Up, Submitted: r.Submitted, Refused: r.Refused,
			Failures: r.Failures, Late: r.Late, MaxLate: r.MaxLate, Triggers: r.TriggersSent,
			TriggersCancelled: r.TriggersCancelled}
	}
	return out
}

// WatchedQueues is how many gearmand queues the sidecar watches
// (--watch-queue), for the metrics.
func (s *sidecarParts) WatchedQueues() int { return len(s.watchers) }

// reachable is the sidecar's readiness: at least one upstream is up.
func (s *sidecarParts) reachable() error {
	for _, r := range s.fwd.Stats().Upstreams {
		if r.Up {
			return nil
		}
	}
	return errors.New("no upstream server reachable")
}
