package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestCheckProduceArraysAcceptsKmsg is the differential test: every
// ProduceRequest kmsg encodes, at every version kmsg knows, is accepted.
func TestCheckProduceArraysAcceptsKmsg(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for v := int16(0); v <= kmsgMax(produceKey); v++ {
		for i := range 300 {
			req := randomRequest(r, produceKey, v).(*kmsg.ProduceRequest)
			if i%10 == 0 { // now and then, many partitions with real-sized records
				req.Topics = append(req.Topics, bigTopic(r, 50, 200))
			}
			body := req.AppendTo(nil)
			if err := CheckProduceArrays(v, body); err != nil {
				t.Fatalf("v%d: %v", v, err)
			}
		}
	}
	for _, v := range []int16{-1, 14, 300} {
		if err := CheckProduceArrays(v, nil); !errors.Is(err, ErrUnsupportedVersion) {
			t.Errorf("version %d: %v", v, err)
		}
	}
}

func bigTopic(r *rand.Rand, partitions, recordBytes int) kmsg.ProduceRequestTopic {
	tp := kmsg.NewProduceRequestTopic()
	tp.Topic = "big-" + randString(r)
	for i := range partitions {
		p := kmsg.NewProduceRequestTopicPartition()
		p.Partition = int32(i)
		p.Records = randBytes(r, recordBytes)
		tp.Partitions = append(tp.Partitions, p)
	}
	return tp
}

// kmsgAlloc returns the fewest heap bytes kmsg's ReadFrom allocated over a
// few runs decoding body at version v (the minimum filters out other
// goroutines' allocations), and the decode error.
func kmsgAlloc(key, v int16, body []byte) (uint64, error) {
	best := ^uint64(0)
	var err error
	for range 3 {
		req := NewRequest(key)
		req.SetVersion(v)
		n := allocated(func() { err = req.ReadFrom(body) })
		best = min(best, n)
	}
	return best, err
}

