package main

// TLS on the Gearman port, with the clients Debian ships. Debian's
// libgearman8 1.1.20 is built without SSL: `gearman -S`, `gearadmin -S`
// and PHP's extension (which has no SSL option at all) speak plain TCP
// whatever they are told, as Debian's `gearmand --ssl` does (measured in
// TestDebianSSLIsPlain). So the Debian tools reach a TLS port the way an
// operator would give them TLS: through socat, whose OPENSSL address is
// a real OpenSSL client with a client certificate; and on their own they
// get no service from it.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/gearman/gearmantest"
)

// testCerts writes a CA, server and client certificates for a test.
func testCerts(t testing.TB, name string) *gearmantest.Certs {
	t.Helper()
	c, err := gearmantest.WriteCerts(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startGearschedTLS starts gearsched serving TLS with certs; with
// clientAuth clients must present a certificate from certs' CA.
func startGearschedTLS(t testing.TB, certs *gearmantest.Certs, clientAuth bool, extraArgs ...string) *daemon {
	t.Helper()
	args := []string{"--ssl", "--ssl-certificate", certs.ServerCert, "--ssl-key", certs.ServerKey}
	if clientAuth {
		args = append(args, "--ssl-ca-file", certs.CAFile)
	}
	return startGearsched(t, append(args, extraArgs...)...)
}

// startTLSBridge runs socat: a plain-TCP port on 127.0.0.1 whose
// connections it carries over TLS to target, verifying target's
// certificate against certs' CA and presenting certs' client
// certificate. It returns a daemon whose address is the plain port.
func startTLSBridge(t *testing.T, target *daemon, certs *gearmantest.Certs) *daemon {
	t.Helper()
	path, err := exec.LookPath("socat")
	if err != nil {
		t.Fatalf("socat is required: %v", err)
	}
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		cmd := exec.Command(path,
			fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork", port),
			fmt.Sprintf("OPENSSL:%s,cafile=%s,cert=%s,key=%s,verify=1,commonname=localhost", target.Addr, certs.CAFile, certs.ClientCert, certs.ClientKey))
		out, done := startBackground(t, cmd)
		b := &daemon{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port, Backend: "socat", stderr: out, done: done}
		if err := b.waitReady(); err == nil {
			return b
		} else if attempt == 2 {
			t.Fatalf("socat did not listen: %v\n%s", err, out.String())
		}
	}
}

// handshakeFailures counts the server's log lines about failed TLS
// handshakes.
func handshakeFailures(s *daemon) int { return strings.Count(s.Stderr(), "TLS handshake failed") }

// TestTLSDebianTools: with client certificates required, the gearman CLI
// runs a worker and a client, gearadmin reads the status, PHP submits a
// job, all through socat's TLS; gearsched's own client commands speak
// TLS themselves; and the Debian tools pointed at the TLS port directly
// with -S get no service, each attempt logged once.
func TestTLSDebianTools(t *testing.T) {
	t.Parallel()
	certs := testCerts(t, "tools")
	s := startGearschedTLS(t, certs, true)
	b := startTLSBridge(t, s, certs)

	startTool(t, "", "gearman", toolArgs(b, "-S", "-w", "-f", "rev", "--", "rev")...)
	waitStatusRow(t, b, "rev", "rev\t0\t0\t1")
	out, _ := runTool(t, "", "gearman", toolArgs(b, "-S", "-f", "rev", "hello")...)
	if strings.TrimSpace(out) != "olleh" {
		t.Errorf("gearman -S -f rev hello through TLS printed %q, want olleh", out)
	}
	out, _ = runTool(t, "", "gearadmin", toolArgs(b, "-S", "--status")...)
	if !strings.Contains(out, "rev\t0\t0\t1\n") {
		t.Errorf("gearadmin -S --status through TLS: %q", out)
	}
	out, _ = runTool(t, "", "php", "-r", `$c = new GearmanClient(); $c->addServer($argv[1], (int)$argv[2]); $c->setTimeout(10000);
		echo $c->doNormal("rev", "php over tls"), "|", $c->returnCode() == GEARMAN_SUCCESS ? "ok" : $c->error(), "\n";`,
		"127.0.0.1", strconv.Itoa(b.Port))
	if out != "slt revo php|ok\n" {
		t.Errorf("PHP through TLS printed %q", out)
	}

	// gearsched's own commands: TLS with the client certificate works,
	// without one the server refuses.
	tlsArgs := []string{"--server", s.Addr, "--ssl", "--ssl-ca-file", certs.CAFile}
	withCert := append(slicesClone(tlsArgs), "--ssl-certificate", certs.ClientCert, "--ssl-key", certs.ClientKey)
	h, _ := runTool(t, "", gearschedBin, append([]string{"at"}, append(withCert, "+1h", "later", "x")...)...)
	ls, _ := runTool(t, "", gearschedBin, append([]string{"ls", "--json"}, withCert...)...)
	if !strings.Contains(ls, `"handle":"`+strings.TrimSpace(h)+`"`) {
		t.Errorf("ls over TLS: %q, want the job %s", ls, h)
	}
	before := handshakeFailures(s)
	if out, code := runExit(t, gearschedBin, append([]string{"ls"}, tlsArgs...)...); code != 1 {
		t.Errorf("ls over TLS without a client certificate: exit %d, %q", code, out)
	}
	eventually(t, 10*time.Second, func() string {
		if n := handshakeFailures(s) - before; n != 1 {
			return fmt.Sprintf("%d handshake failures logged for a client without a certificate, want 1", n)
		}
		return ""
	})

	// The Debian tools on the TLS port itself: -S changes nothing, the
	// handshake fails on their plain bytes and they get no service.
	before = handshakeFailures(s)
	direct := &daemon{Addr: s.Addr, Port: s.Port}
	for _, tool := range [][]string{
		{"gearadmin", "-S", "--status"},
		{"gearman", "-S", "-t", "3000", "-f", "rev", "direct"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		out, err := exec.CommandContext(ctx, tool[0], toolArgs(direct, tool[1:]...)...).CombinedOutput()
		cancel()
		t.Logf("%s on the TLS port: err=%v, output %q", strings.Join(tool, " "), err, out)
		if strings.Contains(string(out), "rev\t") || strings.Contains(string(out), "tceride") {
			t.Errorf("%s got service on the TLS port: %q", tool[0], out)
		}
	}
	eventually(t, 10*time.Second, func() string {
		if n := handshakeFailures(s) - before; n < 2 {
			return fmt.Sprintf("%d handshake failures logged for 2 plain tools", n)
		}
		return ""
	})
	if n := strings.Count(s.Stderr(), "first record does not look like a TLS handshake"); n < 2 || n > 6 {
		t.Errorf("%d 'not a TLS handshake' lines for two plain tools (each may retry); want one per connection", n)
	}
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// startBackground starts cmd with its output collected; it is killed at
// the end of the test, and its output logged if the test failed. done is
// closed when it has exited.
func startBackground(t *testing.T, cmd *exec.Cmd) (out *lockedBuffer, done chan struct{}) {
	t.Helper()
	out, done = &lockedBuffer{}, make(chan struct{})
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s output:\n%s", cmd.Path, out.String())
		}
	})
	return out, done
}

