package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestRoundTripRandom encodes randomly filled requests of every supported
// (key, version) as a client would, reads them back with ReadFrame and
// Decode, and compares every field: the decoded request must re-encode to
// the same body and equal kmsg's own decoding of it.
func TestRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, a := range Supported {
		for v := a.Versions.Min; v <= a.Versions.Max; v++ {
			t.Run(fmt.Sprintf("%s/v%d", a.Name, v), func(t *testing.T) {
				for i := range 40 {
					req := randomRequest(r, a.Key, v)
					var cid *string
					if i%3 != 0 {
						s := randString(r)
						cid = &s
					}
					corr := int32(r.Uint32())
					wire := clientFrame(req, corr, cid)
					frame, err := ReadFrame(bytes.NewReader(wire), DefaultLimits())
					if err != nil {
						t.Fatalf("ReadFrame: %v", err)
					}
					got, err := Decode(frame)
					if err != nil {
						t.Fatalf("Decode: %v\nframe %x", err, frame)
					}
					h := got.Header
					if h.Key != a.Key || h.Version != v || h.CorrelationID != corr || !reflect.DeepEqual(h.ClientID, cid) {
						t.Fatalf("header %+v, want key %d v%d corr %d client %v", h, a.Key, v, corr, cid)
					}
					if got.Msg.Key() != a.Key || got.Msg.GetVersion() != v {
						t.Fatalf("msg key %d v%d", got.Msg.Key(), got.Msg.GetVersion())
					}
					body := req.AppendTo(nil)
					if re := got.Msg.AppendTo(nil); !bytes.Equal(re, body) {
						t.Fatalf("re-encoding differs\n got %x\nwant %x", re, body)
					}
					if !bytes.HasSuffix(frame, body) {
						t.Fatalf("frame does not end with the body")
					}
					direct := kmsg.RequestForKey(a.Key)
					direct.SetVersion(v)
					if err := direct.ReadFrom(body); err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(direct, got.Msg) {
						t.Fatalf("Decode and kmsg disagree:\n%+v\n%+v", got.Msg, direct)
					}
				}
			})
		}
	}
}

// TestSchemasAcceptKmsgEncodings walks random kmsg encodings of every
// version kmsg knows (not only the supported ones) and of every prefix of
// them: the whole body must be accepted with nothing left over, and every
// strict prefix rejected with ErrMalformedRequest.
func TestSchemasAcceptKmsgEncodings(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, s := range schemas {
		for v := int16(0); v <= s.maxVersion; v++ {
			for range 30 {
				req := randomRequest(r, s.key, v)
				body := req.AppendTo(nil)
				if _, err := walkBody(s, v, body); err != nil {
					t.Fatalf("key %d v%d: valid body rejected: %v\n%x", s.key, v, err, body)
				}
				for n := range len(body) {
					if _, err := walkBody(s, v, body[:n]); !errors.Is(err, ErrMalformedRequest) {
						t.Fatalf("key %d v%d: %d-byte prefix of %d: err %v", s.key, v, n, len(body), err)
					}
				}
			}
		}
	}
}

