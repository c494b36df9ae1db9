package httpapi

import (
	"io"
	"net/http"
	"strconv"
	"time"
)

// backupStall is how long a backup download may make no progress before
// it is dropped: the read transaction it holds keeps freed pages from
// being reused, so a client that stops reading must not hold it forever.
const backupStall = time.Minute

// GET /api/v1/backup: a consistent copy of the database, as of the
// moment the request is served, taken while gearsched runs (see
// store.Store.Backup). It needs the token when one is configured: it
// hands out every payload. If the copy fails midway the connection is
// cut, so the client sees a short body, never a complete-looking one.
func (a *API) backup(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead { // it would read the whole database for nothing
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, "HEAD of a backup is not served; GET it")
		return
	}
	rc := http.NewResponseController(w)
	out := &deadlineWriter{w: w, rc: rc}
	started := false
	n, err := a.cfg.Store.Backup(out, func(size int64) {
		started = true
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Content-Disposition", `attachment; filename="gearsched-`+a.cfg.Now().UTC().Format("20060102T150405Z")+`.db"`)
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	})
	if err == nil {
		a.log.Info("backup sent", "bytes", n, "remote", r.RemoteAddr)
		return
	}
	a.log.Error("backup failed", "bytes", n, "remote", r.RemoteAddr, "err", err)
	if !started {
		writeError(w, http.StatusInternalServerError, "backup failed; see the server's log")
		return
	}
	panic(http.ErrAbortHandler) // cut the connection: the body is short
}

// deadlineWriter pushes the write deadline forward with each write, so a
// backup of any size may take as long as it keeps moving.
type deadlineWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.rc.SetWriteDeadline(time.Now().Add(backupStall))
	return d.w.Write(p)
}
