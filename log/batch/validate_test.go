package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

func TestValidateGood(t *testing.T) {
	type tc struct {
		name string
		recs []Record
		opts BuildOptions
	}
	var cases []tc
	for _, c := range allCodecs {
		cases = append(cases,
			tc{"one/" + c.String(), sampleRecords(1, 10), BuildOptions{Codec: c}},
			tc{"mixed/" + c.String(), sampleRecords(20, 100), BuildOptions{Codec: c, BaseTimestamp: 1_700_000_000_000}},
			tc{"many/" + c.String(), sampleRecords(1000, 30), BuildOptions{Codec: c, BaseTimestamp: 5}},
			tc{"big-values/" + c.String(), sampleRecords(3, 200<<10), BuildOptions{Codec: c}},
			tc{"empty/" + c.String(), nil, BuildOptions{Codec: c}},
			tc{"nulls/" + c.String(), []Record{{}, {Key: []byte{}, Value: []byte{}}, {Headers: []RecordHeader{{Key: "k"}}}}, BuildOptions{Codec: c}},
			tc{"idempotent/" + c.String(), sampleRecords(5, 10), BuildOptions{
				Codec: c, BaseOffset: 1234, PartitionLeaderEpoch: 7, Transactional: true,
				Producer: &ProducerInfo{ID: 99, Epoch: 3, BaseSequence: math.MaxInt32 - 2},
			}},
			tc{"control/" + c.String(), []Record{{Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 5}}}, BuildOptions{
				Codec: c, Transactional: true, Control: true, Producer: &ProducerInfo{ID: 1, Epoch: 0, BaseSequence: -1},
			}},
			tc{"no-timestamp/" + c.String(), sampleRecords(4, 8), BuildOptions{Codec: c, BaseTimestamp: NoTimestamp}},
		)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := mustBuild(t, tc.recs, tc.opts)
			for _, opts := range []ValidateOptions{{}, {Deep: true}, {AllowCompacted: true}, {Deep: true, AllowCompacted: true}} {
				h, err := Validate(b, opts)
				if err != nil {
					t.Fatalf("Validate(%+v): %v", opts, err)
				}
				if h.RecordCount != int32(len(tc.recs)) || h.Codec() != tc.opts.Codec || h.BaseOffset != tc.opts.BaseOffset {
					t.Fatalf("header %+v does not match build options %+v", h, tc.opts)
				}
			}
			got, err := collect(b, Limits{})
			if err != nil {
				t.Fatalf("Records: %v", err)
			}
			want := make([]Record, len(tc.recs))
			for i, r := range tc.recs {
				r.OffsetDelta = int32(i) // Build assigns offset deltas
				want[i] = r
			}
			requireSameRecords(t, got, want)

			// Broker-side stamping keeps the batch valid.
			c := bytes.Clone(b)
			SetBaseOffset(c, 1<<40)
			SetPartitionLeaderEpoch(c, 12)
			if err := SetLogAppendTime(c, 1_800_000_000_000); err != nil {
				t.Fatal(err)
			}
			h, err := Validate(c, ValidateOptions{Deep: true})
			if err != nil {
				t.Fatalf("after stamping: %v", err)
			}
			if h.BaseOffset != 1<<40 || h.PartitionLeaderEpoch != 12 || !h.IsLogAppendTime() || h.MaxTimestamp != 1_800_000_000_000 {
				t.Fatalf("stamped header %+v", h)
			}
			if h.Codec() != tc.opts.Codec || h.IsTransactional() != tc.opts.Transactional || h.IsControl() != tc.opts.Control {
				t.Fatalf("stamping changed attributes: %+v", h)
			}
			for _, r := range got {
				if ts := h.RecordTimestamp(r); ts != 1_800_000_000_000 {
					t.Fatalf("log-append-time record timestamp %d", ts)
				}
			}
		})
	}
}

