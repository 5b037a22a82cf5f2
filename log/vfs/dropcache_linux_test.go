package vfs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestOSDropCache: the OS file advises the kernel to drop synced pages;
// the bytes still read back (from disk), and the advice on a closed file
// is an error, not a panic.
func TestOSDropCache(t *testing.T) {
	f, err := OS{}.OpenFile(filepath.Join(t.TempDir(), "seg"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("sluice"), 1<<20)
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	d, ok := f.(CacheDropper)
	if !ok {
		t.Fatal("the OS file is not a CacheDropper")
	}
	if err := d.DropCache(0, int64(len(data))&^4095); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back after the drop: %v", err)
	}
	f.Close()
	if err := d.DropCache(0, 4096); err == nil {
		t.Fatal("DropCache on a closed file succeeded")
	}
}
