package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/gearman/sidecar"
	"github.com/spf13/pflag"
)

// gearmand's default certificate and key (its configure's sysconfdir is
// /etc), so a service file that says only --ssl finds the same files.
const (
	defaultSSLCertificate = "/etc/ssl/certs/gearmand.pem"
	defaultSSLKey         = "/etc/ssl/certs/gearmand.key"
)

// tlsFiles names the PEM files of one side of a TLS connection.
type tlsFiles struct {
	enabled bool
	cert    string // our certificate (with --ssl-key, its key)
	key     string
	ca      string // server: verify client certificates; client: verify the server
}

// registerServerTLS adds gearmand's TLS flags for the Gearman port.
func registerServerTLS(fs *pflag.FlagSet, f *tlsFiles) {
	fs.BoolVar(&f.enabled, "ssl", false, "serve the Gearman port over TLS only (gearmand --ssl)")
	fs.StringVar(&f.cert, "ssl-certificate", defaultSSLCertificate, "with --ssl: the server's certificate (PEM; may hold the chain)")
	fs.StringVar(&f.key, "ssl-key", defaultSSLKey, "with --ssl: the certificate's private key (PEM)")
	fs.StringVar(&f.ca, "ssl-ca-file", "", "with --ssl: CA certificates (PEM); when given, clients must present a certificate it signed")
}

// registerUpstreamTLS adds the sidecar's TLS flags for its upstreams.
func registerUpstreamTLS(fs *pflag.FlagSet, f *tlsFiles) {
	fs.BoolVar(&f.enabled, "upstream-ssl", false, "sidecar: reach the upstream servers over TLS, verifying their certificates")
	fs.StringVar(&f.ca, "upstream-ssl-ca-file", "", "sidecar: CA certificates (PEM) upstream certificates must chain to (default: the system's)")
	fs.StringVar(&f.cert, "upstream-ssl-certificate", "", "sidecar: client certificate (PEM) to present to upstreams that require one")
	fs.StringVar(&f.key, "upstream-ssl-key", "", "sidecar: the client certificate's private key (PEM)")
}

// registerClientTLS adds TLS flags to a client subcommand (at, ls,
// cancel), named as gearmand's.
func registerClientTLS(fs *pflag.FlagSet, f *tlsFiles) {
	fs.BoolVarP(&f.enabled, "ssl", "S", false, "connect over TLS, verifying the server's certificate")
	fs.StringVar(&f.ca, "ssl-ca-file", "", "CA certificates (PEM) the server's certificate must chain to (default: the system's)")
	fs.StringVar(&f.cert, "ssl-certificate", "", "client certificate (PEM), for servers that require one")
	fs.StringVar(&f.key, "ssl-key", "", "the client certificate's private key (PEM)")
}

// check refuses the file flags without the switch that turns TLS on,
// and a client certificate without its key or the other way round.
func (f *tlsFiles) check(fs *pflag.FlagSet, enable string, files ...string) error {
	if !f.enabled {
		for _, name := range files {
			if fs.Changed(name) {
				return fmt.Errorf("--%s needs --%s", name, enable)
			}
		}
		return nil
	}
	if (f.cert == "") != (f.key == "") {
		return fmt.Errorf("--%s and --%s go together", files[0], files[1])
	}
	return nil
}

// clientConfig reads the files of a TLS client: the CA pool to verify
// the server against (the system's when none is named) and the client
// certificate, if any. It returns nil when TLS is off.
func (f *tlsFiles) clientConfig() (*tls.Config, error) {
	if !f.enabled {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.ca != "" {
		pool, err := readCAs(f.ca)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if f.cert != "" {
		cert, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate %s, key %s: %w", f.cert, f.key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// serverConfig reads the files of the TLS server: its certificate and
// key and, when a CA file is named, the CAs that client certificates,
// then required, must chain to.
func (f *tlsFiles) serverConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("--ssl-certificate %s, --ssl-key %s: %w", f.cert, f.key, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if f.ca != "" {
		pool, err := readCAs(f.ca)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// readCAs reads a PEM file of CA certificates.
func readCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("TLS CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("TLS CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// serverTLS is the Gearman port's TLS configuration, which SIGHUP reads
// again from its files, so renewed certificates apply to new connections
// without a restart. Connections already open keep theirs.
type serverTLS struct {
	files *tlsFiles
	cur   atomic.Pointer[tls.Config]
}

// newServerTLS reads the files; nil when TLS is off.
func newServerTLS(f *tlsFiles) (*serverTLS, error) {
	if !f.enabled {
		return nil, nil
	}
	s := &serverTLS{files: f}
	return s, s.reload()
}

// reload reads the files again; on an error the configuration in use
// stays.
func (s *serverTLS) reload() error {
	cfg, err := s.files.serverConfig()
	if err != nil {
		return err
	}
	s.cur.Store(cfg)
	return nil
}

// config is what the server hands each handshake: it picks the
// configuration read last.
func (s *serverTLS) config() *tls.Config {
	if s == nil {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load(), nil
		},
	}
}

// upstreamDialer returns how the sidecar dials its upstreams: nil (plain
// TCP) without --upstream-ssl, else TLS with the handshake bounded by
// timeout, like the dial itself.
func upstreamDialer(f *tlsFiles, timeout time.Duration) (sidecar.Dialer, error) {
	cfg, err := f.clientConfig()
	if err != nil || cfg == nil {
		return nil, err
	}
	return func(ctx context.Context, addr string) (*gearman.Client, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return gearman.DialTLS(ctx, addr, cfg)
	}, nil
}
