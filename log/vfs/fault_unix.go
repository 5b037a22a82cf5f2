//go:build unix

package vfs

import (
	"fmt"
	"os"
	"syscall"
)

// fileID identifies a file by device and inode, which a rename keeps.
type fileID struct{ dev, ino uint64 }

func idOf(name string, fi os.FileInfo) (fileID, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, fmt.Errorf("vfs: %s: no inode in %T", name, fi.Sys())
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, nil
}

// dupFile returns a second descriptor of f's open file.
func dupFile(f *os.File) (*os.File, error) {
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		return nil, &os.PathError{Op: "dup", Path: f.Name(), Err: err}
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), f.Name()), nil
}
