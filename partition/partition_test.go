package partition

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/log/batch"
	"github.com/sluicemq/sluice/log/vfs"
)

func defaultConfig() Config {
	return Config{MaxMessageBytes: 1 << 20, SegmentBytes: 1 << 30}
}

type fixture struct {
	t   *testing.T
	m   *vfs.Mem
	now time.Time
	p   *Partition
	cfg Config
}

func newFixture(t *testing.T, cfg Config) *fixture {
	f := &fixture{t: t, m: vfs.NewMem(), now: time.UnixMilli(1_700_000_000_000), cfg: cfg}
	f.open()
	return f
}

func (f *fixture) open() {
	f.t.Helper()
	p, err := Open("/data/t-0", "t", 0, f.cfg, Options{FS: f.m, Now: func() time.Time { return f.now }})
	if err != nil {
		f.t.Fatalf("open: %v", err)
	}
	f.p = p
}

// build makes a batch of n records; pid < 0 means not idempotent.
func build(t *testing.T, n int, pid int64, epoch int16, seq int32, ts int64) []byte {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{Key: []byte{byte(i)}, Value: []byte("value"), TimestampDelta: int64(i)}
	}
	opts := batch.BuildOptions{BaseTimestamp: ts}
	if pid >= 0 {
		opts.Producer = &batch.ProducerInfo{ID: pid, Epoch: epoch, BaseSequence: seq}
	}
	b, err := batch.Build(recs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) produce(b []byte) (ProduceResult, error) {
	return f.p.Produce(b)()
}

func TestProduceAssignsOffsetsAndWakesWaiters(t *testing.T) {
	f := newFixture(t, defaultConfig())
	defer f.p.Close()
	changed := f.p.Changed()
	r, err := f.produce(build(t, 3, -1, 0, 0, 100))
	if err != nil || r.BaseOffset != 0 || r.LogAppendTime != -1 {
		t.Fatalf("first produce: %+v %v", r, err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("waiters were not woken by the new high watermark")
	}
	r, err = f.produce(build(t, 2, -1, 0, 0, 100))
	if err != nil || r.BaseOffset != 3 || f.p.HighWatermark() != 5 {
		t.Fatalf("second produce: %+v %v, hw %d", r, err, f.p.HighWatermark())
	}
	res, err := f.p.Fetch(0, 1<<20)
	if err != nil || len(res.Batches) != 2 || res.HighWatermark != 5 {
		t.Fatalf("fetch: %d batches, hw %d, %v", len(res.Batches), res.HighWatermark, err)
	}
	if _, err := f.p.Fetch(6, 1<<20); !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Fatalf("fetch past the high watermark: %v", err)
	}
}

func TestProduceRefusesBadBatches(t *testing.T) {
	cfg := defaultConfig()
	cfg.MaxMessageBytes = 4096
	f := newFixture(t, cfg)
	defer f.p.Close()
	good := build(t, 2, -1, 0, 0, 0)
	flip := append([]byte(nil), good...)
	flip[len(flip)-1] ^= 1
	empty, _ := batch.Build(nil, batch.BuildOptions{})
	control, _ := batch.Build([]batch.Record{{Key: []byte{0, 0, 0, 0}}}, batch.BuildOptions{Control: true})
	txn, _ := batch.Build([]batch.Record{{Value: []byte("x")}}, batch.BuildOptions{Transactional: true, Producer: &batch.ProducerInfo{ID: 1}})
	big, _ := batch.Build([]batch.Record{{Value: make([]byte, 5000)}}, batch.BuildOptions{})
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"crc mismatch", flip, kerr.CorruptMessage},
		{"truncated", good[:len(good)-3], kerr.CorruptMessage},
		{"garbage", []byte("not a batch at all, but long enough to have a header of sixty-one bytes......"), kerr.CorruptMessage},
		{"two batches", append(append([]byte(nil), good...), good...), kerr.InvalidRecord},
		{"no records", empty, kerr.InvalidRecord},
		{"control batch from a client", control, kerr.InvalidRecord},
		{"transactional", txn, kerr.TransactionalIDAuthorizationFailed},
		{"over max.message.bytes", big, kerr.MessageTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.produce(tc.b); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	if f.p.HighWatermark() != 0 {
		t.Fatalf("refused batches were stored: hw %d", f.p.HighWatermark())
	}
}

