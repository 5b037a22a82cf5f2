//go:build !linux

package vfs

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

// fdatasyncConn syncs f; os.File.Sync is safe against a concurrent Close.
func fdatasyncConn(f *os.File) error { return f.Sync() }
