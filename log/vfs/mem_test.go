package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var errInjected = errors.New("injected fault")

// create writes data to a new file and closes it; sync says whether to
// File.Sync it and SyncDir its directory first.
func create(t *testing.T, fsys FS, name string, data string, sync bool) {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := fsys.SyncDir(filepath.Dir(name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustOpen(t *testing.T, fsys FS, name string, flag int) File {
	t.Helper()
	f, err := fsys.OpenFile(name, flag, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func readAll(t *testing.T, m *Mem, name string) string {
	t.Helper()
	b, err := m.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func newMemDir(t *testing.T) *Mem {
	t.Helper()
	m := NewMem()
	if err := m.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMemOpenFlags(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		flag    int
		exists  bool   // create "/d/f" = "hello" first
		wantErr error  // nil for success
		write   string // written with Write after opening
		want    string // contents afterwards
	}{
		{name: "rdonly existing", path: "/d/f", flag: os.O_RDONLY, exists: true, want: "hello"},
		{name: "rdonly missing", path: "/d/f", flag: os.O_RDONLY, wantErr: fs.ErrNotExist},
		{name: "create new", path: "/d/f", flag: os.O_RDWR | os.O_CREATE, write: "abc", want: "abc"},
		{name: "create existing overwrites from 0", path: "/d/f", flag: os.O_RDWR | os.O_CREATE, exists: true, write: "HE", want: "HEllo"},
		{name: "create in missing dir", path: "/nodir/f", flag: os.O_RDWR | os.O_CREATE, wantErr: fs.ErrNotExist},
		{name: "create under a file", path: "/d/f/g", flag: os.O_RDWR | os.O_CREATE, exists: true, wantErr: syscall.ENOTDIR},
		{name: "excl new", path: "/d/f", flag: os.O_RDWR | os.O_CREATE | os.O_EXCL, write: "x", want: "x"},
		{name: "excl existing", path: "/d/f", flag: os.O_RDWR | os.O_CREATE | os.O_EXCL, exists: true, wantErr: fs.ErrExist},
		{name: "excl existing dir", path: "/d", flag: os.O_RDWR | os.O_CREATE | os.O_EXCL, wantErr: fs.ErrExist},
		{name: "trunc", path: "/d/f", flag: os.O_RDWR | os.O_TRUNC, exists: true, want: ""},
		{name: "trunc then write", path: "/d/f", flag: os.O_WRONLY | os.O_TRUNC, exists: true, write: "ab", want: "ab"},
		{name: "append", path: "/d/f", flag: os.O_WRONLY | os.O_APPEND, exists: true, write: " world", want: "hello world"},
		{name: "append create", path: "/d/f", flag: os.O_WRONLY | os.O_APPEND | os.O_CREATE, write: "a", want: "a"},
		{name: "directory", path: "/d", flag: os.O_RDONLY, wantErr: syscall.EISDIR},
		{name: "root", path: "/", flag: os.O_RDONLY, wantErr: syscall.EISDIR},
		{name: "empty name", path: "", flag: os.O_RDONLY, wantErr: fs.ErrNotExist},
		{name: "uncleaned path", path: "/d/./x/../f", flag: os.O_RDONLY, exists: true, want: "hello"},
		{name: "relative path is under root", path: "d/f", flag: os.O_RDONLY, exists: true, want: "hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMemDir(t)
			if tt.exists {
				create(t, m, "/d/f", "hello", true)
			}
			f, err := m.OpenFile(tt.path, tt.flag, 0o600)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("OpenFile = %v, want %v", err, tt.wantErr)
				}
				var pe *fs.PathError
				if !errors.As(err, &pe) || pe.Path != tt.path {
					t.Fatalf("error %v is not a PathError for %q", err, tt.path)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Name() != tt.path {
				t.Errorf("Name() = %q, want %q", f.Name(), tt.path)
			}
			if tt.write != "" {
				if n, err := f.Write([]byte(tt.write)); err != nil || n != len(tt.write) {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := readAll(t, m, "/d/f"); got != tt.want {
				t.Errorf("contents %q, want %q", got, tt.want)
			}
			size, err := f.Size()
			if err != nil || size != int64(len(tt.want)) {
				t.Errorf("Size() = %d, %v; want %d", size, err, len(tt.want))
			}
		})
	}
}

func TestMemAccessModes(t *testing.T) {
	m := newMemDir(t)
	create(t, m, "/d/f", "hello", true)
	buf := make([]byte, 2)
	tests := []struct {
		name string
		flag int
		op   func(f File) error
		ok   bool
	}{
		{"read rdonly", os.O_RDONLY, func(f File) error { _, err := f.ReadAt(buf, 0); return err }, true},
		{"read wronly", os.O_WRONLY, func(f File) error { _, err := f.ReadAt(buf, 0); return err }, false},
		{"read rdwr", os.O_RDWR, func(f File) error { _, err := f.ReadAt(buf, 0); return err }, true},
		{"write rdonly", os.O_RDONLY, func(f File) error { _, err := f.Write(buf); return err }, false},
		{"writeat rdonly", os.O_RDONLY, func(f File) error { _, err := f.WriteAt(buf, 0); return err }, false},
		{"write wronly", os.O_WRONLY, func(f File) error { _, err := f.Write(buf); return err }, true},
		{"truncate rdonly", os.O_RDONLY, func(f File) error { return f.Truncate(1) }, false},
		{"truncate wronly", os.O_WRONLY, func(f File) error { return f.Truncate(1) }, true},
		{"writeat append", os.O_WRONLY | os.O_APPEND, func(f File) error { _, err := f.WriteAt(buf, 0); return err }, false},
		{"sync rdonly", os.O_RDONLY, func(f File) error { return f.Sync() }, true},
		{"negative readat", os.O_RDWR, func(f File) error { _, err := f.ReadAt(buf, -1); return err }, false},
		{"negative writeat", os.O_RDWR, func(f File) error { _, err := f.WriteAt(buf, -1); return err }, false},
		{"negative truncate", os.O_RDWR, func(f File) error { return f.Truncate(-1) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustOpen(t, m, "/d/f", tt.flag)
			defer f.Close()
			if err := tt.op(f); (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestMemReadWrite(t *testing.T) {
	m := newMemDir(t)
	f := mustOpen(t, m, "/d/f", os.O_RDWR|os.O_CREATE)
	defer f.Close()

	if _, err := f.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("def")); err != nil { // continues at the position
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("XY"), 8); err != nil { // leaves a gap
		t.Fatal(err)
	}
	if got, want := readAll(t, m, "/d/f"), "abcdef\x00\x00XY"; got != want {
		t.Fatalf("contents %q, want %q", got, want)
	}
	if _, err := f.Write([]byte("g")); err != nil { // WriteAt did not move the position
		t.Fatal(err)
	}
	if got, want := readAll(t, m, "/d/f"), "abcdefg\x00XY"; got != want {
		t.Fatalf("contents %q, want %q", got, want)
	}

	reads := []struct {
		off   int64
		size  int
		want  string
		wantE error
	}{
		{0, 3, "abc", nil},
		{7, 3, "\x00XY", nil},
		{8, 5, "XY", io.EOF},
		{10, 1, "", io.EOF},
		{100, 1, "", io.EOF},
		{100, 0, "", nil},
	}
	for _, r := range reads {
		p := make([]byte, r.size)
		n, err := f.ReadAt(p, r.off)
		if string(p[:n]) != r.want || err != r.wantE {
			t.Errorf("ReadAt(%d bytes, %d) = %q, %v; want %q, %v", r.size, r.off, p[:n], err, r.want, r.wantE)
		}
	}

	if err := f.Truncate(4); err != nil {
		t.Fatal(err)
	}
	if size, _ := f.Size(); size != 4 {
		t.Fatalf("size after Truncate(4) = %d", size)
	}
	if err := f.Truncate(6); err != nil { // growing zero-fills, old bytes gone
		t.Fatal(err)
	}
	if got, want := readAll(t, m, "/d/f"), "abcd\x00\x00"; got != want {
		t.Fatalf("contents %q, want %q", got, want)
	}
	fi, err := m.Stat("/d/f")
	if err != nil || fi.Size() != 6 || fi.IsDir() || fi.Name() != "f" {
		t.Fatalf("Stat = %v, %v", fi, err)
	}
}

func TestMemClosedHandle(t *testing.T) {
	m := newMemDir(t)
	f := mustOpen(t, m, "/d/f", os.O_RDWR|os.O_CREATE)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ops := map[string]func() error{
		"Close":    f.Close,
		"Sync":     f.Sync,
		"Truncate": func() error { return f.Truncate(0) },
		"Size":     func() error { _, err := f.Size(); return err },
		"ReadAt":   func() error { _, err := f.ReadAt(make([]byte, 1), 0); return err },
		"Write":    func() error { _, err := f.Write([]byte("x")); return err },
		"WriteAt":  func() error { _, err := f.WriteAt([]byte("x"), 0); return err },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if f.Name() != "/d/f" {
		t.Errorf("Name() after Close = %q", f.Name())
	}
}

func TestMemRemoveOpenFile(t *testing.T) {
	m := newMemDir(t)
	f := mustOpen(t, m, "/d/f", os.O_RDWR|os.O_CREATE)
	defer f.Close()
	if _, err := f.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove("/d/f"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stat("/d/f"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat after Remove = %v", err)
	}
	if _, err := f.Write([]byte("def")); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 6)
	if n, err := f.ReadAt(p, 0); n != 6 || err != nil || string(p) != "abcdef" {
		t.Fatalf("ReadAt = %d, %v, %q", n, err, p)
	}
	// A new file at the same name is a different inode.
	create(t, m, "/d/f", "new", false)
	if got := readAll(t, m, "/d/f"); got != "new" {
		t.Fatalf("new file has %q", got)
	}
}

func TestMemRemove(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		wantErr error
	}{
		{"file", "/d/f", nil},
		{"empty dir", "/d/empty", nil},
		{"non-empty dir", "/d", syscall.ENOTEMPTY},
		{"missing", "/d/missing", fs.ErrNotExist},
		{"missing parent", "/x/f", fs.ErrNotExist},
		{"root", "/", syscall.EBUSY},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMemDir(t)
			create(t, m, "/d/f", "x", true)
			if err := m.MkdirAll("/d/empty", 0o755); err != nil {
				t.Fatal(err)
			}
			err := m.Remove(tt.path)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Remove = %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				if _, err := m.Stat(tt.path); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Stat after Remove = %v", err)
				}
			}
		})
	}
}

func TestMemRename(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		wantErr  error
		wantList []string // files afterwards
	}{
		{"simple", "/d/a", "/d/c", nil, []string{"/d/b", "/d/c", "/e/x"}},
		{"replace", "/d/a", "/d/b", nil, []string{"/d/b", "/e/x"}},
		{"across dirs", "/d/a", "/e/a", nil, []string{"/d/b", "/e/a", "/e/x"}},
		{"same name", "/d/a", "/d/a", nil, []string{"/d/a", "/d/b", "/e/x"}},
		{"dir", "/e", "/d/e", nil, []string{"/d/a", "/d/b", "/d/e/x"}},
		{"missing source", "/d/zz", "/d/c", fs.ErrNotExist, nil},
		{"missing target dir", "/d/a", "/zz/a", fs.ErrNotExist, nil},
		{"onto a dir", "/d/a", "/e", syscall.EEXIST, nil},
		{"dir onto a file", "/e", "/d/a", syscall.ENOTDIR, nil},
		{"dir into itself", "/e", "/e/sub", syscall.EINVAL, nil},
		{"target under a file", "/d/a", "/d/b/c", syscall.ENOTDIR, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMemDir(t)
			if err := m.MkdirAll("/e", 0o755); err != nil {
				t.Fatal(err)
			}
			create(t, m, "/d/a", "A", true)
			create(t, m, "/d/b", "B", true)
			create(t, m, "/e/x", "X", true)
			err := m.Rename(tt.old, tt.new)
			if tt.wantErr != nil {
				var le *os.LinkError
				if !errors.Is(err, tt.wantErr) || !errors.As(err, &le) {
					t.Fatalf("Rename = %v, want LinkError %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := m.List(); !reflect.DeepEqual(got, tt.wantList) {
				t.Errorf("List() = %q, want %q", got, tt.wantList)
			}
		})
	}
}

func TestMemRenameKeepsOpenHandle(t *testing.T) {
	m := newMemDir(t)
	f := mustOpen(t, m, "/d/a", os.O_RDWR|os.O_CREATE)
	defer f.Close()
	if err := m.Rename("/d/a", "/d/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, m, "/d/b"); got != "x" {
		t.Fatalf("renamed file has %q", got)
	}
	if f.Name() != "/d/a" {
		t.Errorf("Name() = %q, want the path opened", f.Name())
	}
}

func TestMemDirs(t *testing.T) {
	m := NewMem()
	if err := m.MkdirAll("/a/b/c", 0o750); err != nil {
		t.Fatal(err)
	}
	if err := m.MkdirAll("/a/b/c", 0o750); err != nil { // idempotent
		t.Fatal(err)
	}
	create(t, m, "/a/b/f", "x", false)
	create(t, m, "/a/b/e", "", false)
	if err := m.MkdirAll("/a/b/f/g", 0o750); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("MkdirAll through a file = %v", err)
	}

	dirTests := []struct {
		dir     string
		want    []string
		wantErr error
	}{
		{"/", []string{"a"}, nil},
		{".", []string{"a"}, nil},
		{"/a/b", []string{"c", "e", "f"}, nil},
		{"/a/b/", []string{"c", "e", "f"}, nil},
		{"/a/b/c", []string{}, nil},
		{"/a/missing", nil, fs.ErrNotExist},
		{"/a/b/f", nil, syscall.ENOTDIR},
	}
	for _, tt := range dirTests {
		got, err := m.ReadDir(tt.dir)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("ReadDir(%q) = %q, %v; want %q, %v", tt.dir, got, err, tt.want, tt.wantErr)
		}
		if tt.wantErr == nil {
			if err := m.SyncDir(tt.dir); err != nil {
				t.Errorf("SyncDir(%q) = %v", tt.dir, err)
			}
		} else if err := m.SyncDir(tt.dir); !errors.Is(err, tt.wantErr) {
			t.Errorf("SyncDir(%q) = %v, want %v", tt.dir, err, tt.wantErr)
		}
	}

	statTests := []struct {
		name    string
		isDir   bool
		base    string
		wantErr error
	}{
		{"/", true, "/", nil},
		{"/a/b", true, "b", nil},
		{"/a/b/f", false, "f", nil},
		{"/a/b/zz", false, "", fs.ErrNotExist},
		{"/a/b/f/zz", false, "", syscall.ENOTDIR},
	}
	for _, tt := range statTests {
		fi, err := m.Stat(tt.name)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("Stat(%q) = %v, want %v", tt.name, err, tt.wantErr)
			continue
		}
		if err == nil && (fi.IsDir() != tt.isDir || fi.Name() != tt.base || fi.Mode().IsDir() != tt.isDir) {
			t.Errorf("Stat(%q) = name %q dir %v", tt.name, fi.Name(), fi.IsDir())
		}
	}
	if fi, _ := m.Stat("/a/b/c"); fi.Mode().Perm() != 0o750 {
		t.Errorf("dir perm %v", fi.Mode())
	}
}

// TestMemCrash checks what survives a crash with no torn writes.
func TestMemCrash(t *testing.T) {
	tests := []struct {
		name string
		// run gets a Mem with /d/old = "old" durable.
		run  func(t *testing.T, m *Mem)
		want map[string]string // every file after the crash
	}{
		{
			name: "nothing changed",
			run:  func(t *testing.T, m *Mem) {},
			want: map[string]string{"/d/old": "old"},
		},
		{
			name: "unsynced append dropped",
			run: func(t *testing.T, m *Mem) {
				f := mustOpen(t, m, "/d/old", os.O_WRONLY|os.O_APPEND)
				f.Write([]byte("-more"))
			},
			want: map[string]string{"/d/old": "old"},
		},
		{
			name: "unsynced overwrite dropped",
			run: func(t *testing.T, m *Mem) {
				f := mustOpen(t, m, "/d/old", os.O_WRONLY)
				f.WriteAt([]byte("O"), 0)
			},
			want: map[string]string{"/d/old": "old"},
		},
		{
			name: "synced append kept, later write dropped",
			run: func(t *testing.T, m *Mem) {
				f := mustOpen(t, m, "/d/old", os.O_WRONLY|os.O_APPEND)
				f.Write([]byte("-1"))
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
				f.Write([]byte("-2"))
			},
			want: map[string]string{"/d/old": "old-1"},
		},
		{
			name: "create without SyncDir vanishes despite File.Sync",
			run: func(t *testing.T, m *Mem) {
				f := mustOpen(t, m, "/d/new", os.O_RDWR|os.O_CREATE)
				f.Write([]byte("new"))
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"/d/old": "old"},
		},
		{
			name: "create with SyncDir but no File.Sync is empty",
			run: func(t *testing.T, m *Mem) {
				f := mustOpen(t, m, "/d/new", os.O_RDWR|os.O_CREATE)
				f.Write([]byte("new"))
				if err := m.SyncDir("/d"); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"/d/old": "old", "/d/new": ""},
		},
		{
			name: "create with both syncs survives",
			run: func(t *testing.T, m *Mem) {
				create(t, m, "/d/new", "new", true)
			},
			want: map[string]string{"/d/old": "old", "/d/new": "new"},
		},
		{
			name: "SyncDir of another dir does not help",
			run: func(t *testing.T, m *Mem) {
				if err := m.MkdirAll("/e", 0o755); err != nil {
					t.Fatal(err)
				}
				f := mustOpen(t, m, "/d/new", os.O_RDWR|os.O_CREATE)
				f.Sync()
				m.SyncDir("/e")
				m.SyncDir("/")
			},
			want: map[string]string{"/d/old": "old"},
		},
		{
			name: "unsynced rename undone",
			run: func(t *testing.T, m *Mem) {
				m.Rename("/d/old", "/d/renamed")
			},
			want: map[string]string{"/d/old": "old"},
		},
		{
			name: "unsynced rename over a file undone",
			run: func(t *testing.T, m *Mem) {
				create(t, m, "/d/tmp", "tmp", false)
				f := mustOpen(t, m, "/d/tmp", os.O_RDWR)
				f.Sync()
				m.Rename("/d/tmp", "/d/old")
			},
			want: map[string]string{"/d/old": "old"},
		},
		{
			name: "synced rename over a file kept (atomic replace)",
			run: func(t *testing.T, m *Mem) {
				create(t, m, "/d/tmp", "tmp", false)
				f := mustOpen(t, m, "/d/tmp", os.O_RDWR)
				f.Sync()
				m.Rename("/d/tmp", "/d/old")
				if err := m.SyncDir("/d"); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"/d/old": "tmp"},
		},
		{
			name: "unsynced remove undone",
			run: func(t *testing.T, m *Mem) {
				m.Remove("/d/old")
			},
			want: map[string]string{"/d/old": "old"},
		},
		{
			name: "synced remove kept",
			run: func(t *testing.T, m *Mem) {
				m.Remove("/d/old")
				m.SyncDir("/d")
			},
			want: map[string]string{},
		},
		{
			name: "unsynced truncate undone",
			run: func(t *testing.T, m *Mem) {
				f := mustOpen(t, m, "/d/old", os.O_RDWR)
				f.Truncate(1)
			},
			want: map[string]string{"/d/old": "old"},
		},
		{
			name: "synced truncate kept",
			run: func(t *testing.T, m *Mem) {
				f := mustOpen(t, m, "/d/old", os.O_RDWR)
				f.Truncate(1)
				f.Sync()
			},
			want: map[string]string{"/d/old": "o"},
		},
		{
			name: "unsynced O_TRUNC undone",
			run: func(t *testing.T, m *Mem) {
				mustOpen(t, m, "/d/old", os.O_RDWR|os.O_TRUNC)
			},
			want: map[string]string{"/d/old": "old"},
		},
		{
			name: "unsynced directory removal undone",
			run: func(t *testing.T, m *Mem) {
				m.MkdirAll("/e", 0o755)
				m.Remove("/e")
			},
			want: map[string]string{"/d/old": "old"},
		},
		{
			name: "unsynced directory rename undone",
			run: func(t *testing.T, m *Mem) {
				m.Rename("/d", "/e")
			},
			want: map[string]string{"/d/old": "old"},
		},
		{
			name: "removed open file synced after remove is still gone",
			run: func(t *testing.T, m *Mem) {
				f := mustOpen(t, m, "/d/old", os.O_RDWR)
				m.Remove("/d/old")
				m.SyncDir("/d")
				f.Write([]byte("X"))
				f.Sync()
			},
			want: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMemDir(t)
			create(t, m, "/d/old", "old", true)
			tt.run(t, m)
			m.Crash(CrashOptions{})
			got := map[string]string{}
			for _, name := range m.List() {
				got[name] = readAll(t, m, name)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("after crash %q, want %q", got, tt.want)
			}
			// Whatever survived is durable: a second crash changes nothing.
			m.Crash(CrashOptions{})
			got2 := map[string]string{}
			for _, name := range m.List() {
				got2[name] = readAll(t, m, name)
			}
			if !reflect.DeepEqual(got2, got) {
				t.Errorf("second crash %q, want %q", got2, got)
			}
		})
	}
}

func TestMemCrashInvalidatesHandles(t *testing.T) {
	m := newMemDir(t)
	create(t, m, "/d/f", "abc", true)
	f := mustOpen(t, m, "/d/f", os.O_RDWR)
	m.Crash(CrashOptions{})
	ops := map[string]func() error{
		"Sync":     f.Sync,
		"Truncate": func() error { return f.Truncate(0) },
		"Size":     func() error { _, err := f.Size(); return err },
		"ReadAt":   func() error { _, err := f.ReadAt(make([]byte, 1), 0); return err },
		"Write":    func() error { _, err := f.Write([]byte("x")); return err },
		"WriteAt":  func() error { _, err := f.WriteAt([]byte("x"), 0); return err },
		"Close":    f.Close,
	}
	for name, op := range ops {
		err := op()
		if !errors.Is(err, ErrCrashed) || !errors.Is(err, fs.ErrClosed) {
			t.Errorf("%s after crash = %v, want ErrCrashed", name, err)
		}
		if err != nil && !strings.Contains(err.Error(), "vfs: file handle from before crash") {
			t.Errorf("%s error text %q", name, err)
		}
	}
	if got := readAll(t, m, "/d/f"); got != "abc" {
		t.Fatalf("stale handle changed the file: %q", got)
	}
	g := mustOpen(t, m, "/d/f", os.O_RDWR)
	if _, err := g.Write([]byte("X")); err != nil {
		t.Fatalf("new handle after crash: %v", err)
	}
}

// tornCase builds a file with synced "base" and an unsynced 10000-byte tail.
func tornCase(t *testing.T) (m *Mem, synced, current []byte) {
	t.Helper()
	m = newMemDir(t)
	synced = []byte("durable-prefix")
	current = append([]byte{}, synced...)
	for i := range 10000 {
		current = append(current, byte('a'+i%26))
	}
	f := mustOpen(t, m, "/d/f", os.O_RDWR|os.O_CREATE)
	f.Write(synced)
	f.Sync()
	m.SyncDir("/d")
	f.Write(current[len(synced):])
	return m, synced, current
}

func TestMemCrashTornWrites(t *testing.T) {
	lengths := map[int]bool{}
	for seed := range uint64(50) {
		m, synced, current := tornCase(t)
		m.Crash(CrashOptions{Rand: rand.New(rand.NewPCG(seed, 1)), TornWrites: true})
		got, _ := m.ReadFile("/d/f")
		if len(got) < len(synced) || !bytes.Equal(got, current[:len(got)]) {
			t.Fatalf("seed %d: kept %d bytes that are not a prefix of the written data", seed, len(got))
		}
		lengths[len(got)] = true

		// Deterministic given the seed.
		m2, _, _ := tornCase(t)
		m2.Crash(CrashOptions{Rand: rand.New(rand.NewPCG(seed, 1)), TornWrites: true})
		if got2, _ := m2.ReadFile("/d/f"); !bytes.Equal(got, got2) {
			t.Fatalf("seed %d: two crashes differ", seed)
		}
		// What was kept is now durable.
		m.Crash(CrashOptions{})
		if got3, _ := m.ReadFile("/d/f"); !bytes.Equal(got, got3) {
			t.Fatalf("seed %d: torn data not durable after crash", seed)
		}
	}
	if len(lengths) < 10 {
		t.Errorf("only %d distinct torn lengths in 50 crashes", len(lengths))
	}

	// Without TornWrites the Rand is not used and everything unsynced goes.
	m, synced, _ := tornCase(t)
	m.Crash(CrashOptions{Rand: rand.New(rand.NewPCG(1, 1))})
	if got, _ := m.ReadFile("/d/f"); !bytes.Equal(got, synced) {
		t.Errorf("without TornWrites kept %d bytes", len(got))
	}

	// A nil Rand still works, deterministically.
	m1, _, _ := tornCase(t)
	m2, _, _ := tornCase(t)
	m1.Crash(CrashOptions{TornWrites: true, Garbage: true})
	m2.Crash(CrashOptions{TornWrites: true, Garbage: true})
	b1, _ := m1.ReadFile("/d/f")
	b2, _ := m2.ReadFile("/d/f")
	if !bytes.Equal(b1, b2) {
		t.Errorf("nil Rand crashes differ")
	}
}

func TestMemCrashGarbage(t *testing.T) {
	garbled := 0
	for seed := range uint64(100) {
		m, synced, current := tornCase(t)
		m.Crash(CrashOptions{Rand: rand.New(rand.NewPCG(seed, 2)), TornWrites: true, Garbage: true})
		got, _ := m.ReadFile("/d/f")
		if len(got) < len(synced) || len(got) > len(current) || !bytes.Equal(got[:len(synced)], synced) {
			t.Fatalf("seed %d: bad length %d or synced prefix damaged", seed, len(got))
		}
		// Only the last page of what was kept may differ from what was written.
		intact := max(len(synced), len(got)-tornPage)
		if !bytes.Equal(got[:intact], current[:intact]) {
			t.Fatalf("seed %d: garbage before the last page", seed)
		}
		if !bytes.Equal(got, current[:len(got)]) {
			garbled++
		}
	}
	if garbled == 0 {
		t.Errorf("Garbage never changed any kept bytes in 100 crashes")
	}
}

func TestMemFailSync(t *testing.T) {
	m := newMemDir(t)
	f := mustOpen(t, m, "/d/f", os.O_RDWR|os.O_CREATE)
	m.SyncDir("/d")
	m.FailSync(errInjected, 1) // the second Sync from now fails

	f.Write([]byte("aaaa"))
	if err := f.Sync(); err != nil {
		t.Fatalf("first Sync: %v", err)
	}
	f.Write([]byte("bbbb"))
	err := f.Sync()
	if !errors.Is(err, errInjected) {
		t.Fatalf("second Sync = %v, want the injected error", err)
	}
	if m.SyncCount() != 1 {
		t.Errorf("SyncCount = %d, want 1 (failed syncs do not count)", m.SyncCount())
	}
	// Reads still see the data.
	if got := readAll(t, m, "/d/f"); got != "aaaabbbb" {
		t.Fatalf("after failed sync reads %q", got)
	}
	// fsyncgate: the retry succeeds but the bytes dirty at the failure are
	// not persisted; bytes written afterwards are.
	f.Write([]byte("cccc"))
	if err := f.Sync(); err != nil {
		t.Fatalf("third Sync: %v", err)
	}
	m.Crash(CrashOptions{})
	if got, want := readAll(t, m, "/d/f"), "aaaa\x00\x00\x00\x00cccc"; got != want {
		t.Fatalf("after crash %q, want %q", got, want)
	}
}

func TestMemFailSyncOverwrite(t *testing.T) {
	m := newMemDir(t)
	create(t, m, "/d/f", "0123456789", true)
	f := mustOpen(t, m, "/d/f", os.O_RDWR)
	f.WriteAt([]byte("AB"), 2)
	f.WriteAt([]byte("CD"), 6)
	m.FailSync(errInjected, 0)
	if err := f.Sync(); !errors.Is(err, errInjected) {
		t.Fatalf("Sync = %v", err)
	}
	f.WriteAt([]byte("E"), 7) // rewritten after the failure: persisted
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	m.Crash(CrashOptions{})
	if got, want := readAll(t, m, "/d/f"), "0123456E89"; got != want {
		t.Fatalf("after crash %q, want %q", got, want)
	}
}

func TestMemFailSyncThenCrash(t *testing.T) {
	m := newMemDir(t)
	create(t, m, "/d/f", "old", true)
	f := mustOpen(t, m, "/d/f", os.O_RDWR|os.O_APPEND)
	f.Write([]byte("new"))
	m.FailSync(errInjected, 0)
	if err := f.Sync(); err == nil {
		t.Fatal("Sync succeeded")
	}
	m.Crash(CrashOptions{})
	if got := readAll(t, m, "/d/f"); got != "old" {
		t.Fatalf("failed sync made %q durable", got)
	}
}

func TestMemFailSyncDir(t *testing.T) {
	m := newMemDir(t)
	create(t, m, "/d/a", "a", false)
	m.FailSyncDir(errInjected, 0)
	if err := m.SyncDir("/d"); !errors.Is(err, errInjected) {
		t.Fatalf("SyncDir = %v", err)
	}
	if m.SyncDirCount() != 0 {
		t.Errorf("SyncDirCount = %d after a failure", m.SyncDirCount())
	}
	m.Crash(CrashOptions{})
	if got := m.List(); len(got) != 0 {
		t.Fatalf("failed SyncDir made %q durable", got)
	}
	create(t, m, "/d/a", "a", false)
	if err := m.SyncDir("/d"); err != nil { // one-shot
		t.Fatal(err)
	}
	if m.SyncDirCount() != 1 {
		t.Errorf("SyncDirCount = %d", m.SyncDirCount())
	}
	m.Crash(CrashOptions{})
	if got := m.List(); !reflect.DeepEqual(got, []string{"/d/a"}) {
		t.Fatalf("after SyncDir and crash: %q", got)
	}
}

func TestMemWriteFaults(t *testing.T) {
	tests := []struct {
		name   string
		inject func(m *Mem)
		writes []string
		// wantN and wantErr per write
		wantN   []int
		wantErr []error
		want    string
	}{
		{
			name:    "fail first",
			inject:  func(m *Mem) { m.FailWrite(errInjected, 0) },
			writes:  []string{"ab", "cd"},
			wantN:   []int{0, 2},
			wantErr: []error{errInjected, nil},
			want:    "cd",
		},
		{
			name:    "fail third",
			inject:  func(m *Mem) { m.FailWrite(errInjected, 2) },
			writes:  []string{"ab", "cd", "ef", "gh"},
			wantN:   []int{2, 2, 0, 2},
			wantErr: []error{nil, nil, errInjected, nil},
			want:    "abcdgh",
		},
		{
			name:    "short second",
			inject:  func(m *Mem) { m.ShortWrite(1, 1) },
			writes:  []string{"ab", "cd", "ef"},
			wantN:   []int{2, 1, 2},
			wantErr: []error{nil, io.ErrShortWrite, nil},
			want:    "abcef",
		},
		{
			name:    "short zero",
			inject:  func(m *Mem) { m.ShortWrite(0, 0) },
			writes:  []string{"ab", "cd"},
			wantN:   []int{0, 2},
			wantErr: []error{io.ErrShortWrite, nil},
			want:    "cd",
		},
		{
			name:    "fail wins over short",
			inject:  func(m *Mem) { m.FailWrite(errInjected, 0); m.ShortWrite(0, 1) },
			writes:  []string{"ab", "cd"},
			wantN:   []int{0, 1},
			wantErr: []error{errInjected, io.ErrShortWrite},
			want:    "c",
		},
		{
			name:    "nil error disarms",
			inject:  func(m *Mem) { m.FailWrite(errInjected, 0); m.FailWrite(nil, 0) },
			writes:  []string{"ab"},
			wantN:   []int{2},
			wantErr: []error{nil},
			want:    "ab",
		},
		{
			name:    "cleared",
			inject:  func(m *Mem) { m.FailWrite(errInjected, 0); m.ShortWrite(0, 0); m.ClearFaults() },
			writes:  []string{"ab"},
			wantN:   []int{2},
			wantErr: []error{nil},
			want:    "ab",
		},
	}
	for _, tt := range tests {
		for _, appendMode := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/append=%v", tt.name, appendMode), func(t *testing.T) {
				m := newMemDir(t)
				flag := os.O_RDWR | os.O_CREATE
				if appendMode {
					flag |= os.O_APPEND
				}
				f := mustOpen(t, m, "/d/f", flag)
				tt.inject(m)
				for i, w := range tt.writes {
					n, err := f.Write([]byte(w))
					if n != tt.wantN[i] || !errors.Is(err, tt.wantErr[i]) || (err == nil) != (tt.wantErr[i] == nil) {
						t.Errorf("write %d = %d, %v; want %d, %v", i, n, err, tt.wantN[i], tt.wantErr[i])
					}
				}
				if got := readAll(t, m, "/d/f"); got != tt.want {
					t.Errorf("contents %q, want %q", got, tt.want)
				}
			})
		}
	}

	// WriteAt is counted too.
	m := newMemDir(t)
	f := mustOpen(t, m, "/d/f", os.O_RDWR|os.O_CREATE)
	m.ShortWrite(0, 2)
	if n, err := f.WriteAt([]byte("wxyz"), 3); n != 2 || err != io.ErrShortWrite {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	if got := readAll(t, m, "/d/f"); got != "\x00\x00\x00wx" {
		t.Fatalf("contents %q", got)
	}
}

// waitStalled waits until n syncs are blocked by StallSync.
func waitStalled(t *testing.T, m *Mem, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.mu.Lock()
		k := m.stalled
		m.mu.Unlock()
		if k == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d syncs stalled, want %d", k, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMemStallSync(t *testing.T) {
	m := newMemDir(t)
	create(t, m, "/d/f", "", true)
	f := mustOpen(t, m, "/d/f", os.O_RDWR|os.O_APPEND)
	f.Write([]byte("before"))

	stall := make(chan struct{})
	m.StallSync(stall)
	done := make(chan error, 1)
	go func() { done <- f.Sync() }()
	waitStalled(t, m, 1)

	select {
	case err := <-done:
		t.Fatalf("Sync returned %v while stalled", err)
	case <-time.After(50 * time.Millisecond):
	}
	// The rest of the filesystem is not blocked.
	if _, err := f.Write([]byte("-during")); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 6)
	if _, err := f.ReadAt(p, 0); err != nil || string(p) != "before" {
		t.Fatalf("ReadAt while stalled = %q, %v", p, err)
	}
	if _, err := m.ReadDir("/d"); err != nil {
		t.Fatal(err)
	}
	if m.SyncCount() != 1 { // the one from create
		t.Fatal("stalled Sync counted")
	}

	close(stall)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m.SyncCount() != 2 {
		t.Errorf("SyncCount = %d", m.SyncCount())
	}
	m.StallSync(nil)
	m.Crash(CrashOptions{})
	// Only what was written before the Sync call is durable.
	if got := readAll(t, m, "/d/f"); got != "before" {
		t.Fatalf("after crash %q", got)
	}
}

