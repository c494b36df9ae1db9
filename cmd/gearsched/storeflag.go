package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/gearsched/gearsched/gearman/httpapi"
	"github.com/gearsched/gearsched/gearman/metrics"
	"github.com/gearsched/gearsched/gearman/server"
	"github.com/gearsched/gearsched/gearman/sidecar"
	"github.com/gearsched/gearsched/gearman/sidecar/queuewatch"
	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
	"github.com/gearsched/gearsched/store/pgstore"
)

// daemonStore is the store serve wires every part to: the bbolt file
// (--db), or with --store postgres://… the PostgreSQL database several
// sidecars share. Each part takes its own small interface; this is their
// union, which both stores implement.
type daemonStore interface {
	server.Store
	scheduler.Store
	scheduler.ScheduleStore
	sidecar.Ledger
	httpapi.Store
	metrics.StoreSource
	queuewatch.TriggerStore
	Ping() error
	Close() error
}

var (
	_ daemonStore = (*store.Store)(nil)
	_ daemonStore = (*pgstore.Store)(nil)
)

// isPostgresURL reports whether --store names a PostgreSQL database.
func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// checkStore validates --store: a PostgreSQL URL, for sidecars only.
func (c *serveConfig) checkStore() error {
	switch {
	case c.store == "":
		return nil
	case !isPostgresURL(c.store):
		return errors.New("--store: want postgres://user@host:5432/db (leave it out to keep the bbolt file --db)")
	case len(c.upstreams) == 0:
		return errors.New("--store postgres://… is for sidecars (--upstream): the job server keeps its jobs in bbolt (--db); " +
			"run several job servers for capacity instead")
	}
	return nil
}

// openedStore is the store serve runs on, and what differs with it.
type openedStore struct {
	daemonStore
	// shared is set when other sidecars claim from the same database.
	shared bool
	// listen passes other sidecars' wake-ups to wake until ctx is done;
	// nil for bbolt, which one process owns.
	listen func(ctx context.Context, wake func(due int64))
}

// openStore opens --store, or the bbolt file --db.
func openStore(ctx context.Context, c *serveConfig, log *slog.Logger) (openedStore, error) {
	if c.store == "" {
		st, err := store.Open(c.db, store.Options{Logger: log})
		if err != nil {
			return openedStore{}, err
		}
		return openedStore{daemonStore: st}, nil
	}
	st, err := openShared(ctx, c.store, log)
	if err != nil {
		return openedStore{}, err
	}
	return openedStore{daemonStore: st, shared: true, listen: st.Listen}, nil
}

// Waiting for an unreachable PostgreSQL at start: the backoff's bounds,
// and how often the wait is logged.
const (
	sharedRetryMin = 100 * time.Millisecond
	sharedRetryMax = 5 * time.Second
	sharedRetryLog = 30 * time.Second
)

// openShared opens the PostgreSQL store, waiting with backoff while the
// database cannot be reached: a sidecar started before its database (at
// boot, during a failover) comes up with it, as a running one rides out
// an outage. Other errors (a bad URL, a newer schema, a skewed clock) end
// it at once.
func openShared(ctx context.Context, url string, log *slog.Logger) (*pgstore.Store, error) {
	backoff := sharedRetryMin
	var logged time.Time
	for {
		st, err := pgstore.Open(ctx, url, pgstore.Options{Logger: log})
		if !errors.Is(err, pgstore.ErrUnreachable) {
			return st, err
		}
		if time.Since(logged) >= sharedRetryLog {
			log.Warn("waiting for PostgreSQL", "err", err, "retry_in", backoff)
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, sharedRetryMax)
	}
}
