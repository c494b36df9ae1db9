package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"
)

// TLS on the Gearman port.
const (
	// tlsHandshakeTimeout bounds a TLS handshake: a peer that connects
	// and says nothing holds its connection slot this long at most.
	tlsHandshakeTimeout = 10 * time.Second
)

// handshake runs the server side of the TLS handshake on a connection
// just accepted, in that connection's goroutine so that a slow peer
// holds up no one else. It returns the connection to serve, or nil when
// the handshake failed; the failure is logged once, here: at DEBUG when
// the peer left before sending a byte (a port probe), else as a warning
// naming the peer (a plain-TCP client on the TLS port, a certificate
// that does not verify).
func (s *Server) handshake(nc net.Conn) net.Conn {
	tc := tls.Server(nc, s.cfg.TLS)
	ctx, cancel := context.WithTimeout(s.ctx, tlsHandshakeTimeout)
	defer cancel()
	err := tc.HandshakeContext(ctx)
	if err == nil {
		return &tlsConn{Conn: tc, raw: nc}
	}
	nc.Close()
	if s.ctx.Err() != nil {
		return nil // shutting down
	}
	level := slog.LevelWarn
	if errors.Is(err, io.EOF) {
		level = slog.LevelDebug
	}
	s.log.Log(context.Background(), level, "TLS handshake failed; connection closed", "remote", nc.RemoteAddr().String(), "err", err)
	return nil
}

// tlsConn is a served TLS connection. It exposes the socket underneath
// for the descriptor number that `workers` lists.
type tlsConn struct {
	*tls.Conn
	raw net.Conn
}

// Close closes the socket without a close_notify alert. crypto/tls would
// send one first and wait up to 5 s for a peer that reads nothing more,
// and connections are closed from places that must not wait on a peer
// (a slow consumer's close may run under Server.mu). Gearman packets and
// admin replies carry their own framing, so a peer can tell a whole
// reply from a cut one without the alert.
func (c *tlsConn) Close() error { return c.raw.Close() }

// rawConn returns the socket under a served connection.
func rawConn(nc net.Conn) net.Conn {
	if tc, ok := nc.(*tlsConn); ok {
		return tc.raw
	}
	return nc
}
