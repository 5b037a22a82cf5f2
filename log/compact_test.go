package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicemq/sluice/log/batch"
	"github.com/sluicemq/sluice/log/vfs"
)

// fakeClock is a settable clock shared by the log (segment.ms rolls) and the
// cleaner (tombstone and lag ages).
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// crec is a record to produce: keyed or not, a value or a tombstone.
type crec struct {
	key, val      string
	keyless, tomb bool
}

func kv(k, v string) crec     { return crec{key: k, val: v} }
func tomb(k string) crec      { return crec{key: k, tomb: true} }
func nokey(v string) crec     { return crec{val: v, keyless: true} }
func (r crec) String() string { return recString(r.keyOrNil(), r.valOrNil()) }

func (r crec) keyOrNil() []byte {
	if r.keyless {
		return nil
	}
	return []byte(r.key)
}

func (r crec) valOrNil() []byte {
	if r.tomb {
		return nil
	}
	return []byte(r.val)
}

func recString(k, v []byte) string {
	ks, vs := "<nil>", "<nil>"
	if k != nil {
		ks = string(k)
	}
	if v != nil {
		vs = string(v)
	}
	return ks + "=" + vs
}

// keyedBatch builds a batch of recs stamped ts, by the batch package's
// builder (the producer side of the test).
func keyedBatch(t testing.TB, codec batch.Codec, ts int64, recs []crec) []byte {
	t.Helper()
	rs := make([]batch.Record, len(recs))
	for i, r := range recs {
		rs[i] = batch.Record{Key: r.keyOrNil(), Value: r.valOrNil()}
	}
	b, err := batch.Build(rs, batch.BuildOptions{Codec: codec, BaseTimestamp: ts,
		Producer: &batch.ProducerInfo{ID: 7, Epoch: 1, BaseSequence: int32(ts % 1000)}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// compactLog opens a log that rolls a segment whenever the clock moved.
func compactLog(t testing.TB, fsys vfs.FS, clock *fakeClock) *Log {
	t.Helper()
	return mustOpen(t, "/d", Options{FS: fsys, SegmentAge: time.Millisecond, Now: clock.Now})
}

// appendSegments appends segs (segments of batches of records), advancing
// the clock a second before each segment after the first so that each
// starts a segment; records of segment i are stamped T0+i s.
func appendSegments(t testing.TB, l *Log, clock *fakeClock, codec batch.Codec, segs [][][]crec) {
	t.Helper()
	for i, seg := range segs {
		if i > 0 {
			clock.advance(time.Second)
		}
		for _, recs := range seg {
			mustAppend(t, l, keyedBatch(t, codec, clock.Now().UnixMilli(), recs))
		}
	}
	if got := len(l.Segments()); got != len(segs) {
		t.Fatalf("%d segments, want %d", got, len(segs))
	}
}

// survivors reads the whole log through Read and returns its records as
// "offset:key=value", checking that every batch is valid (CRC, records).
func survivors(t testing.TB, l *Log) (recs []string, batches [][]byte, empty int) {
	t.Helper()
	for _, b := range readAllBatches(t, l, l.StartOffset()) {
		h, err := batch.Validate(b, batch.ValidateOptions{Deep: true, AllowCompacted: true})
		if err != nil {
			t.Fatalf("batch at %d: %v", h.BaseOffset, err)
		}
		if h.RecordCount == 0 {
			empty++
		}
		if err := batch.Records(b, batch.DefaultLimits, func(r batch.Record) error {
			recs = append(recs, fmt.Sprintf("%d:%s", h.RecordOffset(r), recString(r.Key, r.Value)))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		batches = append(batches, b)
	}
	return recs, batches, empty
}

var allCodecs = []batch.Codec{batch.CodecNone, batch.CodecGzip, batch.CodecSnappy, batch.CodecLZ4, batch.CodecZstd}

// TestCompact: the cleaner keeps exactly the latest record per key in the
// cleanable range (sealed segments, below the bound, past the lag),
// tombstones until delete.retention has passed, and keyless records;
// offsets, entries, batch headers and the active segment are unchanged,
// and every batch stays valid, with every codec.
func TestCompact(t *testing.T) {
	const retention = time.Hour
	cases := []struct {
		name  string
		segs  [][][]crec // the last segment is the active one
		below int64      // -1: the log end
		age   time.Duration
		lag   time.Duration
		want  []string
		empty int // batches left with no records
	}{
		{name: "latest per key across segments",
			segs:  [][][]crec{{{kv("a", "1"), kv("b", "1")}, {kv("a", "2")}}, {{kv("b", "2"), kv("c", "1")}}, {{kv("a", "3")}}},
			below: -1, want: []string{"2:a=2", "3:b=2", "4:c=1", "5:a=3"}, empty: 1},
		{name: "tombstone within delete.retention kept",
			segs:  [][][]crec{{{kv("a", "1"), kv("b", "1")}}, {{tomb("a")}}, {{kv("c", "1")}}},
			below: -1, age: 30 * time.Minute, want: []string{"1:b=1", "2:a=<nil>", "3:c=1"}},
		{name: "tombstone past delete.retention removed",
			segs:  [][][]crec{{{kv("a", "1"), kv("b", "1")}}, {{tomb("a")}}, {{kv("c", "1")}}},
			below: -1, age: 2 * time.Hour, want: []string{"1:b=1", "3:c=1"}, empty: 1},
		{name: "tombstone superseded",
			segs:  [][][]crec{{{kv("a", "1")}}, {{tomb("a")}, {kv("a", "2")}}, {{kv("z", "1")}}},
			below: -1, want: []string{"2:a=2", "3:z=1"}, empty: 2},
		{name: "every record of a batch removed",
			segs:  [][][]crec{{{kv("a", "1"), kv("b", "1")}, {kv("a", "2"), kv("b", "2")}}, {{kv("x", "1")}}},
			below: -1, want: []string{"2:a=2", "3:b=2", "4:x=1"}, empty: 1},
		{name: "keyless records kept",
			segs:  [][][]crec{{{nokey("1"), kv("a", "1")}, {kv("a", "2"), nokey("2")}}, {{kv("x", "1")}}},
			below: -1, want: []string{"0:<nil>=1", "2:a=2", "3:<nil>=2", "4:x=1"}},
		{name: "only below the bound",
			segs:  [][][]crec{{{kv("a", "1")}}, {{kv("a", "2")}}, {{kv("a", "3")}}, {{kv("z", "1")}}},
			below: 2, want: []string{"1:a=2", "2:a=3", "3:z=1"}, empty: 1},
		{name: "active segment untouched",
			segs:  [][][]crec{{{kv("a", "1")}}, {{kv("a", "2")}, {kv("a", "3")}}},
			below: -1, want: []string{"0:a=1", "1:a=2", "2:a=3"}},
		{name: "min.compaction.lag holds back young segments",
			segs:  [][][]crec{{{kv("a", "1")}}, {{kv("a", "2")}}, {{kv("a", "3")}}, {{kv("z", "1")}}},
			below: -1, lag: 1500 * time.Millisecond, want: []string{"1:a=2", "2:a=3", "3:z=1"}, empty: 1},
	}
	for _, tc := range cases {
		for _, codec := range allCodecs {
			t.Run(tc.name+"/"+codec.String(), func(t *testing.T) {
				m := vfs.NewMem()
				clock := newFakeClock()
				l := compactLog(t, m, clock)
				defer func() { l.Close() }()
				appendSegments(t, l, clock, codec, tc.segs)
				clock.advance(tc.age)

				beforeRecs, before, _ := survivors(t, l)
				beforeState := logState(t, l)
				segs := l.Segments()
				active := segs[len(segs)-1]
				activeBytes, _ := m.ReadFile(active.Path)
				below := tc.below
				if below < 0 {
					below = l.EndOffset()
				}
				opts := CompactOptions{Below: below, DeleteRetention: retention, MinCompactionLag: tc.lag, Now: clock.Now}
				st, err := l.Compact(opts)
				if err != nil {
					t.Fatal(err)
				}

				got, after, empty := survivors(t, l)
				if !slices.Equal(got, tc.want) {
					t.Fatalf("survivors %v, want %v", got, tc.want)
				}
				if empty != tc.empty {
					t.Fatalf("%d empty batches, want %d", empty, tc.empty)
				}
				if want := int64(len(beforeRecs) - len(got)); st.RecordsRemoved != want || (want > 0) != (st.SegmentsRewritten > 0) {
					t.Fatalf("stats %+v, want %d records removed", st, want)
				}
				sameHeaders(t, before, after)
				afterState := logState(t, l) // Verify included
				sameEntries(t, beforeState, afterState)
				if b, _ := m.ReadFile(active.Path); !bytes.Equal(b, activeBytes) {
					t.Fatal("the active segment changed")
				}

				// A second pass removes nothing more; a reopen sees the same.
				if st, err := l.Compact(opts); err != nil || st.RecordsRemoved != 0 {
					t.Fatalf("second pass: %+v, %v", st, err)
				}
				l.Close()
				l = compactLog(t, m, clock)
				if again, _, _ := survivors(t, l); !slices.Equal(again, tc.want) {
					t.Fatalf("after reopen %v, want %v", again, tc.want)
				}
				if r := l.Recovery(); len(r.RebuiltIndexes) > 0 || len(r.RemovedFiles) > 0 {
					t.Fatalf("reopen repaired something: %+v", r)
				}
			})
		}
	}
}

// sameHeaders checks that compaction changed no batch's offsets, and no
// header field but length, CRC and record count.
func sameHeaders(t testing.TB, before, after [][]byte) {
	t.Helper()
	if len(before) != len(after) {
		t.Fatalf("%d batches after compaction, %d before", len(after), len(before))
	}
	for i := range before {
		b, a := before[i], after[i]
		if !bytes.Equal(b[0:8], a[0:8]) || !bytes.Equal(b[12:17], a[12:17]) || !bytes.Equal(b[21:57], a[21:57]) {
			t.Fatalf("batch %d: header changed\nbefore %x\nafter  %x", i, b[:61], a[:61])
		}
	}
}

// sameEntries checks that the log's Raft view is unchanged: indexes, terms,
// types, offsets.
func sameEntries(t testing.TB, before, after snapState) {
	t.Helper()
	if before.First != after.First || before.Last != after.Last || before.Start != after.Start || before.End != after.End {
		t.Fatalf("log bounds changed: %+v -> %+v", before, after)
	}
	for i, e := range before.Entries {
		g := after.Entries[i]
		if e.Index != g.Index || e.Term != g.Term || e.Type != g.Type || e.Batch != g.Batch || e.BaseOffset != g.BaseOffset {
			t.Fatalf("entry %d changed: %+v -> %+v", e.Index, e, g)
		}
		if !e.Batch && !bytes.Equal(e.Data, g.Data) {
			t.Fatalf("non-batch entry %d changed", e.Index)
		}
	}
}

// TestCompactDirtyRatio: a pass runs only when enough is dirty, and what was
// cleaned is remembered across a reopen.
func TestCompactDirtyRatio(t *testing.T) {
	m := vfs.NewMem()
	clock := newFakeClock()
	l := compactLog(t, m, clock)
	defer func() { l.Close() }()
	big := strings.Repeat("v", 200)
	var segs [][][]crec
	for i := 0; i < 4; i++ {
		segs = append(segs, [][]crec{{kv("a", big+fmt.Sprint(i)), kv("b", big)}})
	}
	appendSegments(t, l, clock, batch.CodecNone, segs)
	opts := CompactOptions{Below: l.EndOffset(), MinDirtyRatio: 0.5, Now: clock.Now}
	st, err := l.Compact(opts)
	if err != nil || !st.Ran || st.DirtyRatio != 1 || st.RecordsRemoved != 4 {
		t.Fatalf("first pass: %+v, %v", st, err)
	}
	if st, err := l.Compact(opts); err != nil || st.Ran || st.DirtyRatio != 0 {
		t.Fatalf("nothing dirty, yet: %+v, %v", st, err)
	}
	l.Close()
	l = compactLog(t, m, clock)
	if st, err := l.Compact(opts); err != nil || st.Ran {
		t.Fatalf("after reopen: %+v, %v", st, err)
	}
	// One new sealed segment is under half of the cleanable bytes...
	clock.advance(time.Second)
	mustAppend(t, l, keyedBatch(t, batch.CodecNone, clock.Now().UnixMilli(), []crec{kv("a", big), kv("c", big)}))
	opts.Below = l.EndOffset()
	if st, err := l.Compact(opts); err != nil || st.Ran || st.DirtyRatio <= 0 || st.DirtyRatio >= 0.5 {
		t.Fatalf("little dirty: %+v, %v", st, err)
	}
	// ...and ratio 0 cleans anyway.
	opts.MinDirtyRatio = 0
	if st, err := l.Compact(opts); err != nil || !st.Ran || st.RecordsRemoved != 2 {
		t.Fatalf("ratio 0: %+v, %v", st, err)
	}
}

// TestCompactKeepsUnparsableBatch: a batch whose records do not parse is
// kept byte for byte, and no tombstone after it is removed (it might hide
// an older record of the tombstone's key).
func TestCompactKeepsUnparsableBatch(t *testing.T) {
	m := vfs.NewMem()
	clock := newFakeClock()
	l := compactLog(t, m, clock)
	defer l.Close()
	mustAppend(t, l, keyedBatch(t, batch.CodecNone, clock.Now().UnixMilli(), []crec{kv("a", "1")}))
	bad := keyedBatch(t, batch.CodecNone, clock.Now().UnixMilli(), []crec{kv("q", "1")})
	bad[batch.HeaderSize] = 0x7e // record length varint: 63 bytes, more than there are
	binary.BigEndian.PutUint32(bad[17:], crc32.Checksum(bad[21:], crc32.MakeTable(crc32.Castagnoli)))
	mustAppend(t, l, bad)
	clock.advance(time.Second)
	mustAppend(t, l, keyedBatch(t, batch.CodecNone, clock.Now().UnixMilli(), []crec{tomb("a")}))
	clock.advance(time.Second)
	mustAppend(t, l, keyedBatch(t, batch.CodecNone, clock.Now().UnixMilli(), []crec{kv("z", "1")}))
	clock.advance(48 * time.Hour)
	if _, err := l.Compact(CompactOptions{Below: l.EndOffset(), Now: clock.Now}); err != nil {
		t.Fatal(err)
	}
	got := readAllBatches(t, l, 0)
	if len(got) != 4 || !bytes.Equal(got[1], bad) {
		t.Fatalf("the unparsable batch changed")
	}
	for i, want := range []int32{0, 1, 1, 1} {
		if h, _ := batch.ParseHeader(got[i]); h.RecordCount != want {
			t.Fatalf("batch %d holds %d records, want %d", i, h.RecordCount, want)
		}
	}
}

// TestCompactWhileStreaming: a snapshot stream opened before a pass reads
// the segments as they were, to the end; one opened after ships the
// cleaned segments, which install on another log.
func TestCompactWhileStreaming(t *testing.T) {
	m := vfs.NewMem()
	clock := newFakeClock()
	l := compactLog(t, m, clock)
	defer l.Close()
	appendSegments(t, l, clock, batch.CodecZstd, [][][]crec{
		{{kv("a", "1"), kv("b", "1")}}, {{kv("a", "2")}}, {{tomb("b")}, {kv("c", "1")}}, {{kv("z", "1")}},
	})
	clock.advance(2 * time.Hour)
	wantBefore, _, _ := survivors(t, l)
	old, err := l.SnapshotReader(l.LastIndex())
	if err != nil {
		t.Fatal(err)
	}
	st, err := l.Compact(CompactOptions{Below: l.EndOffset(), DeleteRetention: time.Hour, Now: clock.Now})
	if err != nil || st.SegmentsRewritten != 2 {
		t.Fatalf("compact: %+v, %v", st, err)
	}
	want, _, _ := survivors(t, l)
	for i, fresh := range []bool{false, true} {
		ss := old
		if fresh {
			if ss, err = l.SnapshotReader(l.LastIndex()); err != nil {
				t.Fatal(err)
			}
		}
		dst := mustOpen(t, fmt.Sprintf("/dst%d", i), Options{FS: m})
		sg := stageStream(t, ss, dst, "s")
		if err := ss.Close(); err != nil {
			t.Fatal(err)
		}
		if err := dst.InstallSnapshot(sg, ss.Point()); err != nil {
			t.Fatal(err)
		}
		got, _, _ := survivors(t, dst)
		w := wantBefore
		if fresh {
			w = want
		}
		if !slices.Equal(got, w) {
			t.Fatalf("installed from stream (fresh %v): %v, want %v", fresh, got, w)
		}
		dst.Close()
	}
	if _, err := io.ReadAll(old); !errors.Is(err, ErrClosed) {
		t.Fatalf("read of a closed stream: %v", err)
	}
}

// TestCompactCrashAtEachStep loses power before each mutating filesystem
// call of a pass in turn (writing and syncing the copies, removing the old
// indexes, the renames, the directory syncs, the new indexes and the
// checkpoint). Reopened, the log must hold every entry with its offsets,
// read end to end, and each segment must be wholly as before or as after
// the pass: so the latest record of every key is always there.
func TestCompactCrashAtEachStep(t *testing.T) {
	segs := [][][]crec{
		{{kv("a", "1"), kv("b", "1")}, {kv("c", "1")}},
		{{kv("a", "2"), nokey("n")}, {tomb("c")}},
		{{kv("b", "2"), kv("d", "1")}},
		{{kv("a", "3")}},
	}
	codecs := []batch.Codec{batch.CodecNone, batch.CodecLZ4, batch.CodecZstd, batch.CodecNone}
	setup := func(fsys vfs.FS) (*Log, *fakeClock) {
		clock := newFakeClock()
		l := compactLog(t, fsys, clock)
		for i, seg := range segs {
			if i > 0 {
				clock.advance(time.Second)
			}
			for _, recs := range seg {
				mustAppend(t, l, keyedBatch(t, codecs[i], clock.Now().UnixMilli(), recs))
			}
		}
		clock.advance(2 * time.Hour)
		return l, clock
	}
	// batchesBySegment groups the batches read from the log by segment.
	batchesBySegment := func(t *testing.T, l *Log) [][][]byte {
		var out [][][]byte
		for _, s := range l.Segments() {
			var bs [][]byte
			for off := s.BaseOffset; off < s.NextOffset; {
				r, err := l.Read(off, 1, -1)
				if err != nil {
					t.Fatal(err)
				}
				bs = append(bs, r.Batches...)
				off = r.Next
			}
			out = append(out, bs)
		}
		return out
	}

	ref := vfs.NewMem()
	l, clock := setup(ref)
	pre := batchesBySegment(t, l)
	preState := logState(t, l)
	opts := CompactOptions{Below: l.EndOffset(), DeleteRetention: time.Hour, Now: clock.Now}
	if _, err := l.Compact(opts); err != nil {
		t.Fatal(err)
	}
	post := batchesBySegment(t, l)
	latest, _, _ := survivors(t, l)
	l.Close()

	for step := 1; ; step++ {
		m := vfs.NewMem()
		c := &crashFS{m: m, opts: vfs.CrashOptions{Rand: rand.New(rand.NewPCG(uint64(step), 9)), TornWrites: true, Garbage: true}}
		l, clock := setup(c)
		c.mu.Lock()
		c.crashAt = c.ops + step
		c.mu.Unlock()
		opts.Now = clock.Now
		_, err := l.Compact(opts)
		crashed := c.dead.Load()
		if !crashed && err != nil {
			t.Fatalf("step %d: %v without a crash", step, err)
		}
		if crashed && err == nil {
			// The power went out at the last step (the checkpoint's
			// directory sync), which only a hint depends on.
			t.Logf("step %d: pass completed as the power went out", step)
		}
		l.Close()
		if !crashed {
			m.Crash(vfs.CrashOptions{})
		}
		l = mustOpen(t, "/d", Options{FS: m, Now: clock.Now})
		sameEntries(t, preState, logState(t, l))
		got := batchesBySegment(t, l)
		if len(got) != len(pre) {
			t.Fatalf("step %d: %d segments, want %d", step, len(got), len(pre))
		}
		cleaned := 0
		for i := range got {
			switch {
			case equalBatches(got[i], post[i]):
				if !equalBatches(pre[i], post[i]) {
					cleaned++
				}
			case equalBatches(got[i], pre[i]):
			default:
				t.Fatalf("step %d: segment %d is neither as before nor as after the pass", step, i)
			}
		}
		recs, _, _ := survivors(t, l)
		for _, w := range latest {
			if !slices.Contains(recs, w) {
				t.Fatalf("step %d: latest record %s missing", step, w)
			}
		}
		for _, p := range m.List() {
			if strings.HasSuffix(p, cleanedExt) || strings.HasSuffix(p, tmpExt) {
				t.Fatalf("step %d: %s left behind", step, p)
			}
		}
		// The log works on: a pass finishes the job.
		if _, err := l.Compact(opts); err != nil {
			t.Fatal(err)
		}
		if again := batchesBySegment(t, l); !slices.EqualFunc(again, post, equalBatches) {
			t.Fatalf("step %d: a pass after recovery does not reach the cleaned state", step)
		}
		l.Close()
		t.Logf("step %d: crashed %v, %d segments cleaned", step, crashed, cleaned)
		if !crashed {
			if step < 10 {
				t.Fatalf("a pass took only %d filesystem calls", step)
			}
			break
		}
	}
}

func equalBatches(a, b [][]byte) bool { return slices.EqualFunc(a, b, bytes.Equal) }

// BenchmarkCompact cleans 100k records of 10k keys in 100-record batches
// (lz4), spread over sealed segments of about 1 MiB.
func BenchmarkCompact(b *testing.B) {
	const records, keys, perBatch = 100_000, 10_000, 100
	val := bytes.Repeat([]byte("x"), 64)
	rng := rand.New(rand.NewPCG(1, 2))
	var batches [][]byte
	for i := 0; i < records; i += perBatch {
		rs := make([]batch.Record, perBatch)
		for j := range rs {
			rs[j] = batch.Record{Key: fmt.Appendf(nil, "key-%05d", rng.IntN(keys)), Value: val}
		}
		bt, err := batch.Build(rs, batch.BuildOptions{Codec: batch.CodecLZ4, BaseTimestamp: 1})
		if err != nil {
			b.Fatal(err)
		}
		batches = append(batches, bt)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		l := mustOpen(b, b.TempDir(), Options{SegmentBytes: 1 << 20})
		for _, bt := range batches {
			mustAppend(b, l, slices.Clone(bt))
		}
		before := l.Size()
		b.StartTimer()
		st, err := l.Compact(CompactOptions{Below: l.EndOffset()})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.ReportMetric(float64(st.RecordsRemoved), "removed/op")
		b.ReportMetric(float64(before)/float64(l.Size()), "shrink")
		l.Close()
		b.StartTimer()
	}
}

// TestCompactConcurrent runs passes while batches are appended, the log is
// read end to end, snapshot streams come and go and the head is deleted
// (run it with -race). Every pass ends with the latest value of every key
// readable.
func TestCompactConcurrent(t *testing.T) {
	m := vfs.NewMem()
	l := mustOpen(t, "/d", Options{FS: m, SegmentBytes: 4 << 10, IndexIntervalBytes: 512})
	defer l.Close()
	const keys, batches = 13, 400
	latest := make([]atomic.Int64, keys) // the offset of each key's latest record
	stop := make(chan struct{})
	done := make(chan error, 3)
	go func() { // appender
		for i := range batches {
			k := i % keys
			off, err := l.Append(keyedBatch(t, batch.CodecSnappy, int64(i), []crec{kv(fmt.Sprint(k), fmt.Sprint(i))}))
			if err != nil {
				done <- err
				return
			}
			latest[k].Store(off)
		}
		close(stop)
		done <- nil
	}()
	go func() { // reader and streamer
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			for off := l.StartOffset(); off < l.EndOffset(); {
				r, err := l.Read(off, 2048, -1)
				if errors.Is(err, ErrOffsetOutOfRange) {
					break // the head was deleted meanwhile
				}
				if err != nil {
					done <- err
					return
				}
				off = r.Next
				r.Release()
			}
			if st, err := l.SnapshotReader(l.LastIndex()); err == nil {
				_, err = io.Copy(io.Discard, st)
				st.Close()
				if err != nil {
					done <- err
					return
				}
			}
		}
	}()
	go func() { // retention
		for {
			select {
			case <-stop:
				done <- nil
				return
			case <-time.After(time.Millisecond):
			}
			if end := l.EndOffset(); end > 100 {
				if err := l.DeleteBefore(end / 4); err != nil {
					done <- err
					return
				}
			}
		}
	}()
	passes, rewritten := 0, 0
	for running := true; running; passes++ {
		select {
		case <-stop:
			running = false
		default:
		}
		st, err := l.Compact(CompactOptions{Below: l.EndOffset()})
		if err != nil {
			t.Fatal(err)
		}
		rewritten += st.SegmentsRewritten
	}
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	recs, _, _ := survivors(t, l)
	for k := range keys {
		if off := latest[k].Load(); off >= l.StartOffset() && !slices.ContainsFunc(recs, func(s string) bool { return strings.HasPrefix(s, fmt.Sprintf("%d:%d=", off, k)) }) {
			t.Fatalf("key %d: latest record at %d missing", k, off)
		}
	}
	if err := l.Verify(); err != nil {
		t.Fatal(err)
	}
	if rewritten == 0 {
		t.Fatal("no pass rewrote a segment")
	}
	t.Logf("%d passes rewrote %d segments", passes, rewritten)
}
