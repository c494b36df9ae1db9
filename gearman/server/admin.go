package server

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/gearsched/gearsched/gearman"
)

// Admin replies, byte for byte as gearmand 1.1.20 sends them.
const (
	adminOK              = "OK\r\n"
	adminUnknownCommand  = "ERR UNKNOWN_COMMAND Unknown+server+command"
	adminIncompleteArgs  = "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+"
	adminUnknownShowArgs = "ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
	adminUnknownJob      = "ERR UNKNOWN_JOB\r\n"
	adminUnknownError    = "ERR UNKNOWN_ERROR\r\n"
	adminNoFunction      = "ERR function not found\r\n"
	adminFunctionBusy    = "ERR there are still connected workers or executing clients\r\n"
	// gearsched's own, for `pause job` of a one-shot job.
	adminNotSchedule = "ERR NOT_A_SCHEDULE Only+recurring+schedules+can+be+paused\r\n"
)

// admin answers one text command. words is the line split by
// SplitAdminLine. The reply is built first and queued whole, so it leaves
// in one write; `show schedules` streams page by page instead.
func (s *Server) admin(c *conn, words [][]byte) {
	if (len(words) == 2 || len(words) == 3) && strings.EqualFold(string(words[0]), "show") && strings.EqualFold(string(words[1]), "schedules") {
		function := ""
		if len(words) == 3 {
			function = string(words[2])
		}
		s.showSchedules(c, function)
		return
	}
	c.scratch = s.answer(c.scratch[:0], words)
	c.queue(c.scratch)
}

