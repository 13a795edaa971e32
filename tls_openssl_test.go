package sluice

import (
	"bytes"
	"context"
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
)

// Interop with OpenSSL: a TLS implementation that shares no code with ours.

// openssl returns the openssl binary's path, skipping the test without one.
func openssl(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed:", err)
	}
	return path
}

// pkiFiles writes the test CA, certificate and key to files for openssl.
func pkiFiles(t *testing.T) (ca, cert, key string) {
	t.Helper()
	dir := t.TempDir()
	p := pki()
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for name, data := range map[string][]byte{ca: p.caPEM, cert: p.certPEM, key: p.keyPEM} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ca, cert, key
}

// command starts an openssl subcommand bounded by testTimeout and killed at
// cleanup at the latest. wait returns its exit error; stdout and stderr are
// readable once it has returned.
type command struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	waited         chan struct{}
	err            error
}

func startOpenSSL(t *testing.T, stdin string, args ...string) *command {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	c := &command{
		cmd:    exec.CommandContext(ctx, openssl(t), args...),
		stdout: new(syncBuffer),
		stderr: new(syncBuffer),
		waited: make(chan struct{}),
	}
	c.cmd.Stdin = strings.NewReader(stdin)
	c.cmd.Stdout, c.cmd.Stderr = c.stdout, c.stderr
	c.cmd.WaitDelay = time.Second
	if err := c.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.waited)
	}()
	t.Cleanup(func() {
		cancel() // kills it if it is still running
		<-c.waited
	})
	return c
}

func (c *command) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-c.waited:
		return c.err
	case <-time.After(testTimeout):
		t.Fatalf("openssl did not exit; stderr:\n%s", c.stderr)
		return nil
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine, which
// can wait for a pattern to appear.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// await waits until re matches the output and returns the match's groups.
func (b *syncBuffer) await(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.After(testTimeout)
	for {
		b.mu.Lock()
		m := re.FindStringSubmatch(b.buf.String())
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		changed := b.changed
		b.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("no %v in output:\n%s", re, b)
		}
	}
}

// TestTLSOpenSSLServer dials `openssl s_server -rev`, which answers each line
// reversed.
func TestTLSOpenSSLServer(t *testing.T) {
	is := is.New(t)
	ctx := testCtx(t)
	_, cert, key := pkiFiles(t)
	srv := startOpenSSL(t, "", "s_server", "-accept", "127.0.0.1:0", "-cert", cert, "-key", key, "-rev", "-naccept", "1")
	port := srv.stdout.await(t, regexp.MustCompile(`ACCEPT .*:(\d+)\n`))[1]

	c, err := Dial(ctx, "tcp", "127.0.0.1:"+port, WithTLS(clientTLS()), WithServerName("localhost"))
	is.NoErr(err)
	defer c.Abort()
	_, err = c.Write([]byte("hello sluice\n"))
	is.NoErr(err)
	line, err := c.ReadLine(ctx)
	is.NoErr(err)
	is.Equal(string(line), "eciuls olleh\n")
	st, ok := c.ConnectionState()
	is.True(ok)
	is.True(st.PeerCertificates[0].Equal(pki().leaf))
	is.NoErr(c.Close())

	is.NoErr(srv.wait(t)) // -naccept 1: it exits once we have closed
	log := srv.stderr.String()
	is.True(strings.Contains(log, "CONNECTION ESTABLISHED"))
	is.True(strings.Contains(log, "Protocol version: TLSv1.3"))
	is.True(strings.Contains(log, "Ciphersuite: "+tls.CipherSuiteName(st.CipherSuite))) // both sides agree
}

// TestTLSOpenSSLClient serves `openssl s_client` with serverHandshake and an echo
// handler over Lines.
func TestTLSOpenSSLClient(t *testing.T) {
	is := is.New(t)
	ca, _, _ := pkiFiles(t)
	states := make(chan tls.ConnectionState, 1)
	addr, done := serveOne(t, func(ctx context.Context, c *Conn) {
		st, _ := c.ConnectionState()
		states <- st
		for line, err := range c.Lines(ctx) {
			if err == nil {
				c.Write([]byte("echo: " + string(line) + "\n"))
			}
			break // then the handler returns, and Close sends close_notify
		}
	}, WithTLS(serverTLS()))

	cli := startOpenSSL(t, "ping\n", "s_client", "-connect", addr, "-CAfile", ca,
		"-servername", "localhost", "-quiet", "-verify_return_error")
	is.NoErr(recv(t, done))
	is.NoErr(cli.wait(t)) // s_client exits at our close_notify
	is.Equal(cli.stdout.String(), "echo: ping\n")
	is.True(strings.Contains(cli.stderr.String(), "verify return:1")) // OpenSSL verified our chain

	st := recv(t, states)
	is.Equal(st.ServerName, "localhost") // the SNI s_client sent
	is.Equal(st.Version, uint16(tls.VersionTLS13))
}