func TestMemStallReleasedByCrash(t *testing.T) {
	m := newMemDir(t)
	create(t, m, "/d/f", "", true)
	f := mustOpen(t, m, "/d/f", os.O_RDWR)
	f.Write([]byte("x"))
	create(t, m, "/d/g", "", false)

	stall := make(chan struct{})
	defer close(stall)
	m.StallSync(stall)
	syncDone := make(chan error, 1)
	dirDone := make(chan error, 1)
	go func() { syncDone <- f.Sync() }()
	go func() { dirDone <- m.SyncDir("/d") }()
	waitStalled(t, m, 2)
	m.Crash(CrashOptions{})
	if err := <-syncDone; !errors.Is(err, ErrCrashed) {
		t.Errorf("stalled Sync after crash = %v", err)
	}
	if err := <-dirDone; !errors.Is(err, ErrCrashed) {
		t.Errorf("stalled SyncDir after crash = %v", err)
	}
	if got := m.List(); !reflect.DeepEqual(got, []string{"/d/f"}) {
		t.Errorf("after crash %q", got)
	}
	if got := readAll(t, m, "/d/f"); got != "" {
		t.Errorf("stalled sync persisted %q", got)
	}
}

func TestMemStallSyncDir(t *testing.T) {
	m := newMemDir(t)
	stall := make(chan struct{})
	m.StallSync(stall)
	create(t, m, "/d/a", "", false)
	done := make(chan error, 1)
	go func() { done <- m.SyncDir("/d") }()
	waitStalled(t, m, 1)
	create(t, m, "/d/b", "", false) // after SyncDir started
	close(stall)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m.Crash(CrashOptions{})
	if got := m.List(); !reflect.DeepEqual(got, []string{"/d/a"}) {
		t.Errorf("after crash %q, want only /d/a", got)
	}
}

