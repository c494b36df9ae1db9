package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"
)

// systemd is the daemon's side of systemd's notify protocol (Type=notify
// units): READY=1 once the store is open and the listener is up,
// STOPPING=1 when shutdown begins, and WATCHDOG=1 at half of the unit's
// WatchdogSec. Outside systemd ($NOTIFY_SOCKET unset) it does nothing.
type systemd struct {
	log *slog.Logger
}

// notify sends one state change; a failure is logged, never fatal: the
// daemon serves the same with or without its supervisor hearing of it.
func (s systemd) notify(state string) {
	if _, err := sdnotify.SdNotify(false, state); err != nil {
		s.log.Warn("systemd notification failed", "state", state, "err", err)
	}
}

// ready says the daemon serves, with a status line for systemctl status.
func (s systemd) ready(addr string) {
	s.notify(sdnotify.SdNotifyReady + "\nSTATUS=serving on " + addr)
}

// stopping says shutdown has begun.
func (s systemd) stopping() {
	s.notify(sdnotify.SdNotifyStopping + "\nSTATUS=shutting down")
}

// watchdog pings systemd's watchdog at half the interval the unit asks
// for (WatchdogSec, passed as $WATCHDOG_USEC), until ctx is done; wg
// tracks the goroutine. Without a watchdog it starts nothing.
//
// The pings come from a goroutine of their own, so they show that the
// process and its runtime are alive and the serve loop has not returned;
// they do not prove that every connection is being served.
func (s systemd) watchdog(ctx context.Context, wg *sync.WaitGroup) {
	interval, err := sdnotify.SdWatchdogEnabled(false)
	if err != nil {
		s.log.Warn("systemd watchdog settings unreadable; not pinging", "err", err)
		return
	}
	if interval <= 0 {
		return
	}
	s.log.Info("pinging the systemd watchdog", "every", interval/2)
	wg.Go(func() {
		tick := time.NewTicker(interval / 2)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				s.notify(sdnotify.SdNotifyWatchdog)
			}
		}
	})
}
