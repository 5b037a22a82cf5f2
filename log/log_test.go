package log

import (
	"bytes"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestAppendAssignsOffsetsAndReadReturnsWholeBatches(t *testing.T) {
	o, _ := memOpts()
	l := mustOpen(t, "/d", o)
	defer l.Close()

	counts := []int{1, 3, 10, 1, 7}
	var want [][]byte
	var bases []int64
	next := int64(0)
	for i, n := range counts {
		b := testBatch(n, int64(1000*i), 16)
		off := mustAppend(t, l, b)
		if off != next {
			t.Fatalf("batch %d: base offset %d, want %d", i, off, next)
		}
		bases = append(bases, off)
		want = append(want, b)
		next += int64(n)
	}
	if got := l.EndOffset(); got != next {
		t.Fatalf("EndOffset %d, want %d", got, next)
	}
	if l.FirstIndex() != 1 || l.LastIndex() != uint64(len(counts)) {
		t.Fatalf("indexes [%d, %d], want [1, %d]", l.FirstIndex(), l.LastIndex(), len(counts))
	}

	tests := []struct {
		name      string
		offset    int64
		maxBytes  int
		limit     int64
		wantFirst int // index into want; -1 for none
		wantN     int
		err       error
	}{
		{"first batch at its base", 0, 1, -1, 0, 1, nil},
		{"mid batch returns the containing batch", bases[2] + 5, 1, -1, 2, 1, nil},
		{"last record of a batch", bases[1] + 2, 1, -1, 1, 1, nil},
		{"maxBytes takes several batches", 0, len(want[0]) + len(want[1]), -1, 0, 2, nil},
		{"maxBytes below one batch still returns one", bases[3], 0, -1, 3, 1, nil},
		{"everything", 0, 1 << 20, -1, 0, len(counts), nil},
		{"limit stops before a batch at the limit", 0, 1 << 20, bases[2], 0, 2, nil},
		{"limit inside a batch excludes it", 0, 1 << 20, bases[2] + 1, 0, 3, nil},
		{"at the end: nothing", next, 1 << 20, -1, -1, 0, nil},
		{"at the limit: nothing", bases[1], 1 << 20, bases[1], -1, 0, nil},
		{"past the end", next + 1, 1, -1, -1, 0, ErrOffsetOutOfRange},
		{"negative", -1, 1, -1, -1, 0, ErrOffsetOutOfRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := l.Read(tc.offset, tc.maxBytes, tc.limit)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if len(res.Batches) != tc.wantN {
				t.Fatalf("%d batches, want %d", len(res.Batches), tc.wantN)
			}
			size := 0
			for i, b := range res.Batches {
				if !bytes.Equal(b, want[tc.wantFirst+i]) {
					t.Fatalf("batch %d differs from what was appended", i)
				}
				size += len(b)
			}
			if size != res.Bytes {
				t.Fatalf("Bytes %d, sum of batches %d", res.Bytes, size)
			}
			if tc.wantN > 0 {
				last := tc.wantFirst + tc.wantN - 1
				if res.Next != bases[last]+int64(counts[last]) {
					t.Fatalf("Next %d, want %d", res.Next, bases[last]+int64(counts[last]))
				}
			}
		})
	}
}

func TestAppendRejectsMalformedBatches(t *testing.T) {
	o, _ := memOpts()
	o.MaxEntryBytes = 1 << 10
	l := mustOpen(t, "/d", o)
	defer l.Close()
	good := testBatch(2, 0, 8)
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		b    []byte
		err  error
	}{
		{"empty", nil, ErrInvalidBatch},
		{"shorter than a header", good[:60], ErrInvalidBatch},
		{"length field too big", mut(func(b []byte) []byte { b[11]++; return b }), ErrInvalidBatch},
		{"truncated", good[:len(good)-1], ErrInvalidBatch},
		{"magic 1", mut(func(b []byte) []byte { b[16] = 1; return b }), ErrInvalidBatch},
		{"negative lastOffsetDelta", mut(func(b []byte) []byte { b[23] = 0x80; return b }), ErrInvalidBatch},
		{"too large", testBatch(1, 0, 2<<10), ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := l.Append(tc.b); !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
		})
	}
	// Refused batches consumed nothing, and the log still works.
	if off := mustAppend(t, l, testBatch(1, 0, 8)); off != 0 {
		t.Fatalf("offset after refusals %d, want 0", off)
	}
}

