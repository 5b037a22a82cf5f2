package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

func TestSplitBatches(t *testing.T) {
	var parts [][]byte
	for i, c := range allCodecs {
		parts = append(parts, mustBuild(t, sampleRecords(i+1, 30), BuildOptions{Codec: c, BaseOffset: int64(i)}))
	}
	all := bytes.Join(parts, nil)

	got, err := SplitBatches(all)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(parts) {
		t.Fatalf("got %d batches, want %d", len(got), len(parts))
	}
	for i := range got {
		if !bytes.Equal(got[i], parts[i]) || cap(got[i]) != len(got[i]) {
			t.Fatalf("batch %d differs or has spare capacity", i)
		}
		if _, err := Validate(got[i], ValidateOptions{Deep: true}); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	i := 0
	for b, err := range Batches(all) {
		if err != nil || !bytes.Equal(b, parts[i]) {
			t.Fatalf("Batches item %d: %v", i, err)
		}
		i++
	}
	if i != len(parts) {
		t.Fatalf("Batches yielded %d", i)
	}
	if got, err := SplitBatches(nil); err != nil || len(got) != 0 {
		t.Fatalf("empty input: %v %v", got, err)
	}

	last := len(parts[len(parts)-1])
	for _, cut := range []int{1, 5, 11, last - 17, last - 1} {
		got, err := SplitBatches(all[:len(all)-cut])
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut %d: err %v", cut, err)
		}
		if len(got) != len(parts)-1 {
			t.Fatalf("cut %d: got %d whole batches before the error", cut, len(got))
		}
		var iterErr error
		n := 0
		for _, err := range Batches(all[:len(all)-cut]) {
			if err != nil {
				iterErr = err
				continue
			}
			n++
		}
		if !errors.Is(iterErr, ErrTruncated) || n != len(parts)-1 {
			t.Fatalf("Batches cut %d: %d batches, err %v", cut, n, iterErr)
		}
	}

	bad := func(fn func(b []byte)) []byte {
		b := bytes.Clone(parts[0])
		fn(b)
		return b
	}
	for name, tc := range map[string]struct {
		b    []byte
		want error
	}{
		"length-small":    {bad(func(b []byte) { binary.BigEndian.PutUint32(b[8:], 48) }), ErrLengthMismatch},
		"length-negative": {bad(func(b []byte) { binary.BigEndian.PutUint32(b[8:], math.MaxUint32) }), ErrLengthMismatch},
		"length-huge":     {bad(func(b []byte) { binary.BigEndian.PutUint32(b[8:], math.MaxInt32) }), ErrTruncated},
		"magic-1":         {bad(func(b []byte) { b[16] = 1 }), ErrBadMagic},
		"only-12-bytes":   {parts[0][:12], ErrTruncated},
		"only-11-bytes":   {parts[0][:11], ErrTruncated},
	} {
		if _, err := SplitBatches(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// Stopping the iterator early is honoured.
	for range Batches(all) {
		break
	}
}

func TestRecordsCallbackError(t *testing.T) {
	b := mustBuild(t, sampleRecords(10, 5), BuildOptions{Codec: CodecLZ4})
	stop := errors.New("stop")
	n := 0
	err := Records(b, Limits{}, func(Record) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if err != stop || n != 3 {
		t.Fatalf("Records returned %v after %d records", err, n)
	}
	if err := Records(b[:len(b)-1], Limits{}, nil); !errors.Is(err, ErrLengthMismatch) {
		t.Fatalf("truncated: %v", err)
	}
	if err := Records(b, Limits{}, nil); err != nil {
		t.Fatalf("nil callback: %v", err)
	}
}

// Record slices alias the batch but cannot be appended into it.
func TestRecordSlicesAreCapped(t *testing.T) {
	b := mustBuild(t, []Record{{Key: []byte("k1"), Value: []byte("v1")}, {Key: []byte("k2"), Value: []byte("v2")}}, BuildOptions{})
	orig := bytes.Clone(b)
	err := Records(b, Limits{}, func(r Record) error {
		_ = append(r.Key, "XXXX"...)
		_ = append(r.Value, "YYYY"...)
		return nil
	})
	if err != nil || !bytes.Equal(b, orig) {
		t.Fatalf("appending to record slices changed the batch (err %v)", err)
	}
}

func TestBuildInvalid(t *testing.T) {
	for name, tc := range map[string]struct {
		recs []Record
		opts BuildOptions
	}{
		"deltas-not-increasing": {[]Record{{OffsetDelta: 1}, {OffsetDelta: 1}}, BuildOptions{KeepOffsetDeltas: true}},
		"delta-negative":        {[]Record{{OffsetDelta: -1}}, BuildOptions{KeepOffsetDeltas: true}},
		"last-delta-too-small":  {[]Record{{OffsetDelta: 0}, {OffsetDelta: 4}}, BuildOptions{KeepOffsetDeltas: true, LastOffsetDelta: 3}},
		"timestamp":             {nil, BuildOptions{BaseTimestamp: -7}},
		"base-offset":           {nil, BuildOptions{BaseOffset: -1}},
		"producer-id":           {nil, BuildOptions{Producer: &ProducerInfo{ID: -2, Epoch: -1, BaseSequence: -1}}},
		"timestamp-overflow":    {[]Record{{TimestampDelta: math.MaxInt64}}, BuildOptions{BaseTimestamp: 10}},
		"offset-overflow":       {[]Record{{}, {}}, BuildOptions{BaseOffset: math.MaxInt64 - 1}},
	} {
		if _, err := Build(tc.recs, tc.opts); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestVarints(t *testing.T) {
	for _, v := range []int32{0, 1, -1, 63, -64, 64, 1 << 20, math.MaxInt32, math.MinInt32} {
		b := appendVarint(nil, v)
		got, n := readVarint(b)
		if got != v || n != len(b) || n != varintLen(v) {
			t.Errorf("varint %d: got %d, n %d, len %d", v, got, n, len(b))
		}
		if _, n := readVarint(b[:len(b)-1]); n != 0 {
			t.Errorf("truncated varint %d: n %d", v, n)
		}
	}
	for _, v := range []int64{0, -1, 1 << 40, math.MaxInt64, math.MinInt64} {
		b := appendVarlong(nil, v)
		got, n := readVarlong(b)
		if got != v || n != len(b) || n != varlongLen(v) {
			t.Errorf("varlong %d: got %d, n %d", v, got, n)
		}
	}
	// Non-canonical but in-range encodings are accepted, like Kafka does.
	if v, n := readVarint([]byte{0x82, 0x80, 0x00}); v != 1 || n != 3 {
		t.Errorf("padded varint: %d, %d", v, n)
	}
	for _, bad := range [][]byte{
		{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, // six bytes
		{0xff, 0xff, 0xff, 0xff, 0x10},       // 33 bits
	} {
		if _, n := readVarint(bad); n >= 0 {
			t.Errorf("varint %x accepted", bad)
		}
	}
	if _, n := readVarlong(append(bytes.Repeat([]byte{0x80}, 9), 0x02)); n >= 0 {
		t.Error("65-bit varlong accepted")
	}
	if v, n := readVarlong(append(bytes.Repeat([]byte{0xff}, 9), 0x01)); n != 10 || v != math.MinInt64 {
		t.Errorf("max varlong: %d, %d", v, n)
	}
}
