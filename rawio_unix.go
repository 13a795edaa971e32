//go:build unix && !(linux && !386 && !race && !msan && !asan)

package sluice

import "syscall"

// rawRead and rawWrite are read(2) and write(2) (see rawio_linux.go, which
// 386 has not: its socket calls go through socketcall(2)).
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	if err != nil {
		return 0, err.(syscall.Errno)
	}
	return n, 0
}

func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	if err != nil {
		return 0, err.(syscall.Errno)
	}
	return n, 0
}