func TestMemClearFaults(t *testing.T) {
	m := newMemDir(t)
	create(t, m, "/d/f", "x", true)
	f := mustOpen(t, m, "/d/f", os.O_RDWR)
	m.FailSync(errInjected, 0)
	m.FailSyncDir(errInjected, 0)
	m.FailWrite(errInjected, 0)
	m.ShortWrite(0, 0)
	m.StallSync(make(chan struct{}))
	m.ClearFaults()
	if _, err := f.Write([]byte("y")); err != nil {
		t.Error(err)
	}
	if err := f.Sync(); err != nil {
		t.Error(err)
	}
	if err := m.SyncDir("/d"); err != nil {
		t.Error(err)
	}
	// FailSync(nil) and FailSyncDir(nil) disarm too.
	m.FailSync(errInjected, 0)
	m.FailSync(nil, 0)
	m.FailSyncDir(errInjected, 0)
	m.FailSyncDir(nil, 0)
	if err := f.Sync(); err != nil {
		t.Error(err)
	}
	if err := m.SyncDir("/d"); err != nil {
		t.Error(err)
	}
	if m.SyncCount() != 3 || m.SyncDirCount() != 3 { // create synced once each
		t.Errorf("counts %d, %d", m.SyncCount(), m.SyncDirCount())
	}
}