// TestDecodeFields builds one request per supported API by hand at every
// supported version and checks the fields a broker reads.
func TestDecodeFields(t *testing.T) {
	records := bytes.Repeat([]byte{0xab}, 100)
	type tc struct {
		build func(v int16) kmsg.Request
		check func(t *testing.T, v int16, m kmsg.Request)
	}
	cases := map[int16]tc{
		0: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrProduceRequest()
				r.TransactionID = kmsg.StringPtr("txn")
				r.Acks = -1
				r.TimeoutMillis = 5000
				p := kmsg.NewProduceRequestTopicPartition()
				p.Partition = 3
				p.Records = records
				tp := kmsg.NewProduceRequestTopic()
				tp.Topic = "orders"
				tp.Partitions = []kmsg.ProduceRequestTopicPartition{p}
				r.Topics = []kmsg.ProduceRequestTopic{tp}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.ProduceRequest)
				if *r.TransactionID != "txn" || r.Acks != -1 || r.TimeoutMillis != 5000 || len(r.Topics) != 1 ||
					r.Topics[0].Topic != "orders" || r.Topics[0].Partitions[0].Partition != 3 ||
					!bytes.Equal(r.Topics[0].Partitions[0].Records, records) {
					t.Errorf("%+v", r)
				}
			},
		},
		1: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrFetchRequest()
				r.MaxWaitMillis, r.MinBytes, r.MaxBytes, r.IsolationLevel = 500, 1, 1<<20, 1
				p := kmsg.NewFetchRequestTopicPartition()
				p.Partition, p.FetchOffset, p.PartitionMaxBytes = 2, 12345, 1<<16
				tp := kmsg.NewFetchRequestTopic()
				tp.Topic = "orders"
				tp.TopicID = [16]byte{1, 2, 3}
				tp.Partitions = []kmsg.FetchRequestTopicPartition{p}
				r.Topics = []kmsg.FetchRequestTopic{tp}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.FetchRequest)
				tp := r.Topics[0]
				if r.MaxWaitMillis != 500 || r.MinBytes != 1 || r.MaxBytes != 1<<20 || r.IsolationLevel != 1 ||
					tp.Partitions[0].Partition != 2 || tp.Partitions[0].FetchOffset != 12345 || tp.Partitions[0].PartitionMaxBytes != 1<<16 {
					t.Errorf("%+v", r)
				}
				if (v < 13 && tp.Topic != "orders") || (v >= 13 && tp.TopicID != [16]byte{1, 2, 3}) {
					t.Errorf("topic %q %x", tp.Topic, tp.TopicID)
				}
			},
		},
		2: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrListOffsetsRequest()
				r.ReplicaID = -1
				p := kmsg.NewListOffsetsRequestTopicPartition()
				p.Partition, p.Timestamp = 1, -2
				tp := kmsg.NewListOffsetsRequestTopic()
				tp.Topic = "t"
				tp.Partitions = []kmsg.ListOffsetsRequestTopicPartition{p}
				r.Topics = []kmsg.ListOffsetsRequestTopic{tp}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.ListOffsetsRequest)
				if r.ReplicaID != -1 || r.Topics[0].Topic != "t" || r.Topics[0].Partitions[0].Timestamp != -2 {
					t.Errorf("%+v", r)
				}
			},
		},
		3: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrMetadataRequest()
				tp := kmsg.NewMetadataRequestTopic()
				tp.Topic = kmsg.StringPtr("orders")
				r.Topics = []kmsg.MetadataRequestTopic{tp}
				r.AllowAutoTopicCreation = true
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.MetadataRequest)
				if len(r.Topics) != 1 || *r.Topics[0].Topic != "orders" || (v >= 4 && !r.AllowAutoTopicCreation) {
					t.Errorf("%+v", r)
				}
			},
		},
		10: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrFindCoordinatorRequest()
				r.CoordinatorKey = "group"
				r.CoordinatorKeys = []string{"group"}
				r.CoordinatorType = 0
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.FindCoordinatorRequest)
				if (v < 4 && r.CoordinatorKey != "group") || (v >= 4 && !reflect.DeepEqual(r.CoordinatorKeys, []string{"group"})) {
					t.Errorf("%+v", r)
				}
			},
		},
		18: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrApiVersionsRequest()
				r.ClientSoftwareName, r.ClientSoftwareVersion = "sluice", "1.0"
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.ApiVersionsRequest)
				if v >= 3 && (r.ClientSoftwareName != "sluice" || r.ClientSoftwareVersion != "1.0") {
					t.Errorf("%+v", r)
				}
			},
		},
		19: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrCreateTopicsRequest()
				tp := kmsg.NewCreateTopicsRequestTopic()
				tp.Topic, tp.NumPartitions, tp.ReplicationFactor = "new", 6, 3
				c := kmsg.NewCreateTopicsRequestTopicConfig()
				c.Name, c.Value = "retention.ms", kmsg.StringPtr("1000")
				tp.Configs = []kmsg.CreateTopicsRequestTopicConfig{c}
				r.Topics = []kmsg.CreateTopicsRequestTopic{tp}
				r.TimeoutMillis, r.ValidateOnly = 3000, true
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.CreateTopicsRequest)
				tp := r.Topics[0]
				if tp.Topic != "new" || tp.NumPartitions != 6 || tp.ReplicationFactor != 3 || tp.Configs[0].Name != "retention.ms" ||
					*tp.Configs[0].Value != "1000" || r.TimeoutMillis != 3000 || !r.ValidateOnly {
					t.Errorf("%+v", r)
				}
			},
		},
		20: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrDeleteTopicsRequest()
				r.TopicNames = []string{"old"}
				tp := kmsg.NewDeleteTopicsRequestTopic()
				tp.Topic = kmsg.StringPtr("old")
				r.Topics = []kmsg.DeleteTopicsRequestTopic{tp}
				r.TimeoutMillis = 1000
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.DeleteTopicsRequest)
				if (v < 6 && r.TopicNames[0] != "old") || (v >= 6 && *r.Topics[0].Topic != "old") || r.TimeoutMillis != 1000 {
					t.Errorf("%+v", r)
				}
			},
		},
		21: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrDeleteRecordsRequest()
				p := kmsg.NewDeleteRecordsRequestTopicPartition()
				p.Partition, p.Offset = 4, 99
				tp := kmsg.NewDeleteRecordsRequestTopic()
				tp.Topic = "t"
				tp.Partitions = []kmsg.DeleteRecordsRequestTopicPartition{p}
				r.Topics = []kmsg.DeleteRecordsRequestTopic{tp}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.DeleteRecordsRequest)
				if r.Topics[0].Topic != "t" || r.Topics[0].Partitions[0].Offset != 99 {
					t.Errorf("%+v", r)
				}
			},
		},
		22: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrInitProducerIDRequest()
				r.TransactionTimeoutMillis, r.ProducerID, r.ProducerEpoch = 60000, 42, 3
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.InitProducerIDRequest)
				if r.TransactionalID != nil || r.TransactionTimeoutMillis != 60000 || (v >= 3 && (r.ProducerID != 42 || r.ProducerEpoch != 3)) {
					t.Errorf("%+v", r)
				}
			},
		},
		32: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrDescribeConfigsRequest()
				res := kmsg.NewDescribeConfigsRequestResource()
				res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, "t"
				r.Resources = []kmsg.DescribeConfigsRequestResource{res} // nil keys: all configs
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.DescribeConfigsRequest)
				if r.Resources[0].ResourceName != "t" || r.Resources[0].ConfigNames != nil {
					t.Errorf("%+v", r)
				}
			},
		},
		37: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrCreatePartitionsRequest()
				tp := kmsg.NewCreatePartitionsRequestTopic()
				tp.Topic, tp.Count = "t", 12
				r.Topics = []kmsg.CreatePartitionsRequestTopic{tp}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.CreatePartitionsRequest)
				if r.Topics[0].Topic != "t" || r.Topics[0].Count != 12 || r.Topics[0].Assignment != nil {
					t.Errorf("%+v", r)
				}
			},
		},
		44: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrIncrementalAlterConfigsRequest()
				c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
				c.Name, c.Op, c.Value = "retention.ms", kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr("5")
				res := kmsg.NewIncrementalAlterConfigsRequestResource()
				res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, "t"
				res.Configs = []kmsg.IncrementalAlterConfigsRequestResourceConfig{c}
				r.Resources = []kmsg.IncrementalAlterConfigsRequestResource{res}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.IncrementalAlterConfigsRequest)
				c := r.Resources[0].Configs[0]
				if c.Name != "retention.ms" || c.Op != kmsg.IncrementalAlterConfigOpSet || *c.Value != "5" {
					t.Errorf("%+v", r)
				}
			},
		},
		60: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrDescribeClusterRequest()
				r.IncludeClusterAuthorizedOperations = true
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				if !m.(*kmsg.DescribeClusterRequest).IncludeClusterAuthorizedOperations {
					t.Errorf("%+v", m)
				}
			},
		},
	}
	for _, a := range Supported {
		c, ok := cases[a.Key]
		if !ok {
			t.Errorf("no case for %s", a.Name)
			continue
		}
		for v := a.Versions.Min; v <= a.Versions.Max; v++ {
			req := c.build(v)
			req.SetVersion(v)
			frame := clientFrame(req, 77, kmsg.StringPtr("client-1"))[4:]
			got, err := Decode(frame)
			if err != nil {
				t.Fatalf("%s v%d: %v", a.Name, v, err)
			}
			if got.Header.CorrelationID != 77 || *got.Header.ClientID != "client-1" {
				t.Errorf("%s v%d: header %+v", a.Name, v, got.Header)
			}
			c.check(t, v, got.Msg)
		}
	}
}

