//go:build !linux

package sluice

// abstractUnixSockets reports whether Unix socket addresses may name the
// abstract namespace ("@name"): only Linux has it, so here "@name" is refused
// with an error matching errors.ErrUnsupported rather than taken as a file name
// (macOS and FreeBSD would bind a file called "@name").
const abstractUnixSockets = false
