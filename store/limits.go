package store

import (
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// MaxFunctionSize is the longest function name the store takes. A pending
// job's or schedule's function is part of bbolt keys (the counts bucket,
// and function NUL unique in the unique index, NUL upstream for a trigger),
// and bbolt refuses keys over bolt.MaxKeySize (32 KiB). The limit leaves
// 1 KiB of that for the unique and the upstream, and is far above real
// names: libgearman refuses names over 512 bytes, and gearmand closes the
// connection on names of 8 KiB.
const MaxFunctionSize = bolt.MaxKeySize - 1024

// ErrInvalid is wrapped by the errors of writes refused before they reach
// a transaction because the store could not hold their record.
var ErrInvalid = errors.New("store: record cannot be stored")

// checkFunction refuses a function name the store cannot key.
func checkFunction(function string) error {
	switch {
	case len(function) > MaxFunctionSize:
		return fmt.Errorf("%w: function name of %d bytes (at most %d)", ErrInvalid, len(function), MaxFunctionSize)
	case strings.IndexByte(function, 0) >= 0:
		return fmt.Errorf("%w: function name contains NUL", ErrInvalid)
	}
	return nil
}

// checkKey refuses a key bbolt would refuse; what names it in the error.
func checkKey(what string, key []byte) error {
	switch {
	case len(key) == 0:
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	case len(key) > bolt.MaxKeySize:
		return fmt.Errorf("%w: %s of %d bytes (at most %d)", ErrInvalid, what, len(key), bolt.MaxKeySize)
	}
	return nil
}

// checkIndexed refuses a pending job or schedule whose unique index key
// the store cannot hold. Its function must have passed checkFunction.
func checkIndexed(key []byte, unique string) error {
	if !indexed(unique) {
		return nil
	}
	if strings.IndexByte(unique, 0) >= 0 {
		return fmt.Errorf("%w: unique contains NUL", ErrInvalid)
	}
	return checkKey("function and unique", key)
}

// checkJob refuses a job record the store cannot hold: as a ready job,
// or with pending as a pending job, which is also keyed by function and
// unique.
func checkJob(j *Job, pending bool) error {
	if err := checkFunction(j.Function); err != nil {
		return err
	}
	if n := j.encodedSize(); n > bolt.MaxValueSize {
		return fmt.Errorf("%w: job record of %d bytes (at most %d)", ErrInvalid, n, bolt.MaxValueSize)
	}
	if !pending {
		return nil
	}
	return checkIndexed(pendingKey(j), j.Unique)
}

// checkSchedule refuses a schedule the store cannot hold.
func checkSchedule(sc *Schedule) error {
	if err := checkFunction(sc.Function); err != nil {
		return err
	}
	if sc.Source == SourceFile {
		return nil // not in the unique index
	}
	return checkIndexed(uniqKey(sc.Function, sc.Unique), sc.Unique)
}

// checkRequest refuses a request key bbolt cannot hold; "" is no request.
func checkRequest(request string) error {
	if request == "" {
		return nil
	}
	return checkKey("request key", []byte(request))
}