// body helpers for hand-built bad bodies.
func i16(v int16) []byte { return []byte{byte(uint16(v) >> 8), byte(v)} }
func i32(v int32) []byte {
	return []byte{byte(uint32(v) >> 24), byte(uint32(v) >> 16), byte(uint32(v) >> 8), byte(v)}
}
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestDecodeBadInput(t *testing.T) {
	// A valid Metadata v12 body: topics null, allow auto create, include
	// topic ops, no tags.
	meta12 := []byte{0, 1, 0, 0}
	// A Produce v3 body prefix: null transactional id, acks, timeout.
	p3 := cat(i16(-1), i16(1), i32(1000))
	// A Produce v9 body prefix: compact null transactional id, acks, timeout.
	p9 := cat([]byte{0}, i16(1), i32(1000))
	hugeTags := []byte{0xff, 0xff, 0xff, 0xff, 0x0f}
	ampTopics := appendUvarint(nil, 200_001)
	for range 200_000 {
		ampTopics = append(ampTopics, 1, 1, 0) // empty name, empty partitions, no tags
	}
	type tc struct {
		name      string
		frame     []byte
		want      error
		hasHeader bool
	}
	tests := []tc{
		{"empty", nil, ErrMalformedRequest, false},
		{"7 bytes", header(3, 1, 1, -1, "")[:7], ErrMalformedRequest, false},
		{"no client id", header(3, 1, 1, -1, "")[:8], ErrMalformedRequest, true},
		{"half client id length", header(3, 1, 1, -1, "")[:9], ErrMalformedRequest, true},
		{"client id length -2", header(3, 1, 1, -2, ""), ErrMalformedRequest, true},
		{"client id length min int16", header(3, 1, 1, -32768, ""), ErrMalformedRequest, true},
		{"client id past end", header(3, 1, 1, 100, "abc"), ErrMalformedRequest, true},
		{"unknown key 9999", header(9999, 0, 1, -1, ""), ErrUnknownAPI, true},
		{"unknown key JoinGroup", header(11, 5, 1, 3, "abc"), ErrUnknownAPI, true},
		{"unknown key -1", header(-1, 0, 1, -1, ""), ErrUnknownAPI, true},
		{"unknown key 61", header(61, 0, 1, -1, ""), ErrUnknownAPI, true},
		{"produce v2 below min", header(0, 2, 1, -1, ""), ErrUnsupportedVersion, true},
		{"produce v12 above max", header(0, 12, 1, -1, ""), ErrUnsupportedVersion, true},
		{"produce v-1", header(0, -1, 1, -1, ""), ErrUnsupportedVersion, true},
		{"fetch v3 below min", header(1, 3, 1, -1, ""), ErrUnsupportedVersion, true},
		{"fetch v17 above max", header(1, 17, 1, -1, ""), ErrUnsupportedVersion, true},
		{"list offsets v0", header(2, 0, 1, -1, ""), ErrUnsupportedVersion, true},
		{"metadata v13", header(3, 13, 1, -1, ""), ErrUnsupportedVersion, true},
		{"api versions v5", header(18, 5, 1, -1, ""), ErrUnsupportedVersion, true},
		{"api versions v300 garbage after", cat(header(18, 300, 1, -5, ""), []byte{1, 2, 3}), ErrUnsupportedVersion, true},
		{"create topics v1", header(19, 1, 1, -1, ""), ErrUnsupportedVersion, true},
		{"init producer id v5", header(22, 5, 1, -1, ""), ErrUnsupportedVersion, true},
		{"describe cluster v2", header(60, 2, 1, -1, ""), ErrUnsupportedVersion, true},
		{"missing header tags", header(3, 12, 1, -1, ""), ErrMalformedRequest, true},
		{"header tags count huge", header(3, 12, 1, -1, "", hugeTags...), ErrMalformedRequest, true},
		{"header tag size past end", header(3, 12, 1, -1, "", 1, 5, 100, 1), ErrMalformedRequest, true},
		{"header tags uvarint overflow", header(3, 12, 1, -1, "", 0xff, 0xff, 0xff, 0xff, 0x10), ErrMalformedRequest, true},
		{"header tags truncated uvarint", header(3, 12, 1, -1, "", 0x80), ErrMalformedRequest, true},
		{"metadata body tags count 2^32-1", cat(header(3, 12, 1, -1, "", 0), []byte{0, 1, 0}, hugeTags), ErrMalformedRequest, true},
		{"metadata body tag size past end", cat(header(3, 12, 1, -1, "", 0), []byte{0, 1, 0, 1, 7, 50}), ErrMalformedRequest, true},
		{"metadata trailing byte", cat(header(3, 12, 1, -1, "", 0), meta12, []byte{0}), ErrMalformedRequest, true},
		{"metadata v0 null topics", cat(header(3, 0, 1, -1, ""), i32(-1)), ErrMalformedRequest, true},
		{"metadata v1 topics -2", cat(header(3, 1, 1, -1, ""), i32(-2)), ErrMalformedRequest, true},
		{"metadata v1 topics huge", cat(header(3, 1, 1, -1, ""), i32(1<<30)), ErrMalformedRequest, true},
		{"metadata v1 topic name -1", cat(header(3, 1, 1, -1, ""), i32(1), i16(-1)), ErrMalformedRequest, true},
		{"produce v3 topics 2^31-1", cat(header(0, 3, 1, -1, ""), p3, i32(1<<31-1)), ErrMalformedRequest, true},
		// kmsg would accept a count of 10 here (10 bytes remain); an element needs 6.
		{"produce v3 topics beyond min size", cat(header(0, 3, 1, -1, ""), p3, i32(10), make([]byte, 10)), ErrMalformedRequest, true},
		{"produce v3 topics -1", cat(header(0, 3, 1, -1, ""), p3, i32(-1)), ErrMalformedRequest, true},
		{"produce v3 partitions huge", cat(header(0, 3, 1, -1, ""), p3, i32(1), i16(1), []byte("t"), i32(1<<28)), ErrMalformedRequest, true},
		{"produce v3 transactional id -2", cat(header(0, 3, 1, -1, ""), i16(-2), i16(1), i32(1000), i32(0)), ErrMalformedRequest, true},
		{"produce v3 records -2", cat(header(0, 3, 1, -1, ""), p3, i32(1), i16(1), []byte("t"), i32(1), i32(0), i32(-2)), ErrMalformedRequest, true},
		{"produce v3 records past end", cat(header(0, 3, 1, -1, ""), p3, i32(1), i16(1), []byte("t"), i32(1), i32(0), i32(100), []byte{1, 2}), ErrMalformedRequest, true},
		{"produce v9 topics huge compact", cat(header(0, 9, 1, -1, "", 0), p9, hugeTags[:4], []byte{0x07}), ErrMalformedRequest, true},
		{"produce v9 topic name null", cat(header(0, 9, 1, -1, "", 0), p9, []byte{2, 0, 1, 0, 0}), ErrMalformedRequest, true},
		{"produce v9 partition tags huge", cat(header(0, 9, 1, -1, "", 0), p9, []byte{2, 2, 't', 2}, i32(0), []byte{0}, hugeTags), ErrMalformedRequest, true},
		{"produce v9 amplification", cat(header(0, 9, 1, -1, "", 0), p9, ampTopics, []byte{0}), ErrMalformedRequest, true},
		{"fetch v12 partition tag 0 short", cat(header(1, 12, 1, -1, "", 0), i32(-1), i32(0), i32(0), i32(0), []byte{0}, i32(0), i32(0),
			[]byte{2, 2, 't', 2}, i32(0), i32(0), make([]byte, 8), i32(0), make([]byte, 8), i32(0), []byte{1, 0, 4, 1, 2, 3, 4}), ErrMalformedRequest, true},
		{"fetch v12 partition tag 1 trailing", cat(header(1, 12, 1, -1, "", 0), i32(-1), i32(0), i32(0), i32(0), []byte{0}, i32(0), i32(0),
			[]byte{2, 2, 't', 2}, i32(0), i32(0), make([]byte, 8), i32(0), make([]byte, 8), i32(0), []byte{1, 1, 9}, make([]byte, 9), []byte{0, 1, 1, 0}), ErrMalformedRequest, true},
		{"fetch v15 replica state nested tags huge", cat(header(1, 15, 1, -1, "", 0), i32(0), i32(0), i32(0), []byte{0}, i32(0), i32(0),
			[]byte{1, 1, 1, 1, 1, 17}, i32(1), make([]byte, 8), hugeTags), ErrMalformedRequest, true},
		{"create topics v2 negative assignments", cat(header(19, 2, 1, -1, ""), i32(1), i16(1), []byte("t"), i32(1), i16(1), i32(-7), i32(0), i32(0), []byte{0}), ErrMalformedRequest, true},
		{"describe configs v1 null keys ok, trailing", cat(header(32, 1, 1, -1, ""), i32(1), []byte{2}, i16(1), []byte("t"), i32(-1), []byte{0, 9}), ErrMalformedRequest, true},
		{"describe cluster v0 empty body", header(60, 0, 1, -1, "", 0), ErrMalformedRequest, true},
	}
	// Every truncation of a valid request of every supported key and
	// version is malformed (or, inside the fixed header, headerless).
	r := rand.New(rand.NewPCG(5, 6))
	for _, a := range Supported {
		for _, v := range []int16{a.Versions.Min, a.Versions.Max} {
			frame := clientFrame(randomRequest(r, a.Key, v), 9, kmsg.StringPtr("c"))[4:]
			step := max(1, len(frame)/12)
			for n := 0; n < len(frame); n += step {
				tests = append(tests, tc{fmt.Sprintf("%s v%d truncated to %d of %d", a.Name, v, n, len(frame)), frame[:n], ErrMalformedRequest, n >= 8})
			}
		}
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			req, err := Decode(tc.frame)
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v", d)
			}
			if !errors.Is(err, tc.want) || !wrapsOneSentinel(err) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			t.Log(err)
			if (req != nil) != tc.hasHeader {
				t.Fatalf("request returned: %v, want header: %v", req != nil, tc.hasHeader)
			}
			if req == nil {
				return
			}
			if req.Msg != nil {
				t.Fatalf("Msg set with an error")
			}
			if req.Header.Key != int16(uint16(tc.frame[0])<<8|uint16(tc.frame[1])) ||
				req.Header.CorrelationID != 1 && req.Header.CorrelationID != 9 {
				t.Fatalf("header %+v", req.Header)
			}
		})
	}
	if len(tests) < 120 {
		t.Errorf("only %d bad-input cases", len(tests))
	}
}

