package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/log/vfs"
)

// FuzzRecovery feeds arbitrary bytes to recovery. The first input byte picks
// what they become:
//
//	0: the whole active segment file (named after its header when it parses)
//	1: the active segment's frames, after a valid header
//	2: a sealed segment's frames, after a valid header, with no index, followed
//	   by an empty active segment that continues it when it walks clean
//	3: the index of the first sealed segment of a real log (its CRC fixed up,
//	   so the contents are judged, not the checksum)
//	4: start.ckpt beside a real log (CRC fixed up when it is 24 bytes)
//	5: install.ckpt beside a real log (CRC appended)
//	6: clean.ckpt beside a real log (CRC fixed up), then a cleaner pass
//
// Open must not panic or allocate without bound. When it succeeds, reading
// everything, every Entry and Verify must work without panics, every batch
// returned must be whole and contiguous (Read verifies CRCs), and in mode 3,
// where the right answer is known, no wrong data may be returned. A
// refused start.ckpt or install.ckpt is ErrCorrupt; clean.ckpt is a hint,
// so a damaged one never stops the log.
func FuzzRecovery(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		// The fuzzing engine has no per-input time limit: turn a hang into
		// a crash, which it records as a failing input.
		watchdog := time.AfterFunc(20*time.Second, func() {
			panic(fmt.Sprintf("FuzzRecovery: input %q still running after 20s", data))
		})
		defer watchdog.Stop()
		fuzzRecoveryOnce(t, data[0]%7, data[1:])
	})
}

const fuzzDir = "/f"

var fuzzFixture = sync.OnceValues(func() (*fixture, error) {
	var err error
	var fx *fixture
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("fixture: %v", r)
			}
		}()
		fx = buildFuzzFixture()
	}()
	return fx, err
})

// buildFuzzFixture is a small real log: 1 KiB segments, a dense index.
func buildFuzzFixture() *fixture {
	m := vfs.NewMem()
	f := &fixture{opts: Options{SegmentBytes: 1024, IndexIntervalBytes: 128}, files: map[string][]byte{}}
	o := f.opts
	o.FS = m
	l, err := Open(fuzzDir, o)
	if err != nil {
		panic(err)
	}
	for i := 1; i <= 24; i++ {
		e := []Entry{fixEntry(i)}
		if err := l.StoreEntries(e); err != nil {
			panic(err)
		}
		f.entries = append(f.entries, e[0])
	}
	f.start = l.StartOffset()
	for i, in := range l.Segments() {
		f.segs = append(f.segs, fixSeg{path: in.Path, sealed: in.Sealed, size: in.Size, last: in.LastIndex, next: in.NextOffset})
		if in.Sealed != (i < len(l.Segments())-1) {
			panic("fixture: unexpected sealing")
		}
	}
	l.Close()
	for _, p := range m.List() {
		f.files[p], _ = m.ReadFile(p)
	}
	if len(f.segs) < 3 {
		panic(fmt.Sprintf("fixture: %d segments", len(f.segs)))
	}
	return f
}

