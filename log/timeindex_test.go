package log

import (
	"testing"
	"time"

	"github.com/sluicemq/sluice/log/batch"
)

// tsBatch builds a batch whose records carry the given timestamps.
func tsBatch(t *testing.T, codec batch.Codec, ts ...int64) []byte {
	t.Helper()
	recs := make([]batch.Record, len(ts))
	for i, v := range ts {
		recs[i] = batch.Record{TimestampDelta: v - ts[0], Value: []byte("v")}
	}
	b, err := batch.Build(recs, batch.BuildOptions{Codec: codec, BaseTimestamp: ts[0]})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOffsetForTimestamp(t *testing.T) {
	o, _ := memOpts()
	o.SegmentBytes = 1024
	o.IndexIntervalBytes = 200
	l := mustOpen(t, "/d", o)
	defer l.Close()
	// Offsets 0..2 at 100,200,300; 3..5 zstd at 400,350,500 (out of order
	// inside the batch); 6 at 450 (older than the batch before it);
	// then 20 batches of one record at 1000+i to spread over segments;
	// finally a LogAppendTime batch whose records all take its maxTimestamp.
	mustAppend(t, l, tsBatch(t, batch.CodecNone, 100, 200, 300))
	mustAppend(t, l, tsBatch(t, batch.CodecZstd, 400, 350, 500))
	mustAppend(t, l, tsBatch(t, batch.CodecNone, 450))
	for i := 0; i < 20; i++ {
		mustAppend(t, l, tsBatch(t, batch.CodecLZ4, int64(1000+i)))
	}
	lat := tsBatch(t, batch.CodecNone, 5, 6)
	if err := batch.SetLogAppendTime(lat, 9000); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, lat) // offsets 27, 28
	if len(l.Segments()) < 3 {
		t.Fatalf("want several segments, got %d", len(l.Segments()))
	}

	tests := []struct {
		ts        int64
		want      int64
		wantTs    int64
		wantFound bool
	}{
		{0, 0, 100, true},
		{100, 0, 100, true},
		{101, 1, 200, true},
		{300, 2, 300, true},
		{301, 3, 400, true},  // first record >= 301 in offset order is 400 at offset 3
		{401, 5, 500, true},  // 350 at offset 4 is too old; 500 at offset 5
		{460, 5, 500, true},  // 450 at offset 6 comes later in offset order
		{501, 7, 1000, true}, // next segment
		{1010, 17, 1010, true},
		{1019, 26, 1019, true},
		{1020, 27, 9000, true}, // LogAppendTime: every record stamped 9000
		{9000, 27, 9000, true},
		{9001, 0, 0, false},
	}
	for _, tc := range tests {
		off, ts, found, err := l.OffsetForTimestamp(tc.ts)
		if err != nil {
			t.Fatalf("ts %d: %v", tc.ts, err)
		}
		if found != tc.wantFound || (found && (off != tc.want || ts != tc.wantTs)) {
			t.Errorf("ts %d: got (%d, %d, %v), want (%d, %d, %v)", tc.ts, off, ts, found, tc.want, tc.wantTs, tc.wantFound)
		}
	}
	// Records below the start offset are never returned.
	if err := l.DeleteBefore(4); err != nil {
		t.Fatal(err)
	}
	if off, _, _, _ := l.OffsetForTimestamp(0); off != 4 {
		t.Fatalf("after DeleteBefore(4): offset %d, want 4", off)
	}
}

func TestRetentionOffset(t *testing.T) {
	o, _ := memOpts()
	o.SegmentBytes = 1024
	now := time.UnixMilli(1_000_000)
	o.Now = func() time.Time { return now }
	l := mustOpen(t, "/d", o)
	defer l.Close()
	for i := 0; i < 30; i++ {
		mustAppend(t, l, tsBatch(t, batch.CodecNone, int64(1000*i)))
	}
	segs := l.Segments()
	if len(segs) < 4 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	var total int64
	for _, s := range segs {
		total += s.Size
	}
	tests := []struct {
		name string
		p    Retention
		want int64
	}{
		{"no limits", Retention{}, 0},
		{"bytes: keep everything that fits", Retention{MaxBytes: total}, 0},
		{"bytes: drop the first segment", Retention{MaxBytes: total - segs[0].Size}, segs[0].NextOffset},
		{"bytes: what remains stays >= MaxBytes, as Kafka", Retention{MaxBytes: total - segs[0].Size - 1}, segs[0].NextOffset},
		{"bytes: drop two", Retention{MaxBytes: total - segs[0].Size - segs[1].Size}, segs[1].NextOffset},
		{"bytes: never the active segment", Retention{MaxBytes: 1}, segs[len(segs)-1].BaseOffset},
		{"age: all older", Retention{MaxAge: time.Millisecond}, segs[len(segs)-1].BaseOffset},
		{"age: first segment only", Retention{MaxAge: time.Duration(now.UnixMilli()-segs[0].MaxTimestamp-1) * time.Millisecond}, segs[0].NextOffset},
		{"age: nothing old enough", Retention{MaxAge: time.Hour}, 0},
	}
	for _, tc := range tests {
		if got := l.RetentionOffset(tc.p, now); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	cut := l.RetentionOffset(Retention{MaxBytes: total / 2}, now)
	if err := l.DeleteBefore(cut); err != nil {
		t.Fatal(err)
	}
	if l.Size() >= total/2+segs[0].Size || l.StartOffset() != cut {
		t.Fatalf("after retention size %d start %d", l.Size(), l.StartOffset())
	}
}
