package protocol

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// produceFrame returns a Produce v9 frame (no size prefix) carrying one
// partition with recordBytes of records.
func produceFrame(recordBytes int) []byte {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks = -1
	p := kmsg.NewProduceRequestTopicPartition()
	p.Records = bytes.Repeat([]byte{0x5a}, recordBytes)
	tp := kmsg.NewProduceRequestTopic()
	tp.Topic = "bench"
	tp.Partitions = []kmsg.ProduceRequestTopicPartition{p}
	req.Topics = []kmsg.ProduceRequestTopic{tp}
	return clientFrame(req, 1, kmsg.StringPtr("bench-client"))[4:]
}

// BenchmarkDecodeProduce decodes a Produce request with 64 KiB of records.
// The records are aliased, not copied, so allocations are independent of
// their size.
func BenchmarkDecodeProduce(b *testing.B) {
	frame := produceFrame(64 << 10)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadFrameDecodeProduce adds ReadFrame (the 64 KiB frame
// allocation) in front of Decode.
func BenchmarkReadFrameDecodeProduce(b *testing.B) {
	stream := sized(produceFrame(64 << 10))
	r := bytes.NewReader(stream)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(stream)
		frame, err := ReadFrame(r, DefaultLimits())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Decode(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeMetadata decodes a small Metadata v12 request, the common
// control-plane case.
func BenchmarkDecodeMetadata(b *testing.B) {
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(12)
	for _, name := range []string{"orders", "payments", "audit"} {
		tp := kmsg.NewMetadataRequestTopic()
		tp.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, tp)
	}
	frame := clientFrame(req, 1, kmsg.StringPtr("bench-client"))[4:]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(frame); err != nil {
			b.Fatal(err)
		}
	}
}