// answer appends the reply to one admin command other than `show
// schedules`. Commands that read or change the store run without s.mu.
func (s *Server) answer(b []byte, words [][]byte) []byte {
	is := func(i int, w string) bool { return i < len(words) && strings.EqualFold(string(words[i]), w) }
	switch {
	case len(words) == 2 && is(0, "show") && is(1, "upstreams") && s.cfg.Upstreams != nil:
		return append(s.cfg.Upstreams.AppendRows(b), ".\n"...)
	case len(words) == 2 && is(0, "show") && is(1, "queues") && s.cfg.Upstreams != nil:
		if q, ok := s.cfg.Upstreams.(QueueLister); ok {
			b = q.AppendQueueRows(b)
		}
		return append(b, ".\n"...)
	case len(words) == 3 && is(0, "cancel") && is(1, "job"):
		if found, _ := s.Cancel(string(words[2])); found {
			return append(b, adminOK...)
		}
		return append(b, adminUnknownJob...)
	case len(words) == 3 && (is(0, "pause") || is(0, "resume")) && is(1, "job"):
		return s.appendPauseReply(b, is(0, "pause"), string(words[2]))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adminReply(b, words)
}

// adminReply appends the reply to a command that only reads or changes
// the server's state in memory; called with s.mu held.
func (s *Server) adminReply(b []byte, words [][]byte) []byte {
	cmd := strings.ToLower(string(words[0]))
	arg := func(i int) string {
		if i < len(words) {
			return string(words[i])
		}
		return ""
	}
	switch cmd {
	case "status":
		return s.appendStatusList(b)
	case "prioritystatus":
		return s.appendPriorityStatus(b)
	case "workers":
		return s.appendWorkers(b)
	case "show":
		switch {
		case len(words) == 1:
			return unknownCommand(b, words[0])
		case strings.EqualFold(arg(1), "jobs"):
			return s.appendJobs(b)
		case strings.EqualFold(arg(1), "unique") && strings.EqualFold(arg(2), "jobs"):
			return s.appendUniqueJobs(b)
		}
		return append(b, adminUnknownShowArgs...)
	case "cancel": // `cancel job HANDLE` is served by answer
		if len(words) < 3 {
			return unknownCommand(b, words[0])
		}
		return append(b, adminUnknownError...)
	case "pause", "resume": // `pause job HANDLE` is served by answer
		return append(append(b, adminIncompleteArgs...), cmd+"\r\n"...)
	case "create":
		if len(words) != 3 {
			return append(append(b, adminIncompleteArgs...), "create\r\n"...)
		}
		// The name as typed: the line terminator is already gone, where
		// gearmand cuts one byte too many after a bare \n.
		s.function(arg(2))
		return append(b, adminOK...)
	case "drop":
		if len(words) != 3 {
			return append(append(b, adminIncompleteArgs...), "drop\r\n"...)
		}
		return s.dropFunction(b, arg(2))
	case "maxqueue":
		if len(words) < 2 {
			return append(append(b, adminIncompleteArgs...), "maxqueue\r\n"...)
		}
		s.maxQueue(words[1], words[2:])
		return append(b, adminOK...)
	case "version":
		return append(b, "OK gearsched "+s.cfg.Version+"\n"...)
	case "getpid":
		return append(strconv.AppendInt(append(b, "OK "...), int64(os.Getpid()), 10), '\n')
	case "verbose":
		return append(b, "OK "+s.cfg.LogLevel()+"\n"...)
	}
	return unknownCommand(b, words[0])
}

// appendPauseReply answers `pause job HANDLE` and `resume job HANDLE`:
// OK, ERR UNKNOWN_JOB, ERR NOT_A_SCHEDULE for a one-shot job, or
// ERR UNKNOWN_ERROR when the store failed (logged).
func (s *Server) appendPauseReply(b []byte, pause bool, handle string) []byte {
	var err error
	if pause {
		_, err = s.Pause(handle)
	} else {
		_, err = s.Resume(handle)
	}
	switch {
	case err == nil:
		return append(b, adminOK...)
	case errors.Is(err, ErrUnknownJob):
		return append(b, adminUnknownJob...)
	case errors.Is(err, ErrNotSchedule):
		return append(b, adminNotSchedule...)
	}
	return append(b, adminUnknownError...)
}

func unknownCommand(b, word []byte) []byte {
	b = append(b, adminUnknownCommand...)
	b = append(b, word...)
	return append(b, "\r\n"...)
}

func (s *Server) sortedFunctions() []*function {
	fs := make([]*function, 0, len(s.funcs))
	for _, f := range s.funcs {
		fs = append(fs, f)
	}
	slices.SortFunc(fs, func(a, b *function) int { return strings.Compare(a.name, b.name) })
	return fs
}

func (s *Server) appendStatusList(b []byte) []byte {
	for _, f := range s.sortedFunctions() {
		b = appendRow(b, f.name, f.total+s.store.PendingCount(f.name), f.running, len(f.workers))
	}
	return append(b, ".\n"...)
}

func (s *Server) appendPriorityStatus(b []byte) []byte {
	for _, f := range s.sortedFunctions() {
		b = appendRow(b, f.name, f.queue[gearman.High].n, f.queue[gearman.Normal].n+s.store.PendingCount(f.name), f.queue[gearman.Low].n, len(f.workers))
	}
	return append(b, ".\n"...)
}

// appendRow appends a tab-separated row of a name and counts.
func appendRow(b []byte, name string, counts ...int) []byte {
	b = append(b, name...)
	for _, n := range counts {
		b = append(b, '\t')
		b = strconv.AppendInt(b, int64(n), 10)
	}
	return append(b, '\n')
}

func (s *Server) appendWorkers(b []byte) []byte {
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	slices.SortFunc(conns, func(x, y *conn) int { return x.fd - y.fd })
	for _, c := range conns {
		b = strconv.AppendInt(b, int64(c.fd), 10)
		b = append(b, ' ')
		b = append(b, c.ip...)
		b = append(b, ' ')
		b = append(b, c.clientID...)
		b = append(b, " :"...)
		// Newest registration first, as gearmand lists (and scans) them.
		for i := len(c.abilities) - 1; i >= 0; i-- {
			b = append(b, ' ')
			b = append(b, c.abilities[i].fn.name...)
		}
		b = append(b, '\n')
	}
	return append(b, ".\n"...)
}

func (s *Server) sortedJobs() []*job {
	js := make([]*job, 0, len(s.jobs))
	for _, j := range s.jobs {
		js = append(js, j)
	}
	slices.SortFunc(js, func(a, b *job) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return js
}

func (s *Server) appendJobs(b []byte) []byte {
	for _, j := range s.sortedJobs() {
		b = append(b, j.Handle...)
		b = append(b, '\t')
		b = strconv.AppendInt(b, int64(j.retries), 10)
		b = append(b, '\t')
		b = append(b, boolDigit(j.ignore)...)
		b = append(b, '\t')
		b = append(b, boolDigit(j.bg)...)
		b = append(b, '\n')
	}
	return append(b, ".\n"...)
}

func (s *Server) appendUniqueJobs(b []byte) []byte {
	for _, j := range s.sortedJobs() {
		b = append(b, j.Unique...)
		b = append(b, '\n')
	}
	return append(b, ".\n"...)
}

// dropFunction removes a function nobody uses. The name matches
// case-insensitively, as in gearmand; unlike gearmand, queued jobs block the
// drop instead of being orphaned.
func (s *Server) dropFunction(b []byte, name string) []byte {
	for _, f := range s.sortedFunctions() {
		if !strings.EqualFold(f.name, name) {
			continue
		}
		if len(f.workers) > 0 || f.total > 0 || s.store.PendingCount(f.name) > 0 {
			return append(b, adminFunctionBusy...)
		}
		delete(s.funcs, f.name)
		return append(b, adminOK...)
	}
	return append(b, adminNoFunction...)
}

// maxQueue sets a function's queue limits, creating the function if needed
// so the limit holds when jobs arrive (gearmand ignores unknown functions).
// One number sets all priorities, two set HIGH and NORMAL, three all three;
// anything unparsable or negative means unlimited.
func (s *Server) maxQueue(name []byte, nums [][]byte) {
	f := s.function(string(name))
	var v [gearman.NumPriorities]int
	for i := range v {
		if i < len(nums) {
			if n, err := strconv.Atoi(string(bytes.TrimSpace(nums[i]))); err == nil && n > 0 {
				v[i] = n
			}
		}
	}
	switch len(nums) {
	case 0, 1:
		v[gearman.Normal], v[gearman.Low] = v[gearman.High], v[gearman.High]
	case 2:
		v[gearman.Low] = 0
	}
	f.maxQueue = v
}