// amplifiers returns bodies shaped to make kmsg allocate as much as possible
// per byte: many minimal elements, null records, unknown tags.
func amplifiers() []struct {
	name string
	key  int16
	v    int16
	body []byte
} {
	type amp = struct {
		name string
		key  int16
		v    int16
		body []byte
	}
	var out []amp
	for _, n := range []int{1, 10, 100, 1000, 30000} {
		// Produce v3: n topics, empty names, no partitions.
		b := cat(i16(-1), i16(1), i32(1000), i32(int32(n)))
		for range n {
			b = append(b, cat(i16(0), i32(0))...)
		}
		out = append(out, amp{fmt.Sprintf("produce v3 %d empty topics", n), 0, 3, b})
		// Produce v9: n topics of 3 bytes each.
		b = cat([]byte{0}, i16(1), i32(1000), appendUvarint(nil, uint32(n+1)))
		for range n {
			b = append(b, 1, 1, 0)
		}
		out = append(out, amp{fmt.Sprintf("produce v9 %d empty topics", n), 0, 9, append(b, 0)})
		// Produce v9: one topic, n partitions with null records and one unknown tag.
		b = cat([]byte{0}, i16(1), i32(1000), []byte{2, 2, 't'}, appendUvarint(nil, uint32(n+1)))
		for i := range n {
			b = append(b, i32(int32(i))...)
			b = append(b, 0, 1, 20, 0)
		}
		out = append(out, amp{fmt.Sprintf("produce v9 %d tagged partitions", n), 0, 9, append(b, 0, 0)})
		// Produce v13: n topic ids, no partitions.
		b = cat([]byte{0}, i16(1), i32(1000), appendUvarint(nil, uint32(n+1)))
		for range n {
			b = append(b, make([]byte, 16)...)
			b = append(b, 1, 0)
		}
		out = append(out, amp{fmt.Sprintf("produce v13 %d topic ids", n), 0, 13, append(b, 0)})
		// Metadata v9: n one-letter topic names.
		b = appendUvarint(nil, uint32(n+1))
		for range n {
			b = append(b, 2, 'a', 0)
		}
		out = append(out, amp{fmt.Sprintf("metadata v9 %d topics", n), 3, 9, append(b, 1, 1, 1, 0)})
		// DescribeConfigs v4: one resource with n empty config names.
		b = cat([]byte{2, 2}, []byte{2, 'r'}, appendUvarint(nil, uint32(n+1)))
		for range n {
			b = append(b, 1)
		}
		out = append(out, amp{fmt.Sprintf("describe configs v4 %d keys", n), 32, 4, append(b, 0, 1, 1, 0)})
		// Metadata v12: n distinct unknown top-level tags.
		b = []byte{0, 1, 1}
		b = appendUvarint(b, uint32(n))
		for i := range n {
			b = appendUvarint(b, uint32(100+i))
			b = append(b, 0)
		}
		out = append(out, amp{fmt.Sprintf("metadata v12 %d tags", n), 3, 12, b})
		// CreateTopics v5: n topics with no assignments or configs.
		b = appendUvarint(nil, uint32(n+1))
		for range n {
			b = append(b, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0)
		}
		out = append(out, amp{fmt.Sprintf("create topics v5 %d topics", n), 19, 5, append(b, 0, 0, 0, 0, 0, 0)})
		// JoinGroup v6: n protocols with empty names and metadata.
		b = cat(joinGroupV6, appendUvarint(nil, uint32(n+1)))
		for range n {
			b = append(b, 1, 1, 0)
		}
		out = append(out, amp{fmt.Sprintf("join group v6 %d protocols", n), 11, 6, append(b, 0)})
		// OffsetFetch v8: n empty group ids with null topics.
		b = appendUvarint(nil, uint32(n+1))
		for range n {
			b = append(b, 1, 0, 0)
		}
		out = append(out, amp{fmt.Sprintf("offset fetch v8 %d groups", n), 9, 8, append(b, 0, 0)})
		// LeaveGroup v4: n members with empty ids and null instance ids.
		b = cat(cstr("g"), appendUvarint(nil, uint32(n+1)))
		for range n {
			b = append(b, 1, 0, 0)
		}
		out = append(out, amp{fmt.Sprintf("leave group v4 %d members", n), 13, 4, append(b, 0)})
		// DescribeGroups v5: n empty group ids.
		b = appendUvarint(nil, uint32(n+1))
		for range n {
			b = append(b, 1)
		}
		out = append(out, amp{fmt.Sprintf("describe groups v5 %d groups", n), 15, 5, append(b, 0, 0)})
		// OffsetCommit v8: one topic, n partitions with null metadata and
		// one unknown tag.
		b = cat(offsetCommitV8, []byte{2}, cstr("t"), appendUvarint(nil, uint32(n+1)))
		for i := range n {
			b = append(b, cat(i32(int32(i)), make([]byte, 8), i32(-1), []byte{0, 1, 20, 0})...)
		}
		out = append(out, amp{fmt.Sprintf("offset commit v8 %d tagged partitions", n), 8, 8, append(b, 0, 0)})
		// ShareFetch v1: n topic ids with no partitions.
		b = cat(shareFetchV1, appendUvarint(nil, uint32(n+1)))
		for range n {
			b = append(b, make([]byte, 16)...)
			b = append(b, 1, 0)
		}
		out = append(out, amp{fmt.Sprintf("share fetch v1 %d topics", n), 78, 1, append(b, 1, 0)})
		// ShareFetch v1: one topic, n partitions with no acknowledgements.
		b = cat(shareFetchV1, []byte{2}, make([]byte, 16), appendUvarint(nil, uint32(n+1)))
		for i := range n {
			b = append(append(b, i32(int32(i))...), 1, 0)
		}
		out = append(out, amp{fmt.Sprintf("share fetch v1 %d partitions", n), 78, 1, append(b, 0, 1, 0)})
		// ShareFetch v1: one partition, n acknowledgement batches of one
		// type each (kgo's shape).
		b = cat(shareFetchV1, shareTopicOnePartition, appendUvarint(nil, uint32(n+1)))
		for i := range n {
			b = append(append(b, i64(int64(2*i))...), i64(int64(2*i))...)
			b = append(b, 2, 1, 0)
		}
		out = append(out, amp{fmt.Sprintf("share fetch v1 %d batches", n), 78, 1, append(b, 0, 0, 1, 0)})
		// ShareFetch v1: n topics of 4 partitions of 2 batches, one with
		// an empty type array.
		// (3000 topics, not 30000, keep the body under the 1 MiB cap.)
		topics := n
		if n > 1000 {
			topics = n / 10
		}
		b = cat(shareFetchV1, appendUvarint(nil, uint32(topics+1)))
		for range topics {
			b = append(b, make([]byte, 16)...)
			b = append(b, 5)
			for p := range 4 {
				b = append(b, cat(i32(int32(p)), []byte{3}, i64(0), i64(0), []byte{1, 0}, i64(1), i64(1), []byte{2, 2, 0}, []byte{0})...)
			}
			b = append(b, 0)
		}
		out = append(out, amp{fmt.Sprintf("share fetch v1 %d topics x 4 partitions x 2 batches", topics), 78, 1, append(b, 1, 0)})
		// ShareFetch v1: n partitions with one unknown tag each (over the
		// budget from a few thousand on).
		b = cat(shareFetchV1, []byte{2}, make([]byte, 16), sharePartitionsTagged(n))
		out = append(out, amp{fmt.Sprintf("share fetch v1 %d tagged partitions", n), 78, 1, append(b, 0, 1, 0)})
		// ShareFetch v1: n forgotten topics with no partitions.
		b = cat(shareFetchV1, []byte{1}, appendUvarint(nil, uint32(n+1)))
		for range n {
			b = append(b, make([]byte, 16)...)
			b = append(b, 1, 0)
		}
		out = append(out, amp{fmt.Sprintf("share fetch v1 %d forgotten topics", n), 78, 1, append(b, 0)})
		// ShareAcknowledge v1: one partition, n batches with empty types.
		b = cat(shareAckV1, shareTopicOnePartition, appendUvarint(nil, uint32(n+1)))
		for range n {
			b = append(b, make([]byte, 16)...)
			b = append(b, 1, 0)
		}
		out = append(out, amp{fmt.Sprintf("share acknowledge v1 %d batches", n), 79, 1, append(b, 0, 0, 0)})
		// ShareGroupHeartbeat v1: n one-letter topic names.
		b = cat(shareHeartbeatV1, []byte{0}, appendUvarint(nil, uint32(n+1)))
		for range n {
			b = append(b, 2, 'a')
		}
		out = append(out, amp{fmt.Sprintf("share group heartbeat v1 %d topics", n), 76, 1, append(b, 0)})
		// ShareGroupDescribe v1: n empty group ids.
		b = appendUvarint(nil, uint32(n+1))
		for range n {
			b = append(b, 1)
		}
		out = append(out, amp{fmt.Sprintf("share group describe v1 %d groups", n), 77, 1, append(b, 0, 0)})
	}
	return out
}

