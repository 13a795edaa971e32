//go:build linux && !race && !msan && !asan

package sluice

import (
	"syscall"
	"unsafe"
)

// rawRead and rawWrite are read(2) and write(2) made through syscall.Syscall
// itself, which never grows the stack: so the poller's callbacks that make
// them (rawSock's readFn and writeFn) are the last frames that may, where
// syscall.Read and syscall.Write would add one (see Server.serveConn). The
// race detector's and the sanitizers' builds use those (rawio_unix.go): they
// tell them that bytes read carry what was done before they were written, and
// which memory a read fills. They inline into the callbacks; nosplit, where
// they do not, their own frames cannot grow the stack either.
//
//go:nosplit
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, errno := syscall.Syscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(n), errno
}

//go:nosplit
func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, errno := syscall.Syscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(n), errno
}
