package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store"
)

// ScheduleRequest is a job to hold until its time, or a recurring
// schedule, as the sidecar's control function asks for one.
type ScheduleRequest struct {
	Function string
	Unique   string
	Data     []byte
	// Priority of the job or occurrences. Its zero value is gearman.High:
	// set it.
	Priority gearman.Priority
	// At is a one-shot job's time; a past time means at once.
	At time.Time
	// Cron and Zone make a recurring schedule instead (Source control).
	Cron string
	Zone *time.Location
	// Request is the request's idempotency key, or empty: a second request
	// with the same key gets the first one's job back for as long as the
	// store knows it (pending, a schedule, or in the fire ledger).
	Request string
}

// scheduleJSON is a schedule request's JSON form: the payload of the
// sidecar's control function.
type scheduleJSON struct {
	Function   string          `json:"function"`
	Data       *string         `json:"data"`
	DataBase64 *string         `json:"data_base64"`
	Unique     string          `json:"unique"`
	Priority   string          `json:"priority"`
	At         json.RawMessage `json:"at"`
	In         string          `json:"in"`
	Cron       string          `json:"cron"`
	TZ         string          `json:"tz"`
}

// ParseScheduleRequest reads a schedule function payload: function, data
// (text) or data_base64, unique, priority (high, normal, low), and one of
// at (RFC 3339 or unix seconds), in (a Go duration) or cron with tz.
func ParseScheduleRequest(payload []byte, now time.Time) (ScheduleRequest, error) {
	var in scheduleJSON
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return ScheduleRequest{}, fmt.Errorf("payload is not a JSON object of the known fields: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return ScheduleRequest{}, errors.New("payload has data after its JSON object")
	}
	req := ScheduleRequest{Function: in.Function, Unique: in.Unique}
	switch {
	case in.Function == "":
		return req, errors.New(`"function" is required`)
	case strings.ContainsRune(in.Function, 0) || strings.ContainsRune(in.Unique, 0):
		return req, errors.New(`"function" and "unique" must not contain NUL`)
	case len(in.Unique) > gearman.MaxUniqueSize:
		return req, fmt.Errorf(`"unique" is longer than %d bytes`, gearman.MaxUniqueSize)
	case len(in.Function) > store.MaxFunctionSize:
		return req, fmt.Errorf(`"function" is longer than %d bytes`, store.MaxFunctionSize)
	case in.Data != nil && in.DataBase64 != nil:
		return req, errors.New(`give "data" or "data_base64", not both`)
	}
	switch {
	case in.Data != nil:
		req.Data = []byte(*in.Data)
	case in.DataBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*in.DataBase64)
		if err != nil {
			return req, fmt.Errorf(`"data_base64": %w`, err)
		}
		req.Data = b
	}
	switch strings.ToLower(in.Priority) {
	case "", "normal":
		req.Priority = gearman.Normal
	case "high":
		req.Priority = gearman.High
	case "low":
		req.Priority = gearman.Low
	default:
		return req, fmt.Errorf(`"priority" must be high, normal or low, not %q`, in.Priority)
	}
	n := 0
	for _, set := range []bool{len(in.At) > 0, in.In != "", in.Cron != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return req, errors.New(`give exactly one of "at", "in" and "cron"`)
	}
	if in.TZ != "" && in.Cron == "" {
		return req, errors.New(`"tz" applies to "cron" only`)
	}
	switch {
	case in.Cron != "":
		req.Cron, req.Zone = in.Cron, time.UTC
		if in.TZ != "" {
			loc, err := time.LoadLocation(in.TZ)
			if err != nil {
				return req, fmt.Errorf(`"tz": %w`, err)
			}
			req.Zone = loc
		}
	case in.In != "":
		d, err := time.ParseDuration(in.In)
		if err != nil {
			return req, fmt.Errorf(`"in": %w`, err)
		}
		if d < 0 {
			return req, fmt.Errorf(`"in" is negative: %s`, in.In)
		}
		if req.At = now.Add(d); req.At.After(maxTime) {
			return req, fmt.Errorf(`"in": %s reaches past April 2262`, in.In)
		}
	default:
		at, err := parseAt(in.At)
		if err != nil {
			return req, err
		}
		req.At = at
	}
	return req, nil
}

// maxTime is the latest time a job can be held for: due times are int64
// nanoseconds.
var maxTime = time.Unix(0, math.MaxInt64)

// parseAt reads "at": unix seconds as a JSON number or string, or an RFC
// 3339 time.
func parseAt(raw json.RawMessage) (time.Time, error) {
	var s string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, fmt.Errorf(`"at": %w`, err)
		}
	} else {
		s = string(raw)
	}
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		if secs < 0 || secs > maxEpoch {
			return time.Time{}, fmt.Errorf(`"at": %d is out of range`, secs)
		}
		return time.Unix(secs, 0), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf(`"at" must be unix seconds or an RFC 3339 time, not %s`, raw)
	}
	if t.After(maxTime) {
		return time.Time{}, fmt.Errorf(`"at": %s is after April 2262`, s)
	}
	return t, nil
}