func fuzzRecoveryOnce(t *testing.T, mode byte, body []byte) {
	m := vfs.NewMem()
	if err := m.MkdirAll(fuzzDir, 0o755); err != nil {
		t.Fatal(err)
	}
	total := 0 // bytes in all files
	put := func(path string, b []byte) {
		total += len(b)
		if err := m.WriteFile(path, b, true); err != nil {
			t.Fatal(err)
		}
	}
	validHdr := segmentHeader{baseIndex: 1, baseOffset: 0, createdMs: 1}.encode()
	first := filepath.Join(fuzzDir, segmentName(0, 1)+segmentExt)
	opts := Options{FS: m, SegmentBytes: 1 << 20, IndexIntervalBytes: 256, MaxEntryBytes: 1 << 20}
	var fx *fixture
	switch mode {
	case 0:
		name := first
		if h, err := decodeSegmentHeader(body); err == nil && h.baseOffset >= 0 {
			name = filepath.Join(fuzzDir, segmentName(h.baseOffset, h.baseIndex)+segmentExt)
		}
		put(name, body)
	case 1:
		put(first, append(validHdr, body...))
	case 2:
		seg := append(validHdr, body...)
		put(first, seg)
		// Name the active segment after where the sealed one ends, when it
		// walks clean, so that recovery goes past the continuity check.
		nextIndex, nextOffset := uint64(1000), int64(1000)
		if f, err := m.OpenFile(first, os.O_RDONLY, 0); err == nil {
			w, err := walk(f, first, segmentHeader{baseIndex: 1}, walkStart(segmentHeader{baseIndex: 1}), int64(len(seg)), 256)
			if err == nil && w.bad == nil && w.last >= 1 && w.next >= 0 {
				nextIndex, nextOffset = w.last+1, w.next
			}
			f.Close()
		}
		active := segmentHeader{baseIndex: nextIndex, baseOffset: nextOffset, createdMs: 2}.encode()
		put(filepath.Join(fuzzDir, segmentName(nextOffset, nextIndex)+segmentExt), active)
	case 3, 4, 5, 6:
		var err error
		if fx, err = fuzzFixture(); err != nil {
			t.Fatal(err)
		}
		opts.SegmentBytes, opts.IndexIntervalBytes = fx.opts.SegmentBytes, fx.opts.IndexIntervalBytes
		for p, b := range fx.files {
			put(p, b)
		}
		switch mode {
		case 3:
			idx := body
			if len(idx) >= indexHeaderSize {
				idx = withIndexCRC(idx)
			}
			put(strings.TrimSuffix(fx.segs[0].path, segmentExt)+indexExt, idx)
		case 4, 6:
			ck := bytes.Clone(body)
			if len(ck) == checkpointSize {
				le.PutUint32(ck[20:], crc32.Checksum(ck[:20], crcTable))
			}
			put(filepath.Join(fuzzDir, map[byte]string{4: checkpointName, 6: cleanName}[mode]), ck)
		case 5:
			put(filepath.Join(fuzzDir, installName), le.AppendUint32(bytes.Clone(body), crc32.Checksum(body, crcTable)))
		}
	}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	l, err := Open(fuzzDir, opts)
	runtime.ReadMemStats(&after)
	if alloc, limit := after.TotalAlloc-before.TotalAlloc, uint64(8<<20+64*len(body)); alloc > limit {
		t.Fatalf("Open allocated %d bytes for a %d-byte input (limit %d)", alloc, len(body), limit)
	}
	if err != nil {
		var ce *CorruptError
		if errors.Is(err, ErrCorrupt) && !errors.As(err, &ce) {
			t.Fatalf("ErrCorrupt without a *CorruptError: %v", err)
		}
		if (mode == 3 || mode == 4 || mode == 5) && !errors.Is(err, ErrCorrupt) {
			// A checksummed index that lies about the segment's end may be
			// refused by the continuity check; anything else is a bug.
			t.Fatalf("open with a bad index or checkpoint: %v", err)
		}
		if mode == 6 {
			t.Fatalf("a clean.ckpt stopped the log: %v", err)
		}
		return
	}
	defer l.Close()
	if mode == 6 {
		if _, err := l.Compact(CompactOptions{Below: l.EndOffset()}); err != nil {
			t.Fatalf("compact with a fuzzed clean.ckpt: %v", err)
		}
	}

	// Kafka view: whole batches, contiguous, each verified by Read.
	var got [][]byte
	from, end := l.StartOffset(), l.EndOffset()
	for from < end {
		res, err := l.Read(from, 1, -1)
		if err != nil {
			if mode == 3 && errors.Is(err, ErrCorrupt) {
				break // a lying index may be refused at read; wrong data may not be served
			}
			t.Fatalf("read at %d of [%d, %d) after a clean open: %v", from, l.StartOffset(), end, err)
		}
		if len(res.Batches) != 1 {
			t.Fatalf("read at %d returned %d batches", from, len(res.Batches))
		}
		b := res.Batches[0]
		base := int64(binary.BigEndian.Uint64(b[0:8]))
		next := base + int64(int32(binary.BigEndian.Uint32(b[23:27]))) + 1
		if base > from || next <= from || next != res.Next {
			t.Fatalf("read at %d returned a batch [%d, %d), Next %d", from, base, next, res.Next)
		}
		got = append(got, b)
		from = next
	}
	if mode == 3 {
		want := fx.expectedBatches(uint64(len(fx.entries)))
		for i := range got {
			if i >= len(want) || !bytes.Equal(got[i], want[i]) {
				t.Fatalf("read returned wrong data for batch %d", i)
			}
		}
	}
	// Raft view.
	if last := l.LastIndex(); last > 0 {
		if first := l.FirstIndex(); first == 0 || last < first || last-first > uint64(total)/frameHeaderSize {
			t.Fatalf("index range [%d, %d] from %d bytes of files", first, last, total)
		}
		for i := l.FirstIndex(); i <= last; i++ {
			e, err := l.Entry(i)
			if err != nil {
				if mode == 3 && errors.Is(err, ErrCorrupt) {
					continue
				}
				t.Fatalf("Entry(%d) of [%d, %d]: %v", i, l.FirstIndex(), last, err)
			}
			if e.Index != i {
				t.Fatalf("Entry(%d) returned index %d", i, e.Index)
			}
			if mode == 3 && !sameEntry(e, fx.entries[i-1]) {
				t.Fatalf("Entry(%d) returned wrong data", i)
			}
		}
	}
	if err := l.Verify(); err != nil {
		t.Fatalf("Verify after a clean open: %v", err)
	}
	// The recovered log takes appends and reopens to the same state.
	if mode == 1 || mode == 2 {
		last, endOff := l.LastIndex(), l.EndOffset()
		if _, err := l.Append(testBatch(2, 1, 3)); err != nil {
			t.Fatalf("append after recovery: %v", err)
		}
		l.Close()
		l2, err := Open(fuzzDir, opts)
		if err != nil {
			t.Fatalf("reopen after append: %v", err)
		}
		defer l2.Close()
		if l2.LastIndex() != last+1 || l2.EndOffset() != endOff+2 {
			t.Fatalf("reopen: last %d end %d, want %d %d", l2.LastIndex(), l2.EndOffset(), last+1, endOff+2)
		}
		if err := l2.Verify(); err != nil {
			t.Fatalf("verify after reopen: %v", err)
		}
	}
}

