//go:build !unix

package vfs

import (
	"os"
	"path/filepath"
)

// fileID identifies a file by its absolute path: Fault.Rename moves it.
type fileID struct{ path string }

func idOf(name string, _ os.FileInfo) (fileID, error) {
	p, err := filepath.Abs(name)
	if err != nil {
		return fileID{}, err
	}
	return fileID{path: p}, nil
}

// dupFile returns a second, writable descriptor of f's file.
func dupFile(f *os.File) (*os.File, error) {
	return os.OpenFile(f.Name(), os.O_WRONLY, 0)
}