func TestStoreEntriesLikeRaft(t *testing.T) {
	o, _ := memOpts()
	l := mustOpen(t, "/d", o)
	defer l.Close()

	if l.FirstIndex() != 0 || l.LastIndex() != 0 {
		t.Fatalf("empty log indexes [%d, %d], want [0, 0]", l.FirstIndex(), l.LastIndex())
	}
	// An empty log accepts any first index (e.g. after a snapshot).
	entries := []Entry{
		{Index: 5, Term: 1, Type: 2, Data: []byte("config")},
		{Index: 6, Term: 1, Batch: true, Data: testBatch(3, 0, 4)},
		{Index: 7, Term: 2, Type: 1, Data: nil},
		{Index: 8, Term: 2, Batch: true, Data: testBatch(2, 0, 4)},
	}
	if err := l.StoreEntries(entries); err != nil {
		t.Fatal(err)
	}
	wantOffsets := []int64{0, 0, 3, 3}
	for i, e := range entries {
		if e.BaseOffset != wantOffsets[i] {
			t.Fatalf("entry %d BaseOffset %d, want %d", i, e.BaseOffset, wantOffsets[i])
		}
	}
	if l.FirstIndex() != 5 || l.LastIndex() != 8 || l.EndOffset() != 5 {
		t.Fatalf("indexes [%d, %d] end %d, want [5, 8] 5", l.FirstIndex(), l.LastIndex(), l.EndOffset())
	}
	for _, want := range entries {
		got, err := l.Entry(want.Index)
		if err != nil {
			t.Fatalf("Entry(%d): %v", want.Index, err)
		}
		if got.Term != want.Term || got.Type != want.Type || got.Batch != want.Batch || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("Entry(%d) = %+v, want %+v", want.Index, got, want)
		}
	}
	for _, idx := range []uint64{0, 4, 9, 100} {
		if _, err := l.Entry(idx); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Entry(%d) err %v, want ErrNotFound", idx, err)
		}
	}
	bad := []struct {
		name    string
		entries []Entry
	}{
		{"gap", []Entry{{Index: 10, Term: 2}}},
		{"repeat", []Entry{{Index: 8, Term: 2}}},
		{"zero", []Entry{{Index: 0}}},
		{"not consecutive", []Entry{{Index: 9, Term: 2}, {Index: 11, Term: 2}}},
	}
	for _, tc := range bad {
		if err := l.StoreEntries(tc.entries); !errors.Is(err, ErrOutOfOrder) {
			t.Fatalf("%s: err %v, want ErrOutOfOrder", tc.name, err)
		}
	}
	if l.LastIndex() != 8 {
		t.Fatalf("refused entries were stored: LastIndex %d", l.LastIndex())
	}
	// Non-batch entries are invisible to Kafka reads.
	got := readAllBatches(t, l, 0)
	if len(got) != 2 || !bytes.Equal(got[0], entries[1].Data) || !bytes.Equal(got[1], entries[3].Data) {
		t.Fatalf("Read returned %d batches, want the 2 batch entries", len(got))
	}
}

func TestSegmentsRollBySizeAndSurviveReopen(t *testing.T) {
	o, m := memOpts()
	o.SegmentBytes = 4096
	o.IndexIntervalBytes = 512
	l := mustOpen(t, "/d", o)
	var want [][]byte
	for i := 0; i < 60; i++ {
		b := testBatch(1+i%4, int64(i*10), 100)
		mustAppend(t, l, append([]byte(nil), b...))
		want = append(want, b)
	}
	segs := l.Segments()
	if len(segs) < 5 {
		t.Fatalf("%d segments, want several at 4 KiB each", len(segs))
	}
	for i, s := range segs {
		if s.Size > o.SegmentBytes {
			t.Fatalf("segment %d is %d bytes, over %d", i, s.Size, o.SegmentBytes)
		}
		if s.Sealed != (i < len(segs)-1) {
			t.Fatalf("segment %d sealed=%v", i, s.Sealed)
		}
		if i > 0 && (s.BaseIndex != segs[i-1].LastIndex+1 || s.BaseOffset != segs[i-1].NextOffset) {
			t.Fatalf("segment %d does not continue segment %d", i, i-1)
		}
		if filepath.Base(s.Path) != segmentName(s.BaseOffset, s.BaseIndex)+segmentExt {
			t.Fatalf("segment %d named %s", i, s.Path)
		}
	}
	check := func(l *Log) {
		got := readAllBatches(t, l, 0)
		if len(got) != len(want) {
			t.Fatalf("read %d batches, want %d", len(got), len(want))
		}
		for i := range want {
			// Offsets were stamped on append; compare past the baseOffset field.
			if !bytes.Equal(got[i][8:], want[i][8:]) {
				t.Fatalf("batch %d differs", i)
			}
		}
	}
	check(l)
	end, last := l.EndOffset(), l.LastIndex()
	l.Close()

	l = mustOpen(t, "/d", o)
	defer l.Close()
	if r := l.Recovery(); r.TruncatedBytes != 0 || len(r.RebuiltIndexes) != 0 {
		t.Fatalf("clean reopen repaired something: %+v", r)
	}
	if l.EndOffset() != end || l.LastIndex() != last {
		t.Fatalf("after reopen end %d last %d, want %d %d", l.EndOffset(), l.LastIndex(), end, last)
	}
	check(l)
	// Appends continue where they left off.
	if off := mustAppend(t, l, testBatch(1, 0, 10)); off != end {
		t.Fatalf("append after reopen at %d, want %d", off, end)
	}
	names, _ := m.ReadDir("/d")
	idx := 0
	for _, n := range names {
		if filepath.Ext(n) == indexExt {
			idx++
		}
	}
	if idx != len(l.Segments())-1 {
		t.Fatalf("%d index files for %d sealed segments", idx, len(l.Segments())-1)
	}
}

