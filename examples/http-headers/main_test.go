package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// server starts a local HTTP or HTTPS server that records the requests it gets
// and writes the certificate of an HTTPS one to a PEM file.
func server(t *testing.T, tlsOn bool) (srv *httptest.Server, cafile string, requests <-chan string) {
	t.Helper()
	reqs := make(chan string, 10)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs <- r.Method + " " + r.URL.Path + " " + r.Proto
		w.Header().Set("X-Sluice", "yes")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "a body HEAD does not see")
	})
	if !tlsOn {
		srv = httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv, "", reqs
	}
	srv = httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // a client that rejects the certificate is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cafile = filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(cafile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, cafile, reqs
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestHeaders(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tls   bool
		flags func(cafile string) []string
	}{
		{"http", false, func(string) []string { return nil }},
		{"https -cafile", true, func(cafile string) []string { return []string{"-cafile", cafile} }},
		{"https -insecure", true, func(string) []string { return []string{"-insecure"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			srv, cafile, reqs := server(t, tc.tls)
			var out, errOut bytes.Buffer
			args := append(tc.flags(cafile), srv.URL+"/path/page.html")
			is.NoErr(run(testCtx(t), args, &out, &errOut))
			select {
			case req := <-reqs:
				is.Equal(req, "HEAD /path/page.html HTTP/1.0")
			case <-time.After(10 * time.Second):
				t.Fatal("no request")
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			is.Equal(lines[0], "HTTP header> HTTP/1.0 200 OK") // the status line first
			is.True(strings.Contains(out.String(), "HTTP header> X-Sluice: yes\n"))
			is.True(strings.Contains(out.String(), "HTTP header> Content-Type: text/plain\n"))
			is.True(!strings.Contains(out.String(), "body"))
			for _, l := range lines {
				is.True(strings.HasPrefix(l, "HTTP header> ")) // and nothing else
			}
		})
	}
}

func TestUnverifiedServer(t *testing.T) {
	is := is.New(t)
	srv, _, _ := server(t, true)
	var out, errOut bytes.Buffer
	err := run(testCtx(t), []string{srv.URL}, &out, &errOut) // the test CA is not trusted
	var uae x509.UnknownAuthorityError
	is.True(errors.As(err, &uae))
	is.Equal(out.Len(), 0)
}
