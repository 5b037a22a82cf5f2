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

// TestAppliedBatchesMoveTheHighWatermark: the log assigns offsets, applying
// publishes them and wakes waiters, and reads stop at the high watermark,
// never at the log end.
func TestAppliedBatchesMoveTheHighWatermark(t *testing.T) {
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
	res.Release()
	if _, err := f.p.Fetch(6, 1<<20); !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Fatalf("fetch past the high watermark: %v", err)
	}

	// Stored but not applied (not committed yet): invisible to reads, and
	// waiters are not woken.
	changed = f.p.Changed()
	prop, _, err := f.propose(build(t, 4, -1, 0, 0, 200))
	if err != nil {
		t.Fatal(err)
	}
	idx := f.store(prop)
	if end := f.p.Log().EndOffset(); end != 9 {
		t.Fatalf("log end %d after storing, want 9", end)
	}
	res, err = f.p.Fetch(0, 1<<20)
	if err != nil || len(res.Batches) != 2 || res.HighWatermark != 5 {
		t.Fatalf("fetch with an unapplied batch stored: %d batches, hw %d, %v", len(res.Batches), res.HighWatermark, err)
	}
	res.Release()
	if res, err := f.p.Fetch(5, 1<<20); err != nil || len(res.Batches) != 0 {
		t.Fatalf("fetch at the high watermark: %d batches, %v", len(res.Batches), err)
	}
	// Stored but not committed is not out of range: a replica behind the
	// commit (or a new leader before its barrier) answers nothing yet, or
	// consumers would reset their offsets.
	if res, err := f.p.Fetch(6, 1<<20); err != nil || len(res.Batches) != 0 {
		t.Fatalf("fetch inside the unapplied batch: %d batches, %v; want none and no error", len(res.Batches), err)
	}
	if _, err := f.p.Fetch(10, 1<<20); !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Fatalf("fetch past the log end: %v", err)
	}
	if off, _, err := f.p.ListOffset(ListLatest); err != nil || off != 5 {
		t.Fatalf("ListOffset(latest) with an unapplied batch stored: %d, %v", off, err)
	}
	if off, _, err := f.p.ListOffset(150); err != nil || off != -1 {
		t.Fatalf("ListOffset finds an unapplied batch: %d, %v", off, err)
	}
	select {
	case <-changed:
		t.Fatal("waiters woken before the batch was applied")
	default:
	}
	f.apply(idx, prop)
	<-changed
	res, err = f.p.Fetch(5, 1<<20)
	if err != nil || len(res.Batches) != 1 || res.HighWatermark != 9 {
		t.Fatalf("fetch after applying: %d batches, hw %d, %v", len(res.Batches), res.HighWatermark, err)
	}
	res.Release()
	// The same high watermark again wakes nobody.
	changed = f.p.Changed()
	f.p.SetHighWatermark(9)
	select {
	case <-changed:
		t.Fatal("waiters woken by an unchanged high watermark")
	default:
	}
}