func TestSegmentsRollByAge(t *testing.T) {
	o, _ := memOpts()
	now := time.Unix(1_000_000, 0)
	o.Now = func() time.Time { return now }
	o.SegmentAge = time.Hour
	l := mustOpen(t, "/d", o)
	defer l.Close()
	mustAppend(t, l, testBatch(1, 0, 1))
	now = now.Add(59 * time.Minute)
	mustAppend(t, l, testBatch(1, 0, 1))
	if n := len(l.Segments()); n != 1 {
		t.Fatalf("%d segments before the age is reached, want 1", n)
	}
	now = now.Add(time.Minute)
	mustAppend(t, l, testBatch(1, 0, 1))
	segs := l.Segments()
	if len(segs) != 2 || segs[1].BaseOffset != 2 {
		t.Fatalf("segments %+v, want a second one starting at offset 2", segs)
	}
}

func TestTruncateFrom(t *testing.T) {
	for _, tc := range []struct {
		name     string
		truncate uint64 // truncate from this index
	}{
		{"last entry", 40},
		{"middle of a segment", 23},
		{"first entry of a segment", 0}, // filled in below
		{"first entry of the log", 1},
		{"past the end is a no-op", 41},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, _ := memOpts()
			o.SegmentBytes = 2048
			o.IndexIntervalBytes = 256
			l := mustOpen(t, "/d", o)
			var want [][]byte
			for i := 0; i < 40; i++ {
				b := testBatch(2, int64(i), 50)
				mustAppend(t, l, b)
				want = append(want, append([]byte(nil), b...))
			}
			from := tc.truncate
			if from == 0 {
				from = l.Segments()[2].BaseIndex
			}
			if err := l.TruncateFrom(from); err != nil {
				t.Fatal(err)
			}
			keep := min(int(from-1), 40)
			wantEnd := int64(2 * keep)
			if l.EndOffset() != wantEnd || l.LastIndex() != uint64(keep) && keep > 0 {
				t.Fatalf("after truncation end %d last %d, want %d %d", l.EndOffset(), l.LastIndex(), wantEnd, keep)
			}
			got := readAllBatches(t, l, 0)
			if len(got) != keep {
				t.Fatalf("%d batches after truncation, want %d", len(got), keep)
			}
			// The log keeps working and offsets continue from the new end.
			if off := mustAppend(t, l, testBatch(1, 0, 5)); off != wantEnd {
				t.Fatalf("append after truncation at %d, want %d", off, wantEnd)
			}
			l.Close()
			l = mustOpen(t, "/d", o)
			defer l.Close()
			if l.EndOffset() != wantEnd+1 {
				t.Fatalf("after reopen end %d, want %d", l.EndOffset(), wantEnd+1)
			}
			got = readAllBatches(t, l, 0)
			for i := 0; i < keep; i++ {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("batch %d changed by truncation", i)
				}
			}
		})
	}
}

