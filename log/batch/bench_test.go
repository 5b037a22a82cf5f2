package batch

import (
	"fmt"
	"testing"
)

// benchBatch builds an uncompressed batch of about size bytes from records
// with 16-byte keys, 200-byte values and one header.
func benchBatch(tb testing.TB, size int, codec Codec) []byte {
	payload := testPayload(size)
	var recs []Record
	for off := 0; off+200 <= len(payload) && len(recs)*240 < size; off += 200 {
		recs = append(recs, Record{
			Key:            fmt.Appendf(nil, "key-%012d", len(recs)),
			Value:          payload[off : off+200],
			TimestampDelta: int64(len(recs)),
			Headers:        []RecordHeader{{Key: "trace", Value: []byte("abc123")}},
		})
	}
	return mustBuild(tb, recs, BuildOptions{Codec: codec, BaseTimestamp: 1_700_000_000_000})
}

var benchSizes = []struct {
	name string
	size int
}{{"1KiB", 1 << 10}, {"64KiB", 64 << 10}, {"1MiB", 1 << 20}}

func BenchmarkValidate(b *testing.B) {
	for _, s := range benchSizes {
		batch := benchBatch(b, s.size, CodecNone)
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Validate(batch, ValidateOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRecords(b *testing.B) {
	batch := benchBatch(b, 64<<10, CodecNone)
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Records(batch, Limits{}, func(Record) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecompress decodes the records blob of a 64 KiB batch with each
// codec; bytes/s are decompressed bytes.
func BenchmarkDecompress(b *testing.B) {
	raw := benchBatch(b, 64<<10, CodecNone)[HeaderSize:]
	for _, c := range allCodecs[1:] {
		z, err := Compress(c, raw)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decompress(c, z, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	batch := benchBatch(b, 64<<10, CodecNone)
	var recs []Record
	if err := Records(batch, Limits{}, func(r Record) error { recs = append(recs, r); return nil }); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(recs, BuildOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
