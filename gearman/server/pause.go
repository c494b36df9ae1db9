package server

import (
	"errors"
	"time"

	"github.com/gearsched/gearsched/store"
)

// Errors of Pause and Resume.
var (
	// ErrUnknownJob: no pending job, schedule or job in memory has the
	// handle.
	ErrUnknownJob = errors.New("no job or schedule has that handle")
	// ErrNotSchedule: the handle names a one-shot job. Only recurring
	// schedules pause: a one-shot job that should not run is cancelled,
	// and one that should run later is cancelled and submitted again.
	ErrNotSchedule = errors.New("only recurring schedules can be paused; cancel a one-shot job instead")
)

// Pause stops the schedule with that handle from firing while keeping its
// next run, and returns it as it is then. Pausing a paused schedule
// changes nothing. See store.SetPaused for how it keeps the ownership
// rule.
func (s *Server) Pause(handle string) (*store.Schedule, error) { return s.setPaused(handle, true) }

// Resume lets a paused schedule fire again. The occurrences that fell due
// while it was paused count as missed: its missed-run policy decides
// which of them run now (skip none, once the latest, all up to its cap,
// within its catch-up window).
func (s *Server) Resume(handle string) (*store.Schedule, error) { return s.setPaused(handle, false) }

func (s *Server) setPaused(handle string, paused bool) (*store.Schedule, error) {
	id, ok := s.handles.Parse(handle)
	if !ok {
		return nil, s.notSchedule(handle)
	}
	res, sc, err := s.store.SetPaused(id, paused, s.cfg.Now().UnixNano())
	switch {
	case err != nil:
		s.log.Error("pause or resume failed", "handle", handle, "pause", paused, "err", err)
		return nil, err
	case res == store.PauseJob:
		return nil, ErrNotSchedule
	case res == store.PauseNotFound:
		return nil, s.notSchedule(handle)
	}
	verb := "schedule resumed"
	if paused {
		verb = "schedule paused"
	}
	s.log.Info(verb, "handle", handle, "name", sc.Name, "function", sc.Function,
		"next_run", time.Unix(0, sc.Next).UTC())
	if !paused && sc.Active() && s.cfg.Wake != nil {
		s.cfg.Wake(sc.FireAt)
	}
	return sc, nil
}

// notSchedule tells a job in memory, which is not a schedule, from a
// handle nothing has.
func (s *Server) notSchedule(handle string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j := s.jobs[handle]; j != nil && !j.ignore {
		return ErrNotSchedule
	}
	return ErrUnknownJob
}