func TestDeleteBeforeAndCheckpoint(t *testing.T) {
	o, _ := memOpts()
	o.SegmentBytes = 2048
	l := mustOpen(t, "/d", o)
	for i := 0; i < 40; i++ {
		mustAppend(t, l, testBatch(2, int64(i), 50))
	}
	before := len(l.Segments())
	if err := l.DeleteBefore(l.EndOffset() + 1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("delete past the end: %v", err)
	}
	cut := l.Segments()[2].BaseOffset + 1 // inside the third segment
	if err := l.DeleteBefore(cut); err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() != cut {
		t.Fatalf("start %d, want %d", l.StartOffset(), cut)
	}
	if got := len(l.Segments()); got != before-2 {
		t.Fatalf("%d segments, want %d (two whole segments deleted)", got, before-2)
	}
	if _, err := l.Read(cut-1, 1, -1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	res, err := l.Read(cut, 1, -1)
	if err != nil || len(res.Batches) != 1 {
		t.Fatalf("read at start: %v, %d batches", err, len(res.Batches))
	}
	if err := l.DeleteBefore(cut - 1); err != nil || l.StartOffset() != cut {
		t.Fatalf("moving start backwards: err %v, start %d", err, l.StartOffset())
	}
	l.Close()
	l = mustOpen(t, "/d", o)
	defer l.Close()
	if l.StartOffset() != cut {
		t.Fatalf("start after reopen %d, want %d (checkpoint)", l.StartOffset(), cut)
	}
	// Deleting up to the end keeps the active segment.
	end := l.EndOffset()
	if err := l.DeleteBefore(end); err != nil {
		t.Fatal(err)
	}
	if n := len(l.Segments()); n != 1 || l.StartOffset() != end {
		t.Fatalf("%d segments, start %d; want 1 and %d", n, l.StartOffset(), end)
	}
	if off := mustAppend(t, l, testBatch(1, 0, 1)); off != end {
		t.Fatalf("append at %d, want %d", off, end)
	}
}

func TestReset(t *testing.T) {
	o, _ := memOpts()
	o.SegmentBytes = 2048
	l := mustOpen(t, "/d", o)
	for i := 0; i < 30; i++ {
		mustAppend(t, l, testBatch(1, 0, 100))
	}
	if err := l.DeleteBefore(3); err != nil {
		t.Fatal(err)
	}
	if err := l.Reset(1000, 5000); err != nil {
		t.Fatal(err)
	}
	if l.FirstIndex() != 0 || l.LastIndex() != 0 || l.StartOffset() != 5000 || l.EndOffset() != 5000 {
		t.Fatalf("after reset [%d,%d] offsets [%d,%d]", l.FirstIndex(), l.LastIndex(), l.StartOffset(), l.EndOffset())
	}
	if err := l.StoreEntries([]Entry{{Index: 999}}); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("entry before the reset index: %v", err)
	}
	if err := l.StoreEntries([]Entry{{Index: 1000, Term: 3, Batch: true, Data: testBatch(2, 0, 1)}}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = mustOpen(t, "/d", o)
	defer l.Close()
	if l.FirstIndex() != 1000 || l.LastIndex() != 1000 || l.StartOffset() != 5000 || l.EndOffset() != 5002 {
		t.Fatalf("after reopen [%d,%d] offsets [%d,%d]", l.FirstIndex(), l.LastIndex(), l.StartOffset(), l.EndOffset())
	}
}

func TestConcurrentAppendersAndReaders(t *testing.T) {
	o, m := memOpts()
	o.SegmentBytes = 64 << 10
	l := mustOpen(t, "/d", o)
	defer l.Close()
	const writers, each = 8, 50
	var wg sync.WaitGroup
	offsets := make(chan int64, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				off, err := l.Append(testBatch(3, 0, 20))
				if err != nil {
					t.Error(err)
					return
				}
				offsets <- off
			}
		}()
	}
	stop := make(chan struct{})
	var rg sync.WaitGroup
	rg.Add(1)
	go func() { // a reader tailing the log sees only whole, valid batches
		defer rg.Done()
		next := int64(0)
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := l.Read(next, 4096, -1)
			if err != nil {
				t.Error(err)
				return
			}
			next = res.Next
		}
	}()
	wg.Wait()
	close(stop)
	rg.Wait()
	close(offsets)
	seen := map[int64]bool{}
	for off := range offsets {
		if off%3 != 0 || seen[off] {
			t.Fatalf("offset %d duplicated or misaligned", off)
		}
		seen[off] = true
	}
	if l.EndOffset() != writers*each*3 {
		t.Fatalf("end %d, want %d", l.EndOffset(), writers*each*3)
	}
	if m.SyncCount() > writers*each+len(l.Segments())*2 {
		t.Fatalf("%d syncs for %d appends", m.SyncCount(), writers*each)
	}
	if err := l.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestAppendAsyncKeepsQueueOrderAndSharesFsyncs(t *testing.T) {
	o, m := memOpts()
	l := mustOpen(t, "/d", o)
	// Stall the disk so every queued append waits for one fsync.
	release := make(chan struct{})
	m.StallSync(release)
	var pend []*Pending
	for i := 0; i < 100; i++ {
		p, err := l.AppendAsync(testBatch(1+i%3, int64(i), 8))
		if err != nil {
			t.Fatal(err)
		}
		pend = append(pend, p)
	}
	close(release)
	m.ClearFaults()
	next := int64(0)
	for i, p := range pend {
		off, err := p.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if off != next {
			t.Fatalf("append %d at offset %d, want %d: queue order not kept", i, off, next)
		}
		next += int64(1 + i%3)
	}
	if n := m.SyncCount(); n > 10 {
		t.Fatalf("%d fsyncs for 100 queued appends; group commit should need a few", n)
	}
	l.Close()
	if _, err := l.AppendAsync(testBatch(1, 0, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("AppendAsync after Close: %v", err)
	}
	if _, err := l.Append(testBatch(1, 0, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
}

func TestSetSegmentLimits(t *testing.T) {
	o, _ := memOpts()
	l := mustOpen(t, "/d", o)
	defer l.Close()
	for i := 0; i < 10; i++ {
		mustAppend(t, l, testBatch(1, 0, 100))
	}
	if n := len(l.Segments()); n != 1 {
		t.Fatalf("%d segments with the 1 GiB default", n)
	}
	if err := l.SetSegmentLimits(10, 0); err == nil {
		t.Fatal("a 10-byte segment limit was accepted")
	}
	if err := l.SetSegmentLimits(512, 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		mustAppend(t, l, testBatch(1, 0, 100))
	}
	if n := len(l.Segments()); n < 5 {
		t.Fatalf("%d segments after lowering the limit to 512 bytes", n)
	}
}

func TestMissingHeadSegmentIsRefused(t *testing.T) {
	for _, withCheckpoint := range []bool{false, true} {
		o, m := memOpts()
		o.SegmentBytes = 1024
		l := mustOpen(t, "/d", o)
		for i := 0; i < 30; i++ {
			mustAppend(t, l, testBatch(1, 0, 100))
		}
		segs := l.Segments()
		if withCheckpoint {
			// Retention moved the start into the first segment; then the
			// second segment is lost too.
			if err := l.DeleteBefore(1); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
		m.Remove(segs[0].Path)
		if withCheckpoint {
			m.Remove(segs[1].Path)
		}
		_, err := Open("/d", o)
		var ce *CorruptError
		if !errors.As(err, &ce) {
			t.Fatalf("checkpoint=%v: open with the head segments gone: %v", withCheckpoint, err)
		}
	}
}

func TestResetThenReopenKeepsItsStart(t *testing.T) {
	o, _ := memOpts()
	l := mustOpen(t, "/d", o)
	mustAppend(t, l, testBatch(3, 0, 1))
	if err := l.Reset(50, 700); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = mustOpen(t, "/d", o)
	defer l.Close()
	if l.StartOffset() != 700 || l.EndOffset() != 700 {
		t.Fatalf("after reset and reopen [%d, %d], want [700, 700]", l.StartOffset(), l.EndOffset())
	}
}

// The inline fast path for a lone appender must never let a caller's
// synchronous append overtake an asynchronous one it queued before.
func TestSyncAppendNeverOvertakesOwnAsyncAppend(t *testing.T) {
	o, _ := memOpts()
	l := mustOpen(t, "/d", o)
	defer l.Close()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				p, err := l.AppendAsync(testBatch(1, 0, 8))
				if err != nil {
					t.Error(err)
					return
				}
				second, err := l.Append(testBatch(1, 0, 8))
				if err != nil {
					t.Error(err)
					return
				}
				first, err := p.Wait()
				if err != nil {
					t.Error(err)
					return
				}
				if second <= first {
					t.Errorf("sync append got offset %d before its earlier async append's %d", second, first)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Released read buffers are reused; a later read must never see another
// read's bytes, and concurrent readers must not share a buffer.
func TestReadReleaseReusesBuffersSafely(t *testing.T) {
	o, _ := memOpts()
	l := mustOpen(t, "/d", o)
	defer l.Close()
	var want [][]byte
	for i := 0; i < 200; i++ {
		b := testBatch(1+i%4, int64(i), 50+i)
		mustAppend(t, l, b)
		want = append(want, b)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 30; round++ {
				off, i := int64(0), 0
				for off < l.EndOffset() {
					res, err := l.Read(off, 700, -1)
					if err != nil {
						t.Error(err)
						return
					}
					for _, b := range res.Batches {
						if !bytes.Equal(b, want[i]) {
							t.Errorf("batch %d differs after buffer reuse", i)
							return
						}
						i++
					}
					off = res.Next
					res.Release()
					if res.Batches != nil {
						t.Error("Release left the batches reachable")
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
