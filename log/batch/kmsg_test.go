package batch

import (
	"bytes"
	stdgzip "compress/gzip"
	"hash/crc32"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// These tests cross-check this package against franz-go's independent
// encoder/decoder (kmsg) so that a shared misunderstanding of the format
// cannot hide in round trips through one implementation.

// toKmsgRecord converts r into a kmsg.Record with offset delta od and the
// Length field filled in (kmsg expects callers to set it).
func toKmsgRecord(r Record, od int32) kmsg.Record {
	kr := kmsg.Record{
		Attributes:       r.Attributes,
		TimestampDelta64: r.TimestampDelta,
		TimestampDelta:   int32(r.TimestampDelta),
		OffsetDelta:      od,
		Key:              r.Key,
		Value:            r.Value,
	}
	for _, h := range r.Headers {
		kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
	}
	kr.Length = int32(len(kr.AppendTo(nil)) - 1) // body size; Length 0 encodes in 1 byte
	return kr
}

// fromKmsgRecord converts a kmsg.Record back.
func fromKmsgRecord(kr kmsg.Record) Record {
	r := Record{Attributes: kr.Attributes, TimestampDelta: kr.TimestampDelta64, OffsetDelta: kr.OffsetDelta, Key: kr.Key, Value: kr.Value}
	for _, h := range kr.Headers {
		r.Headers = append(r.Headers, RecordHeader{Key: h.Key, Value: h.Value})
	}
	return r
}

// kmsgBatch encodes recs with kmsg, compressing the records blob with the
// given (independent) compressor, and computes the CRC.
func kmsgBatch(t *testing.T, recs []Record, codec Codec, compress func([]byte) []byte, baseTS int64) []byte {
	t.Helper()
	var raw []byte
	var maxDelta int64
	for i, r := range recs {
		kr := toKmsgRecord(r, int32(i))
		raw = kr.AppendTo(raw)
		maxDelta = max(maxDelta, r.TimestampDelta)
	}
	if compress != nil {
		raw = compress(raw)
	}
	rb := kmsg.RecordBatch{
		FirstOffset:          0,
		Length:               int32(49 + len(raw)),
		PartitionLeaderEpoch: 0,
		Magic:                2,
		Attributes:           int16(codec),
		LastOffsetDelta:      int32(max(len(recs)-1, 0)),
		FirstTimestamp:       baseTS,
		MaxTimestamp:         baseTS + maxDelta,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(len(recs)),
		Records:              raw,
	}
	b := rb.AppendTo(nil)
	rb.CRC = int32(crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return rb.AppendTo(nil)
}

// kmsgRecords parses batch b with kmsg, using Decompress for the payload
// since kmsg does not decompress.
func kmsgRecords(t *testing.T, b []byte) (kmsg.RecordBatch, []Record) {
	t.Helper()
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil {
		t.Fatalf("kmsg RecordBatch.ReadFrom: %v", err)
	}
	data, err := Decompress(Codec(rb.Attributes&7), rb.Records, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var out []Record
	for range rb.NumRecords {
		var kr kmsg.Record
		if err := kr.ReadFrom(data); err != nil {
			t.Fatalf("kmsg Record.ReadFrom: %v", err)
		}
		_, n := readVarint(data)
		data = data[n+int(kr.Length):]
		out = append(out, fromKmsgRecord(kr))
	}
	if len(data) != 0 {
		t.Fatalf("%d bytes left after kmsg parsed %d records", len(data), rb.NumRecords)
	}
	return rb, out
}

// withDeltas returns recs with offset deltas 0..n-1, as Build assigns.
func withDeltas(recs []Record) []Record {
	out := make([]Record, len(recs))
	for i, r := range recs {
		r.OffsetDelta = int32(i)
		out[i] = r
	}
	return out
}

func TestBuildMatchesKmsgBytes(t *testing.T) {
	for _, n := range []int{0, 1, 7, 300} {
		recs := withDeltas(sampleRecords(n, 50))
		ours := mustBuild(t, recs, BuildOptions{BaseTimestamp: 1_650_000_000_000})
		theirs := kmsgBatch(t, recs, CodecNone, nil, 1_650_000_000_000)
		if !bytes.Equal(ours, theirs) {
			t.Fatalf("%d records: Build and kmsg disagree\n ours %x\ntheirs %x", n, ours, theirs)
		}
	}
}

func TestKmsgReadsOurBatches(t *testing.T) {
	recs := withDeltas(sampleRecords(40, 120))
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			b := mustBuild(t, recs, BuildOptions{Codec: c, BaseOffset: 10, PartitionLeaderEpoch: 4, BaseTimestamp: 99,
				Producer: &ProducerInfo{ID: 3, Epoch: 2, BaseSequence: 1}})
			h, err := Validate(b, ValidateOptions{Deep: true})
			if err != nil {
				t.Fatal(err)
			}
			rb, got := kmsgRecords(t, b)
			if rb.FirstOffset != h.BaseOffset || rb.Length != h.BatchLength || rb.PartitionLeaderEpoch != h.PartitionLeaderEpoch ||
				uint32(rb.CRC) != h.CRC || rb.Attributes != h.Attributes || rb.LastOffsetDelta != h.LastOffsetDelta ||
				rb.FirstTimestamp != h.BaseTimestamp || rb.MaxTimestamp != h.MaxTimestamp || rb.ProducerID != h.ProducerID ||
				rb.ProducerEpoch != h.ProducerEpoch || rb.FirstSequence != h.BaseSequence || rb.NumRecords != h.RecordCount {
				t.Fatalf("kmsg header %+v disagrees with ours %+v", rb, h)
			}
			requireSameRecords(t, got, recs)
		})
	}
}

func TestWeReadKmsgBatches(t *testing.T) {
	// Compressors independent of the ones Compress uses, in the framings
	// other clients produce: stdlib gzip, raw snappy (franz-go, librdkafka),
	// LZ4 with 4 MiB blocks and block checksums, zstd at its best level.
	compressors := map[Codec]func([]byte) []byte{
		CodecNone: nil,
		CodecGzip: func(b []byte) []byte {
			var buf bytes.Buffer
			w := stdgzip.NewWriter(&buf)
			_, _ = w.Write(b)
			_ = w.Close()
			return buf.Bytes()
		},
		CodecSnappy: func(b []byte) []byte { return s2.EncodeSnappy(nil, b) },
		CodecLZ4: func(b []byte) []byte {
			var buf bytes.Buffer
			w := lz4.NewWriter(&buf)
			_ = w.Apply(lz4.BlockSizeOption(lz4.Block4Mb), lz4.BlockChecksumOption(true))
			_, _ = w.Write(b)
			_ = w.Close()
			return buf.Bytes()
		},
		CodecZstd: func(b []byte) []byte {
			enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
			defer enc.Close()
			return enc.EncodeAll(b, nil)
		},
	}
	recs := withDeltas(sampleRecords(60, 333))
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			b := kmsgBatch(t, recs, c, compressors[c], 1_700_000_000_000)
			h, err := Validate(b, ValidateOptions{Deep: true})
			if err != nil {
				t.Fatal(err)
			}
			if h.Codec() != c || h.RecordCount != int32(len(recs)) {
				t.Fatalf("header %+v", h)
			}
			got, err := collect(b, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			requireSameRecords(t, got, recs)
		})
	}
}