func TestMemHelpers(t *testing.T) {
	m := newMemDir(t)

	if err := m.WriteFile("/d/synced", []byte("hello"), true); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile("/d/unsynced", []byte("gone"), false); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile("/nodir/x", nil, true); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteFile in missing dir = %v", err)
	}
	if err := m.WriteFile("/d", nil, true); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("WriteFile on a dir = %v", err)
	}
	if got := m.List(); !reflect.DeepEqual(got, []string{"/d/synced", "/d/unsynced"}) {
		t.Fatalf("List() = %q", got)
	}

	// An open handle sees WriteFile's contents.
	f := mustOpen(t, m, "/d/synced", os.O_RDONLY)
	if err := m.WriteFile("/d/synced", []byte("HELLO!"), true); err != nil {
		t.Fatal(err)
	}
	if size, _ := f.Size(); size != 6 {
		t.Errorf("handle size %d after WriteFile", size)
	}

	if err := m.CorruptAt("/d/synced", 1, 0x20); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, m, "/d/synced"); got != "HeLLO!" {
		t.Fatalf("after CorruptAt %q", got)
	}
	if err := m.CorruptAt("/d/synced", 6, 1); err == nil {
		t.Error("CorruptAt past the end succeeded")
	}
	if err := m.CorruptAt("/d/missing", 0, 1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CorruptAt missing = %v", err)
	}

	if err := m.TruncateFile("/d/synced", 4); err != nil {
		t.Fatal(err)
	}
	if err := m.TruncateFile("/d/synced", -1); err == nil {
		t.Error("TruncateFile(-1) succeeded")
	}
	if _, err := m.ReadFile("/d"); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("ReadFile on a dir = %v", err)
	}

	m.Crash(CrashOptions{})
	if got := m.List(); !reflect.DeepEqual(got, []string{"/d/synced"}) {
		t.Fatalf("after crash List() = %q", got)
	}
	// Corruption and truncation were on disk.
	if got := readAll(t, m, "/d/synced"); got != "HeLL" {
		t.Fatalf("after crash %q", got)
	}

	// TruncateFile can grow, and CorruptAt reaches synced bytes past a
	// pending truncate.
	m.TruncateFile("/d/synced", 6)
	g := mustOpen(t, m, "/d/synced", os.O_RDWR)
	g.Truncate(2)
	if err := m.CorruptAt("/d/synced", 5, 0xff); err != nil {
		t.Fatal(err)
	}
	m.Crash(CrashOptions{})
	if got := readAll(t, m, "/d/synced"); got != "HeLL\x00\xff" {
		t.Fatalf("after grow, corrupt and crash %q", got)
	}
}

