package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/gearman/gearmantest"
	"github.com/gearsched/gearsched/store"
)

// startTLS serves a store over TLS with the test certificates, client
// certificates required when clientAuth is set, logging into logs.
func startTLS(t *testing.T, clientAuth bool) (*testServer, *gearmantest.Certs, *logRecords) {
	return startTLSConfig(t, clientAuth, Config{})
}

// startTLSConfig is startTLS with more of the server's configuration.
func startTLSConfig(t *testing.T, clientAuth bool, cfg Config) (*testServer, *gearmantest.Certs, *logRecords) {
	t.Helper()
	certs, err := gearmantest.WriteCerts(t.TempDir(), "srv")
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := certs.ServerConfig(clientAuth)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logRecords{}
	st, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger, cfg.TLS = slog.New(logs), tlsCfg
	return serveStore(t, cfg, st), certs, logs
}

// dialTLS connects a tconn over TLS.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) (*tconn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	nc, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { nc.Close() })
	return &tconn{Client: gearman.NewClient(nc), nc: nc, t: t}, nil
}

// handshakeWarnings returns the remote addresses of the handshake
// failures logged as warnings.
func handshakeWarnings(logs *logRecords, level slog.Level) []string {
	logs.mu.Lock()
	defer logs.mu.Unlock()
	var remotes []string
	for _, r := range logs.recs {
		if r.Level == level && strings.Contains(r.Message, "TLS handshake failed") {
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "remote" {
					remotes = append(remotes, a.Value.String())
				}
				return true
			})
		}
	}
	return remotes
}

// TestTLSServe: over TLS the protocol is served as over TCP, binary and
// admin text, and `workers` shows the socket's descriptor.
func TestTLSServe(t *testing.T) {
	t.Parallel()
	ts, certs, _ := startTLS(t, false)
	c, err := dialTLS(t, ts.addr, certs.ClientConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	c.send(gearman.EchoReq, "over tls")
	c.expect(gearman.EchoRes, "over tls")
	c.send(gearman.CanDo, "f_tls")
	c.sync()
	if rows := c.admin("workers"); strings.HasPrefix(rows, "-1 ") || !strings.Contains(rows, " : f_tls") {
		t.Errorf("workers over TLS: %q", rows)
	}
}

// TestTLSPlainClientRefused: a plain-TCP client on the TLS port gets no
// Gearman reply, its connection is closed, and the failure is logged
// once for it; a peer that connects and leaves without a byte is logged
// at DEBUG only, and the server goes on serving.
func TestTLSPlainClientRefused(t *testing.T) {
	t.Parallel()
	ts, certs, logs := startTLS(t, false)
	for _, req := range [][]byte{
		gearman.AppendPacketString(nil, gearman.MagicReq, gearman.EchoReq, "plain"),
		[]byte("status\n"),
	} {
		nc, err := net.DialTimeout("tcp", ts.addr, testTimeout)
		if err != nil {
			t.Fatal(err)
		}
		local := nc.LocalAddr().String()
		nc.SetDeadline(time.Now().Add(testTimeout))
		nc.Write(req)
		got, err := io.ReadAll(nc)
		nc.Close()
		if len(got) > 0 && (got[0] == 0 || strings.HasPrefix(string(got), "OK") || strings.Contains(string(got), "\t")) {
			t.Errorf("a plain %q got a Gearman reply: %q", req, got)
		}
		if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
			t.Errorf("reading after a plain %q: %v", req, err)
		}
		deadline := time.Now().Add(testTimeout)
		for {
			n := 0
			for _, r := range handshakeWarnings(logs, slog.LevelWarn) {
				if r == local {
					n++
				}
			}
			if n == 1 {
				break
			}
			if n > 1 || time.Now().After(deadline) {
				t.Fatalf("%d handshake warnings for %s, want 1", n, local)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	probe, err := net.DialTimeout("tcp", ts.addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	probe.Close()
	c, err := dialTLS(t, ts.addr, certs.ClientConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	c.send(gearman.EchoReq, "still serving")
	c.expect(gearman.EchoRes, "still serving")
	if w := handshakeWarnings(logs, slog.LevelWarn); len(w) != 2 {
		t.Errorf("handshake warnings %q, want the two plain clients only", w)
	}
}

// TestTLSClientCertificates: with client certificates required, a client
// without one, or with one from another CA, is refused; one with a
// certificate from the CA is served.
func TestTLSClientCertificates(t *testing.T) {
	t.Parallel()
	ts, certs, logs := startTLS(t, true)
	other, err := gearmantest.WriteCerts(t.TempDir(), "other")
	if err != nil {
		t.Fatal(err)
	}
	foreign := certs.ClientConfig(false)
	foreign.Certificates = []tls.Certificate{other.Client}
	for name, cfg := range map[string]*tls.Config{"no certificate": certs.ClientConfig(false), "another CA's": foreign} {
		c, err := dialTLS(t, ts.addr, cfg)
		if err == nil {
			// TLS 1.3: the server's verdict on the client's certificate
			// arrives after the client's side of the handshake is done.
			c.nc.SetDeadline(time.Now().Add(testTimeout))
			c.Send(gearman.EchoReq, []byte("x"))
			_, err = c.Recv()
		}
		if err == nil {
			t.Errorf("%s: served", name)
		}
	}
	c, err := dialTLS(t, ts.addr, certs.ClientConfig(true))
	if err != nil {
		t.Fatal(err)
	}
	c.send(gearman.EchoReq, "verified")
	c.expect(gearman.EchoRes, "verified")
	eventuallyT(t, func() bool { return len(handshakeWarnings(logs, slog.LevelWarn)) == 2 })
}

// eventuallyT waits up to testTimeout for cond.
func eventuallyT(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTLSMaxConnections: past --max-connections a TLS client's connection
// is closed without the plain ERROR packet a TCP client gets, and the
// connections within the limit go on.
func TestTLSMaxConnections(t *testing.T) {
	t.Parallel()
	ts, certs, _ := startTLSConfig(t, false, Config{MaxConnections: 1})
	first, err := dialTLS(t, ts.addr, certs.ClientConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	first.send(gearman.EchoReq, "first")
	first.expect(gearman.EchoRes, "first")
	second, err := dialTLS(t, ts.addr, certs.ClientConfig(false))
	if err == nil {
		second.nc.SetDeadline(time.Now().Add(testTimeout))
		second.Send(gearman.EchoReq, []byte("second"))
		_, err = second.Recv()
	}
	var rec tls.RecordHeaderError
	if err == nil || errors.As(err, &rec) {
		t.Errorf("a TLS client past the limit: %v; want the connection closed, not a plain reply", err)
	}
	first.send(gearman.EchoReq, "still")
	first.expect(gearman.EchoRes, "still")
}
