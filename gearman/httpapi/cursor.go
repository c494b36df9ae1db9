package httpapi

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/gearsched/gearsched/store"
)

// Listing pages.
const (
	// DefaultLimit and MaxLimit bound the items of one page.
	DefaultLimit = 100
	MaxLimit     = 1000
	// MaxScan bounds the due-index entries one filtered page reads. The
	// index is ordered by time alone, so a function filter loads each
	// entry's record to read its function: about 10,000 records are a
	// few milliseconds, and a page of a rare function among ten million
	// stops there and hands out a cursor to go on from.
	MaxScan = 10_000
)

// A cursor is opaque to clients: the last index entry a page read, (due,
// id), as 16 bytes in URL-safe base64.
func encodeCursor(c store.DueCursor) string {
	b := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(c.Due)), c.ID)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errBadCursor = errors.New("cursor is not one this server handed out")

func decodeCursor(s string) (store.DueCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return store.DueCursor{}, errBadCursor
	}
	c := store.DueCursor{Due: int64(binary.BigEndian.Uint64(b)), ID: binary.BigEndian.Uint64(b[8:])}
	if c.Due < 0 || c.ID == 0 {
		return store.DueCursor{}, errBadCursor
	}
	return c, nil
}

// listQuery is a listing's parameters.
type listQuery struct {
	from  store.DueCursor
	first bool // no cursor: the first page
	// filter: a function was given, even "" (a valid name).
	filter   bool
	function string
	limit    int
}

// parseListQuery reads cursor, function and limit (default def, at most
// MaxLimit).
func parseListQuery(q url.Values, def int) (listQuery, error) {
	lq := listQuery{limit: def, first: true}
	if s := q.Get("cursor"); s != "" {
		c, err := decodeCursor(s)
		if err != nil {
			return lq, err
		}
		lq.from, lq.first = c, false
	}
	if q.Has("function") {
		lq.filter, lq.function = true, q.Get("function")
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return lq, fmt.Errorf("limit %q: want 1 to %d", s, MaxLimit)
		}
		lq.limit = n
	}
	return lq, nil
}

// listing is one page of what is scheduled.
type listing struct {
	Items []item `json:"items"`
	// NextCursor continues the listing; absent on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
	// Scanned is how many due-index entries the page read.
	Scanned int `json:"scanned"`
	// NotDue are the schedules outside the due index (paused,
	// disabled, finished), on the first page only: they are few.
	NotDue []item `json:"not_due,omitempty"`
}

// list reads one page: a seek into the due index and a walk of the page.
func (a *API) list(lq listQuery) (listing, error) {
	var match func(*store.DueItem) bool
	scan := lq.limit
	if lq.filter {
		scan = MaxScan
		match = func(it *store.DueItem) bool {
			if it.Job != nil {
				return it.Job.Function == lq.function
			}
			return it.Schedule.Function == lq.function
		}
	}
	p, err := a.cfg.Store.ListDue(lq.from, lq.limit, scan, match)
	if err != nil {
		return listing{}, err
	}
	l := listing{Items: make([]item, 0, len(p.Items)), Scanned: p.Scanned}
	for i := range p.Items {
		l.Items = append(l.Items, dueItem(&p.Items[i]))
	}
	if p.More {
		l.NextCursor = encodeCursor(p.Next)
	}
	if lq.first {
		all, err := a.cfg.Store.Schedules()
		if err != nil {
			return listing{}, err
		}
		for _, sc := range all {
			if !sc.Active() && (!lq.filter || sc.Function == lq.function) {
				l.NotDue = append(l.NotDue, scheduleItem(sc))
			}
		}
	}
	return l, nil
}