// TestMemConcurrent runs a writer, readers, a syncer and a fault injector at
// once; run it with -race.
func TestMemConcurrent(t *testing.T) {
	m := newMemDir(t)
	w := mustOpen(t, m, "/d/log", os.O_RDWR|os.O_CREATE|os.O_APPEND)
	const records, recSize = 500, 16
	stop := make(chan struct{})
	var wg sync.WaitGroup

	for r := range 4 {
		f := mustOpen(t, m, "/d/log", os.O_RDONLY)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer f.Close()
			p := make([]byte, recSize)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				size, err := f.Size()
				if err != nil {
					t.Error(err)
					return
				}
				if size%recSize != 0 && r == 0 {
					// Writes are whole records: the size is always a multiple.
					t.Errorf("size %d not a multiple of %d", size, recSize)
					return
				}
				if n := size / recSize; n > 0 {
					k := int64(i) % n
					if _, err := f.ReadAt(p, k*recSize); err != nil {
						t.Error(err)
						return
					}
					if want := fmt.Sprintf("record-%08d", k); string(p[:len(want)]) != want {
						t.Errorf("record %d reads %q", k, p)
						return
					}
				}
				if _, err := m.Stat("/d/log"); err != nil {
					t.Error(err)
					return
				}
				if _, err := m.ReadDir("/d"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Add(2)
	go func() { // a syncer that sometimes fails
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			w.Sync()
			m.SyncDir("/d")
			m.SyncCount()
		}
	}()
	go func() { // toggles faults that do not affect writes
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			m.FailSync(errInjected, 3)
			m.FailSyncDir(errInjected, 1)
			m.ClearFaults()
		}
	}()

	for i := range records {
		rec := fmt.Sprintf("record-%08d\n", i)
		if _, err := w.Write([]byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if size, _ := w.Size(); size != records*recSize {
		t.Fatalf("size %d", size)
	}
}

// opsScript runs the same operations on any FS under root and records what
// it observes, normalising errors to the classes callers test for.
func opsScript(t *testing.T, fsys FS, root string) []string {
	t.Helper()
	var out []string
	errClass := func(err error) string {
		switch {
		case err == nil:
			return "ok"
		case err == io.EOF:
			return "EOF"
		case err == io.ErrShortWrite:
			return "short"
		case errors.Is(err, fs.ErrNotExist):
			return "notexist"
		case errors.Is(err, fs.ErrExist):
			return "exist"
		case errors.Is(err, fs.ErrClosed):
			return "closed"
		case errors.Is(err, syscall.ENOTEMPTY):
			return "notempty"
		case errors.Is(err, syscall.ENOTDIR):
			return "notdir"
		default:
			return "error"
		}
	}
	logf := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	p := func(name string) string { return filepath.Join(root, name) }
	open := func(name string, flag int) File {
		f, err := fsys.OpenFile(p(name), flag, 0o644)
		logf("open %s %#x: %s", name, flag, errClass(err))
		return f
	}
	size := func(f File) {
		n, err := f.Size()
		logf("size %d %s", n, errClass(err))
	}
	readAt := func(f File, n int, off int64) {
		b := make([]byte, n)
		k, err := f.ReadAt(b, off)
		logf("readat %d@%d: %q %s", n, off, b[:k], errClass(err))
	}
	stat := func(name string) {
		fi, err := fsys.Stat(p(name))
		if err != nil {
			logf("stat %s: %s", name, errClass(err))
			return
		}
		if fi.IsDir() {
			logf("stat %s: dir %s", name, fi.Name())
			return
		}
		logf("stat %s: %s size %d", name, fi.Name(), fi.Size())
	}
	readDir := func(dir string) {
		names, err := fsys.ReadDir(p(dir))
		logf("readdir %s: %q %s", dir, names, errClass(err))
	}

	logf("mkdir: %s", errClass(fsys.MkdirAll(p("seg/sub"), 0o755)))
	logf("mkdir again: %s", errClass(fsys.MkdirAll(p("seg"), 0o755)))
	open("missing", os.O_RDONLY)
	open("nodir/x", os.O_RDWR|os.O_CREATE)

	f := open("seg/a", os.O_RDWR|os.O_CREATE|os.O_EXCL)
	open("seg/a", os.O_RDWR|os.O_CREATE|os.O_EXCL)
	n, err := f.Write([]byte("hello"))
	logf("write %d %s", n, errClass(err))
	n, err = f.WriteAt([]byte("world"), 8)
	logf("writeat %d %s", n, errClass(err))
	size(f)
	readAt(f, 13, 0)
	readAt(f, 4, 11)
	readAt(f, 4, 13)
	readAt(f, 4, 20)
	readAt(f, 0, 20)
	n, err = f.Write([]byte("!"))
	logf("write %d %s", n, errClass(err))
	readAt(f, 13, 0)
	logf("truncate: %s", errClass(f.Truncate(7)))
	size(f)
	logf("truncate grow: %s", errClass(f.Truncate(9)))
	readAt(f, 9, 0)
	logf("sync: %s", errClass(f.Sync()))
	logf("syncdir: %s", errClass(fsys.SyncDir(p("seg"))))
	logf("close: %s", errClass(f.Close()))
	logf("close again: %s", errClass(f.Close()))
	_, err = f.Write([]byte("x"))
	logf("write closed: %s", errClass(err))

	g := open("seg/a", os.O_WRONLY|os.O_APPEND)
	n, err = g.Write([]byte("++"))
	logf("append %d %s", n, errClass(err))
	_, err = g.WriteAt([]byte("x"), 0)
	logf("writeat append: %v", err != nil)
	_, err = g.ReadAt(make([]byte, 1), 0)
	logf("read wronly: %v", err != nil)
	size(g)
	g.Close()

	r := open("seg/a", os.O_RDONLY)
	_, err = r.Write([]byte("x"))
	logf("write rdonly: %v", err != nil)
	readAt(r, 20, 0)

	tr := open("seg/a", os.O_RDWR|os.O_TRUNC)
	size(tr)
	size(r)
	tr.Write([]byte("0123456789"))
	tr.Close()

	create(t, fsys, p("seg/b"), "bee", false)
	stat("seg/a")
	stat("seg/b")
	stat("seg")
	stat("seg/nope")
	stat("seg/a/x")
	readDir("seg")
	readDir("seg/sub")
	readDir("nope")

	logf("rename: %s", errClass(fsys.Rename(p("seg/b"), p("seg/c"))))
	logf("rename replace: %s", errClass(fsys.Rename(p("seg/c"), p("seg/a"))))
	logf("rename missing: %s", errClass(fsys.Rename(p("seg/zz"), p("seg/a"))))
	logf("rename onto dir: %v", fsys.Rename(p("seg/a"), p("seg/sub")) != nil)
	readDir("seg")
	readAt(r, 20, 0) // the old inode, replaced by the rename
	size(r)
	stat("seg/a")

	h := open("seg/a", os.O_RDWR)
	logf("remove open: %s", errClass(fsys.Remove(p("seg/a"))))
	n, err = h.WriteAt([]byte("BEE"), 0)
	logf("write removed %d %s", n, errClass(err))
	readAt(h, 3, 0)
	h.Close()
	r.Close()
	readDir("seg")
	logf("remove missing: %s", errClass(fsys.Remove(p("seg/a"))))
	logf("remove nonempty: %s", errClass(fsys.Remove(p("seg"))))
	logf("remove empty dir: %s", errClass(fsys.Remove(p("seg/sub"))))
	create(t, fsys, p("seg/x"), "", true)
	logf("mkdir through file: %v", fsys.MkdirAll(p("seg/x/y"), 0o755) != nil)
	readDir("seg")
	readDir("")
	return out
}

// compareScripts reports every step where the opsScript results of name
// differ from the OS's.
func compareScripts(t *testing.T, name string, osSteps, steps []string) {
	t.Helper()
	for i := range max(len(osSteps), len(steps)) {
		var o, g string
		if i < len(osSteps) {
			o = osSteps[i]
		}
		if i < len(steps) {
			g = steps[i]
		}
		if o != g {
			t.Errorf("step %d: OS %q, %s %q", i, o, name, g)
		}
	}
}

// TestMemMatchesOS keeps Mem's observable behaviour in line with the real
// filesystem.
func TestMemMatchesOS(t *testing.T) {
	dir := t.TempDir()
	got := opsScript(t, OS{}, dir)

	m := NewMem()
	if err := m.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	want := opsScript(t, m, dir)
	compareScripts(t, "Mem", got, want)
	if testing.Verbose() {
		t.Logf("script:\n%s", strings.Join(got, "\n"))
	}
}

func TestSpans(t *testing.T) {
	addTests := []struct {
		in   []span
		add  span
		want []span
	}{
		{nil, span{2, 4}, []span{{2, 4}}},
		{nil, span{4, 4}, nil},
		{[]span{{0, 2}}, span{4, 6}, []span{{0, 2}, {4, 6}}},
		{[]span{{4, 6}}, span{0, 2}, []span{{0, 2}, {4, 6}}},
		{[]span{{0, 2}}, span{2, 4}, []span{{0, 4}}},
		{[]span{{0, 2}, {4, 6}, {8, 9}}, span{1, 5}, []span{{0, 6}, {8, 9}}},
		{[]span{{1, 2}, {3, 4}}, span{0, 10}, []span{{0, 10}}},
	}
	for _, tt := range addTests {
		if got := addSpan(slices.Clone(tt.in), tt.add); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("addSpan(%v, %v) = %v, want %v", tt.in, tt.add, got, tt.want)
		}
	}
	cutTests := []struct {
		in   []span
		cut  span
		want []span
	}{
		{nil, span{0, 4}, nil},
		{[]span{{0, 10}}, span{3, 3}, []span{{0, 10}}},
		{[]span{{0, 10}}, span{3, 5}, []span{{0, 3}, {5, 10}}},
		{[]span{{0, 10}}, span{0, 10}, nil},
		{[]span{{0, 2}, {4, 6}, {8, 10}}, span{1, 9}, []span{{0, 1}, {9, 10}}},
		{[]span{{0, 2}, {4, 6}}, span{2, 4}, []span{{0, 2}, {4, 6}}},
	}
	for _, tt := range cutTests {
		if got := cutSpan(slices.Clone(tt.in), tt.cut); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("cutSpan(%v, %v) = %v, want %v", tt.in, tt.cut, got, tt.want)
		}
	}
}