func TestValidateNoAllocs(t *testing.T) {
	b := mustBuild(t, sampleRecords(50, 64), BuildOptions{})
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Validate(b, ValidateOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Validate allocated %.1f times per run", allocs)
	}
}

func TestValidateBad(t *testing.T) {
	recs := sampleRecords(3, 20)
	good := mustBuild(t, recs, BuildOptions{BaseTimestamp: 1000})
	three := append(append(simpleRecord(0), simpleRecord(1)...), simpleRecord(2)...)

	// mutate returns a copy of good changed by fn, with length and CRC
	// repaired when fix is set.
	mutate := func(fix bool, fn func(b []byte) []byte) []byte {
		b := fn(bytes.Clone(good))
		if fix {
			fixLengthAndCRC(b)
		}
		return b
	}
	put32 := func(off int, v int32) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint32(b[off:], uint32(v)); return b }
	}
	put64 := func(off int, v int64) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint64(b[off:], uint64(v)); return b }
	}
	put16 := func(off int, v int16) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint16(b[off:], uint16(v)); return b }
	}
	hdr := func(fn func(h *rawHeader), payload []byte) []byte {
		rh := goodHeader(3)
		fn(&rh)
		return rh.encode(payload)
	}
	withRecords := func(n int32, payload ...[]byte) []byte {
		return hdr(func(h *rawHeader) { h.RecordCount = n; h.LastOffsetDelta = max(n-1, 0) }, bytes.Join(payload, nil))
	}
	hugeVarint := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x01}       // 6 bytes
	overflowVarint := []byte{0xfe, 0xff, 0xff, 0xff, 0x7f}         // 5 bytes, > 32 bits
	hugeVarlong := bytes.Repeat([]byte{0xff}, 10)                  // no terminator
	overflowVarlong := append(bytes.Repeat([]byte{0xff}, 9), 0x7f) // > 64 bits
	maxInt32Varint := appendVarint(nil, math.MaxInt32)
	gz := mustBuild(t, recs, BuildOptions{Codec: CodecGzip})

	cases := []struct {
		name string
		b    []byte
		opts ValidateOptions
		want error
	}{
		{"nil", nil, ValidateOptions{}, ErrTooShort},
		{"trunc-10", good[:10], ValidateOptions{}, ErrTooShort},
		{"trunc-60", good[:60], ValidateOptions{}, ErrTooShort},
		{"trunc-61", good[:61], ValidateOptions{}, ErrLengthMismatch},
		{"trunc-mid", good[:len(good)/2], ValidateOptions{}, ErrLengthMismatch},
		{"trunc-last-byte", good[:len(good)-1], ValidateOptions{}, ErrLengthMismatch},
		{"trunc-mid-fixed", mutate(true, func(b []byte) []byte { return b[:len(b)-5] }), ValidateOptions{}, ErrBadRecord},
		{"trunc-header-only-fixed", mutate(true, func(b []byte) []byte { return b[:HeaderSize] }), ValidateOptions{}, ErrRecordCount},
		{"trailing-garbage", append(bytes.Clone(good), 0), ValidateOptions{}, ErrLengthMismatch},
		{"trailing-garbage-fixed", mutate(true, func(b []byte) []byte { return append(b, 0, 0, 0) }), ValidateOptions{}, ErrRecordCount},
		{"magic-0", mutate(false, func(b []byte) []byte { b[16] = 0; return b }), ValidateOptions{}, ErrBadMagic},
		{"magic-1", mutate(false, func(b []byte) []byte { b[16] = 1; return b }), ValidateOptions{}, ErrBadMagic},
		{"magic-3", mutate(false, func(b []byte) []byte { b[16] = 3; return b }), ValidateOptions{}, ErrBadMagic},
		{"crc-flip", mutate(false, func(b []byte) []byte { b[17] ^= 0x01; return b }), ValidateOptions{}, ErrBadCRC},
		{"payload-flip", mutate(false, func(b []byte) []byte { b[len(b)-3] ^= 0x40; return b }), ValidateOptions{}, ErrBadCRC},
		{"attributes-flip", mutate(false, func(b []byte) []byte { b[22] ^= 0x10; return b }), ValidateOptions{}, ErrBadCRC},
		{"length-bigger", mutate(false, put32(8, int32(len(good)-11))), ValidateOptions{}, ErrLengthMismatch},
		{"length-smaller", mutate(false, put32(8, int32(len(good)-13))), ValidateOptions{}, ErrLengthMismatch},
		{"length-negative", mutate(false, put32(8, -1)), ValidateOptions{}, ErrLengthMismatch},
		{"length-max", mutate(false, put32(8, math.MaxInt32)), ValidateOptions{}, ErrLengthMismatch},
		{"count-more", mutate(true, func(b []byte) []byte { put32(23, 3)(b); return put32(57, 4)(b) }), ValidateOptions{}, ErrRecordCount},
		{"count-fewer", mutate(true, func(b []byte) []byte { put32(23, 1)(b); return put32(57, 2)(b) }), ValidateOptions{}, ErrRecordCount},
		{"count-zero", mutate(true, put32(57, 0)), ValidateOptions{}, ErrRecordCount},
		{"count-negative", mutate(true, put32(57, -1)), ValidateOptions{}, ErrRecordCount},
		{"count-max", mutate(true, func(b []byte) []byte { put32(23, math.MaxInt32-1)(b); return put32(57, math.MaxInt32)(b) }), ValidateOptions{}, ErrRecordCount},
		{"last-offset-delta-bigger", mutate(true, put32(23, 5)), ValidateOptions{}, ErrBadOffsetDelta},
		{"last-offset-delta-smaller", mutate(true, put32(23, 1)), ValidateOptions{AllowCompacted: true}, ErrBadOffsetDelta},
		{"last-offset-delta-negative", mutate(true, put32(23, -1)), ValidateOptions{AllowCompacted: true}, ErrBadOffsetDelta},
		{"offset-deltas-swapped", withRecords(3, simpleRecord(0), simpleRecord(2), simpleRecord(1)), ValidateOptions{}, ErrBadOffsetDelta},
		{"offset-deltas-swapped-compacted", withRecords(3, simpleRecord(0), simpleRecord(2), simpleRecord(1)), ValidateOptions{AllowCompacted: true}, ErrBadOffsetDelta},
		{"offset-deltas-duplicate", withRecords(3, simpleRecord(0), simpleRecord(0), simpleRecord(1)), ValidateOptions{AllowCompacted: true}, ErrBadOffsetDelta},
		{"offset-deltas-start-1", withRecords(3, simpleRecord(1), simpleRecord(2), simpleRecord(3)), ValidateOptions{}, ErrBadOffsetDelta},
		{"offset-delta-negative", withRecords(3, simpleRecord(-1), simpleRecord(1), simpleRecord(2)), ValidateOptions{AllowCompacted: true}, ErrBadOffsetDelta},
		{"offset-delta-beyond-last", hdr(func(h *rawHeader) { h.RecordCount = 2; h.LastOffsetDelta = 2 }, append(simpleRecord(0), simpleRecord(3)...)), ValidateOptions{AllowCompacted: true}, ErrBadOffsetDelta},
		{"record-length-negative", withRecords(1, appendVarint(nil, -1)), ValidateOptions{}, ErrBadRecord},
		{"record-length-zero", withRecords(1, appendVarint(nil, 0)), ValidateOptions{}, ErrBadRecord},
		{"record-length-too-long", withRecords(1, append(appendVarint(nil, 100), simpleRecord(0)[1:]...)), ValidateOptions{}, ErrBadRecord},
		{"record-length-too-short", withRecords(1, append(appendVarint(nil, int32(len(simpleRecord(0))-2)), simpleRecord(0)[1:]...)), ValidateOptions{}, ErrBadRecord},
		{"record-length-huge-varint", withRecords(1, hugeVarint, make([]byte, 20)), ValidateOptions{}, ErrBadRecord},
		{"record-length-overflow-varint", withRecords(1, overflowVarint, make([]byte, 20)), ValidateOptions{}, ErrBadRecord},
		{"record-length-truncated-varint", withRecords(1, []byte{0x80}), ValidateOptions{}, ErrBadRecord},
		{"record-length-max", withRecords(1, maxInt32Varint, make([]byte, 20)), ValidateOptions{}, ErrBadRecord},
		{"key-length-negative", withRecords(1, rawRecord(0, 0, -2, nil, 1, []byte("v"), 0, nil)), ValidateOptions{}, ErrBadRecord},
		{"key-length-too-long", withRecords(1, rawRecord(0, 0, 50, []byte("k"), 1, []byte("v"), 0, nil)), ValidateOptions{}, ErrBadRecord},
		{"key-length-max", withRecords(1, rawRecord(0, 0, math.MaxInt32, []byte("k"), 1, []byte("v"), 0, nil)), ValidateOptions{}, ErrBadRecord},
		{"value-length-negative", withRecords(1, rawRecord(0, 0, 1, []byte("k"), -5, nil, 0, nil)), ValidateOptions{}, ErrBadRecord},
		{"value-length-too-long", withRecords(1, rawRecord(0, 0, 1, []byte("k"), 9, []byte("v"), 0, nil)), ValidateOptions{}, ErrBadRecord},
		{"value-length-short", withRecords(1, rawRecord(0, 0, 1, []byte("k"), 1, []byte("vv"), 0, nil)), ValidateOptions{}, ErrBadRecord},
		{"header-count-negative", withRecords(1, rawRecord(0, 0, 1, []byte("k"), 1, []byte("v"), -1, nil)), ValidateOptions{}, ErrBadRecord},
		{"header-count-huge", withRecords(1, rawRecord(0, 0, 1, []byte("k"), 1, []byte("v"), math.MaxInt32, []byte{2, 'a', 0})), ValidateOptions{}, ErrBadRecord},
		{"header-count-more", withRecords(1, rawRecord(0, 0, 1, []byte("k"), 1, []byte("v"), 2, []byte{2, 'a', 0})), ValidateOptions{}, ErrBadRecord},
		{"header-key-null", withRecords(1, rawRecord(0, 0, 1, []byte("k"), 1, []byte("v"), 1, []byte{1, 0})), ValidateOptions{}, ErrBadRecord},
		{"header-key-too-long", withRecords(1, rawRecord(0, 0, 1, []byte("k"), 1, []byte("v"), 1, []byte{40, 'a', 0})), ValidateOptions{}, ErrBadRecord},
		{"header-value-negative", withRecords(1, rawRecord(0, 0, 1, []byte("k"), 1, []byte("v"), 1, []byte{2, 'a', 5})), ValidateOptions{}, ErrBadRecord},
		{"header-value-huge-varint", withRecords(1, rawRecord(0, 0, 1, []byte("k"), 1, []byte("v"), 1, append([]byte{2, 'a'}, hugeVarint...))), ValidateOptions{}, ErrBadRecord},
		{"timestamp-delta-huge-varlong", withRecords(1, append(appendVarint(nil, 15), append(append([]byte{0}, hugeVarlong...), 0, 0, 0, 0)...)), ValidateOptions{}, ErrBadRecord},
		{"timestamp-delta-overflow-varlong", withRecords(1, append(appendVarint(nil, 15), append(append([]byte{0}, overflowVarlong...), 0, 2, 2, 0)...)), ValidateOptions{}, ErrBadRecord},
		{"offset-delta-huge-varint", withRecords(1, append(appendVarint(nil, 11), append([]byte{0, 0}, append(hugeVarint, 2, 2, 0)...)...)), ValidateOptions{}, ErrBadRecord},
		{"record-trailing-bytes", withRecords(1, append(appendVarint(nil, int32(len(simpleRecord(0))+1)), append(simpleRecord(0)[1:], 0, 0)...)), ValidateOptions{}, ErrBadRecord},
		{"records-three-count-two", withRecords(2, three), ValidateOptions{}, ErrRecordCount},
		{"records-three-count-four", withRecords(4, three), ValidateOptions{}, ErrRecordCount},
		{"base-timestamp", mutate(true, put64(27, -2)), ValidateOptions{}, ErrBadTimestamp},
		{"max-timestamp", mutate(true, put64(35, -5)), ValidateOptions{}, ErrBadTimestamp},
		{"max-before-base", mutate(true, put64(35, 999)), ValidateOptions{}, ErrBadTimestamp},
		{"min-timestamp", mutate(true, put64(27, math.MinInt64)), ValidateOptions{}, ErrBadTimestamp},
		{"producer-id", mutate(true, put64(43, -2)), ValidateOptions{}, ErrBadHeader},
		{"producer-epoch", mutate(true, put16(51, -2)), ValidateOptions{}, ErrBadHeader},
		{"base-sequence", mutate(true, put32(53, -2)), ValidateOptions{}, ErrBadHeader},
		{"base-offset-negative", mutate(true, put64(0, -1)), ValidateOptions{}, ErrBadHeader},
		{"codec-5", mutate(true, put16(21, 5)), ValidateOptions{}, ErrUnsupportedCodec},
		{"codec-7", mutate(true, put16(21, 7)), ValidateOptions{}, ErrUnsupportedCodec},
		{"compressed-empty-payload", hdr(func(h *rawHeader) { h.Attributes = int16(CodecZstd) }, nil), ValidateOptions{}, ErrRecordCount},
		{"compressed-garbage-deep", hdr(func(h *rawHeader) { h.Attributes = int16(CodecLZ4) }, []byte("not lz4 at all")), ValidateOptions{Deep: true}, ErrCorruptCompressed},
		{"gzip-count-more-deep", func() []byte {
			b := bytes.Clone(gz)
			put32(23, 3)(b)
			put32(57, 4)(b)
			fixLengthAndCRC(b)
			return b
		}(), ValidateOptions{Deep: true}, ErrRecordCount},
		{"gzip-payload-flip-deep", func() []byte {
			b := bytes.Clone(gz)
			b[len(b)-10] ^= 0xff
			fixLengthAndCRC(b)
			return b
		}(), ValidateOptions{Deep: true}, ErrCorruptCompressed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Validate(tc.b, tc.opts)
			t.Log(err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Validate = %v, want %v", err, tc.want)
			}
			if !wrapsSentinel(err) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			// Records must agree that the batch is bad unless the
			// problem is one Records does not look at (CRC, strict offset
			// rules, compressed data Validate did not open).
			rerr := Records(tc.b, Limits{}, func(Record) error { return nil })
			switch {
			case errors.Is(tc.want, ErrBadCRC), errors.Is(tc.want, ErrBadOffsetDelta) && !tc.opts.AllowCompacted:
			case rerr == nil:
				t.Fatalf("Records accepted a batch Validate rejects with %v", err)
			case !wrapsSentinel(rerr):
				t.Fatalf("Records error %v wraps no sentinel", rerr)
			}
		})
	}
}