func TestDecodeValidEdgeCases(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"metadata v1 null topics", cat(header(3, 1, 1, -1, ""), i32(-1))},
		{"metadata v12 unknown body tag", cat(header(3, 12, 1, -1, "", 0), []byte{0, 1, 0, 1, 50, 2, 9, 9})},
		{"header unknown tags", cat(header(3, 12, 1, -1, "", 2, 3, 1, 7, 4, 0), []byte{0, 1, 0, 0})},
		{"non-minimal uvarint", cat(header(3, 12, 1, -1, "", 0x80, 0x00), []byte{0x80, 0x00, 1, 0, 0})},
		{"client id empty", cat(header(3, 1, 1, 0, ""), i32(0))},
		{"produce v3 null records", cat(header(0, 3, 1, -1, ""), cat(i16(-1), i16(1), i32(1000)), i32(1), i16(1), []byte("t"), i32(1), i32(0), i32(-1))},
		{"describe configs v1 null keys", cat(header(32, 1, 1, -1, ""), i32(1), []byte{2}, i16(1), []byte("t"), i32(-1), []byte{0})},
		{"create partitions v0 null assignment", cat(header(37, 0, 1, -1, ""), i32(1), i16(1), []byte("t"), i32(3), i32(-1), i32(100), []byte{0})},
		{"api versions v4 bare", cat(header(18, 4, 1, -1, "", 0), []byte{1, 1, 0})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := Decode(tc.frame)
			if err != nil {
				t.Fatal(err)
			}
			if req.Msg == nil {
				t.Fatal("nil Msg")
			}
		})
	}
}

