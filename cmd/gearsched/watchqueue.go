package main

import (
	"fmt"
	"slices"

	"github.com/gearsched/gearsched/gearman/sidecar/queuewatch"
)

// checkWatchQueues parses the --watch-queue values: each names one of the
// --upstream servers (after the same completion with port 4730), at most
// once.
func (c *serveConfig) checkWatchQueues(values []string) error {
	for _, v := range values {
		sp, err := queuewatch.ParseSpec(v)
		if err != nil {
			return fmt.Errorf("--watch-queue: %w", err)
		}
		if !slices.Contains(c.upstreams, sp.Upstream) {
			return fmt.Errorf("--watch-queue %s: %s is not one of --upstream %v", sp.Location, sp.Upstream, c.upstreams)
		}
		for _, o := range c.watchQueues {
			if o.Upstream == sp.Upstream {
				return fmt.Errorf("--watch-queue: %s has two queues (%s and %s); gearmand writes one", sp.Upstream, o.Location, sp.Location)
			}
		}
		c.watchQueues = append(c.watchQueues, sp)
	}
	return nil
}
