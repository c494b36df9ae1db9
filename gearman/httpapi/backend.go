package httpapi

import (
	"io"
	"time"

	"github.com/gearsched/gearsched/gearman/server"
	"github.com/gearsched/gearsched/store"
)

// Store is what the HTTP face reads from the database; *store.Store is
// one. Nothing here writes: changes go through Jobs, which keeps the
// ownership rule (see package scheduler).
type Store interface {
	// ListDue returns a page of the due index (see store.Store.ListDue).
	ListDue(from store.DueCursor, limit, scan int, match func(*store.DueItem) bool) (store.DuePage, error)
	// Schedules returns every recurring schedule: they are few.
	Schedules() ([]*store.Schedule, error)
	// Scheduled and GetSchedule look one pending job or schedule up.
	Scheduled(id uint64) (*store.Job, error)
	GetSchedule(id uint64) (*store.Schedule, error)
	// Runs and RecentRuns read the run records (see store.Run).
	Runs(item uint64) ([]store.Run, error)
	RecentRuns(n int) ([]store.Run, error)
	// Backup writes a consistent copy of the database.
	Backup(w io.Writer, size func(n int64)) (int64, error)
}

// Jobs is the job server, or a sidecar's listener: what changes the
// schedule; *server.Server is one.
type Jobs interface {
	Schedule(server.ScheduleRequest) (handle string, next time.Time, err error)
	Cancel(handle string) (bool, error)
	Pause(handle string) (*store.Schedule, error)
	Resume(handle string) (*store.Schedule, error)
	Functions() []server.FunctionStatus
	ParseHandle(handle string) (uint64, bool)
}

// Upstream is one upstream server of a sidecar, as /api/v1/upstreams
// shows it.
type Upstream struct {
	Addr                        string
	Up                          bool
	Submitted, Refused          uint64 // JOB_CREATED, ERROR answers
	Failures                    uint64 // connections lost or timed out
	Late                        uint64 // jobs forwarded a second or more late
	MaxLate                     time.Duration
	Triggers, TriggersCancelled uint64
}

// Check is one readiness check: Fn returns why the daemon is not ready,
// or nil.
type Check struct {
	Name string
	Fn   func() error
}
