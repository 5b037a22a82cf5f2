// Package vfs is the small filesystem surface the segment log uses, so tests
// can inject errors, torn writes and the loss of unsynced data (the idea of
// hashicorp/raft-wal's types/vfs.go and pebble's vfs/errorfs).
//
// Two implementations live here: OS, the real filesystem, and Mem, an
// in-memory filesystem that remembers what was synced and can simulate a
// power loss.
package vfs

import (
	"io"
	"os"
)

// File is an open file. Writes append or overwrite at the current position
// (Write) or at an offset (WriteAt); nothing is durable until Sync returns nil.
type File interface {
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Closer
	// Sync makes the file's data durable (fdatasync where available).
	// After an error the file's state on disk is unknown: callers must not
	// retry and carry on (fsyncgate).
	Sync() error
	// Truncate changes the file's size; durable after Sync.
	Truncate(size int64) error
	// Size reports the current size, synced or not.
	Size() (int64, error)
	// Name is the path the file was opened with.
	Name() string
}

// FS is a directory tree. Create, Rename and Remove are durable only after
// SyncDir on the parent directory returns nil.
type FS interface {
	// OpenFile opens name with os.O_* flags. With os.O_APPEND writes go to the end.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Remove(name string) error
	Rename(oldpath, newpath string) error
	// ReadDir lists the names (not paths) of the entries in dir, sorted.
	ReadDir(dir string) ([]string, error)
	MkdirAll(dir string, perm os.FileMode) error
	// SyncDir makes create, rename and remove of entries in dir durable.
	SyncDir(dir string) error
	// Stat reports whether name exists and its size.
	Stat(name string) (os.FileInfo, error)
}

// VectorWriter is a File that writes several buffers contiguously at an
// offset in one call (pwritev), saving the log a copy or a syscall per frame.
type VectorWriter interface {
	WritevAt(bufs [][]byte, off int64) (int, error)
}

// CacheDropper is a File whose page cache can be dropped: the kernel is
// told the bytes [off, off+n) will not be read soon. Dirty pages are not
// dropped, so callers advise only synced ranges. Advice only: data is
// never lost by it.
type CacheDropper interface {
	DropCache(off, n int64) error
}

// WritevAt writes bufs one after another starting at off: in one call when
// f is a VectorWriter, else buffer by buffer. A short total is an error.
func WritevAt(f File, bufs [][]byte, off int64) (int, error) {
	if vw, ok := f.(VectorWriter); ok {
		return vw.WritevAt(bufs, off)
	}
	total := 0
	for _, b := range bufs {
		n, err := f.WriteAt(b, off+int64(total))
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
