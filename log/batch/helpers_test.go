package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// allSentinels lists every sentinel error; each error the package returns
// must wrap one of them.
var allSentinels = []error{
	ErrTooShort, ErrLengthMismatch, ErrTruncated, ErrBadMagic, ErrBadCRC,
	ErrBadHeader, ErrRecordCount, ErrBadOffsetDelta, ErrBadRecord,
	ErrBadTimestamp, ErrUnsupportedCodec, ErrCorruptCompressed,
	ErrDecompressedTooLarge, ErrInvalidInput,
}

// wrapsSentinel reports whether err wraps one of the package sentinels.
func wrapsSentinel(err error) bool {
	for _, s := range allSentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

var allCodecs = []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd}

// sampleRecords returns n records exercising keys (null, empty, set),
// values (null, set) and headers (none, some, null values).
func sampleRecords(n, valueSize int) []Record {
	rng := rand.New(rand.NewPCG(uint64(n), uint64(valueSize)))
	recs := make([]Record, n)
	for i := range recs {
		r := Record{TimestampDelta: int64(i * 7), OffsetDelta: int32(i)}
		switch i % 3 {
		case 0:
			r.Key = fmt.Appendf(nil, "key-%d", i)
		case 1:
			r.Key = []byte{}
		}
		if i%5 != 4 {
			r.Value = make([]byte, valueSize)
			for j := range r.Value {
				r.Value[j] = "abcdefghij {}:,\"0123"[rng.IntN(20)]
			}
		}
		if i%2 == 0 {
			r.Headers = []RecordHeader{{Key: "h1", Value: []byte("v1")}, {Key: "", Value: nil}}
		}
		recs[i] = r
	}
	return recs
}

// mustBuild is Build that fails the test on error.
func mustBuild(tb testing.TB, recs []Record, opts BuildOptions) []byte {
	tb.Helper()
	b, err := Build(recs, opts)
	if err != nil {
		tb.Fatalf("Build: %v", err)
	}
	return b
}

// collect returns the records of b via Records.
func collect(b []byte, limits Limits) ([]Record, error) {
	var out []Record
	err := Records(b, limits, func(r Record) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// sameBytes compares two byte slices including null-ness.
func sameBytes(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

// recordDiff describes the first difference between two records, or "".
func recordDiff(a, b Record) string {
	switch {
	case a.Attributes != b.Attributes:
		return fmt.Sprintf("attributes %d != %d", a.Attributes, b.Attributes)
	case a.TimestampDelta != b.TimestampDelta:
		return fmt.Sprintf("timestampDelta %d != %d", a.TimestampDelta, b.TimestampDelta)
	case a.OffsetDelta != b.OffsetDelta:
		return fmt.Sprintf("offsetDelta %d != %d", a.OffsetDelta, b.OffsetDelta)
	case !sameBytes(a.Key, b.Key):
		return fmt.Sprintf("key %q != %q", a.Key, b.Key)
	case !sameBytes(a.Value, b.Value):
		return fmt.Sprintf("value %q != %q", a.Value, b.Value)
	case len(a.Headers) != len(b.Headers):
		return fmt.Sprintf("%d headers != %d", len(a.Headers), len(b.Headers))
	}
	for i := range a.Headers {
		if a.Headers[i].Key != b.Headers[i].Key || !sameBytes(a.Headers[i].Value, b.Headers[i].Value) {
			return fmt.Sprintf("header %d: %q=%q != %q=%q", i, a.Headers[i].Key, a.Headers[i].Value, b.Headers[i].Key, b.Headers[i].Value)
		}
	}
	return ""
}

// requireSameRecords fails unless got equals want record by record.
func requireSameRecords(tb testing.TB, got, want []Record) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if d := recordDiff(got[i], want[i]); d != "" {
			tb.Fatalf("record %d: %s", i, d)
		}
	}
}

// rawHeader is a test-side header encoder that can write inconsistent
// values on purpose.
type rawHeader struct {
	Header
	fixLength bool // compute BatchLength from the payload
	fixCRC    bool // compute the CRC
}

// encode writes the header and payload.
func (rh rawHeader) encode(payload []byte) []byte {
	h := rh.Header
	b := make([]byte, HeaderSize, HeaderSize+len(payload))
	b = append(b, payload...)
	if rh.fixLength {
		h.BatchLength = int32(len(b) - LengthFieldEnd)
	}
	binary.BigEndian.PutUint64(b[0:], uint64(h.BaseOffset))
	binary.BigEndian.PutUint32(b[8:], uint32(h.BatchLength))
	binary.BigEndian.PutUint32(b[12:], uint32(h.PartitionLeaderEpoch))
	b[16] = byte(h.Magic)
	binary.BigEndian.PutUint16(b[21:], uint16(h.Attributes))
	binary.BigEndian.PutUint32(b[23:], uint32(h.LastOffsetDelta))
	binary.BigEndian.PutUint64(b[27:], uint64(h.BaseTimestamp))
	binary.BigEndian.PutUint64(b[35:], uint64(h.MaxTimestamp))
	binary.BigEndian.PutUint64(b[43:], uint64(h.ProducerID))
	binary.BigEndian.PutUint16(b[51:], uint16(h.ProducerEpoch))
	binary.BigEndian.PutUint32(b[53:], uint32(h.BaseSequence))
	binary.BigEndian.PutUint32(b[57:], uint32(h.RecordCount))
	crc := h.CRC
	if rh.fixCRC {
		crc = crc32.Checksum(b[21:], castagnoli)
	}
	binary.BigEndian.PutUint32(b[17:], crc)
	return b
}

// goodHeader returns a consistent header for n records, with length and
// CRC fixed up on encode.
func goodHeader(n int32) rawHeader {
	return rawHeader{
		Header: Header{
			Magic: MagicV2, LastOffsetDelta: max(n-1, 0), RecordCount: n,
			BaseTimestamp: 1000, MaxTimestamp: 2000,
			ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
		},
		fixLength: true, fixCRC: true,
	}
}

// rawRecord encodes one record from explicit wire fields, so tests can write
// lengths that disagree with the data. keyLen/valueLen of -1 with nil data
// mean null; headers are given pre-encoded with their count.
func rawRecord(tsDelta int64, offsetDelta int32, keyLen int32, key []byte, valueLen int32, value []byte, headerCount int32, headers []byte) []byte {
	var body []byte
	body = append(body, 0)
	body = appendVarlong(body, tsDelta)
	body = appendVarint(body, offsetDelta)
	body = appendVarint(body, keyLen)
	body = append(body, key...)
	body = appendVarint(body, valueLen)
	body = append(body, value...)
	body = appendVarint(body, headerCount)
	body = append(body, headers...)
	return append(appendVarint(nil, int32(len(body))), body...)
}

// simpleRecord encodes a well-formed record with the given offset delta.
func simpleRecord(offsetDelta int32) []byte {
	return rawRecord(0, offsetDelta, 1, []byte("k"), 3, []byte("val"), 0, nil)
}

// fixLengthAndCRC rewrites batchLength and the CRC of b in place so that a
// mutated batch reaches the checks behind them.
func fixLengthAndCRC(b []byte) {
	if len(b) < HeaderSize {
		return
	}
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-LengthFieldEnd))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
}