// TestAllocationEstimate checks the walker's estimate of kmsg's allocation
// against what kmsg really allocates, for random requests of every API and
// version and for bodies built to amplify memory, and that every Produce
// body CheckProduceArrays accepts decodes within its budget.
func TestAllocationEstimate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation sizes")
	}
	const noise = 256
	check := func(name string, key, v int16, body []byte) {
		t.Helper()
		s := schemaFor(key)
		est, err := walkBody(s, v, body)
		if err != nil {
			t.Fatalf("%s: walker rejected: %v", name, err)
		}
		got, kerr := kmsgAlloc(key, v, body)
		if kerr != nil {
			t.Fatalf("%s: kmsg rejected what the walker accepted: %v", name, kerr)
		}
		if int64(got) > est+noise {
			t.Errorf("%s: kmsg allocated %d bytes, estimate %d (body %d)", name, got, est, len(body))
		}
		if key == produceKey {
			cerr := CheckProduceArrays(v, body)
			if cerr == nil && int64(got) > allocLimit(len(body), produceAllocFactor)+noise {
				t.Errorf("%s: accepted, but kmsg allocated %d bytes for a %d-byte body", name, got, len(body))
			}
			if cerr != nil && est <= allocLimit(len(body), produceAllocFactor) {
				t.Errorf("%s: rejected under budget: %v", name, cerr)
			}
		}
	}
	r := rand.New(rand.NewPCG(11, 12))
	for _, s := range schemas {
		for v := int16(0); v <= s.maxVersion; v++ {
			for range 20 {
				check(fmt.Sprintf("random key %d v%d", s.key, v), s.key, v, randomRequest(r, s.key, v).AppendTo(nil))
			}
		}
	}
	for _, a := range amplifiers() {
		check(a.name, a.key, a.v, a.body)
		got, _ := kmsgAlloc(a.key, a.v, a.body)
		accepted := "n/a"
		if a.key == produceKey {
			accepted = fmt.Sprint(CheckProduceArrays(a.v, a.body) == nil)
		}
		t.Logf("%s: %d bytes, kmsg allocates %d (%.1fx), produce check accepts: %s",
			a.name, len(a.body), got, float64(got)/float64(len(a.body)), accepted)
	}
}

// TestProduceAmplificationRejected checks that the largest amplifying
// Produce bodies are rejected although kmsg's own bounds would accept them.
func TestProduceAmplificationRejected(t *testing.T) {
	for _, a := range amplifiers() {
		if a.key != produceKey || len(a.body) < 50000 {
			continue
		}
		if err := CheckProduceArrays(a.v, a.body); !errors.Is(err, ErrMalformedRequest) {
			t.Errorf("%s: %v", a.name, err)
		}
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(a.v)
		if err := req.ReadFrom(a.body); err != nil {
			t.Errorf("%s: kmsg itself rejects it (%v), so this case proves nothing", a.name, err)
		}
	}
}

func TestCheckProduceArraysTrailing(t *testing.T) {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	body := req.AppendTo(nil)
	if err := CheckProduceArrays(9, body); err != nil {
		t.Fatal(err)
	}
	if err := CheckProduceArrays(9, append(bytes.Clone(body), 0)); !errors.Is(err, ErrMalformedRequest) {
		t.Fatalf("trailing byte accepted: %v", err)
	}
}

// TestWalkerDoesNotAllocate checks that accepting a body costs no heap:
// CheckProduceArrays on a large valid request, and the walk of every
// schema on random valid requests.
func TestWalkerDoesNotAllocate(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	for range 10 {
		req.Topics = append(req.Topics, bigTopic(r, 20, 500))
	}
	body := req.AppendTo(nil)
	if n := testing.AllocsPerRun(20, func() {
		if err := CheckProduceArrays(9, body); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("CheckProduceArrays made %v allocations", n)
	}
	for _, s := range schemas {
		for v := int16(0); v <= s.maxVersion; v++ {
			body := randomRequest(r, s.key, v).AppendTo(nil)
			if n := testing.AllocsPerRun(5, func() {
				if _, err := walkBody(s, v, body); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("key %d v%d: walk made %v allocations", s.key, v, n)
			}
		}
	}
}