// TestMemRepeatedFailedSyncs checks that losses from several failed syncs
// accumulate and that a truncation forgets lost bytes it cuts off.
func TestMemRepeatedFailedSyncs(t *testing.T) {
	m := newMemDir(t)
	create(t, m, "/d/f", "0123456789", true)
	f := mustOpen(t, m, "/d/f", os.O_RDWR)
	f.WriteAt([]byte("A"), 1)
	m.FailSync(errInjected, 0)
	f.Sync()
	f.WriteAt([]byte("B"), 3)
	f.WriteAt([]byte("xyz"), 10)
	m.FailSync(errInjected, 0)
	f.Sync()
	f.Truncate(12)
	f.WriteAt([]byte("Z"), 12)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, m, "/d/f"); got != "0A2B456789xyZ" {
		t.Fatalf("reads %q", got)
	}
	m.Crash(CrashOptions{})
	if got, want := readAll(t, m, "/d/f"), "0123456789\x00\x00Z"; got != want {
		t.Fatalf("after crash %q, want %q", got, want)
	}
}

// TestMemCrashWithReaders crashes while other goroutines use old handles;
// run it with -race.
func TestMemCrashWithReaders(t *testing.T) {
	m := newMemDir(t)
	create(t, m, "/d/f", "data", true)
	var wg sync.WaitGroup
	for range 4 {
		f := mustOpen(t, m, "/d/f", os.O_RDWR)
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, 4)
			for {
				if _, err := f.ReadAt(p, 0); err != nil {
					if !errors.Is(err, ErrCrashed) {
						t.Error(err)
					}
					return
				}
				if _, err := f.Write([]byte("w")); err != nil && !errors.Is(err, ErrCrashed) {
					t.Error(err)
					return
				}
			}
		}()
	}
	time.Sleep(10 * time.Millisecond)
	m.Crash(CrashOptions{TornWrites: true})
	wg.Wait()
	if got := readAll(t, m, "/d/f"); got[:4] != "data" {
		t.Fatalf("after crash %q", got)
	}
}

