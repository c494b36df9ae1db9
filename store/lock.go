package store

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// lockWait is how long opening waits for another process's lock.
const lockWait = time.Second

// InUseError is the error of opening a database that another process (a
// running server, or a check or salvage reading it) holds locked.
type InUseError struct {
	Path string
	// PID is the process holding the lock, when the system says (Linux's
	// /proc/locks); 0 when unknown.
	PID int
}

// Error says who holds the database, as far as is known.
func (e *InUseError) Error() string {
	switch {
	case e.PID == os.Getpid():
		return fmt.Sprintf("store: database %s is already open in this process", e.Path)
	case e.PID > 0:
		return fmt.Sprintf("store: database %s is in use by another process (pid %d); stop it first", e.Path, e.PID)
	}
	return fmt.Sprintf("store: database %s is in use by another process; stop it first", e.Path)
}

// lockFile opens path and takes the lock bbolt takes on it: exclusive, for
// writing (creating the file if need be), or shared, for reading. bbolt
// locks the same open file again when it is handed this one (flock locks
// belong to the open file), so the checks made before bbolt maps the file
// see it as no other process can change it.
func lockFile(path string, write bool) (*os.File, error) {
	flag, how := os.O_RDONLY, syscall.LOCK_SH
	if write {
		flag, how = os.O_RDWR|os.O_CREATE, syscall.LOCK_EX
	}
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		switch {
		case err == nil:
			return f, nil
		case !errors.Is(err, syscall.EWOULDBLOCK):
			f.Close()
			return nil, fmt.Errorf("store: lock %s: %w", path, err)
		case time.Now().After(deadline):
			pid := lockHolder(f)
			f.Close()
			return nil, &InUseError{Path: path, PID: pid}
		}
		time.Sleep(50 * time.Millisecond) // as bbolt polls its lock
	}
}

// lockHolder returns the pid that holds a flock on f according to
// /proc/locks, or 0.
func lockHolder(f *os.File) int {
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0
	}
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, st.Ino)
	locks, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer locks.Close()
	sc := bufio.NewScanner(locks)
	for sc.Scan() {
		// 1: FLOCK  ADVISORY  WRITE 4242 08:02:131074 0 EOF
		fields := strings.Fields(sc.Text())
		if len(fields) >= 6 && fields[1] == "FLOCK" && fields[5] == want {
			if pid, err := strconv.Atoi(fields[4]); err == nil {
				return pid
			}
		}
	}
	return 0
}
