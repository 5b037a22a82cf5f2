package log

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/sluicemq/sluice/log/vfs"
)

// The corruption table: every case damages a log that was written through
// the Log itself and closed cleanly, then checks that the damage is either
// recovered (reported, nothing acknowledged before it lost, Verify clean) or
// refused (ErrCorrupt naming the file and a byte offset at or before the
// damage). Anything else, in particular wrong data returned without an error
// or acknowledged data gone without a recovery report, fails the case.

const fixDir = "/data/p0"

// fixFrame is one frame of a fixture segment, as found on disk.
type fixFrame struct {
	pos, size int64
	index     uint64
	batch     bool
}

type fixSeg struct {
	path   string // the .seg file
	sealed bool
	size   int64
	hdr    segmentHeader
	last   uint64
	next   int64
	frames []fixFrame
}

func (s fixSeg) idx() string { return strings.TrimSuffix(s.path, segmentExt) + indexExt }

// fixture is a closed log: its files and what was acknowledged into it.
type fixture struct {
	opts    Options // FS unset
	files   map[string][]byte
	entries []Entry // entries[i].Index == i+1; Data as stored (offset stamped)
	segs    []fixSeg
	start   int64 // the log start offset (a start.ckpt is part of every fixture)
}

func (f *fixture) active() fixSeg { return f.segs[len(f.segs)-1] }

// fixEntry is the entry with Raft index i of a fixture.
func fixEntry(i int) Entry {
	if i%5 == 0 {
		return Entry{Index: uint64(i), Term: uint64(1 + i/12), Type: 2, Data: []byte(fmt.Sprintf("configuration change %d", i))}
	}
	return Entry{Index: uint64(i), Term: uint64(1 + i/12), Batch: true, Data: testBatch(1+i%4, int64(i)*100, 20+(i*37)%120)}
}

// buildFixture writes entries one StoreEntries call (one fsync) at a time
// until there are at least minSealed sealed segments and the active segment
// is at least minActive bytes with a batch as its last frame.
func buildFixture(t testing.TB, segBytes int64, interval, minSealed int, minActive int64) *fixture {
	t.Helper()
	m := vfs.NewMem()
	f := &fixture{opts: Options{SegmentBytes: segBytes, IndexIntervalBytes: interval}}
	o := f.opts
	o.FS = m
	l := mustOpen(t, fixDir, o)
	for i := 1; ; i++ {
		if i > 10000 {
			t.Fatal("fixture never reached its shape")
		}
		e := []Entry{fixEntry(i)}
		if err := l.StoreEntries(e); err != nil {
			t.Fatal(err)
		}
		f.entries = append(f.entries, e[0])
		if i == 3 {
			// A start offset inside the first batch: every fixture has a start.ckpt.
			if err := l.DeleteBefore(1); err != nil {
				t.Fatal(err)
			}
		}
		segs := l.Segments()
		if len(segs)-1 >= minSealed && segs[len(segs)-1].Size >= minActive && e[0].Batch {
			break
		}
	}
	f.start = l.StartOffset()
	infos := l.Segments()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f.files = map[string][]byte{}
	for _, p := range m.List() {
		b, err := m.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f.files[p] = b
	}
	for i, in := range infos {
		s := fixSeg{path: in.Path, sealed: i < len(infos)-1, size: in.Size, last: in.LastIndex, next: in.NextOffset}
		b := f.files[in.Path]
		if int64(len(b)) != in.Size {
			t.Fatalf("%s: %d bytes on disk, log says %d", in.Path, len(b), in.Size)
		}
		var err error
		if s.hdr, err = decodeSegmentHeader(b); err != nil {
			t.Fatal(err)
		}
		for pos := int64(segmentHeaderSize); pos < int64(len(b)); {
			h, ok := parseFrameHeader(b[pos:])
			if !ok {
				t.Fatalf("%s: no frame at %d", in.Path, pos)
			}
			s.frames = append(s.frames, fixFrame{pos: pos, size: h.size(), index: h.index, batch: h.isBatch()})
			pos += h.size()
		}
		if s.sealed {
			if _, ok := f.files[s.idx()]; !ok {
				t.Fatalf("sealed %s has no index", in.Path)
			}
		}
		f.segs = append(f.segs, s)
	}
	return f
}

