package pgstore

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Wake-ups between sidecars. A sidecar sleeps until its next look at the
// due rows (at most a second: scheduler.MaxSleep); an item another sidecar
// stores due before that would wait for it. So a write that stores an item
// due within notifyHorizon sends a NOTIFY in its transaction (delivered on
// commit), and every sidecar's Listen passes the due time to its
// scheduler's WakeFor. Items due later need no message: the bounded sleep
// finds them in time.
const (
	notifyChannel = "gearsched_due"
	notifyHorizon = 2 * time.Second
	// listenRetryMax bounds the backoff between attempts to listen
	// again after the connection was lost.
	listenRetryMax = 5 * time.Second
)

// notifyDue tells the listening sidecars that an item is due at due (unix
// ns), if that is soon by the database's clock. Items due well beyond the
// horizon by the local clock (which Open checked against the database's)
// skip the round trip.
func notifyDue(ctx context.Context, tx pgx.Tx, due int64) error {
	if due > time.Now().Add(notifyHorizon+DefaultMaxSkew).UnixNano() {
		return nil
	}
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2::bigint::text) WHERE $2::bigint <= `+nowSQL+` + $3::bigint`,
		notifyChannel, due, int64(notifyHorizon))
	return err
}

// Listen calls wake with the due time of every item any sidecar stores due
// soon, until ctx is done. It holds a connection of its own, outside the
// pool, and reconnects with backoff when it is lost; while it is down the
// scheduler's bounded sleep still finds every item, a little later.
func (s *Store) Listen(ctx context.Context, wake func(due int64)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, wake, func() { backoff = 100 * time.Millisecond })
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("pgstore: listening for wake-ups failed; retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, listenRetryMax)
	}
}

// listenOnce listens on one connection until it fails. The connection is
// made with the pool's settings, which the URL's pool_* parameters were
// taken out of (PostgreSQL refuses them as startup parameters).
func (s *Store) listenOnce(ctx context.Context, wake func(due int64), connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+notifyChannel); err != nil {
		return err
	}
	connected()
	// Something may have been stored while no one listened.
	wake(0)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		due, err := strconv.ParseInt(n.Payload, 10, 64)
		if err != nil {
			s.log.Warn("pgstore: a wake-up that is no due time", "payload", n.Payload, slog.Int("pid", int(n.PID)))
			continue
		}
		wake(due)
	}
}