func TestDecodeHeaderOnError(t *testing.T) {
	req, err := Decode(header(18, 7, 42, 3, "cli"))
	if !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatal(err)
	}
	if req.Header != (Header{Key: 18, Version: 7, CorrelationID: 42, ClientID: req.Header.ClientID}) || *req.Header.ClientID != "cli" {
		t.Fatalf("%+v", req.Header)
	}
	req, err = Decode(header(11, 1, 43, -9, ""))
	if !errors.Is(err, ErrUnknownAPI) || req.Header.CorrelationID != 43 || req.Header.ClientID != nil {
		t.Fatalf("%v %+v", err, req)
	}
}

// TestControlBudget checks the 32x budget for non-Produce requests: a
// Metadata request listing many one-letter topics (about 21 bytes of Go per
// wire byte, the worst legitimate shape found) decodes; one carrying tens of
// thousands of unknown tagged fields (about 50x) is refused.
func TestControlBudget(t *testing.T) {
	n := 200_000
	topics := cat(i32(int32(n)))
	for i := range n {
		topics = append(topics, 0, 1, byte('a'+i%26))
	}
	if req, err := Decode(cat(header(3, 1, 1, -1, ""), topics)); err != nil || len(req.Msg.(*kmsg.MetadataRequest).Topics) != n {
		t.Fatalf("legitimate metadata request refused: %v", err)
	}
	tags := appendUvarint([]byte{0, 1, 1}, 30000)
	for i := range 30000 {
		tags = append(appendUvarint(tags, uint32(100+i)), 0)
	}
	if _, err := Decode(cat(header(3, 12, 1, -1, "", 0), tags)); !errors.Is(err, ErrMalformedRequest) {
		t.Fatalf("tag amplifier accepted: %v", err)
	}
}