// restore returns a fresh Mem holding the fixture's files, all durable.
func (f *fixture) restore(t testing.TB) *vfs.Mem {
	t.Helper()
	m := vfs.NewMem()
	if err := m.MkdirAll(fixDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for p, b := range f.files {
		if err := m.WriteFile(p, b, true); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func (f *fixture) options(m *vfs.Mem, verify bool) Options {
	o := f.opts
	o.FS = m
	o.VerifyOnOpen = verify
	return o
}

var (
	fixSmallOnce, fixBigOnce sync.Once
	fixSmall, fixBig         *fixture
)

// smallFixture: 4 KiB segments, at least 5 sealed, an active one with
// several frames.
func smallFixture(t testing.TB) *fixture {
	fixSmallOnce.Do(func() { fixSmall = buildFixture(t, 4096, 512, 5, 1500) })
	if fixSmall == nil {
		t.Fatal("small fixture failed")
	}
	return fixSmall
}

// bigFixture: 16 KiB segments so that whole 4 KiB pages lie in the middle
// of both sealed and active segments.
func bigFixture(t testing.TB) *fixture {
	fixBigOnce.Do(func() { fixBig = buildFixture(t, 16384, 1024, 2, 12500) })
	if fixBig == nil {
		t.Fatal("big fixture failed")
	}
	return fixBig
}

type outcome int

const (
	recovered   outcome = iota // Open repairs and reports; nothing acknowledged before the damage is lost
	refusedOpen                // Open fails with a *CorruptError
	refusedRead                // Open trusts a good index; reads, Verify and VerifyOnOpen report the damage
)

func (o outcome) String() string {
	return [...]string{"recovered", "refused-open", "refused-read"}[o]
}

type corruptionCase struct {
	name   string
	fix    *fixture
	damage func(t testing.TB, m *vfs.Mem)
	out    outcome

	// recovered
	keep      uint64 // last index that survives; 0 means every entry
	truncFile string // the torn tail that must be reported cut
	truncAt   int64
	rebuilt   []string // exactly these indexes rebuilt
	removed   []string // exactly these files removed

	// refused
	file     string // the file the *CorruptError must name
	damageAt int64  // its offset must be at or before this
}

func TestCorruptionTable(t *testing.T) {
	cases := corruptionCases(t)
	counts := map[outcome]int{}
	for _, tc := range cases {
		counts[tc.out]++
	}
	if len(cases) < 120 {
		t.Fatalf("only %d corruption cases", len(cases))
	}
	t.Logf("%d corruption cases: %d recovered, %d refused at open, %d refused at read (and by VerifyOnOpen)",
		len(cases), counts[recovered], counts[refusedOpen], counts[refusedRead])
	names := map[string]bool{}
	for _, tc := range cases {
		if names[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		names[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			runCorruptionCase(t, tc)
		})
	}
}

func runCorruptionCase(t *testing.T, tc corruptionCase) {
	damaged := func() *vfs.Mem {
		m := tc.fix.restore(t)
		tc.damage(t, m)
		return m
	}
	switch tc.out {
	case recovered:
		checkRecovered(t, tc, damaged(), false)
		checkRecovered(t, tc, damaged(), true)
	case refusedOpen:
		for _, verify := range []bool{false, true} {
			l, err := Open(fixDir, tc.fix.options(damaged(), verify))
			if err == nil {
				l.Close()
				t.Fatalf("VerifyOnOpen=%v: Open accepted the damage", verify)
			}
			checkCorruptErr(t, fmt.Sprintf("Open (VerifyOnOpen=%v)", verify), err, tc.file, tc.damageAt)
		}
	case refusedRead:
		checkRefusedRead(t, tc, damaged())
		l, err := Open(fixDir, tc.fix.options(damaged(), true))
		if err == nil {
			l.Close()
			t.Fatal("VerifyOnOpen: Open accepted the damage")
		}
		checkCorruptErr(t, "Open (VerifyOnOpen)", err, tc.file, tc.damageAt)
	}
}

// checkCorruptErr asserts err is ErrCorrupt with a *CorruptError naming file
// at an offset in [0, maxOff].
func checkCorruptErr(t testing.TB, what string, err error, file string, maxOff int64) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: error %v is not ErrCorrupt", what, err)
	}
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: error %v is not a *CorruptError", what, err)
	}
	if ce.File != file {
		t.Fatalf("%s: error names %s, want %s (%v)", what, ce.File, file, err)
	}
	if ce.Offset < 0 || ce.Offset > maxOff {
		t.Fatalf("%s: error at byte %d, want within [0, %d] (%v)", what, ce.Offset, maxOff, err)
	}
}

// expectedBatches are the fixture's batches with index <= keep.
func (f *fixture) expectedBatches(keep uint64) [][]byte {
	var out [][]byte
	for _, e := range f.entries {
		if e.Batch && e.Index <= keep {
			out = append(out, e.Data)
		}
	}
	return out
}

