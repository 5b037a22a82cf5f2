package protocol

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestWalkInt8Array checks the int8 array kind (ShareFetch and
// ShareAcknowledge acknowledge types) on a schema of its own, classic and
// compact: one byte per element, counts bounded by the bytes remaining,
// null only where the field allows it, and the estimate one allocation of
// count bytes.
func TestWalkInt8Array(t *testing.T) {
	type pair struct{ A, B []int8 }
	elem := structOf[pair](int8sF("a"), int8sF("b").nullableSince(1))
	classic := &apiSchema{key: -1, flexibleFrom: neverFlexible, maxVersion: 1, body: elem}
	compact := &apiSchema{key: -1, flexibleFrom: 0, maxVersion: 1, body: elem}
	if got := minSize(elem, 0, false); got != 8 {
		t.Errorf("classic min size %d, want 8", got)
	}
	if got := minSize(elem, 0, true); got != 3 {
		t.Errorf("compact min size %d, want 3 (two counts and the tags)", got)
	}
	for _, tc := range []struct {
		name  string
		s     *apiSchema
		v     int16
		body  []byte
		alloc int64  // when valid
		want  string // error, empty when valid
	}{
		{"classic three and empty", classic, 0, cat(i32(3), []byte{1, 2, 3}, i32(0)), allocSize(3), ""},
		{"classic 1000", classic, 0, cat(i32(1000), make([]byte, 1000), i32(0)), allocSize(1000), ""},
		{"classic null b from v1", classic, 1, cat(i32(1), []byte{4}, i32(-1)), allocSize(1), ""},
		{"classic null b in v0", classic, 0, cat(i32(0), i32(-1)),
			0, "b at offset 8: invalid array count -1"},
		{"classic null a", classic, 1, cat(i32(-1), i32(0)),
			0, "a at offset 4: invalid array count -1"},
		{"classic count -2", classic, 1, cat(i32(0), i32(-2)),
			0, "b at offset 8: invalid array count -2"},
		{"classic count past the end", classic, 0, cat(i32(8), []byte{1, 2, 3}, i32(0)),
			0, "a at offset 4: 8 elements of at least 1 bytes need more than the 7 bytes remaining"},
		{"classic count 2^31-1", classic, 0, cat(i32(1<<31-1), i32(0)),
			0, "a at offset 4: 2147483647 elements of at least 1 bytes"},
		{"classic truncated count", classic, 0, []byte{0, 0, 1},
			0, "a at offset 0: need 4 bytes, 3 remain"},
		{"compact three and null", compact, 1, []byte{4, 1, 2, 3, 0, 0}, allocSize(3), ""},
		{"compact null b in v0", compact, 0, []byte{1, 0, 0},
			0, "b at offset 2: invalid array count -1"},
		{"compact count past the end", compact, 1, []byte{9, 1, 2, 3, 1, 0},
			0, "a at offset 1: 8 elements of at least 1 bytes need more than the 5 bytes remaining"},
		{"compact trailing byte", compact, 1, []byte{2, 7, 1, 0, 9},
			0, "1 trailing bytes after the request"},
	} {
		est, err := walkBody(tc.s, tc.v, tc.body)
		if tc.want == "" {
			if err != nil || est != tc.alloc {
				t.Errorf("%s: estimate %d, err %v; want %d, nil", tc.name, est, err, tc.alloc)
			}
			continue
		}
		if !errors.Is(err, ErrMalformedRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestWalkShareVersions checks the layouts the schemas describe beyond the
// supported v1: ShareFetch v0 (early access, with a per-partition max bytes
// and without max records and batch size) and ShareFetch and
// ShareAcknowledge v2 (acquire mode and renew flag), each against kmsg.
func TestWalkShareVersions(t *testing.T) {
	partition := shareFetchRequest.body.fields[10].elem.fields[1].elem
	if partition.fields[0].name != "partition_index" {
		t.Fatalf("schema layout changed: %+v", partition.fields)
	}
	for v, want := range map[int16]int{0: 10, 1: 6, 2: 6} {
		if got := minSize(partition, v, true); got != want {
			t.Errorf("ShareFetch v%d partition min size %d, want %d", v, got, want)
		}
	}

	// ShareFetch v0: one topic, partition 3 with max bytes 64 KiB.
	v0 := cat(cstr("sg"), cstr("m"), i32(1), i32(500), i32(1), i32(1<<20), []byte{2}, make([]byte, 16),
		[]byte{2}, i32(3), i32(1<<16), []byte{1, 0, 0, 1, 0})
	fetch := kmsg.NewPtrShareFetchRequest()
	fetch.SetVersion(0)
	if _, err := walkBody(shareFetchRequest, 0, v0); err != nil {
		t.Errorf("ShareFetch v0: %v", err)
	} else if err := fetch.ReadFrom(v0); err != nil || fetch.Topics[0].Partitions[0].PartitionMaxBytes != 1<<16 {
		t.Errorf("ShareFetch v0: kmsg %v, %+v", err, fetch)
	}
	if _, err := walkBody(shareFetchRequest, 1, v0); !errors.Is(err, ErrMalformedRequest) {
		t.Errorf("ShareFetch v0 body read as v1: %v", err)
	}

	// ShareFetch v2: acquire mode 2, renew, no topics or forgotten topics.
	v2 := cat(shareFetchV1, []byte{2, 1}, []byte{1, 1, 0})
	fetch = kmsg.NewPtrShareFetchRequest()
	fetch.SetVersion(2)
	if _, err := walkBody(shareFetchRequest, 2, v2); err != nil {
		t.Errorf("ShareFetch v2: %v", err)
	} else if err := fetch.ReadFrom(v2); err != nil || fetch.ShareAcquireMode != 2 || !fetch.IsRenewAck || fetch.MaxRecords != 500 {
		t.Errorf("ShareFetch v2: kmsg %v, %+v", err, fetch)
	}
	if _, err := walkBody(shareFetchRequest, 1, v2); err == nil ||
		!strings.Contains(err.Error(), "topics at offset 30: 1 elements of at least 18 bytes need more than the 4 bytes remaining") {
		t.Errorf("ShareFetch v2 body read as v1: %v", err)
	}

	// ShareAcknowledge v2: renew, no topics.
	ackV2 := cat(shareAckV1, []byte{1}, []byte{1, 0})
	ack := kmsg.NewPtrShareAcknowledgeRequest()
	ack.SetVersion(2)
	if _, err := walkBody(shareAcknowledgeRequest, 2, ackV2); err != nil {
		t.Errorf("ShareAcknowledge v2: %v", err)
	} else if err := ack.ReadFrom(ackV2); err != nil || !ack.IsRenewAck || ack.ShareSessionEpoch != 1 {
		t.Errorf("ShareAcknowledge v2: kmsg %v, %+v", err, ack)
	}
	if _, err := walkBody(shareAcknowledgeRequest, 1, ackV2); err == nil ||
		!strings.Contains(err.Error(), "tagged fields at offset 11: 1 tagged fields need more than the 1 bytes remaining") {
		t.Errorf("ShareAcknowledge v2 body read as v1: %v", err)
	}
}

// TestShareHeartbeatNullTopics checks that Decode keeps the distinction
// the broker relies on: null subscribed topic names (unchanged since the
// last heartbeat) decode to nil, an empty list (unsubscribe from
// everything) to an empty non-nil slice; likewise a null rack id.
func TestShareHeartbeatNullTopics(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   []byte
		topics []string
		rack   *string
	}{
		{"null", []byte{0, 0, 0}, nil, nil},
		{"empty", []byte{0, 1, 0}, []string{}, nil},
		{"two", cat(cstr("r"), []byte{3}, cstr("a"), cstr("b"), []byte{0}), []string{"a", "b"}, kmsg.StringPtr("r")},
	} {
		req, err := Decode(cat(header(76, 1, 1, -1, "", 0), shareHeartbeatV1, tc.body))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r := req.Msg.(*kmsg.ShareGroupHeartbeatRequest)
		if (r.SubscribedTopicNames == nil) != (tc.topics == nil) || strings.Join(r.SubscribedTopicNames, ",") != strings.Join(tc.topics, ",") ||
			(r.RackID == nil) != (tc.rack == nil) || (r.RackID != nil && *r.RackID != *tc.rack) {
			t.Errorf("%s: topics %#v rack %v", tc.name, r.SubscribedTopicNames, r.RackID)
		}
	}
}

// TestShareFetchBudget checks the 32x budget on ShareFetch: the largest
// legitimate shapes (many topics, partitions and acknowledgement batches,
// per-offset acknowledge types) decode, with kmsg allocating what the
// walker estimated and far less than the budget; partitions padded with
// unknown tagged fields (about 47x) are refused.
func TestShareFetchBudget(t *testing.T) {
	req := kmsg.NewPtrShareFetchRequest()
	req.SetVersion(1)
	req.GroupID, req.MemberID = kmsg.StringPtr("share-group"), kmsg.StringPtr("AAAAAAAAAAAAAAAAAAAAAA==")
	req.MaxRecords, req.BatchSize = 500, 500
	for ti := range 400 {
		tp := kmsg.NewShareFetchRequestTopic()
		tp.TopicID = [16]byte{byte(ti), byte(ti >> 8), 1}
		for pi := range 16 {
			p := kmsg.NewShareFetchRequestTopicPartition()
			p.Partition = int32(pi)
			for bi := range 4 {
				b := kmsg.NewShareFetchRequestTopicPartitionAcknowledgementBatch()
				b.FirstOffset, b.LastOffset = int64(10*bi), int64(10*bi+4)
				b.AcknowledgeTypes = []int8{1}
				if bi == 3 {
					b.AcknowledgeTypes = []int8{1, 0, 2, 3, 1} // one per offset
				}
				p.AcknowledgementBatches = append(p.AcknowledgementBatches, b)
			}
			tp.Partitions = append(tp.Partitions, p)
		}
		req.Topics = append(req.Topics, tp)
		f := kmsg.NewShareFetchRequestForgottenTopicsData()
		f.TopicID, f.Partitions = [16]byte{byte(ti), 2}, []int32{0, 1, 2}
		req.ForgottenTopicsData = append(req.ForgottenTopicsData, f)
	}
	frame := clientFrame(req, 1, kmsg.StringPtr("c"))[4:]
	if len(frame) > DefaultMaxControlRequestBytes {
		t.Fatalf("%d-byte frame over the control cap", len(frame))
	}
	got, err := Decode(frame)
	if err != nil {
		t.Fatalf("legitimate share fetch refused: %v", err)
	}
	if r := got.Msg.(*kmsg.ShareFetchRequest); len(r.Topics) != 400 || len(r.Topics[399].Partitions) != 16 ||
		len(r.Topics[399].Partitions[15].AcknowledgementBatches[3].AcknowledgeTypes) != 5 || len(r.ForgottenTopicsData) != 400 {
		t.Fatalf("decoded %d topics", len(r.Topics))
	}
	body := bodyOf(t, frame, got.Header)
	est, err := walkBody(shareFetchRequest, 1, body)
	if err != nil {
		t.Fatal(err)
	}
	limit := allocLimit(len(body), controlAllocFactor)
	t.Logf("%d-byte body: estimate %d bytes (%.1fx), limit %d", len(body), est, float64(est)/float64(len(body)), limit)
	if est > limit/4 {
		t.Errorf("estimate %d is more than a quarter of the budget %d", est, limit)
	}
	if !raceEnabled {
		if n, err := kmsgAlloc(78, 1, body); err != nil || int64(n) > est+estimateNoise {
			t.Errorf("kmsg allocated %d bytes (err %v), estimate %d", n, err, est)
		}
	}

	tagged := cat(header(78, 1, 1, -1, "", 0), shareFetchV1, []byte{2}, make([]byte, 16), sharePartitionsTagged(20000), []byte{0, 1, 0})
	if _, err := Decode(tagged); !errors.Is(err, ErrMalformedRequest) || !strings.Contains(err.Error(), "would allocate about") {
		t.Fatalf("tagged partitions: %v", err)
	}
}