func TestPrepareRefusesBadBatches(t *testing.T) {
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
	if f.p.HighWatermark() != 0 || f.p.Log().LastIndex() != 0 {
		t.Fatalf("refused batches were stored: hw %d, last index %d", f.p.HighWatermark(), f.p.Log().LastIndex())
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
		before, beforeEnd := f.p.HighWatermark(), f.p.Log().EndOffset()
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
		if grew := f.p.Log().EndOffset() > beforeEnd; grew != s.stored {
			t.Fatalf("%s: log grew=%v, want %v", s.name, grew, s.stored)
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

// TestDuplicateOfAnInFlightBatchGetsItsOffset: a client's retry of a batch
// the leader has proposed but not yet applied is not proposed again; it is
// answered with the original's offset once that is applied.
func TestDuplicateOfAnInFlightBatchGetsItsOffset(t *testing.T) {
	f := newFixture(t, defaultConfig())
	defer f.p.Close()
	if _, err := f.produce(build(t, 1, -1, 0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	b := build(t, 4, 11, 0, 0, 0)
	first, _, err := f.propose(append([]byte(nil), b...))
	if err != nil || first == nil {
		t.Fatalf("first: %v", err)
	}
	idx := f.store(first) // stored, not yet committed
	_, dup, err := f.propose(append([]byte(nil), b...))
	if err != nil || dup == nil || dup.Done() {
		t.Fatalf("retry while the first is in flight: dup %v, %v", dup, err)
	}
	f.apply(idx, first)
	off1, _ := first.Wait()
	off2, err2 := dup.Wait()
	if err2 != nil || off1 != 1 || off2 != 1 {
		t.Fatalf("first at %d, retry at %d (%v); want both at offset 1", off1, off2, err2)
	}
	if hw, end := f.p.HighWatermark(), f.p.Log().EndOffset(); hw != 5 || end != 5 {
		t.Fatalf("hw %d, log end %d: the retry was stored twice", hw, end)
	}
}

// TestProducerStateSurvivesRestartAndCrash: a replica restarts from its
// latest snapshot's producer table and the entries raft replays after it,
// so retries from before and after the snapshot are both still
// recognised, after a clean close and after a power loss.
func TestProducerStateSurvivesRestartAndCrash(t *testing.T) {
	for _, crash := range []bool{false, true} {
		name := map[bool]string{false: "clean close", true: "power loss"}[crash]
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, defaultConfig())
			for i := int32(0); i < 3; i++ {
				if _, err := f.produce(build(t, 2, 5, 2, 2*i, 0)); err != nil {
					t.Fatal(err)
				}
			}
			snap := f.snapshot()
			for i := int32(3); i < 5; i++ {
				if _, err := f.produce(build(t, 2, 5, 2, 2*i, 0)); err != nil {
					t.Fatal(err)
				}
			}
			f.restart(crash, snap)
			defer f.p.Close()
			if hw := f.p.HighWatermark(); hw != 10 {
				t.Fatalf("high watermark %d after restart, want 10", hw)
			}
			for _, seq := range []int32{2, 8} { // one from before the snapshot, one after
				if r, err := f.produce(build(t, 2, 5, 2, seq, 0)); err != nil || r.BaseOffset != int64(seq) {
					t.Fatalf("retry of seq %d after restart: %+v %v", seq, r, err)
				}
			}
			if _, err := f.produce(build(t, 2, 5, 1, 10, 0)); !errors.Is(err, kerr.InvalidProducerEpoch) {
				t.Fatalf("old epoch after restart: %v", err)
			}
			if r, err := f.produce(build(t, 1, 5, 2, 10, 0)); err != nil || r.BaseOffset != 10 {
				t.Fatalf("next batch after restart: %+v %v", r, err)
			}
		})
	}
}

// TestProducerSnapshotsRacingProduce: snapshots of the producer table
// taken while producers propose and the state machine applies must never
// drop a batch: restarting from any of them and replaying the later
// entries, each producer's last batch is still a duplicate.
func TestProducerSnapshotsRacingProduce(t *testing.T) {
	f := newFixture(t, defaultConfig())
	const producers, each = 4, 60
	type entry struct {
		idx  uint64
		prop *proposal
	}
	// Proposals are stored in proposal order (under proposeMu, as raft's
	// leader appends them) and applied by one goroutine in that order, as
	// raft's FSM goroutine does; Sequence runs meanwhile.
	committed := make(chan entry, producers*each)
	applied := make(chan struct{})
	go func() {
		defer close(applied)
		for e := range committed {
			f.apply(e.idx, e.prop)
		}
	}()
	var wg sync.WaitGroup
	for pid := int64(0); pid < producers; pid++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := int32(0); seq < each; seq++ {
				f.proposeMu.Lock()
				prop, dup, err := f.propose(build(t, 1, 100+pid, 0, seq, 0))
				if err == nil && dup == nil {
					committed <- entry{f.store(prop), prop}
				}
				f.proposeMu.Unlock()
				switch {
				case err != nil:
					t.Error(err)
					return
				case dup != nil:
					t.Errorf("producer %d seq %d: a duplicate", pid, seq)
					return
				}
				prop.Wait()
			}
		}()
	}
	var snaps []fsmSnapshot
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				snaps = append(snaps, f.snapshot())
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-done
	close(committed)
	<-applied
	if len(snaps) < 2 {
		t.Fatalf("only %d snapshots taken", len(snaps))
	}
	for _, s := range []fsmSnapshot{snaps[0], snaps[len(snaps)/2], snaps[len(snaps)-1]} {
		f.restart(true, s)
		before := f.p.HighWatermark()
		if before != producers*each {
			t.Fatalf("snapshot at index %d: high watermark %d after replay, want %d", s.index, before, producers*each)
		}
		for pid := int64(0); pid < producers; pid++ {
			_, dup, err := f.propose(build(t, 1, 100+pid, 0, each-1, 0))
			if err != nil || dup == nil {
				t.Fatalf("snapshot at index %d: producer %d: retry of its last batch: dup %v, %v", s.index, pid, dup, err)
			}
			off, err := dup.Wait()
			if err != nil || off >= before {
				t.Fatalf("snapshot at index %d: producer %d: last batch at %d, %v", s.index, pid, off, err)
			}
			res, err := f.p.Fetch(off, 1)
			if err != nil || len(res.Batches) != 1 {
				t.Fatalf("fetch at %d: %d batches, %v", off, len(res.Batches), err)
			}
			if h, _ := batch.ParseHeader(res.Batches[0]); h.ProducerID != 100+pid || h.BaseSequence != each-1 || h.BaseOffset != off {
				t.Fatalf("snapshot at index %d: producer %d: the duplicate's offset %d holds %+v", s.index, pid, off, h)
			}
			res.Release()
		}
	}
	f.p.Close()
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

// TestListOffsetLogStartAndRetention: ListOffsets by timestamp; the log
// start the state machine sets (DeleteRecords, retention) bounds reads;
// RetentionCut computes the cut the leader proposes.
func TestListOffsetLogStartAndRetention(t *testing.T) {
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
		{ListEarliestLocal, 0, -1},
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

	// DeleteRecords(3), applied: reads below 3 are out of range at once,
	// though no segment file is removed yet.
	f.p.SetLogStart(3)
	if lw := f.p.LogStartOffset(); lw != 3 {
		t.Fatalf("log start %d after SetLogStart(3)", lw)
	}
	if off, _, err := f.p.ListOffset(ListEarliest); err != nil || off != 3 {
		t.Fatalf("ListOffset(earliest) = %d, %v; want 3", off, err)
	}
	if _, err := f.p.Fetch(2, 100); !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Fatalf("fetch below the log start: %v", err)
	}
	if res, err := f.p.Fetch(3, 100); err != nil || len(res.Batches) == 0 {
		t.Fatalf("fetch at the log start: %d batches, %v", len(res.Batches), err)
	}
	segs := f.p.Log().Segments()
	if len(segs) < 3 { // sealed ones below and above the log start, and the active one
		t.Fatalf("%d segments; the test needs several", len(segs))
	}

	// Nothing is an hour old yet: no cut to propose. Then everything but
	// the active segment is.
	if cut := f.p.RetentionCut(); cut > f.p.LogStartOffset() {
		t.Fatalf("retention too early: cut at %d", cut)
	}
	f.now = f.now.Add(2 * time.Hour)
	cut := f.p.RetentionCut()
	if want := segs[len(segs)-1].BaseOffset; cut != want {
		t.Fatalf("retention cut %d, want the active segment's base %d", cut, want)
	}
	// The cut never passes the high watermark (records may be stored past
	// it, not yet committed).
	f.p.SetHighWatermark(4)
	if c := f.p.RetentionCut(); c != 4 {
		t.Fatalf("retention cut %d with the high watermark at 4", c)
	}
	f.p.SetHighWatermark(20)
	// Applied, and the segments below removed (replication trims them once
	// its snapshots allow).
	f.p.SetLogStart(cut)
	if err := f.p.Log().DeleteBefore(cut); err != nil {
		t.Fatal(err)
	}
	segs = f.p.Log().Segments()
	if start := f.p.LogStartOffset(); start != cut || len(segs) != 1 || segs[0].BaseOffset != cut {
		t.Fatalf("after retention: start %d, %d segments", start, len(segs))
	}
	// DeleteRecords(-1): the high watermark.
	f.p.SetLogStart(20)
	if lw := f.p.LogStartOffset(); lw != 20 {
		t.Fatalf("log start %d after SetLogStart(20)", lw)
	}
	if res, err := f.p.Fetch(20, 100); err != nil || len(res.Batches) != 0 {
		t.Fatalf("fetch at the log start and high watermark: %d batches, %v", len(res.Batches), err)
	}
}