// The same bad batch compressed should be caught by deep validation only.
func TestValidateShallowCompressed(t *testing.T) {
	payload := append(simpleRecord(0), simpleRecord(2)...) // deltas 0,2
	for _, c := range allCodecs[1:] {
		t.Run(c.String(), func(t *testing.T) {
			z, err := Compress(c, payload)
			if err != nil {
				t.Fatal(err)
			}
			rh := goodHeader(2)
			rh.Attributes = int16(c)
			b := rh.encode(z)
			if _, err := Validate(b, ValidateOptions{}); err != nil {
				t.Fatalf("shallow Validate: %v", err)
			}
			if _, err := Validate(b, ValidateOptions{Deep: true}); !errors.Is(err, ErrBadOffsetDelta) {
				t.Fatalf("deep Validate = %v, want ErrBadOffsetDelta", err)
			}
			if _, err := Validate(b, ValidateOptions{Deep: true, AllowCompacted: true}); !errors.Is(err, ErrBadOffsetDelta) {
				t.Fatalf("deep compacted Validate = %v, want ErrBadOffsetDelta (lastOffsetDelta 1)", err)
			}
		})
	}
}

func TestValidateCompacted(t *testing.T) {
	// Records 0 and 3 of an original batch of 6 survive compaction.
	recs := []Record{{OffsetDelta: 0, Value: []byte("a")}, {OffsetDelta: 3, Value: []byte("d")}}
	for _, c := range allCodecs {
		b := mustBuild(t, recs, BuildOptions{Codec: c, KeepOffsetDeltas: true, LastOffsetDelta: 5, BaseOffset: 100})
		if _, err := Validate(b, ValidateOptions{Deep: true}); !errors.Is(err, ErrBadOffsetDelta) {
			t.Fatalf("%s: strict Validate = %v, want ErrBadOffsetDelta", c, err)
		}
		h, err := Validate(b, ValidateOptions{Deep: true, AllowCompacted: true})
		if err != nil {
			t.Fatalf("%s: compacted Validate: %v", c, err)
		}
		if h.LastOffset() != 105 || h.NextOffset() != 106 {
			t.Fatalf("%s: offsets %d/%d", c, h.LastOffset(), h.NextOffset())
		}
		got, err := collect(b, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		requireSameRecords(t, got, recs)
		if off := h.RecordOffset(got[1]); off != 103 {
			t.Fatalf("record offset %d", off)
		}
	}
	// An empty batch left behind by compaction keeps its offset range.
	b := mustBuild(t, nil, BuildOptions{KeepOffsetDeltas: true, LastOffsetDelta: 9})
	if _, err := Validate(b, ValidateOptions{}); err != nil {
		t.Fatalf("empty compacted batch: %v", err)
	}
}

func TestTimestampRules(t *testing.T) {
	cases := []struct {
		base, max int64
		attrs     int16
		ok        bool
	}{
		{-1, -1, 0, true},
		{1000, -1, 0, true},
		{1000, 1000, 0, true},
		{-1, 5, 0, true},
		{1000, 999, 0, false},
		{1000, 999, AttrLogAppendTime, true},
		{1000, 999, AttrDeleteHorizon, true},
		{-2, 5, 0, false},
		{5, -2, AttrLogAppendTime, false},
	}
	for _, tc := range cases {
		rh := goodHeader(1)
		rh.BaseTimestamp, rh.MaxTimestamp, rh.Attributes = tc.base, tc.max, tc.attrs
		_, err := Validate(rh.encode(simpleRecord(0)), ValidateOptions{})
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadTimestamp)) {
			t.Errorf("base %d max %d attrs %#x: err %v, want ok=%v", tc.base, tc.max, tc.attrs, err, tc.ok)
		}
	}
}