// scanRead reads the whole log one batch at a time from its start offset.
// A read that returns nothing before the end without an error is reported
// as an error: a consumer would be stuck there forever.
func scanRead(l *Log) ([][]byte, error) {
	var out [][]byte
	from := l.StartOffset()
	for end := l.EndOffset(); from < end; {
		res, err := l.Read(from, 1, -1)
		if err != nil {
			return out, err
		}
		if len(res.Batches) == 0 || res.Next <= from {
			return out, fmt.Errorf("read at %d returned nothing (next %d) before the end %d", from, res.Next, end)
		}
		out = append(out, res.Batches...)
		from = res.Next
	}
	return out, nil
}

func sameEntry(got, want Entry) bool {
	return got.Index == want.Index && got.Term == want.Term && got.Type == want.Type &&
		got.Batch == want.Batch && got.BaseOffset == want.BaseOffset && bytes.Equal(got.Data, want.Data)
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

func checkRecovered(t *testing.T, tc corruptionCase, m *vfs.Mem, verify bool) {
	t.Helper()
	f := tc.fix
	keep := tc.keep
	if keep == 0 {
		keep = uint64(len(f.entries))
	}
	var preSize int64
	if tc.truncFile != "" {
		fi, err := m.Stat(tc.truncFile)
		if err != nil {
			t.Fatal(err)
		}
		preSize = fi.Size()
	}
	l, err := Open(fixDir, f.options(m, verify))
	if err != nil {
		t.Fatalf("VerifyOnOpen=%v: Open: %v", verify, err)
	}
	defer func() { l.Close() }()
	r := l.Recovery()
	if r.TruncatedBytes == 0 && len(r.RebuiltIndexes) == 0 && len(r.RemovedFiles) == 0 {
		t.Fatalf("nothing reported recovered: %+v", r)
	}
	if tc.truncFile != "" {
		if r.TruncatedFile != tc.truncFile || r.TruncatedAt != tc.truncAt || r.TruncatedBytes != preSize-tc.truncAt {
			t.Fatalf("recovery %+v, want %s cut at %d (%d bytes)", r, tc.truncFile, tc.truncAt, preSize-tc.truncAt)
		}
	} else if r.TruncatedBytes != 0 || r.TruncatedFile != "" {
		t.Fatalf("recovery cut a tail that was not damaged: %+v", r)
	}
	if got, want := sortedCopy(r.RebuiltIndexes), sortedCopy(tc.rebuilt); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rebuilt indexes %v, want %v", got, want)
	}
	if got, want := sortedCopy(r.RemovedFiles), sortedCopy(tc.removed); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("removed files %v, want %v", got, want)
	}
	checkHolds(t, l, f, keep)
	if t.Failed() {
		return
	}

	// The repaired log keeps working, and a clean reopen repairs nothing more.
	b := testBatch(2, 7, 9)
	off := mustAppend(t, l, b)
	if off != f.entries[keep-1].BaseOffset+offsetsOf(f.entries[keep-1]) {
		t.Fatalf("append after recovery at offset %d", off)
	}
	l.Close()
	l = mustOpen(t, fixDir, f.options(m, verify))
	if r := l.Recovery(); r.TruncatedBytes != 0 || len(r.RebuiltIndexes) != 0 || len(r.RemovedFiles) != 0 {
		t.Fatalf("second open repaired again: %+v", r)
	}
	if l.LastIndex() != keep+1 || l.EndOffset() != off+2 {
		t.Fatalf("after reopen last %d end %d, want %d %d", l.LastIndex(), l.EndOffset(), keep+1, off+2)
	}
	if err := l.Verify(); err != nil {
		t.Fatal(err)
	}
}

func offsetsOf(e Entry) int64 {
	if !e.Batch {
		return 0
	}
	return int64(batchLastOffsetDelta(e.Data)) + 1
}

func batchLastOffsetDelta(b []byte) int32 {
	return int32(uint32(b[23])<<24 | uint32(b[24])<<16 | uint32(b[25])<<8 | uint32(b[26]))
}

