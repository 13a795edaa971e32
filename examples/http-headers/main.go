// Command http-headers prints the headers of a URL, fetched with a HEAD request:
// the "Get HTTP headers" example of Python's asyncio streams documentation,
// written with sluice. An https URL is fetched over TLS (asyncio's ssl=True).
//
//	go run ./examples/http-headers http://example.com/path/page.html
//	go run ./examples/http-headers https://example.com/path/page.html
//
// The -cafile flag trusts the CA certificates in a PEM file instead of the
// system's; -insecure skips certificate verification. Both are for a local
// test server.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/sluice-go/sluice"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "http-headers:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("http-headers", flag.ContinueOnError)
	flags.SetOutput(stderr)
	cafile := flags.String("cafile", "", "trust the CA certificates in this PEM `file` instead of the system's")
	insecure := flags.Bool("insecure", false, "do not verify the server's certificate")
	timeout := flags.Duration("timeout", 30*time.Second, "give up after this long")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: http-headers [-cafile file] [-insecure] [-timeout d] URL")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() != 1 {
		flags.Usage()
		return errors.New("want one URL")
	}
	u, err := url.Parse(flags.Arg(0))
	if err != nil {
		return err
	}

	var opts []sluice.Option
	port := "80"
	switch u.Scheme {
	case "https":
		cfg, err := tlsConfig(*cafile, *insecure)
		if err != nil {
			return err
		}
		opts = append(opts, sluice.WithTLS(cfg))
		port = "443"
	case "http":
	default:
		return fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	if u.Port() != "" {
		port = u.Port()
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	// Dial verifies the certificate for the URL's host name.
	c, err := sluice.Dial(ctx, "tcp", net.JoinHostPort(u.Hostname(), port), opts...)
	if err != nil {
		return err
	}
	defer c.Close()

	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	fmt.Fprintf(c, "HEAD %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, u.Host)
	for line, err := range c.Lines(ctx) {
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break // the end of the headers; ignore the body
		}
		fmt.Fprintf(stdout, "HTTP header> %s\n", line)
	}
	return nil
}

// tlsConfig returns the client's TLS configuration: the system's roots, or
// those in cafile.
func tlsConfig(cafile string, insecure bool) (*tls.Config, error) {
	cfg := &tls.Config{InsecureSkipVerify: insecure}
	if cafile != "" {
		pem, err := os.ReadFile(cafile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificates in %s", cafile)
		}
	}
	return cfg, nil
}