// TestDebianSSLIsPlain measures what the Debian build does with SSL:
// gearmand --ssl serves plain TCP, and `gearadmin -S`, `gearman -S` and
// PHP with libgearman's SSL option talk plain TCP to it, so none of them
// can reach a TLS port.
func TestDebianSSLIsPlain(t *testing.T) {
	t.Parallel()
	g := startGearmand(t, "--ssl")
	c := dialClient(t, g.Addr) // plain TCP
	reply, err := c.Admin("status")
	if err != nil {
		t.Fatalf("plain admin on gearmand --ssl: %v", err)
	}
	if reply != ".\n" {
		t.Errorf("plain status on gearmand --ssl: %q", reply)
	}
	if out, _ := runTool(t, "", "gearadmin", toolArgs(g, "-S", "--server-version")...); !strings.HasPrefix(out, "1.1.20") {
		t.Errorf("gearadmin -S --server-version on gearmand --ssl: %q", out)
	}
	runTool(t, "", "gearman", toolArgs(g, "-S", "-b", "-f", "plain", "x")...)
	checkRows(t, "status after gearman -S -b", admin(t, g.Addr, "status"), "plain\t1\t0\t0")
	// PHP's extension has no SSL constant; libgearman's GEARMAN_CLIENT_SSL
	// (1 << 8) is accepted by addOptions and changes nothing.
	out, _ := runTool(t, "", "php", "-r", `var_dump(defined("GEARMAN_CLIENT_SSL")); $c = new GearmanClient();
		var_dump($c->addOptions(1 << 8)); $c->addServer($argv[1], (int)$argv[2]); $c->setTimeout(10000);
		$c->doBackground("php_ssl", "x"); echo $c->returnCode() == GEARMAN_SUCCESS ? "submitted" : $c->error(), "\n";`,
		"127.0.0.1", strconv.Itoa(g.Port))
	if out != "bool(false)\nbool(true)\nsubmitted\n" {
		t.Errorf("PHP with GEARMAN_CLIENT_SSL on gearmand --ssl: %q", out)
	}
	checkRows(t, "status after PHP with GEARMAN_CLIENT_SSL", admin(t, g.Addr, "status"), "php_ssl\t1\t0\t0", "plain\t1\t0\t0")
}

