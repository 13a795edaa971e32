module github.com/sluice-go/sluice

go 1.23.0

require (
	github.com/matryer/is v1.4.1
	github.com/pires/go-proxyproto v0.8.0
	github.com/sourcegraph/conc v0.3.0
	go.uber.org/goleak v1.3.0
	golang.org/x/net v0.43.0
	golang.org/x/sys v0.35.0
)
