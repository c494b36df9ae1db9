package sidecar

import (
	"path/filepath"
	"testing"

	"github.com/gearsched/gearsched/gearman/server"
	"github.com/gearsched/gearsched/store"
)

// testPrefix is the handle prefix of test sidecars: handles are "H:t:<n>".
const testPrefix = "H:t"

// openStore opens a store in t.TempDir(), closed at cleanup; opts may be
// nil.
func openStore(t *testing.T, opts *store.Options) *store.Store {
	t.Helper()
	o := store.Options{NoSync: true}
	if opts != nil {
		o = *opts
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "sidecar.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// sidecarServer returns a sidecar's listener over st with a Forwarder
// whose upstream is never dialled, and the listener's error.
func sidecarServer(t *testing.T, st *store.Store) (*server.Server, *Forwarder, error) {
	t.Helper()
	up, err := NewUpstream(UpstreamConfig{Addrs: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	handles, err := server.NewHandles(st, testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := NewForwarder(ForwarderConfig{Store: st, Upstream: up, Handles: handles})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: st, Handles: handles, Upstreams: fwd})
	return srv, fwd, err
}

// newSidecarServer is sidecarServer for a store it must accept.
func newSidecarServer(t *testing.T, st *store.Store) (*server.Server, *Forwarder) {
	t.Helper()
	srv, fwd, err := sidecarServer(t, st)
	if err != nil {
		t.Fatal(err)
	}
	return srv, fwd
}
