package vfs

import (
	"os"
	"sort"
)

// OS is the real filesystem.
type OS struct{}

var _ FS = OS{}

// OpenFile opens a real file.
func (OS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &osFile{f}, nil
}

// Remove removes a file or an empty directory.
func (OS) Remove(name string) error { return os.Remove(name) }

// Rename renames a file atomically within one filesystem.
func (OS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// MkdirAll creates dir and its parents.
func (OS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }

// Stat stats name.
func (OS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }

// ReadDir lists the entry names of dir, sorted.
func (OS) ReadDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// SyncDir fsyncs a directory so that entries created, renamed or removed in
// it survive a power loss (ALICE, OSDI'14).
func (OS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

type osFile struct{ *os.File }

func (f *osFile) Sync() error { return fdatasync(f.File) }

func (f *osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