func TestPrepareDecompressesToValidate(t *testing.T) {
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
	if f.p.HighWatermark() != 0 || f.p.Log().LastIndex() != 0 {
		t.Fatal("a refused batch was stored")
	}
	if _, err := f.produce(b); err != nil {
		t.Fatalf("the honest compressed batch: %v", err)
	}
}

func fixCRC(b []byte) {
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
}

// TestSetConfig: a changed topic configuration applies to the next
// Prepare and the next append; an invalid one is refused and changes
// nothing.
func TestSetConfig(t *testing.T) {
	f := newFixture(t, defaultConfig())
	defer f.p.Close()
	b := build(t, 10, -1, 0, 0, 5)

	cfg := f.p.Config()
	cfg.MaxMessageBytes = int32(len(b) - 1)
	if err := f.p.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := f.p.Prepare(append([]byte(nil), b...)); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("after lowering max.message.bytes: %v", err)
	}
	cfg.MaxMessageBytes = int32(len(b))
	cfg.TimestampType = LogAppendTime
	cfg.SegmentBytes = 1024
	if err := f.p.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if f.p.Config() != cfg {
		t.Fatalf("config %+v, want %+v", f.p.Config(), cfg)
	}
	r, err := f.produce(append([]byte(nil), b...))
	if err != nil || r.LogAppendTime != f.now.UnixMilli() {
		t.Fatalf("after switching to LogAppendTime: %+v, %v", r, err)
	}
	for i := 0; i < 20; i++ {
		if _, err := f.produce(build(t, 2, -1, 0, 0, 5)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.p.Log().Segments()); n < 2 {
		t.Fatalf("%d segments after lowering segment.bytes to 1024", n)
	}

	bad := cfg
	bad.SegmentBytes = 1
	bad.MaxMessageBytes = 1
	if err := f.p.SetConfig(bad); err == nil {
		t.Fatal("segment.bytes 1 accepted")
	}
	if f.p.Config() != cfg {
		t.Fatalf("a refused config changed it: %+v", f.p.Config())
	}
	if _, err := f.p.Prepare(build(t, 1, -1, 0, 0, 5)); err != nil {
		t.Fatalf("after a refused config: %v", err)
	}
}