func TestParseHeader(t *testing.T) {
	b := mustBuild(t, sampleRecords(4, 10), BuildOptions{
		BaseOffset: 42, PartitionLeaderEpoch: 3, BaseTimestamp: 77, Transactional: true,
		Producer: &ProducerInfo{ID: 5, Epoch: 6, BaseSequence: 7},
	})
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Header{
		BaseOffset: 42, BatchLength: int32(len(b) - 12), PartitionLeaderEpoch: 3, Magic: 2,
		CRC: binary.BigEndian.Uint32(b[17:]), Attributes: AttrTransactional, LastOffsetDelta: 3,
		BaseTimestamp: 77, MaxTimestamp: 77 + 21, ProducerID: 5, ProducerEpoch: 6, BaseSequence: 7, RecordCount: 4,
	}
	if h != want {
		t.Fatalf("ParseHeader:\n got %+v\nwant %+v", h, want)
	}
	if h.Size() != len(b) || h.LastOffset() != 45 || h.NextOffset() != 46 || h.LastSequence() != 10 {
		t.Fatalf("helpers: size %d last %d next %d seq %d", h.Size(), h.LastOffset(), h.NextOffset(), h.LastSequence())
	}
	// ParseHeader only needs the header and tolerates trailing data.
	if _, err := ParseHeader(append(bytes.Clone(b[:HeaderSize]), 1, 2, 3)); err != nil {
		t.Fatalf("ParseHeader of header prefix: %v", err)
	}
	if _, err := ParseHeader(b[:HeaderSize-1]); !errors.Is(err, ErrTooShort) {
		t.Fatalf("short: %v", err)
	}
	short := bytes.Clone(b[:HeaderSize])
	binary.BigEndian.PutUint32(short[8:], 48)
	if _, err := ParseHeader(short); !errors.Is(err, ErrLengthMismatch) {
		t.Fatalf("batchLength 48: %v", err)
	}
}