// checkHolds asserts l holds exactly the fixture's entries 1..keep.
func checkHolds(t *testing.T, l *Log, f *fixture, keep uint64) {
	t.Helper()
	if l.FirstIndex() != 1 || l.LastIndex() != keep {
		t.Fatalf("indexes [%d, %d], want [1, %d]", l.FirstIndex(), l.LastIndex(), keep)
	}
	if l.StartOffset() != f.start {
		t.Fatalf("start offset %d, want %d", l.StartOffset(), f.start)
	}
	want := f.expectedBatches(keep)
	got, err := scanRead(l)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d batches, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
	for i := uint64(1); i <= keep; i++ {
		e, err := l.Entry(i)
		if err != nil {
			t.Fatalf("Entry(%d): %v", i, err)
		}
		if !sameEntry(e, f.entries[i-1]) {
			t.Fatalf("Entry(%d) differs", i)
		}
	}
	if _, err := l.Entry(keep + 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Entry(%d) past the end: %v", keep+1, err)
	}
	if err := l.Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func checkRefusedRead(t *testing.T, tc corruptionCase, m *vfs.Mem) {
	t.Helper()
	f := tc.fix
	l, err := Open(fixDir, f.options(m, false))
	if err != nil {
		// Refusing at open is stronger than the index lets Open be; accept it
		// only as a proper refusal.
		checkCorruptErr(t, "Open", err, tc.file, tc.damageAt)
		return
	}
	defer l.Close()
	// Kafka reads: the right batches, then the error. A read may complete
	// only if it never needed the damaged frame (a Raft entry that is not a
	// batch), and then it must have returned every batch.
	want := f.expectedBatches(uint64(len(f.entries)))
	got, rerr := scanRead(l)
	for i := range got {
		if i >= len(want) || !bytes.Equal(got[i], want[i]) {
			t.Fatalf("read returned wrong data for batch %d", i)
		}
	}
	if rerr != nil {
		checkCorruptErr(t, "Read", rerr, tc.file, tc.damageAt)
	} else if len(got) != len(want) {
		t.Fatalf("reading the whole log returned %d batches of %d and no error", len(got), len(want))
	}
	// Raft reads: every entry is right or refused, and the damage is found.
	found := false
	for i := range f.entries {
		e, err := l.Entry(uint64(i + 1))
		if err != nil {
			checkCorruptErr(t, fmt.Sprintf("Entry(%d)", i+1), err, tc.file, tc.damageAt)
			found = true
			continue
		}
		if !sameEntry(e, f.entries[i]) {
			t.Fatalf("Entry(%d) returned wrong data", i+1)
		}
	}
	if !found {
		t.Fatal("every Entry succeeded on a damaged segment")
	}
	checkCorruptErr(t, "Verify", l.Verify(), tc.file, tc.damageAt)
}

// --- damage helpers ---

func flipAt(path string, off int64, bit byte) func(testing.TB, *vfs.Mem) {
	return func(t testing.TB, m *vfs.Mem) {
		t.Helper()
		if err := m.CorruptAt(path, off, bit); err != nil {
			t.Fatal(err)
		}
	}
}

func truncateTo(path string, size int64) func(testing.TB, *vfs.Mem) {
	return func(t testing.TB, m *vfs.Mem) {
		t.Helper()
		if err := m.TruncateFile(path, size); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(path string, data []byte) func(testing.TB, *vfs.Mem) {
	return func(t testing.TB, m *vfs.Mem) {
		t.Helper()
		if err := m.WriteFile(path, data, true); err != nil {
			t.Fatal(err)
		}
	}
}

func removeFiles(paths ...string) func(testing.TB, *vfs.Mem) {
	return func(t testing.TB, m *vfs.Mem) {
		t.Helper()
		for _, p := range paths {
			if err := m.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := m.SyncDir(filepath.Dir(p)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func renameFile(from, to string) func(testing.TB, *vfs.Mem) {
	return func(t testing.TB, m *vfs.Mem) {
		t.Helper()
		if err := m.Rename(from, to); err != nil {
			t.Fatal(err)
		}
		if err := m.SyncDir(filepath.Dir(to)); err != nil {
			t.Fatal(err)
		}
	}
}

// zeroRange overwrites [from, to) of path with zeros.
func zeroRange(path string, from, to int64) func(testing.TB, *vfs.Mem) {
	return func(t testing.TB, m *vfs.Mem) {
		t.Helper()
		b, err := m.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		clear(b[from:to])
		if err := m.WriteFile(path, b, true); err != nil {
			t.Fatal(err)
		}
	}
}

func both(a, b func(testing.TB, *vfs.Mem)) func(testing.TB, *vfs.Mem) {
	return func(t testing.TB, m *vfs.Mem) { a(t, m); b(t, m) }
}

// withIndexCRC recomputes an index file's checksum, so that decodeIndex judges
// its contents rather than its checksum.
func withIndexCRC(b []byte) []byte {
	b = append([]byte(nil), b...)
	crc := crc32.Update(0, crcTable, b[:60])
	crc = crc32.Update(crc, crcTable, b[indexHeaderSize:])
	le.PutUint32(b[60:], crc)
	return b
}

var segHeaderFields = []struct {
	name    string
	off, sz int64
}{
	{"magic", 0, 4}, {"version", 4, 1}, {"reserved", 5, 3}, {"baseIndex", 8, 8},
	{"baseOffset", 16, 8}, {"createdMs", 24, 8}, {"reserved2", 32, 4}, {"crc", 36, 4},
}

var frameHeaderFields = []struct {
	name    string
	off, sz int64
}{
	{"magic", 0, 4}, {"crc", 4, 4}, {"length", 8, 4}, {"type", 12, 1}, {"flags", 13, 1},
	{"reserved", 14, 2}, {"index", 16, 8}, {"term", 24, 8}, {"baseOffset", 32, 8},
	{"offsetCount", 40, 4}, {"syncedThrough", 44, 4},
}

// fieldFlips are the single-bit flips applied to each field: the lowest bit
// of its first byte and the highest bit of its last byte.
func fieldFlips(off, sz int64) []struct {
	name string
	at   int64
	bit  byte
} {
	return []struct {
		name string
		at   int64
		bit  byte
	}{
		{"lowbit", off, 0x01},
		{"highbit", off + sz - 1, 0x80},
	}
}

// payloadSpots are payload bytes to flip: the Kafka baseOffset the log
// stamps, the Kafka CRC, the middle and the last byte.
func payloadSpots(size int64) map[string]int64 {
	p := size - frameHeaderSize
	return map[string]int64{"kafkaBaseOffset": 3, "kafkaCRC": 18, "middle": p / 2, "last": p - 1}
}

func corruptionCases(t testing.TB) []corruptionCase {
	small, big := smallFixture(t), bigFixture(t)
	var cases []corruptionCase
	add := func(c corruptionCase) { cases = append(cases, c) }

	act := small.active()
	if len(act.frames) < 3 {
		t.Fatalf("active segment has %d frames, want at least 3", len(act.frames))
	}
	lastFr := act.frames[len(act.frames)-1]
	prevFr := act.frames[len(act.frames)-2]
	firstFr := act.frames[0]
	sealed := small.segs[2]
	sealedFr := sealed.frames[len(sealed.frames)/2]
	if !lastFr.batch || !sealedFr.batch {
		t.Fatal("fixture frames chosen for damage must be batches")
	}
	var nonBatch fixFrame
	for _, fr := range small.segs[1].frames[1:] {
		if !fr.batch {
			nonBatch = fr
			break
		}
	}
	if nonBatch.size == 0 {
		t.Fatal("no non-batch frame in segment 1")
	}

	// 1. Truncation of the active segment at every byte of its last frame:
	// a torn tail, cut at the frame.
	for cut := lastFr.pos + 1; cut < lastFr.pos+lastFr.size; cut++ {
		add(corruptionCase{
			name: fmt.Sprintf("active/truncate-last-frame/at-%d", cut-lastFr.pos), fix: small,
			damage: truncateTo(act.path, cut), out: recovered,
			keep: lastFr.index - 1, truncFile: act.path, truncAt: lastFr.pos,
		})
	}
	// Truncation inside earlier frames of the active segment: the tail is
	// gone, so nothing proves the cut bytes were synced. A cut file is
	// indistinguishable from a torn write.
	for _, fr := range []fixFrame{firstFr, prevFr} {
		cut := fr.pos + fr.size/2
		add(corruptionCase{
			name: fmt.Sprintf("active/truncate-inside-frame-at-%d", fr.pos), fix: small,
			damage: truncateTo(act.path, cut), out: recovered,
			keep: fr.index - 1, truncFile: act.path, truncAt: fr.pos,
		})
	}

	// 2. Truncation of sealed segments: refused.
	for _, si := range []int{0, 2, len(small.segs) - 2} {
		s := small.segs[si]
		mid := s.frames[len(s.frames)/2]
		lastS := s.frames[len(s.frames)-1]
		for _, c := range []struct {
			name string
			cut  int64
			file string
			at   int64
		}{
			{"inside-first-frame", s.frames[0].pos + 10, s.path, s.frames[0].pos + 10},
			{"inside-middle-frame", mid.pos + mid.size - 1, s.path, mid.pos + mid.size - 1},
			{"inside-last-frame", lastS.pos + 49, s.path, lastS.pos + 49},
			{"last-byte", s.size - 1, s.path, s.size - 1},
			{"to-header", segmentHeaderSize, s.path, segmentHeaderSize},
			{"inside-header", 17, s.path, 17},
			{"to-empty", 0, s.path, 0},
			// At a frame boundary the segment is whole but short: the next
			// segment no longer continues it.
			{"at-frame-boundary", mid.pos, small.segs[si+1].path, 0},
		} {
			add(corruptionCase{
				name: fmt.Sprintf("sealed%d/truncate-%s", si, c.name), fix: small,
				damage: truncateTo(s.path, c.cut), out: refusedOpen, file: c.file, damageAt: c.at,
			})
		}
	}

	// 3. Bit flips in segment headers: refused, active or sealed.
	for _, sc := range []struct {
		name string
		s    fixSeg
	}{{"active", act}, {"sealed0", small.segs[0]}, {"sealed3", small.segs[3]}} {
		for _, fld := range segHeaderFields {
			for _, fl := range fieldFlips(fld.off, fld.sz) {
				add(corruptionCase{
					name: fmt.Sprintf("%s/segment-header/%s/%s", sc.name, fld.name, fl.name), fix: small,
					damage: flipAt(sc.s.path, fl.at, fl.bit), out: refusedOpen, file: sc.s.path, damageAt: fl.at,
				})
			}
		}
	}

	// 4. Bit flips in frames.
	type place struct {
		name string
		s    fixSeg
		fr   fixFrame
		out  outcome
	}
	places := []place{
		// The last frame was the last group's write: a torn tail.
		{"active/last-frame", act, lastFr, recovered},
		// The last frame's syncedThrough proves the one before was synced.
		{"active/synced-frame", act, prevFr, refusedOpen},
		{"active/first-frame", act, firstFr, refusedOpen},
		// Sealed: the index is good, so reads and VerifyOnOpen find it.
		{"sealed2/batch-frame", sealed, sealedFr, refusedRead},
		{"sealed1/config-frame", small.segs[1], nonBatch, refusedRead},
		{"sealed0/first-frame", small.segs[0], small.segs[0].frames[0], refusedRead},
	}
	for _, p := range places {
		mk := func(name string, at int64, bit byte) {
			c := corruptionCase{name: p.name + "/" + name, fix: small, damage: flipAt(p.s.path, at, bit), out: p.out}
			switch p.out {
			case recovered:
				c.keep, c.truncFile, c.truncAt = p.fr.index-1, p.s.path, p.fr.pos
			default:
				c.file, c.damageAt = p.s.path, at
			}
			add(c)
		}
		for _, fld := range frameHeaderFields {
			for _, fl := range fieldFlips(p.fr.pos+fld.off, fld.sz) {
				mk(fmt.Sprintf("header-%s/%s", fld.name, fl.name), fl.at, fl.bit)
			}
		}
		spots := payloadSpots(p.fr.size)
		if !p.fr.batch {
			spots = map[string]int64{"first": 0, "last": p.fr.size - frameHeaderSize - 1}
		}
		for name, off := range spots {
			mk("payload-"+name, p.fr.pos+frameHeaderSize+off, 0x10)
		}
	}

	// 5. Zeroed 4 KiB pages (big fixture, 16 KiB segments).
	bact := big.active()
	bsealed := big.segs[1]
	if bact.size < 3*4096 || bsealed.size < 3*4096 {
		t.Fatalf("big fixture segments too small: %d, %d", bact.size, bsealed.size)
	}
	firstBad := func(s fixSeg, pos int64) fixFrame {
		for _, fr := range s.frames {
			if fr.pos+fr.size > pos {
				return fr
			}
		}
		t.Fatalf("no frame at %d", pos)
		return fixFrame{}
	}
	tailPage := func(s fixSeg) int64 { return (s.size - 1) / 4096 * 4096 }
	add(corruptionCase{
		name: "active/zero-page-middle", fix: big, damage: zeroRange(bact.path, 4096, 8192),
		out: refusedOpen, file: bact.path, damageAt: 4096,
	})
	for _, z := range []struct {
		name     string
		from, to int64
	}{
		{"zero-page-tail-aligned", tailPage(bact), bact.size},
		{"zero-last-4KiB", bact.size - 4096, bact.size},
		{"zero-last-frame-only", bact.frames[len(bact.frames)-1].pos, bact.size},
	} {
		fr := firstBad(bact, z.from)
		add(corruptionCase{
			name: "active/" + z.name, fix: big, damage: zeroRange(bact.path, z.from, z.to), out: recovered,
			keep: fr.index - 1, truncFile: bact.path, truncAt: fr.pos,
		})
	}
	add(corruptionCase{
		name: "sealed1/zero-page-middle", fix: big, damage: zeroRange(bsealed.path, 4096, 8192),
		out: refusedRead, file: bsealed.path, damageAt: 8191, // an error inside the zeroed page is at the damage
	})
	add(corruptionCase{
		name: "sealed1/zero-page-tail", fix: big, damage: zeroRange(bsealed.path, tailPage(bsealed), bsealed.size),
		out: refusedRead, file: bsealed.path, damageAt: bsealed.size - 1,
	})
	add(corruptionCase{
		name: "sealed1/zero-page-middle-and-index-missing", fix: big,
		damage: both(zeroRange(bsealed.path, 4096, 8192), removeFiles(bsealed.idx())),
		out:    refusedOpen, file: bsealed.path, damageAt: 4096,
	})

	// 6. Index files: always a cache, rebuilt from a clean walk.
	s1, s3 := small.segs[1], small.segs[3]
	idx1 := small.files[s1.idx()]
	staleSize := withIndexCRC(idx1)
	le.PutUint64(staleSize[24:], uint64(s1.size-37))
	staleSize = withIndexCRC(staleSize)
	var allIdx []string
	for _, s := range small.segs[:len(small.segs)-1] {
		allIdx = append(allIdx, s.idx())
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, len(idx1))
	for i := range garbage {
		garbage[i] = byte(rnd.IntN(256))
	}
	for _, c := range []struct {
		name   string
		damage func(testing.TB, *vfs.Mem)
		idxs   []string
	}{
		{"missing", removeFiles(s1.idx()), []string{s1.idx()}},
		{"all-missing", removeFiles(allIdx...), allIdx},
		{"empty", writeFile(s1.idx(), nil), []string{s1.idx()}},
		{"garbage", writeFile(s1.idx(), garbage), []string{s1.idx()}},
		{"truncated-to-header", truncateTo(s1.idx(), indexHeaderSize), []string{s1.idx()}},
		{"truncated-by-one", truncateTo(s1.idx(), int64(len(idx1)-1)), []string{s1.idx()}},
		{"truncated-inside-header", truncateTo(s1.idx(), 30), []string{s1.idx()}},
		{"extended", writeFile(s1.idx(), append(append([]byte(nil), idx1...), make([]byte, indexEntrySize)...)), []string{s1.idx()}},
		{"flip-magic", flipAt(s1.idx(), 1, 0x01), []string{s1.idx()}},
		{"flip-baseIndex", flipAt(s1.idx(), 8, 0x01), []string{s1.idx()}},
		{"flip-segmentSize", flipAt(s1.idx(), 24, 0x04), []string{s1.idx()}},
		{"flip-lastIndex", flipAt(s1.idx(), 32, 0x01), []string{s1.idx()}},
		{"flip-nextOffset", flipAt(s1.idx(), 40, 0x01), []string{s1.idx()}},
		{"flip-maxTimestamp", flipAt(s1.idx(), 48, 0x01), []string{s1.idx()}},
		{"flip-entryCount", flipAt(s1.idx(), 56, 0x01), []string{s1.idx()}},
		{"flip-crc", flipAt(s1.idx(), 61, 0x80), []string{s1.idx()}},
		{"flip-entry-position", flipAt(s1.idx(), indexHeaderSize+indexEntrySize, 0x01), []string{s1.idx()}},
		{"flip-entry-offset", flipAt(s1.idx(), indexHeaderSize+indexEntrySize+8, 0x02), []string{s1.idx()}},
		{"flip-entry-timestamp", flipAt(s1.idx(), indexHeaderSize+indexEntrySize+16, 0x01), []string{s1.idx()}},
		{"stale-from-other-segment", writeFile(s1.idx(), small.files[s3.idx()]), []string{s1.idx()}},
		{"stale-older-size", writeFile(s1.idx(), staleSize), []string{s1.idx()}},
	} {
		add(corruptionCase{name: "index/" + c.name, fix: small, damage: c.damage, out: recovered, rebuilt: c.idxs})
	}
	// Leftovers removed on open.
	actIdx := act.idx()
	for _, c := range []struct {
		name   string
		damage func(testing.TB, *vfs.Mem)
		path   string
	}{
		{"stale-index-of-active-segment", writeFile(actIdx, idx1), actIdx},
		{"index-without-segment", writeFile(filepath.Join(fixDir, segmentName(999999, 999999)+indexExt), idx1), filepath.Join(fixDir, segmentName(999999, 999999)+indexExt)},
		{"index-tmp", writeFile(s1.idx()+tmpExt, garbage), s1.idx() + tmpExt},
		{"checkpoint-tmp", writeFile(filepath.Join(fixDir, checkpointName+tmpExt), garbage[:5]), filepath.Join(fixDir, checkpointName+tmpExt)},
	} {
		add(corruptionCase{name: "leftover/" + c.name, fix: small, damage: c.damage, out: recovered, removed: []string{c.path}})
	}

	// 7. start.ckpt: refused, never guessed.
	ckpt := filepath.Join(fixDir, checkpointName)
	for _, c := range []struct {
		name   string
		damage func(testing.TB, *vfs.Mem)
	}{
		{"garbage", writeFile(ckpt, garbage[:checkpointSize])},
		{"bad-crc", flipAt(ckpt, 21, 0x01)},
		{"flip-start-offset", flipAt(ckpt, 8, 0x01)},
		{"flip-magic", flipAt(ckpt, 0, 0x01)},
		{"flip-version", flipAt(ckpt, 4, 0x01)},
		{"truncated", truncateTo(ckpt, checkpointSize-1)},
		{"empty", truncateTo(ckpt, 0)},
		{"extended", writeFile(ckpt, append(encodeCheckpoint(small.start), 0))},
	} {
		add(corruptionCase{name: "checkpoint/" + c.name, fix: small, damage: c.damage, out: refusedOpen, file: ckpt, damageAt: 0})
	}

	// 8. A torn, just-created segment: the crash hit a roll. The new active
	// segment's header is short (or its checksum torn); it is removed and the
	// segment before it, sealed with a good index, is the active one again.
	prevSeg := small.segs[len(small.segs)-2]
	hdr := segmentHeader{baseIndex: act.hdr.baseIndex, baseOffset: act.hdr.baseOffset, createdMs: act.hdr.createdMs}.encode()
	tornHdr := append([]byte(nil), hdr...)
	tornHdr[37] ^= 0xff
	for _, n := range []int{0, 1, 8, 20, 36, 39} {
		add(corruptionCase{
			name: fmt.Sprintf("torn-create/header-%d-bytes", n), fix: small,
			damage: writeFile(act.path, hdr[:n]), out: recovered,
			keep: prevSeg.last, removed: []string{act.path, prevSeg.idx()},
		})
	}
	add(corruptionCase{
		name: "torn-create/header-bad-crc", fix: small, damage: writeFile(act.path, tornHdr), out: recovered,
		keep: prevSeg.last, removed: []string{act.path, prevSeg.idx()},
	})
	add(corruptionCase{
		name: "torn-create/zeroed-header", fix: small, damage: writeFile(act.path, make([]byte, segmentHeaderSize)), out: recovered,
		keep: prevSeg.last, removed: []string{act.path, prevSeg.idx()},
	})
	// Longer than a header with a bad header: not a torn creation.
	add(corruptionCase{
		name: "torn-create/header-bad-crc-with-frames", fix: small,
		damage: flipAt(act.path, 37, 0xff), out: refusedOpen, file: act.path, damageAt: 37,
	})

	// 9. Names.
	renamedActive := filepath.Join(fixDir, segmentName(act.hdr.baseOffset+1, act.hdr.baseIndex)+segmentExt)
	add(corruptionCase{
		name: "name/active-disagrees-with-header", fix: small, damage: renameFile(act.path, renamedActive),
		out: refusedOpen, file: renamedActive, damageAt: 0,
	})
	renamedSealed := filepath.Join(fixDir, segmentName(s1.hdr.baseOffset, s1.hdr.baseIndex+1)+segmentExt)
	add(corruptionCase{
		name: "name/sealed-disagrees-with-header", fix: small, damage: renameFile(s1.path, renamedSealed),
		out: refusedOpen, file: renamedSealed, damageAt: 0,
	})
	junk := filepath.Join(fixDir, "junk.seg")
	add(corruptionCase{
		name: "name/unparsable-segment-name", fix: small, damage: writeFile(junk, hdr),
		out: refusedOpen, file: junk, damageAt: 0,
	})

	// 10. A missing middle segment: a gap.
	add(corruptionCase{
		name: "gap/missing-middle-segment", fix: small, damage: removeFiles(small.segs[2].path, small.segs[2].idx()),
		out: refusedOpen, file: small.segs[3].path, damageAt: 0,
	})
	add(corruptionCase{
		name: "gap/missing-middle-segment-index-left", fix: small, damage: removeFiles(small.segs[2].path),
		out: refusedOpen, file: small.segs[3].path, damageAt: 0,
	})
	add(corruptionCase{
		name: "gap/missing-last-sealed-segment", fix: small, damage: removeFiles(prevSeg.path, prevSeg.idx()),
		out: refusedOpen, file: act.path, damageAt: 0,
	})
	return cases
}

// Damage that appears under an open log (bit rot in a sealed segment, a
// stray write) is refused at read, and Damaged tells the log's owner so
// that it can stop trusting the log (a replica leaves its raft group).
func TestDamagedClosesOnCorruptRead(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentBytes: 4096})
	defer l.Close()
	for i := 0; i < 20; i++ {
		mustAppend(t, l, testBatch(4, int64(i), 200))
	}
	select {
	case <-l.Damaged():
		t.Fatal("damaged before any damage")
	default:
	}
	readAllBatches(t, l, 0) // all sound

	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var first string
	for _, n := range names {
		if strings.HasSuffix(n.Name(), segmentExt) {
			first = filepath.Join(dir, n.Name())
			break
		}
	}
	f, err := os.OpenFile(first, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A byte inside the first batch's records, past every header.
	var b [1]byte
	if _, err := f.ReadAt(b[:], 200); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b[:], 200); err != nil {
		t.Fatal(err)
	}
	f.Close()

	if _, err := l.Read(0, 1<<20, -1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of the damaged batch: %v, want ErrCorrupt", err)
	}
	select {
	case <-l.Damaged():
	default:
		t.Fatal("Damaged not closed after a corrupt read")
	}
	if _, err := l.Entry(1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("entry of the damaged batch: %v, want ErrCorrupt", err)
	}
}