// TestIgnoresStandaloneProducerSnapshot: a producers.snapshot file that the
// standalone mode of earlier builds wrote into the partition's directory
// is neither read nor removed: the producer table starts empty, as the
// state machine's snapshot manifests and raft's replay define it.
func TestIgnoresStandaloneProducerSnapshot(t *testing.T) {
	f := newFixture(t, defaultConfig())
	if _, err := f.produce(build(t, 2, 9, 0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	old := f.p.ProducerState() // the same encoding the file had
	f.p.Close()
	path := fixtureDir + "/producers.snapshot"
	if err := vfs.WriteFileAtomic(f.m, path, old); err != nil {
		t.Fatal(err)
	}
	f.p = f.openAt(fixtureDir)
	defer f.p.Close()
	if _, err := f.p.Sequence(header(t, build(t, 1, 9, 0, 2, 0), 0), nil); !errors.Is(err, kerr.UnknownProducerID) {
		t.Fatalf("producer known from the old file: %v", err)
	}
	if got, err := vfs.ReadFile(f.m, path, 1<<20); err != nil || string(got) != string(old) {
		t.Fatalf("the old file was changed: %v", err)
	}
	if st := f.p.ProducerState(); string(st) != string(newProducers(1).encode()) {
		t.Fatalf("producer table not empty: %x", st)
	}
}