// After a failed fsync, a second successful one must not persist the bytes
// the failure dropped: on Linux those pages were marked clean and lost.
func TestFailedSyncLossSurvivesLaterSyncs(t *testing.T) {
	m := NewMem()
	if err := m.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := m.OpenFile("/d/f", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	m.SyncDir("/d")
	f.Write([]byte("aaaa"))
	m.FailSync(errors.New("eio"), 0)
	if err := f.Sync(); err == nil {
		t.Fatal("the injected fsync failure did not fire")
	}
	f.Write([]byte("bbbb"))
	for i := 0; i < 2; i++ {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	m.Crash(CrashOptions{})
	got, _ := m.ReadFile("/d/f")
	if string(got) != "\x00\x00\x00\x00bbbb" {
		t.Fatalf("after crash %q, want the failed-sync bytes lost and the later ones kept", got)
	}
}

func TestWritevAt(t *testing.T) {
	for name, fsys := range map[string]FS{"os": OS{}, "mem": NewMem()} {
		dir := "/w"
		if name == "os" {
			dir = t.TempDir()
		}
		fsys.MkdirAll(dir, 0o755)
		f, err := fsys.OpenFile(dir+"/f", os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := f.(VectorWriter); !ok {
			t.Fatalf("%s: file is not a VectorWriter", name)
		}
		// More buffers than IOV_MAX, some empty, at an offset.
		var bufs [][]byte
		var want []byte
		for i := 0; i < 2500; i++ {
			b := bytes.Repeat([]byte{byte(i)}, i%7)
			bufs = append(bufs, b)
			want = append(want, b...)
		}
		n, err := WritevAt(f, bufs, 3)
		if err != nil || n != len(want) {
			t.Fatalf("%s: wrote %d of %d: %v", name, n, len(want), err)
		}
		got := make([]byte, len(want))
		if _, err := f.ReadAt(got, 3); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: read back differs: %v", name, err)
		}
		f.Close()
	}
}
