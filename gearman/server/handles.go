package server

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store"
)

// idBlock is how many job ids are reserved in the store at a time.
const idBlock = 1 << 16

// errHandlesPending is TryNext's answer when every id reserved so far is
// used and the next block is not durable yet.
var errHandlesPending = errors.New("server: job handles used up until the store commits the next block")

// Handles hands out job ids and their handles, "<prefix>:<id>". Ids come
// from blocks reserved durably in the store, so a handle never names two
// jobs, across restarts too. The next block is reserved as soon as one is
// started, in the store's next group commit, so TryNext finds it ready
// unless a whole block was used up during one commit. Safe for concurrent
// use.
type Handles struct {
	prefix string
	st     IDSource
	block  uint64

	mu          sync.Mutex
	next, limit uint64             // the current block
	ahead       *store.Reservation // the next block
}

// IDSource reserves blocks of job ids durably: *store.Store (a counter in
// the bbolt file) and *pgstore.Store (a sequence several sidecars share,
// so that a handle names one job whichever sidecar made it).
type IDSource interface {
	// ReserveIDs reserves n consecutive ids; see store.Store.ReserveIDs.
	ReserveIDs(n uint64) *store.Reservation
}

// NewHandles reserves the first block of ids in st and returns handles
// with prefix, "H:<hostname>" when empty.
func NewHandles(st IDSource, prefix string) (*Handles, error) {
	if prefix == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "gearsched"
		}
		prefix = "H:" + host
	}
	if n := len(prefix) + 1 + 20; n > gearman.MaxHandleSize {
		return nil, fmt.Errorf("server: handle prefix %q too long: handles could reach %d bytes, clients hold %d", prefix, n, gearman.MaxHandleSize)
	}
	first, err := st.ReserveIDs(idBlock).Wait()
	if err != nil {
		return nil, err
	}
	return &Handles{prefix: prefix, st: st, block: idBlock, next: first, limit: first + idBlock,
		ahead: st.ReserveIDs(idBlock)}, nil
}

// TryNext returns a new id and its handle without waiting for the store:
// errHandlesPending when the next block is not durable yet.
func (h *Handles) TryNext() (uint64, string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.next >= h.limit {
		if !h.ahead.Ready() {
			return 0, "", errHandlesPending
		}
		first, err := h.ahead.Wait()
		if err != nil {
			h.ahead = h.st.ReserveIDs(h.block) // try again next time
			return 0, "", err
		}
		h.next, h.limit = first, first+h.block
		h.ahead = h.st.ReserveIDs(h.block)
	}
	id := h.next
	h.next++
	return id, h.Format(id), nil
}

// Next is TryNext, waiting for the store when the next block is not
// durable yet. Never call it while holding a lock others need.
func (h *Handles) Next() (uint64, string, error) {
	for {
		id, handle, err := h.TryNext()
		if !errors.Is(err, errHandlesPending) {
			return id, handle, err
		}
		h.mu.Lock()
		ahead := h.ahead
		h.mu.Unlock()
		ahead.Wait() // its error, if any, comes from TryNext
	}
}

// Format returns the handle of id.
func (h *Handles) Format(id uint64) string { return h.prefix + ":" + strconv.FormatUint(id, 10) }

// Parse returns the id of a handle these Handles issued.
func (h *Handles) Parse(handle string) (uint64, bool) {
	rest, ok := strings.CutPrefix(handle, h.prefix+":")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(rest, 10, 64)
	return id, err == nil && id > 0
}

// ParseHandle returns the id of a handle this server issued.
func (s *Server) ParseHandle(handle string) (uint64, bool) { return s.handles.Parse(handle) }