// TestTLSPlainClient: a plain-TCP Gearman client on the TLS port gets
// no reply and a closed connection, and one log line.
func TestTLSPlainClient(t *testing.T) {
	t.Parallel()
	certs := testCerts(t, "plain")
	s := startGearschedTLS(t, certs, false)
	c := dialClient(t, s.Addr)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Send(gearman.EchoReq, []byte("plain")); err != nil {
		t.Fatal(err)
	}
	if p, err := c.Recv(); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a plain client on the TLS port got %v, %v; want the connection closed", p, err)
	}
	eventually(t, 10*time.Second, func() string {
		if n := handshakeFailures(s); n != 1 {
			return fmt.Sprintf("%d handshake failure lines, want 1", n)
		}
		return ""
	})
	// No client certificate is asked for without --ssl-ca-file.
	tc, err := gearman.DialTLS(context.Background(), s.Addr, certs.ClientConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if reply, err := tc.Admin("version"); err != nil || !strings.HasPrefix(reply, "OK gearsched ") {
		t.Errorf("version over TLS: %q, %v", reply, err)
	}
}

// TestSidecarUpstreamTLS: a sidecar reaches its upstream over TLS with a
// client certificate (the upstream is gearsched's own TLS listener, since
// Debian's gearmand has no TLS): epoch jobs submitted to the sidecar
// reach a worker there, and the control functions register there. A
// sidecar that cannot verify the upstream's certificate does not use it.
func TestSidecarUpstreamTLS(t *testing.T) {
	t.Parallel()
	certs := testCerts(t, "upstream")
	up := startGearschedTLS(t, certs, true)
	sc := startGearsched(t, "--upstream", up.Addr, "--upstream-ssl", "--upstream-ssl-ca-file", certs.CAFile,
		"--upstream-ssl-certificate", certs.ClientCert, "--upstream-ssl-key", certs.ClientKey)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w, err := gearman.DialTLS(ctx, up.Addr, certs.ClientConfig(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	col := collectOn(w, "tls_up")
	due := dueSecond(time.Second)
	submitEpochs(t, dialClient(t, sc.Addr), "tls_up", "j", 10, due)
	col.await(t, 20*time.Second, "10 epoch jobs through the sidecar to a TLS upstream", func(got map[string]int) bool { return len(got) == 10 })
	if state, n := upstreamRow(t, sc.Addr, up.Addr); state != "up" || n[0] != 10 {
		t.Errorf("show upstreams: %s %v, want up with 10 submitted", state, n)
	}
	a, err := gearman.DialTLS(ctx, up.Addr, certs.ClientConfig(true))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.SetDeadline(time.Now().Add(5 * time.Second))
	if st, err := a.Admin("status"); err != nil || !strings.Contains(st, "gearsched.schedule\t0\t0\t1\n") {
		t.Errorf("upstream status: %q, %v; want the control function registered over TLS", st, err)
	}

	// The system's CAs do not know the test CA: no connection.
	bad := startGearsched(t, "--upstream", up.Addr, "--upstream-ssl")
	eventually(t, 10*time.Second, func() string {
		if !strings.Contains(bad.Stderr(), "certificate signed by unknown authority") {
			return "the sidecar without the CA did not report the unverified certificate"
		}
		return ""
	})
	if state, _ := upstreamRow(t, bad.Addr, up.Addr); state == "up" {
		t.Errorf("a sidecar that cannot verify the upstream has it %s", state)
	}
}

// TestTLSFlagErrors: TLS flags that do not fit together exit 2 with the
// reason; files that cannot be read exit 1 naming them, before anything
// listens.
func TestTLSFlagErrors(t *testing.T) {
	t.Parallel()
	certs := testCerts(t, "flags")
	db := "--db=" + t.TempDir() + "/x.db"
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"serve", db, "--ssl-certificate", certs.ServerCert}, 2, "--ssl-certificate needs --ssl"},
		{[]string{"serve", db, "--ssl-ca-file", certs.CAFile}, 2, "--ssl-ca-file needs --ssl"},
		{[]string{"serve", db, "--upstream-ssl"}, 2, "--upstream-ssl needs --upstream"},
		{[]string{"serve", db, "--upstream", "127.0.0.1:1", "--upstream-ssl-ca-file", certs.CAFile}, 2, "--upstream-ssl-ca-file needs --upstream-ssl"},
		{[]string{"serve", db, "--upstream", "127.0.0.1:1", "--upstream-ssl", "--upstream-ssl-certificate", certs.ClientCert}, 2,
			"--upstream-ssl-certificate and --upstream-ssl-key go together"},
		{[]string{"serve", db, "--port", "0", "--ssl", "--ssl-certificate", certs.ServerCert, "--ssl-key", certs.ClientKey}, 1,
			"private key does not match public key"},
		{[]string{"serve", db, "--port", "0", "--ssl", "--ssl-certificate", "/nonexistent.pem"}, 1, "/nonexistent.pem"},
		{[]string{"serve", db, "--port", "0", "--ssl", "--ssl-certificate", certs.ServerCert, "--ssl-key", certs.ServerKey,
			"--ssl-ca-file", certs.ServerKey}, 1, "holds no PEM certificate"},
		{[]string{"ls", "--ssl-key", certs.ClientKey}, 2, "--ssl-key needs --ssl"},
		{[]string{"ls", "--ssl", "--ssl-ca-file", "/nonexistent.pem"}, 1, "/nonexistent.pem"},
	} {
		out, code := runExit(t, gearschedBin, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.msg) {
			t.Errorf("gearsched %v: exit %d, output %q; want exit %d and %q", tc.args, code, out, tc.code, tc.msg)
		}
	}
}