func TestIdempotentProducerSequences(t *testing.T) {
	f := newFixture(t, defaultConfig())
	defer f.p.Close()
	type step struct {
		name       string
		pid        int64
		epoch      int16
		seq        int32
		n          int
		wantErr    error
		wantOffset int64 // for successes
		stored     bool  // whether the log grows
	}
	steps := []step{
		{"first batch", 7, 0, 0, 3, nil, 0, true},
		{"next in sequence", 7, 0, 3, 2, nil, 3, true},
		{"duplicate of the last", 7, 0, 3, 2, nil, 3, false},
		{"duplicate of the first", 7, 0, 0, 3, nil, 0, false},
		{"gap", 7, 0, 9, 1, kerr.OutOfOrderSequenceNumber, 0, false},
		{"overlap that is not a duplicate", 7, 0, 4, 1, kerr.OutOfOrderSequenceNumber, 0, false},
		{"old epoch", 7, -1 + 0, 5, 1, kerr.InvalidProducerEpoch, 0, false},
		{"unknown producer mid-sequence", 8, 0, 4, 1, kerr.UnknownProducerID, 0, false},
		{"unknown producer from zero", 8, 0, 0, 1, nil, 5, true},
		{"new epoch must start at zero", 7, 1, 5, 1, kerr.OutOfOrderSequenceNumber, 0, false},
		{"new epoch from zero", 7, 1, 0, 1, nil, 6, true},
		{"old epoch after the bump", 7, 0, 5, 1, kerr.InvalidProducerEpoch, 0, false},
	}
	for _, s := range steps {
		before := f.p.HighWatermark()
		r, err := f.produce(build(t, s.n, s.pid, s.epoch, s.seq, 0))
		if !errors.Is(err, s.wantErr) {
			t.Fatalf("%s: err %v, want %v", s.name, err, s.wantErr)
		}
		if err == nil && r.BaseOffset != s.wantOffset {
			t.Fatalf("%s: offset %d, want %d", s.name, r.BaseOffset, s.wantOffset)
		}
		if grew := f.p.HighWatermark() > before; grew != s.stored {
			t.Fatalf("%s: stored=%v, want %v", s.name, grew, s.stored)
		}
	}
}