func TestLastSequenceWraps(t *testing.T) {
	for _, tc := range []struct {
		base, delta, want int32
	}{
		{-1, 5, -1}, {0, 0, 0}, {10, 5, 15}, {math.MaxInt32, 0, math.MaxInt32},
		{math.MaxInt32, 1, 0}, {math.MaxInt32 - 1, 3, 1},
	} {
		h := Header{BaseSequence: tc.base, LastOffsetDelta: tc.delta}
		if got := h.LastSequence(); got != tc.want {
			t.Errorf("LastSequence(%d+%d) = %d, want %d", tc.base, tc.delta, got, tc.want)
		}
	}
}

func TestSetters(t *testing.T) {
	b := mustBuild(t, sampleRecords(3, 10), BuildOptions{BaseTimestamp: 100})
	crc := binary.BigEndian.Uint32(b[17:])
	SetBaseOffset(b, 987654321)
	SetPartitionLeaderEpoch(b, -1)
	if binary.BigEndian.Uint32(b[17:]) != crc {
		t.Fatal("offset/epoch setters changed the CRC")
	}
	if _, err := Validate(b, ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := SetLogAppendTime(b[:len(b)-1], 5); !errors.Is(err, ErrLengthMismatch) {
		t.Fatalf("SetLogAppendTime on a truncated batch: %v", err)
	}
	if err := SetLogAppendTime(b[:10], 5); !errors.Is(err, ErrTooShort) {
		t.Fatalf("SetLogAppendTime on 10 bytes: %v", err)
	}
	if err := SetLogAppendTime(b, 50); err != nil { // earlier than baseTimestamp: allowed
		t.Fatal(err)
	}
	h, err := Validate(b, ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !h.IsLogAppendTime() || h.MaxTimestamp != 50 || h.BaseTimestamp != 100 || h.BaseOffset != 987654321 || h.PartitionLeaderEpoch != -1 {
		t.Fatalf("header after setters: %+v", h)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("SetBaseOffset on a short slice did not panic")
		}
	}()
	SetBaseOffset(make([]byte, 8), 1)
}

func TestErrorMessages(t *testing.T) {
	_, err := Validate(make([]byte, 3), ValidateOptions{})
	if got := err.Error(); got != "batch: too short: 3 bytes, need 61 for a header" {
		t.Fatalf("message %q", got)
	}
	for _, s := range allSentinels {
		if msg := s.Error(); len(msg) < 7 || msg[:7] != "batch: " {
			t.Errorf("sentinel %q lacks the batch: prefix", msg)
		}
	}
}