// TestTLSReloadOnSIGHUP: SIGHUP reads the certificate and key again, so a
// renewed certificate serves new connections without a restart; files
// that do not load are refused and the certificate in use stays.
func TestTLSReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	oldCerts, newCerts := testCerts(t, "old"), testCerts(t, "new")
	dir := t.TempDir()
	live := &gearmantest.Certs{ServerCert: dir + "/server.pem", ServerKey: dir + "/server.key"}
	install := func(from *gearmantest.Certs) {
		t.Helper()
		for src, dst := range map[string]string{from.ServerCert: live.ServerCert, from.ServerKey: live.ServerKey} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(oldCerts)
	s := startGearschedTLS(t, live, false)
	verifies := func(c *gearmantest.Certs) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cl, err := gearman.DialTLS(ctx, s.Addr, c.ClientConfig(false))
		if err == nil {
			cl.Close()
		}
		return err
	}
	if err := verifies(oldCerts); err != nil {
		t.Fatalf("before the reload: %v", err)
	}
	reloaded := func(msg string, n int) {
		t.Helper()
		eventually(t, 10*time.Second, func() string {
			if strings.Count(s.Stderr(), msg) < n {
				return "no log line " + msg
			}
			return ""
		})
	}
	install(newCerts)
	s.cmd.Process.Signal(syscall.SIGHUP)
	reloaded("TLS certificate, key and CA files read again", 1)
	if err := verifies(newCerts); err != nil {
		t.Errorf("after the reload, the new certificate: %v", err)
	}
	if err := verifies(oldCerts); err == nil {
		t.Error("after the reload, the old CA still verifies the server")
	}
	if err := os.WriteFile(live.ServerKey, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cmd.Process.Signal(syscall.SIGHUP)
	reloaded("TLS files rejected; keeping the certificates in use", 1)
	if err := verifies(newCerts); err != nil {
		t.Errorf("after a rejected reload: %v", err)
	}
}