func TestDedupWindowIsFiveBatches(t *testing.T) {
	f := newFixture(t, defaultConfig())
	defer f.p.Close()
	for i := int32(0); i < 6; i++ {
		if _, err := f.produce(build(t, 1, 3, 0, i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	// Sequences 1..5 are remembered; 0 has left the window.
	if r, err := f.produce(build(t, 1, 3, 0, 1, 0)); err != nil || r.BaseOffset != 1 {
		t.Fatalf("duplicate inside the window: %+v %v", r, err)
	}
	if _, err := f.produce(build(t, 1, 3, 0, 0, 0)); !errors.Is(err, kerr.OutOfOrderSequenceNumber) {
		t.Fatalf("duplicate outside the window: %v", err)
	}
}

func TestDuplicateOfAnInFlightBatchGetsItsOffset(t *testing.T) {
	f := newFixture(t, defaultConfig())
	defer f.p.Close()
	if _, err := f.produce(build(t, 1, -1, 0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	f.m.StallSync(release)
	b := build(t, 4, 11, 0, 0, 0)
	first := f.p.Produce(append([]byte(nil), b...))
	retry := f.p.Produce(append([]byte(nil), b...)) // the client's retry while the first waits on fsync
	close(release)
	f.m.ClearFaults()
	r1, err1 := first()
	r2, err2 := retry()
	if err1 != nil || err2 != nil || r1.BaseOffset != 1 || r2.BaseOffset != 1 {
		t.Fatalf("first %+v %v, retry %+v %v; want both at offset 1", r1, err1, r2, err2)
	}
	if hw := f.p.HighWatermark(); hw != 5 {
		t.Fatalf("hw %d: the retry was stored twice", hw)
	}
}

func TestProducerStateSurvivesRestartAndCrash(t *testing.T) {
	for _, crash := range []bool{false, true} {
		name := map[bool]string{false: "clean close (snapshot)", true: "power loss (rebuild from log)"}[crash]
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, defaultConfig())
			for i := int32(0); i < 4; i++ {
				if _, err := f.produce(build(t, 2, 5, 2, 2*i, 0)); err != nil {
					t.Fatal(err)
				}
			}
			if crash {
				f.m.Crash(vfs.CrashOptions{})
			} else if err := f.p.Close(); err != nil {
				t.Fatal(err)
			}
			f.open()
			defer f.p.Close()
			if r, err := f.produce(build(t, 2, 5, 2, 6, 0)); err != nil || r.BaseOffset != 6 {
				t.Fatalf("retry of the last batch after restart: %+v %v (want its offset 6)", r, err)
			}
			if _, err := f.produce(build(t, 2, 5, 1, 8, 0)); !errors.Is(err, kerr.InvalidProducerEpoch) {
				t.Fatalf("old epoch after restart: %v", err)
			}
			if r, err := f.produce(build(t, 1, 5, 2, 8, 0)); err != nil || r.BaseOffset != 8 {
				t.Fatalf("next batch after restart: %+v %v", r, err)
			}
		})
	}
}

func TestLogAppendTime(t *testing.T) {
	cfg := defaultConfig()
	cfg.TimestampType = LogAppendTime
	f := newFixture(t, cfg)
	defer f.p.Close()
	r, err := f.produce(build(t, 2, -1, 0, 0, 5))
	if err != nil || r.LogAppendTime != f.now.UnixMilli() {
		t.Fatalf("produce: %+v %v", r, err)
	}
	res, _ := f.p.Fetch(0, 1<<20)
	h, err := batch.Validate(res.Batches[0], batch.ValidateOptions{})
	if err != nil || !h.IsLogAppendTime() || h.MaxTimestamp != f.now.UnixMilli() {
		t.Fatalf("stored batch: %+v %v", h, err)
	}
}

func TestListOffsetDeleteRecordsAndRetention(t *testing.T) {
	cfg := defaultConfig()
	cfg.SegmentBytes = 1024
	cfg.Retention = log.Retention{MaxAge: time.Hour}
	f := newFixture(t, cfg)
	defer f.p.Close()
	base := f.now.UnixMilli()
	for i := 0; i < 20; i++ {
		if _, err := f.produce(build(t, 1, -1, 0, 0, base+int64(i)*1000)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		ts, want, wantTs int64
	}{
		{ListEarliest, 0, -1},
		{ListLatest, 20, -1},
		{ListMaxTimestamp, 19, base + 19000},
		{base + 5000, 5, base + 5000},
		{base + 5001, 6, base + 6000},
		{base + 20000, -1, -1},
	}
	for _, tc := range tests {
		off, ts, err := f.p.ListOffset(tc.ts)
		if err != nil || off != tc.want || ts != tc.wantTs {
			t.Errorf("ListOffset(%d) = %d, %d, %v; want %d, %d", tc.ts, off, ts, err, tc.want, tc.wantTs)
		}
	}
	if _, _, err := f.p.ListOffset(-7); !errors.Is(err, kerr.InvalidRequest) {
		t.Errorf("ListOffset(-7): %v", err)
	}
	if _, err := f.p.DeleteRecords(21); !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Fatalf("DeleteRecords past hw: %v", err)
	}
	if lw, err := f.p.DeleteRecords(3); err != nil || lw != 3 {
		t.Fatalf("DeleteRecords(3): %d %v", lw, err)
	}
	if _, err := f.p.Fetch(2, 100); !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Fatalf("fetch below the log start: %v", err)
	}
	// Nothing is an hour old yet; then everything but the active segment is.
	if start, _ := f.p.ApplyRetention(); start != 3 {
		t.Fatalf("retention too early moved the start to %d", start)
	}
	f.now = f.now.Add(2 * time.Hour)
	start, err := f.p.ApplyRetention()
	segs := f.p.Log().Segments()
	if err != nil || start != segs[0].BaseOffset || len(segs) != 1 {
		t.Fatalf("retention: start %d, %d segments, %v", start, len(segs), err)
	}
	if lw, err := f.p.DeleteRecords(-1); err != nil || lw != 20 {
		t.Fatalf("DeleteRecords(-1): %d %v", lw, err)
	}
}

func TestProduceDecompressesToValidate(t *testing.T) {
	f := newFixture(t, defaultConfig())
	defer f.p.Close()
	// A zstd batch whose header claims one more record than it holds.
	recs := []batch.Record{{Value: []byte("a")}, {Value: []byte("b")}}
	b, err := batch.Build(recs, batch.BuildOptions{Codec: batch.CodecZstd})
	if err != nil {
		t.Fatal(err)
	}
	lying := append([]byte(nil), b...)
	lying[60]++ // recordCount
	lying[26]++ // lastOffsetDelta, so the header alone still looks consistent
	fixCRC(lying)
	if _, err := f.produce(lying); !errors.Is(err, kerr.CorruptMessage) {
		t.Fatalf("compressed batch with a wrong record count: %v", err)
	}
	// A bomb: 100 MiB of zeros compresses to a few KiB.
	zeros := make([]byte, 100<<20)
	bomb, err := batch.Build([]batch.Record{{Value: zeros}}, batch.BuildOptions{Codec: batch.CodecZstd})
	if err != nil {
		t.Fatal(err)
	}
	zeros = nil
	if _, err := f.produce(bomb); !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("compression bomb (%d bytes): %v", len(bomb), err)
	}
	if f.p.HighWatermark() != 0 {
		t.Fatal("a refused batch was stored")
	}
	if _, err := f.produce(b); err != nil {
		t.Fatalf("the honest compressed batch: %v", err)
	}
}