// fuzzSeeds builds inputs from real segments: valid, torn, bit-flipped.
func fuzzSeeds(tb testing.TB) [][]byte {
	m := vfs.NewMem()
	clock := func() time.Time { return time.Unix(1_700_000_000, 0) } // deterministic seeds
	l, err := Open("/s", Options{FS: m, SegmentBytes: 2048, IndexIntervalBytes: 256, Now: clock})
	if err != nil {
		tb.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		if err := l.StoreEntries([]Entry{fixEntry(i)}); err != nil {
			tb.Fatal(err)
		}
	}
	segs := l.Segments()
	l.Close()
	sealed, _ := m.ReadFile(segs[0].Path)
	active, _ := m.ReadFile(segs[len(segs)-1].Path)
	// mode 1 and 2 take frames after the header; rebase them to index 1,
	// offset 0 by using the first segment's frames.
	frames := sealed[segmentHeaderSize:]
	flipped := append([]byte(nil), frames...)
	flipped[len(flipped)/2] ^= 0x08
	garbageTail := append(append([]byte(nil), frames...), bytes.Repeat([]byte{0xA5}, 300)...)
	fx, err := fuzzFixture()
	if err != nil {
		tb.Fatal(err)
	}
	idx := fx.files[strings.TrimSuffix(fx.segs[0].path, segmentExt)+indexExt]
	idxFlipped := append([]byte(nil), idx...)
	idxFlipped[indexHeaderSize+indexEntrySize+8] ^= 0x01
	with := func(mode byte, b []byte) []byte { return append([]byte{mode}, b...) }
	// A checksummed header with base index 0 (the log never writes one): it
	// used to open as an empty segment whose LastIndex was 2^64-1.
	zeroBase := segmentHeader{baseIndex: 0, baseOffset: 0, createdMs: 1}.encode()
	return [][]byte{
		with(0, sealed),
		with(0, active),
		with(0, sealed[:segmentHeaderSize-3]),
		with(1, frames),
		with(1, frames[:len(frames)-17]),
		with(1, flipped),
		with(1, garbageTail),
		with(2, frames),
		with(2, frames[:len(frames)/2]),
		with(3, idx),
		with(3, idxFlipped),
		with(3, idx[:indexHeaderSize+5]),
		with(0, zeroBase),
		with(0, append(zeroBase, frames...)),
		with(4, encodeCheckpoint(0)),
		with(4, encodeCheckpoint(fx.segs[1].next)),
		with(5, installSeed(fx, true)),
		with(5, installSeed(fx, false)),
		with(6, cleanSeed(fx.segs[0].next)),
	}
}

