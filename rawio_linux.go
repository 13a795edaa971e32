//go:build linux && !386 && !race && !msan && !asan

package sluice

import (
	"syscall"
	"unsafe"
)

// rawRead and rawWrite are one recv(2) and one send(2) on a socket's
// descriptor (newRawSock takes TCP and Unix sockets only), made with
// MSG_DONTWAIT: they never block, whatever the descriptor's mode. Where p is
// at most rawSmall bytes they are made as syscall.RawSyscall6 makes them,
// without telling the runtime that the goroutine is in a system call: a call
// that cannot block and copies at most rawSmall bytes is as short as the
// runtime's own work around it, and skipping that work saved ~10% of a busy
// server's CPU per line where a batch of 16 lines costs three system calls
// (the scale harness, perf). Larger ones go through syscall.Syscall6, so
// that a copy of megabytes lets the runtime give the P to another goroutine
// meanwhile. (Go's runtime sets its sockets non-blocking, but os.File's Fd
// sets a descriptor blocking, for every descriptor sharing its open file, a
// Conn's too: hence MSG_DONTWAIT, without which a read could hold its P until
// data came.)
//
// Both never grow the stack: so the poller's callbacks that make them
// (rawSock's readFn and writeFn) are the last frames that may, where
// syscall.Read and syscall.Write would add one (see Server.serveConn). The
// race detector's and the sanitizers' builds use those (rawio_unix.go): they
// tell them that bytes read carry what was done before they were written,
// and which memory a read fills. They inline into the callbacks; nosplit,
// where they do not, their own frames cannot grow the stack either.
//
//go:nosplit
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	return rawCall(syscall.SYS_RECVFROM, fd, p, syscall.MSG_DONTWAIT)
}

//go:nosplit
func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	return rawCall(syscall.SYS_SENDTO, fd, p, syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL)
}

// rawSmall is the most bytes a rawRead or rawWrite moves without telling the
// runtime that it is in a system call: at most a few microseconds of copying.
const rawSmall = 64 << 10

//go:nosplit
func rawCall(trap, fd uintptr, p []byte, flags uintptr) (int, syscall.Errno) {
	ptr := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	if len(p) <= rawSmall {
		n, _, errno := syscall.RawSyscall6(trap, fd, ptr, uintptr(len(p)), flags, 0, 0)
		return int(n), errno
	}
	n, _, errno := syscall.Syscall6(trap, fd, ptr, uintptr(len(p)), flags, 0, 0)
	return int(n), errno
}