func fixCRC(b []byte) {
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
}

// After a crash, producer state comes from the latest periodic snapshot plus
// a scan of what followed it; retries from before and after the snapshot are
// both still recognised.
func TestPeriodicProducerSnapshotAndCrash(t *testing.T) {
	f := newFixture(t, defaultConfig())
	for i := int32(0); i < 3; i++ {
		if _, err := f.produce(build(t, 1, 9, 0, i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.p.SnapshotProducers(); err != nil {
		t.Fatal(err)
	}
	for i := int32(3); i < 5; i++ {
		if _, err := f.produce(build(t, 1, 9, 0, i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	f.m.Crash(vfs.CrashOptions{})
	f.open()
	defer f.p.Close()
	for _, seq := range []int32{1, 4} { // one from before the snapshot, one after
		if r, err := f.produce(build(t, 1, 9, 0, seq, 0)); err != nil || r.BaseOffset != int64(seq) {
			t.Fatalf("retry of seq %d after crash: %+v %v", seq, r, err)
		}
	}
	if r, err := f.produce(build(t, 1, 9, 0, 5, 0)); err != nil || r.BaseOffset != 5 {
		t.Fatalf("next batch after crash: %+v %v", r, err)
	}
}

// Snapshots taken while producers run must never drop a batch from the
// state: after a crash, each producer's last batch is still a duplicate.
func TestProducerSnapshotsRacingProduce(t *testing.T) {
	f := newFixture(t, defaultConfig())
	const producers, each = 4, 60
	var wg sync.WaitGroup
	for pid := int64(0); pid < producers; pid++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := int32(0); seq < each; seq++ {
				if _, err := f.produce(build(t, 1, 100+pid, 0, seq, 0)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				if err := f.p.SnapshotProducers(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-done
	f.m.Crash(vfs.CrashOptions{})
	f.open()
	defer f.p.Close()
	before := f.p.HighWatermark()
	for pid := int64(0); pid < producers; pid++ {
		if _, err := f.produce(build(t, 1, 100+pid, 0, each-1, 0)); err != nil {
			t.Fatalf("producer %d: retry of its last batch: %v", pid, err)
		}
	}
	if f.p.HighWatermark() != before {
		t.Fatal("a retried batch was stored again: producer state lost a batch")
	}
}