// installSeed is a real install.ckpt (without its CRC) over the fixture's
// segments: the staged files already moved in (all in the log directory),
// or none.
func installSeed(fx *fixture, moved bool) []byte {
	var files []SnapshotFile
	if moved {
		for _, sg := range fx.segs {
			files = append(files, SnapshotFile{Name: filepath.Base(sg.path), Size: sg.size})
		}
	}
	last := fx.segs[len(fx.segs)-1]
	p := SnapshotPoint{LastIndex: last.last, LastTerm: fx.entries[last.last-1].Term, NextOffset: last.next, StartOffset: fx.start}
	b := encodeInstall("s1", p, files)
	return b[:len(b)-4]
}

func cleanSeed(v int64) []byte {
	b := encodeCheckpoint(v)
	copy(b, cleanMagic)
	return b
}

var writeFuzzCorpus = flag.Bool("fuzzrecovery.writecorpus", false, "rewrite FuzzRecovery's generated seeds in testdata/fuzz/FuzzRecovery")

// TestFuzzCorpusUpToDate checks the checked-in seeds are the ones
// fuzzSeeds generates (run with -fuzzrecovery.writecorpus to rewrite them).
// Inputs the fuzzer found are checked in by hand beside them.
func TestFuzzCorpusUpToDate(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRecovery")
	names := []string{
		"mode0-sealed-segment", "mode0-active-segment", "mode0-torn-header",
		"mode1-valid-frames", "mode1-torn-frame", "mode1-bit-flip", "mode1-garbage-tail",
		"mode2-sealed-valid", "mode2-sealed-torn",
		"mode3-index-valid", "mode3-index-entry-flip", "mode3-index-truncated",
		"crasher-mode0-base-index-zero-hang", "mode0-base-index-zero-with-frames",
		"mode4-start-zero", "mode4-start-second-segment", "mode5-install-moved", "mode5-install-empty",
		"mode6-clean-first-segment",
	}
	seeds := fuzzSeeds(t)
	if len(seeds) != len(names) {
		t.Fatalf("%d seeds, %d names", len(seeds), len(names))
	}
	if *writeFuzzCorpus {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range seeds {
		name := names[i]
		if !strings.HasPrefix(name, "crasher-") {
			name = "seed-" + name
		}
		path := filepath.Join(dir, name)
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if *writeFuzzCorpus {
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -fuzzrecovery.writecorpus)", err)
		}
		if string(got) != content {
			t.Fatalf("%s is stale (run with -fuzzrecovery.writecorpus)", path)
		}
	}
}
