package vfs

import (
	"os"
	"syscall"
)

// fdatasync flushes data and the metadata needed to read it back (the size),
// skipping timestamps, which is all an append-only log needs. It goes
// through f's SyscallConn, which keeps the descriptor open until it
// returns, so a concurrent Close (the fault filesystem's Crash) is safe.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = syscall.Fdatasync(int(fd)); serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
