package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/protocol/sluiceapi"
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
					direct := NewRequest(a.Key)
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
		8: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrOffsetCommitRequest()
				r.Group, r.Generation, r.MemberID, r.InstanceID = "g", 7, "m-1", kmsg.StringPtr("i-1")
				r.RetentionTimeMillis = 60000
				p := kmsg.NewOffsetCommitRequestTopicPartition()
				p.Partition, p.Offset, p.LeaderEpoch, p.Metadata = 2, 1234, 5, kmsg.StringPtr("meta")
				tp := kmsg.NewOffsetCommitRequestTopic()
				tp.Topic, tp.TopicID = "orders", [16]byte{9, 8, 7}
				tp.Partitions = []kmsg.OffsetCommitRequestTopicPartition{p}
				r.Topics = []kmsg.OffsetCommitRequestTopic{tp}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.OffsetCommitRequest)
				tp := r.Topics[0]
				p := tp.Partitions[0]
				if r.Group != "g" || r.Generation != 7 || r.MemberID != "m-1" || p.Partition != 2 || p.Offset != 1234 || *p.Metadata != "meta" ||
					(v >= 7 && *r.InstanceID != "i-1") || (v <= 4 && r.RetentionTimeMillis != 60000) || (v >= 6 && p.LeaderEpoch != 5) {
					t.Errorf("%+v", r)
				}
				if (v < 10 && tp.Topic != "orders") || (v >= 10 && tp.TopicID != [16]byte{9, 8, 7}) {
					t.Errorf("topic %q %x", tp.Topic, tp.TopicID)
				}
			},
		},
		9: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrOffsetFetchRequest()
				r.Group = "g"
				tp := kmsg.NewOffsetFetchRequestTopic()
				tp.Topic, tp.Partitions = "orders", []int32{0, 3}
				r.Topics = []kmsg.OffsetFetchRequestTopic{tp}
				gt := kmsg.NewOffsetFetchRequestGroupTopic()
				gt.Topic, gt.TopicID, gt.Partitions = "orders", [16]byte{4, 5}, []int32{0, 3}
				g := kmsg.NewOffsetFetchRequestGroup()
				g.Group, g.MemberID, g.MemberEpoch = "g", kmsg.StringPtr("m-1"), 11
				g.Topics = []kmsg.OffsetFetchRequestGroupTopic{gt}
				all := kmsg.NewOffsetFetchRequestGroup()
				all.Group = "all" // nil topics: every topic
				r.Groups = []kmsg.OffsetFetchRequestGroup{g, all}
				r.RequireStable = true
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.OffsetFetchRequest)
				if v >= 7 && !r.RequireStable {
					t.Errorf("require stable %+v", r)
				}
				if v < 8 {
					if r.Group != "g" || r.Topics[0].Topic != "orders" || !reflect.DeepEqual(r.Topics[0].Partitions, []int32{0, 3}) {
						t.Errorf("%+v", r)
					}
					return
				}
				g := r.Groups[0]
				gt := g.Topics[0]
				if len(r.Groups) != 2 || g.Group != "g" || !reflect.DeepEqual(gt.Partitions, []int32{0, 3}) ||
					r.Groups[1].Group != "all" || r.Groups[1].Topics != nil {
					t.Errorf("%+v", r)
				}
				if v >= 9 && (*g.MemberID != "m-1" || g.MemberEpoch != 11) {
					t.Errorf("member %v %d", g.MemberID, g.MemberEpoch)
				}
				if (v < 10 && gt.Topic != "orders") || (v >= 10 && gt.TopicID != [16]byte{4, 5}) {
					t.Errorf("topic %q %x", gt.Topic, gt.TopicID)
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
		11: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrJoinGroupRequest()
				r.Group, r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = "g", 45000, 300000
				r.MemberID, r.InstanceID, r.ProtocolType = "m-1", kmsg.StringPtr("i-1"), "consumer"
				p := kmsg.NewJoinGroupRequestProtocol()
				p.Name, p.Metadata = "range", records[:10]
				empty := kmsg.NewJoinGroupRequestProtocol()
				empty.Name, empty.Metadata = "cooperative-sticky", []byte{}
				r.Protocols = []kmsg.JoinGroupRequestProtocol{p, empty}
				r.Reason = kmsg.StringPtr("rebalance")
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.JoinGroupRequest)
				if r.Group != "g" || r.SessionTimeoutMillis != 45000 || r.RebalanceTimeoutMillis != 300000 || r.MemberID != "m-1" ||
					r.ProtocolType != "consumer" || len(r.Protocols) != 2 || r.Protocols[0].Name != "range" ||
					!bytes.Equal(r.Protocols[0].Metadata, records[:10]) || r.Protocols[1].Metadata == nil || len(r.Protocols[1].Metadata) != 0 ||
					(v >= 5 && *r.InstanceID != "i-1") || (v >= 8 && *r.Reason != "rebalance") {
					t.Errorf("%+v", r)
				}
			},
		},
		12: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrHeartbeatRequest()
				r.Group, r.Generation, r.MemberID, r.InstanceID = "g", 3, "m-1", kmsg.StringPtr("i-1")
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.HeartbeatRequest)
				if r.Group != "g" || r.Generation != 3 || r.MemberID != "m-1" || (v >= 3 && *r.InstanceID != "i-1") {
					t.Errorf("%+v", r)
				}
			},
		},
		13: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrLeaveGroupRequest()
				r.Group, r.MemberID = "g", "m-1"
				a := kmsg.NewLeaveGroupRequestMember()
				a.MemberID, a.InstanceID, a.Reason = "m-1", kmsg.StringPtr("i-1"), kmsg.StringPtr("bye")
				b := kmsg.NewLeaveGroupRequestMember()
				b.MemberID = "m-2" // null instance id and reason
				r.Members = []kmsg.LeaveGroupRequestMember{a, b}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.LeaveGroupRequest)
				if r.Group != "g" || (v < 3 && r.MemberID != "m-1") {
					t.Errorf("%+v", r)
				}
				if v >= 3 && (len(r.Members) != 2 || r.Members[0].MemberID != "m-1" || *r.Members[0].InstanceID != "i-1" ||
					r.Members[1].InstanceID != nil || r.Members[1].Reason != nil || (v >= 5 && *r.Members[0].Reason != "bye")) {
					t.Errorf("%+v", r.Members)
				}
			},
		},
		14: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrSyncGroupRequest()
				r.Group, r.Generation, r.MemberID, r.InstanceID = "g", 4, "m-1", kmsg.StringPtr("i-1")
				r.ProtocolType, r.Protocol = kmsg.StringPtr("consumer"), nil
				a := kmsg.NewSyncGroupRequestGroupAssignment()
				a.MemberID, a.MemberAssignment = "m-1", records[:20]
				r.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{a}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.SyncGroupRequest)
				if r.Group != "g" || r.Generation != 4 || r.MemberID != "m-1" || len(r.GroupAssignment) != 1 ||
					r.GroupAssignment[0].MemberID != "m-1" || !bytes.Equal(r.GroupAssignment[0].MemberAssignment, records[:20]) ||
					(v >= 3 && *r.InstanceID != "i-1") || (v >= 5 && (*r.ProtocolType != "consumer" || r.Protocol != nil)) {
					t.Errorf("%+v", r)
				}
			},
		},
		15: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrDescribeGroupsRequest()
				r.Groups, r.IncludeAuthorizedOperations = []string{"g", "h"}, true
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.DescribeGroupsRequest)
				if !reflect.DeepEqual(r.Groups, []string{"g", "h"}) || (v >= 3 && !r.IncludeAuthorizedOperations) {
					t.Errorf("%+v", r)
				}
			},
		},
		16: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrListGroupsRequest()
				r.StatesFilter, r.TypesFilter = []string{"Stable", "Empty"}, []string{"classic"}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.ListGroupsRequest)
				if (v >= 4 && !reflect.DeepEqual(r.StatesFilter, []string{"Stable", "Empty"})) ||
					(v >= 5 && !reflect.DeepEqual(r.TypesFilter, []string{"classic"})) || (v < 4 && len(r.StatesFilter) != 0) {
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
		42: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrDeleteGroupsRequest()
				r.Groups = []string{"old", "older"}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				if r := m.(*kmsg.DeleteGroupsRequest); !reflect.DeepEqual(r.Groups, []string{"old", "older"}) {
					t.Errorf("%+v", r)
				}
			},
		},
		47: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrOffsetDeleteRequest()
				r.Group = "g"
				tp := kmsg.NewOffsetDeleteRequestTopic()
				tp.Topic = "orders"
				tp.Partitions = []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 1}, {Partition: 5}}
				r.Topics = []kmsg.OffsetDeleteRequestTopic{tp}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.OffsetDeleteRequest)
				if r.Group != "g" || r.Topics[0].Topic != "orders" || len(r.Topics[0].Partitions) != 2 || r.Topics[0].Partitions[1].Partition != 5 {
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
		76: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrShareGroupHeartbeatRequest()
				r.GroupID, r.MemberID, r.MemberEpoch = "sg", "AAAAAAAAAAAAAAAAAAAAAA==", 0
				r.RackID = kmsg.StringPtr("rack-a")
				r.SubscribedTopicNames = []string{"orders", "payments"}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.ShareGroupHeartbeatRequest)
				if r.GroupID != "sg" || r.MemberID != "AAAAAAAAAAAAAAAAAAAAAA==" || r.MemberEpoch != 0 || *r.RackID != "rack-a" ||
					!reflect.DeepEqual(r.SubscribedTopicNames, []string{"orders", "payments"}) {
					t.Errorf("%+v", r)
				}
			},
		},
		77: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrShareGroupDescribeRequest()
				r.GroupIDs = []string{"sg", "sg2"}
				r.IncludeAuthorizedOperations = true
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.ShareGroupDescribeRequest)
				if !reflect.DeepEqual(r.GroupIDs, []string{"sg", "sg2"}) || !r.IncludeAuthorizedOperations {
					t.Errorf("%+v", r)
				}
			},
		},
		78: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrShareFetchRequest()
				r.GroupID, r.MemberID = kmsg.StringPtr("sg"), kmsg.StringPtr("m-1")
				r.ShareSessionEpoch, r.MaxWaitMillis, r.MinBytes, r.MaxBytes = 3, 500, 1, 50<<20
				r.MaxRecords, r.BatchSize = 500, 500
				b := kmsg.NewShareFetchRequestTopicPartitionAcknowledgementBatch()
				b.FirstOffset, b.LastOffset, b.AcknowledgeTypes = 10, 19, []int8{1}
				p := kmsg.NewShareFetchRequestTopicPartition()
				p.Partition = 2
				p.AcknowledgementBatches = []kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch{b}
				tp := kmsg.NewShareFetchRequestTopic()
				tp.TopicID = [16]byte{7, 8}
				tp.Partitions = []kmsg.ShareFetchRequestTopicPartition{p}
				r.Topics = []kmsg.ShareFetchRequestTopic{tp}
				f := kmsg.NewShareFetchRequestForgottenTopicsData()
				f.TopicID, f.Partitions = [16]byte{9}, []int32{0, 4}
				r.ForgottenTopicsData = []kmsg.ShareFetchRequestForgottenTopicsData{f}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.ShareFetchRequest)
				if *r.GroupID != "sg" || *r.MemberID != "m-1" || r.ShareSessionEpoch != 3 || r.MaxWaitMillis != 500 || r.MinBytes != 1 ||
					r.MaxBytes != 50<<20 || r.MaxRecords != 500 || r.BatchSize != 500 {
					t.Errorf("%+v", r)
				}
				tp := r.Topics[0]
				b := tp.Partitions[0].AcknowledgementBatches[0]
				if tp.TopicID != [16]byte{7, 8} || tp.Partitions[0].Partition != 2 || b.FirstOffset != 10 || b.LastOffset != 19 ||
					!reflect.DeepEqual(b.AcknowledgeTypes, []int8{1}) {
					t.Errorf("%+v", tp)
				}
				if f := r.ForgottenTopicsData; len(f) != 1 || f[0].TopicID != [16]byte{9} || !reflect.DeepEqual(f[0].Partitions, []int32{0, 4}) {
					t.Errorf("forgotten %+v", f)
				}
			},
		},
		79: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrShareAcknowledgeRequest()
				r.GroupID, r.MemberID, r.ShareSessionEpoch = kmsg.StringPtr("sg"), kmsg.StringPtr("m-1"), -1
				b := kmsg.NewShareAcknowledgeRequestTopicPartitionAcknowledgementBatch()
				b.FirstOffset, b.LastOffset, b.AcknowledgeTypes = 5, 7, []int8{1, 0, 3} // one type per offset
				p := kmsg.NewShareAcknowledgeRequestTopicPartition()
				p.Partition = 1
				p.AcknowledgementBatches = []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch{b}
				tp := kmsg.NewShareAcknowledgeRequestTopic()
				tp.TopicID = [16]byte{3}
				tp.Partitions = []kmsg.ShareAcknowledgeRequestTopicPartition{p}
				r.Topics = []kmsg.ShareAcknowledgeRequestTopic{tp}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.ShareAcknowledgeRequest)
				tp := r.Topics[0]
				b := tp.Partitions[0].AcknowledgementBatches[0]
				if *r.GroupID != "sg" || *r.MemberID != "m-1" || r.ShareSessionEpoch != -1 || tp.TopicID != [16]byte{3} ||
					tp.Partitions[0].Partition != 1 || b.FirstOffset != 5 || b.LastOffset != 7 || !reflect.DeepEqual(b.AcknowledgeTypes, []int8{1, 0, 3}) {
					t.Errorf("%+v", r)
				}
			},
		},
		90: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
				g := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
				g.GroupID = "sg"
				tp := kmsg.NewDescribeShareGroupOffsetsRequestGroupTopic()
				tp.Topic, tp.Partitions = "orders", []int32{0, 3}
				g.Topics = []kmsg.DescribeShareGroupOffsetsRequestGroupTopic{tp}
				all := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
				all.GroupID = "sg2" // null topics: all of them
				r.Groups = []kmsg.DescribeShareGroupOffsetsRequestGroup{g, all}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.DescribeShareGroupOffsetsRequest)
				if len(r.Groups) != 2 || r.Groups[0].GroupID != "sg" || len(r.Groups[0].Topics) != 1 || r.Groups[0].Topics[0].Topic != "orders" ||
					!reflect.DeepEqual(r.Groups[0].Topics[0].Partitions, []int32{0, 3}) || r.Groups[1].GroupID != "sg2" || r.Groups[1].Topics != nil {
					t.Errorf("%+v", r)
				}
			},
		},
		91: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrAlterShareGroupOffsetsRequest()
				r.GroupID = "sg"
				p := kmsg.NewAlterShareGroupOffsetsRequestTopicPartition()
				p.Partition, p.StartOffset = 2, 42
				tp := kmsg.NewAlterShareGroupOffsetsRequestTopic()
				tp.Topic, tp.Partitions = "orders", []kmsg.AlterShareGroupOffsetsRequestTopicPartition{p}
				r.Topics = []kmsg.AlterShareGroupOffsetsRequestTopic{tp}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.AlterShareGroupOffsetsRequest)
				if r.GroupID != "sg" || len(r.Topics) != 1 || r.Topics[0].Topic != "orders" || len(r.Topics[0].Partitions) != 1 ||
					r.Topics[0].Partitions[0].Partition != 2 || r.Topics[0].Partitions[0].StartOffset != 42 {
					t.Errorf("%+v", r)
				}
			},
		},
		92: {
			build: func(v int16) kmsg.Request {
				r := kmsg.NewPtrDeleteShareGroupOffsetsRequest()
				r.GroupID = "sg"
				a, b := kmsg.NewDeleteShareGroupOffsetsRequestTopic(), kmsg.NewDeleteShareGroupOffsetsRequestTopic()
				a.Topic, b.Topic = "orders", "payments"
				r.Topics = []kmsg.DeleteShareGroupOffsetsRequestTopic{a, b}
				return r
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*kmsg.DeleteShareGroupOffsetsRequest)
				if r.GroupID != "sg" || len(r.Topics) != 2 || r.Topics[0].Topic != "orders" || r.Topics[1].Topic != "payments" {
					t.Errorf("%+v", r)
				}
			},
		},
		sluiceapi.ShareNoteKey: {
			build: func(v int16) kmsg.Request {
				return &sluiceapi.ShareNoteRequest{GroupID: "sg", Topics: []sluiceapi.ShareNoteRequestTopic{{
					TopicID: [16]byte{4},
					Partitions: []sluiceapi.ShareNoteRequestPartition{{Partition: 2, Notes: []sluiceapi.ShareNote{
						{Offset: 9, DeliveryCount: 3, Text: "smtp timeout"}, {Offset: 12, DeliveryCount: 1, Text: "no such mailbox: ü"},
					}}},
				}}}
			},
			check: func(t *testing.T, v int16, m kmsg.Request) {
				r := m.(*sluiceapi.ShareNoteRequest)
				want := []sluiceapi.ShareNote{{Offset: 9, DeliveryCount: 3, Text: "smtp timeout"}, {Offset: 12, DeliveryCount: 1, Text: "no such mailbox: ü"}}
				if r.GroupID != "sg" || r.MemberID != nil || len(r.Topics) != 1 || r.Topics[0].TopicID != [16]byte{4} ||
					len(r.Topics[0].Partitions) != 1 || r.Topics[0].Partitions[0].Partition != 2 || !reflect.DeepEqual(r.Topics[0].Partitions[0].Notes, want) {
					t.Errorf("%+v", r)
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
func i64(v int64) []byte         { return cat(i32(int32(v>>32)), i32(int32(v))) }
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
		{"unknown key LeaderAndIsr", header(4, 5, 1, 3, "abc"), ErrUnknownAPI, true},
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
		{"offset commit v1 below min", header(8, 1, 1, -1, ""), ErrUnsupportedVersion, true},
		{"offset commit v10 topic ids above max", header(8, 10, 1, -1, "", 0), ErrUnsupportedVersion, true},
		{"offset fetch v10 topic ids above max", header(9, 10, 1, -1, "", 0), ErrUnsupportedVersion, true},
		{"offset fetch v0 below min", header(9, 0, 1, -1, ""), ErrUnsupportedVersion, true},
		{"join group v1 below min", header(11, 1, 1, -1, ""), ErrUnsupportedVersion, true},
		{"join group v10 above max", header(11, 10, 1, -1, ""), ErrUnsupportedVersion, true},
		{"describe groups v7", header(15, 7, 1, -1, ""), ErrUnsupportedVersion, true},
		{"offset delete v1", header(47, 1, 1, -1, ""), ErrUnsupportedVersion, true},
		{"unknown key 67 between the keys", header(67, 0, 1, -1, ""), ErrUnknownAPI, true},
		{"unknown key 75 below the share APIs", header(75, 0, 1, -1, "", 0), ErrUnknownAPI, true},
		{"unknown key 80 between the share APIs", header(80, 0, 1, -1, "", 0), ErrUnknownAPI, true},
		{"unknown key 93 above Kafka's", header(93, 0, 1, -1, "", 0), ErrUnknownAPI, true},
		{"describe share group offsets v2 above max", header(90, 2, 1, -1, "", 0), ErrUnsupportedVersion, true},
		{"alter share group offsets v1 above max", header(91, 1, 1, -1, "", 0), ErrUnsupportedVersion, true},
		{"delete share group offsets v1 above max", header(92, 1, 1, -1, "", 0), ErrUnsupportedVersion, true},
		{"share group heartbeat v0 early access", header(76, 0, 1, -1, "", 0), ErrUnsupportedVersion, true},
		{"share group heartbeat v2", header(76, 2, 1, -1, "", 0), ErrUnsupportedVersion, true},
		{"share group describe v0 early access", header(77, 0, 1, -1, "", 0), ErrUnsupportedVersion, true},
		{"share fetch v0 early access", header(78, 0, 1, -1, "", 0), ErrUnsupportedVersion, true},
		{"share fetch v3 above max", header(78, 3, 1, -1, "", 0), ErrUnsupportedVersion, true},
		{"share acknowledge v0 early access", header(79, 0, 1, -1, "", 0), ErrUnsupportedVersion, true},
		{"share acknowledge v3 above max", header(79, 3, 1, -1, "", 0), ErrUnsupportedVersion, true},
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
		{"offset fetch v2 null topics", cat(header(9, 2, 1, -1, ""), str("g"), i32(-1))},
		{"offset fetch v8 group with null topics", cat(header(9, 8, 1, -1, "", 0), []byte{2}, cstr("g"), []byte{0, 0, 0, 0})},
		{"join group v2 empty metadata", cat(header(11, 2, 1, -1, ""), joinGroupV2, i32(1), str("range"), i32(0))},
		{"sync group v5 null protocol type and name", cat(header(14, 5, 1, -1, "", 0), syncGroupV5, []byte{2}, cstr("m"), []byte{1, 0, 0})},
		{"leave group v4 null instance id", cat(header(13, 4, 1, -1, "", 0), cstr("g"), []byte{2}, cstr("m"), []byte{0, 0, 0})},
		{"list groups v5 empty filters", cat(header(16, 5, 1, -1, "", 0), []byte{1, 1, 0})},
		{"share group heartbeat v1 null rack id and topic names", cat(header(76, 1, 1, -1, "", 0), shareHeartbeatV1, []byte{0, 0, 0})},
		{"share group describe v1 no groups", cat(header(77, 1, 1, -1, "", 0), []byte{1, 0, 0})},
		{"describe share group offsets v1 null topics (all of them)", cat(header(90, 1, 1, -1, "", 0), []byte{2}, cstr("sg"), []byte{0, 0, 0})},
		{"describe share group offsets v0 no partitions", cat(header(90, 0, 1, -1, "", 0), []byte{2}, cstr("sg"), []byte{2}, cstr("t"), []byte{1, 0, 0, 0})},
		{"alter share group offsets v0 no topics", cat(header(91, 0, 1, -1, "", 0), cstr("sg"), []byte{1, 0})},
		{"delete share group offsets v0 no topics", cat(header(92, 0, 1, -1, "", 0), cstr("sg"), []byte{1, 0})},
		{"share fetch v1 null group and member ids", cat(header(78, 1, 1, -1, "", 0), []byte{0, 0}, make([]byte, 24), []byte{1, 1, 0})},
		{"share fetch v1 ack-only partition also forgotten", cat(header(78, 1, 1, -1, "", 0), shareFetchV1, shareTopicOnePartition,
			[]byte{2}, i64(0), i64(9), []byte{2, 2, 0, 0, 0}, []byte{2}, make([]byte, 16), []byte{2}, i32(0), []byte{0, 0})},
		{"share fetch v1 empty acknowledge types", cat(header(78, 1, 1, -1, "", 0), shareFetchV1, shareTopicOnePartition,
			[]byte{2}, i64(0), i64(0), []byte{1, 0, 0, 0, 1, 0})},
		{"share acknowledge v1 close with per-offset types", cat(header(79, 1, 1, -1, "", 0), cstr("sg"), cstr("m"), i32(-1), shareTopicOnePartition,
			[]byte{2}, i64(0), i64(3), []byte{5, 1, 0, 2, 3, 0, 0, 0, 0})},
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
	req, err = Decode(header(4, 1, 43, -9, ""))
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

// str and cstr encode a classic and a compact (flexible) string.
func str(s string) []byte  { return append(i16(int16(len(s))), s...) }
func cstr(s string) []byte { return append(appendUvarint(nil, uint32(len(s)+1)), s...) }

// Hand-built body prefixes of the consumer-group requests.
var (
	// JoinGroup v2 up to its protocols: group "g", session and rebalance
	// timeouts, empty member id, protocol type "consumer".
	joinGroupV2 = cat(str("g"), i32(30000), i32(60000), str(""), str("consumer"))
	// JoinGroup v6 (flexible), the same plus a null group instance id.
	joinGroupV6 = cat(cstr("g"), i32(30000), i32(60000), cstr(""), []byte{0}, cstr("consumer"))
	// SyncGroup v5 up to its assignments: group "g", generation 1, member
	// "m", null group instance id, null protocol type and name.
	syncGroupV5 = cat(cstr("g"), i32(1), cstr("m"), []byte{0, 0, 0})
	// OffsetCommit v2 up to its topics: group, generation, member,
	// retention time.
	offsetCommitV2 = cat(str("g"), i32(1), str("m"), make([]byte, 8))
	// OffsetCommit v8 (flexible) up to its topics: group, generation,
	// member, null group instance id.
	offsetCommitV8 = cat(cstr("g"), i32(1), cstr("m"), []byte{0})
)

// TestDecodeGroupHostile feeds consumer-group requests built to get past
// kmsg's own checks: counts beyond the bytes present, null where Kafka
// forbids it, invalid lengths, budgets. Each must fail with the walker's
// specific error; kmsgAccepts records whether kmsg alone would have
// decoded the body without error (and is checked, so the case shows what
// the walker adds).
func TestDecodeGroupHostile(t *testing.T) {
	hugeCompact := []byte{0xff, 0xff, 0xff, 0xff, 0x07} // 2^31-1 elements
	tagged := appendUvarint(nil, 30001)                 // JoinGroup v6: 30000 protocols, one unknown tag each
	for i := range 30000 {
		tagged = append(tagged, 1, 1, 1)                            // empty name, empty metadata, one tag
		tagged = append(appendUvarint(tagged, uint32(100+i%50)), 0) // tag, size 0
	}
	for _, tc := range []struct {
		name        string
		frame       []byte
		want        string
		kmsgAccepts bool
	}{
		{"join group v2 protocols 2^30 in a tiny body", cat(header(11, 2, 1, -1, ""), joinGroupV2, i32(1<<30), str("range")),
			"protocols at offset 27: 1073741824 elements of at least 6 bytes need more than the 7 bytes remaining", false},
		{"join group v6 protocols 2^31-1 compact", cat(header(11, 6, 1, -1, "", 0), joinGroupV6, hugeCompact, []byte{0, 0}),
			"protocols at offset 26: 2147483646 elements of at least 3 bytes", false},
		{"join group v2 protocols beyond min size", cat(header(11, 2, 1, -1, ""), joinGroupV2, i32(3), make([]byte, 8)),
			"3 elements of at least 6 bytes need more than the 8 bytes remaining", false},
		{"join group v2 protocols -1", cat(header(11, 2, 1, -1, ""), joinGroupV2, i32(-1)),
			"protocols at offset 27: invalid array count -1", true},
		{"join group v2 metadata null", cat(header(11, 2, 1, -1, ""), joinGroupV2, i32(1), str("range"), i32(-1)),
			"metadata at offset 38: invalid length -1", true},
		{"join group v6 metadata null compact", cat(header(11, 6, 1, -1, "", 0), joinGroupV6, []byte{2}, cstr("range"), []byte{0, 0, 0, 0}),
			"metadata at offset 29: invalid length -1", true},
		{"join group v2 metadata past end", cat(header(11, 2, 1, -1, ""), joinGroupV2, i32(1), str("range"), i32(1000), []byte{1, 2}),
			"metadata at offset 38: length 1000 exceeds the 2 bytes remaining", false},
		{"join group v5 instance id -2", cat(header(11, 5, 1, -1, ""), str("g"), i32(0), i32(0), str(""), i16(-2), str("consumer"), i32(0)),
			"group_instance_id at offset 15: invalid length -2", true},
		{"join group v6 tagged protocols over budget", cat(header(11, 6, 1, -1, "", 0), joinGroupV6, tagged, []byte{0}),
			"would allocate about", true},
		{"sync group v5 assignment null compact", cat(header(14, 5, 1, -1, "", 0), syncGroupV5, []byte{2}, cstr("m"), []byte{0, 0, 0}),
			"assignment at offset 15: invalid length -1", true},
		{"sync group v0 assignments huge", cat(header(14, 0, 1, -1, ""), str("g"), i32(1), str("m"), i32(1<<28), str("m")),
			"assignments at offset 14: 268435456 elements of at least 6 bytes", false},
		{"offset commit v2 partitions beyond the bytes", cat(header(8, 2, 1, -1, ""), offsetCommitV2, i32(1), str("t"), i32(1000), make([]byte, 14)),
			"partitions at offset 29: 1000 elements of at least 14 bytes need more than the 14 bytes remaining", false},
		{"offset commit v2 partitions beyond min size", cat(header(8, 2, 1, -1, ""), offsetCommitV2, i32(1), str("t"), i32(10), make([]byte, 20)),
			"10 elements of at least 14 bytes need more than the 20 bytes remaining", false},
		{"offset commit v8 partitions 2^31-1 compact", cat(header(8, 8, 1, -1, "", 0), offsetCommitV8, []byte{2}, cstr("t"), hugeCompact, []byte{0, 0}),
			"partitions at offset 17: 2147483646 elements of at least 18 bytes", false},
		{"offset commit v2 topics -1", cat(header(8, 2, 1, -1, ""), offsetCommitV2, i32(-1)),
			"topics at offset 22: invalid array count -1", true},
		{"offset commit v9 topics null compact", cat(header(8, 9, 1, -1, "", 0), offsetCommitV8, []byte{0, 0}),
			"topics at offset 10: invalid array count -1", true},
		{"offset commit v2 metadata -2", cat(header(8, 2, 1, -1, ""), offsetCommitV2, i32(1), str("t"), i32(1), i32(0), make([]byte, 8), i16(-2)),
			"committed_metadata at offset 43: invalid length -2", true},
		{"offset fetch v1 null topics", cat(header(9, 1, 1, -1, ""), str("g"), i32(-1)),
			"topics at offset 7: invalid array count -1", true},
		{"offset fetch v8 groups null", cat(header(9, 8, 1, -1, "", 0), []byte{0, 0, 0}),
			"groups at offset 1: invalid array count -1", true},
		{"offset fetch v9 group topics beyond the bytes", cat(header(9, 9, 1, -1, "", 0), []byte{2}, cstr("g"), []byte{0}, i32(-1), []byte{9}, make([]byte, 20)),
			"topics at offset 9: 8 elements of at least 3 bytes need more than the 20 bytes remaining", false},
		{"offset fetch v6 partition indexes beyond the bytes", cat(header(9, 6, 1, -1, "", 0), cstr("g"), []byte{2}, cstr("t"), []byte{10}, make([]byte, 20)),
			"partition_indexes at offset 6: 9 elements of at least 4 bytes need more than the 20 bytes remaining", false},
		{"leave group v3 members -1", cat(header(13, 3, 1, -1, ""), str("g"), i32(-1)),
			"members at offset 7: invalid array count -1", true},
		{"heartbeat v3 instance id -2", cat(header(12, 3, 1, -1, ""), str("g"), i32(1), str("m"), i16(-2)),
			"group_instance_id at offset 12: invalid length -2", true},
		{"describe groups v0 groups -1", cat(header(15, 0, 1, -1, ""), i32(-1)),
			"groups at offset 4: invalid array count -1", true},
		{"describe groups v3 trailing byte", cat(header(15, 3, 1, -1, ""), i32(0), []byte{1, 0}),
			"1 trailing bytes after the request", true},
		{"list groups v4 states filter null", cat(header(16, 4, 1, -1, "", 0), []byte{0, 0}),
			"states_filter at offset 1: invalid array count -1", true},
		{"list groups v5 types filter 2^31-1", cat(header(16, 5, 1, -1, "", 0), []byte{1}, hugeCompact, []byte{0}),
			"types_filter at offset 6: 2147483646 elements of at least 1 bytes", false},
		{"delete groups v0 names beyond min size", cat(header(42, 0, 1, -1, ""), i32(5), make([]byte, 8)),
			"5 elements of at least 2 bytes need more than the 8 bytes remaining", false},
		{"offset delete v0 partitions huge", cat(header(47, 0, 1, -1, ""), str("g"), i32(1), str("t"), i32(1<<29), make([]byte, 8)),
			"partitions at offset 14: 536870912 elements of at least 4 bytes", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := Decode(tc.frame)
			if !errors.Is(err, ErrMalformedRequest) || !wrapsOneSentinel(err) {
				t.Fatalf("err = %v, want ErrMalformedRequest", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, tc.want)
			}
			if req == nil || req.Msg != nil || req.Header.Key != int16(binary.BigEndian.Uint16(tc.frame)) {
				t.Fatalf("request %+v", req)
			}
			body := bodyOf(t, tc.frame, req.Header)
			direct := NewRequest(req.Header.Key)
			direct.SetVersion(req.Header.Version)
			if kerr := direct.ReadFrom(body); (kerr == nil) != tc.kmsgAccepts {
				t.Errorf("kmsg alone: %v, want accepted %v", kerr, tc.kmsgAccepts)
			}
		})
	}
}

// TestWalkTopicIDVersions checks the v10 layouts of OffsetCommit and
// OffsetFetch, which the schemas describe although Supported stops at v9:
// a topic is then a 16-byte id, which sets the minimum element size.
func TestWalkTopicIDVersions(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    *apiSchema
		body []byte
		want string
	}{
		{"offset fetch v10 two topic ids in 20 bytes", offsetFetchRequest,
			cat([]byte{2}, cstr("g"), []byte{0}, i32(-1), []byte{3}, make([]byte, 20)),
			"topics at offset 9: 2 elements of at least 18 bytes need more than the 20 bytes remaining"},
		{"offset commit v10 two topic ids in 20 bytes", offsetCommitRequest,
			cat(offsetCommitV8, []byte{3}, make([]byte, 20)),
			"topics at offset 10: 2 elements of at least 18 bytes need more than the 20 bytes remaining"},
	} {
		if _, err := walkBody(tc.s, 10, tc.body); !errors.Is(err, ErrMalformedRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	ok := cat([]byte{2}, cstr("g"), []byte{0}, i32(-1), []byte{2}, make([]byte, 16), []byte{1, 0, 0, 0, 0})
	if _, err := walkBody(offsetFetchRequest, 10, ok); err != nil {
		t.Errorf("offset fetch v10 with one topic id: %v", err)
	}
}

// Hand-built body prefixes of the share-group requests (all flexible).
var (
	// ShareFetch v1 up to its topics (29 bytes): group "sg", member "m",
	// session epoch 1, max wait 500 ms, min bytes 1, max bytes 1 MiB, max
	// records 500, batch size 500.
	shareFetchV1 = cat(cstr("sg"), cstr("m"), i32(1), i32(500), i32(1), i32(1<<20), i32(500), i32(500))
	// ShareAcknowledge v1 up to its topics (9 bytes): group "sg", member
	// "m", session epoch 1.
	shareAckV1 = cat(cstr("sg"), cstr("m"), i32(1))
	// ShareGroupHeartbeat v1 up to its rack id (9 bytes): group "sg",
	// member "m", member epoch 0.
	shareHeartbeatV1 = cat(cstr("sg"), cstr("m"), i32(0))
	// One topic id (16 bytes) opening a ShareFetch or ShareAcknowledge
	// topic, followed by one partition 0 (so the next byte is the
	// acknowledgement batch count).
	shareTopicOnePartition = cat([]byte{2}, make([]byte, 16), []byte{2}, i32(0))
)

// sharePartitionsTagged returns n ShareFetch v1 partitions with no
// acknowledgement batches and one unknown tagged field each, 8 bytes on the
// wire for 40 bytes of Go struct and a map (about 53x).
func sharePartitionsTagged(n int) []byte {
	b := appendUvarint(nil, uint32(n+1))
	for i := range n {
		b = append(append(b, i32(int32(i))...), 1, 1, 20, 0)
	}
	return b
}

// TestDecodeShareHostile feeds share-group requests (KIP-932) built to get
// past kmsg's own checks, as TestDecodeGroupHostile does for the classic
// group APIs: acknowledgement batch and type counts beyond the bytes
// present, null (compact count 0) for arrays Kafka never allows to be
// null, lengths past the end, budgets. Each must fail with the walker's
// specific error; kmsgAccepts records whether kmsg alone would have
// decoded the body without error.
func TestDecodeShareHostile(t *testing.T) {
	hugeCompact := []byte{0xff, 0xff, 0xff, 0xff, 0x07} // 2^31-1 elements
	fetch := func(parts ...[]byte) []byte { return cat(header(78, 1, 1, -1, "", 0), shareFetchV1, cat(parts...)) }
	ack := func(parts ...[]byte) []byte { return cat(header(79, 1, 1, -1, "", 0), shareAckV1, cat(parts...)) }
	batch := func(types ...byte) []byte { return cat(i64(100), i64(109), types) }
	for _, tc := range []struct {
		name        string
		frame       []byte
		want        string
		kmsgAccepts bool
	}{
		// ShareFetch v1.
		{"share fetch v1 acknowledgement batches 2^31-1 in a tiny body", fetch(shareTopicOnePartition, hugeCompact, []byte{0, 0, 0, 0}),
			"acknowledgement_batches at offset 56: 2147483646 elements of at least 18 bytes need more than the 4 bytes remaining", false},
		{"share fetch v1 acknowledgement batches beyond min size", fetch(shareTopicOnePartition, []byte{4}, make([]byte, 40)),
			"acknowledgement_batches at offset 52: 3 elements of at least 18 bytes need more than the 40 bytes remaining", false},
		{"share fetch v1 acknowledge types past the end", fetch(shareTopicOnePartition, []byte{2}, batch(101), []byte{1, 2, 3}),
			"acknowledge_types at offset 69: 100 elements of at least 1 bytes need more than the 3 bytes remaining", false},
		{"share fetch v1 acknowledge types 2^31-1", fetch(shareTopicOnePartition, []byte{2}, batch(hugeCompact...), []byte{1, 0, 0, 0, 0}),
			"acknowledge_types at offset 73: 2147483646 elements of at least 1 bytes", false},
		{"share fetch v1 acknowledge types null", fetch(shareTopicOnePartition, []byte{2}, batch(0), []byte{0, 0, 0, 1, 0}),
			"acknowledge_types at offset 69: invalid array count -1", true},
		{"share fetch v1 acknowledgement batches null", fetch(shareTopicOnePartition, []byte{0, 0, 0, 1, 0}),
			"acknowledgement_batches at offset 52: invalid array count -1", true},
		{"share fetch v1 partitions null", fetch([]byte{2}, make([]byte, 16), []byte{0, 0, 1, 0}),
			"partitions at offset 47: invalid array count -1", true},
		{"share fetch v1 topics null", fetch([]byte{0, 1, 0}),
			"topics at offset 30: invalid array count -1", true},
		{"share fetch v1 topics 2^31-1", fetch(hugeCompact, make([]byte, 8)),
			"topics at offset 34: 2147483646 elements of at least 18 bytes", false},
		{"share fetch v1 partitions beyond the bytes", fetch([]byte{2}, make([]byte, 16), []byte{100}, make([]byte, 60)),
			"partitions at offset 47: 99 elements of at least 6 bytes need more than the 60 bytes remaining", false},
		{"share fetch v1 forgotten topics null", fetch([]byte{1, 0, 0}),
			"forgotten_topics_data at offset 31: invalid array count -1", true},
		{"share fetch v1 forgotten partitions null", fetch([]byte{1, 2}, make([]byte, 16), []byte{0, 0, 0}),
			"partitions at offset 48: invalid array count -1", true},
		{"share fetch v1 forgotten partitions beyond the bytes", fetch([]byte{1, 2}, make([]byte, 16), []byte{10}, make([]byte, 20)),
			"partitions at offset 48: 9 elements of at least 4 bytes need more than the 20 bytes remaining", false},
		{"share fetch v1 member id past the end", cat(header(78, 1, 1, -1, "", 0), cstr("sg"), []byte{101}, []byte("m")),
			"member_id at offset 4: length 100 exceeds the 1 bytes remaining", false},
		// (Not 2^32-1 tags: kmsg alone would spin on that for minutes.)
		{"share fetch v1 batch tags beyond the bytes", fetch(shareTopicOnePartition, []byte{2}, batch(2, 1), []byte{0x80, 0x08}, []byte{0, 0, 1, 0}),
			"tagged fields at offset 72: 1024 tagged fields need more than the 4 bytes remaining", false},
		{"share fetch v1 trailing byte", fetch([]byte{1, 1, 0, 7}),
			"1 trailing bytes after the request", true},
		{"share fetch v1 tagged partitions over budget", fetch([]byte{2}, make([]byte, 16), sharePartitionsTagged(30000), []byte{0, 1, 0}),
			"would allocate about", true},
		// ShareAcknowledge v1.
		{"share acknowledge v1 acknowledgement batches 2^31-1 in a tiny body", ack(shareTopicOnePartition, hugeCompact, []byte{0, 0, 0}),
			"acknowledgement_batches at offset 36: 2147483646 elements of at least 18 bytes need more than the 3 bytes remaining", false},
		{"share acknowledge v1 acknowledge types past the end", ack(shareTopicOnePartition, []byte{2}, batch(0x80, 0x01), []byte{1, 2}),
			"acknowledge_types at offset 50: 127 elements of at least 1 bytes need more than the 2 bytes remaining", false},
		{"share acknowledge v1 acknowledge types null", ack(shareTopicOnePartition, []byte{2}, batch(0), []byte{0, 0, 0, 0}),
			"acknowledge_types at offset 49: invalid array count -1", true},
		{"share acknowledge v1 topics null", ack([]byte{0, 0}),
			"topics at offset 10: invalid array count -1", true},
		{"share acknowledge v1 partitions null", ack([]byte{2}, make([]byte, 16), []byte{0, 0, 0}),
			"partitions at offset 27: invalid array count -1", true},
		// ShareGroupHeartbeat v1.
		{"share group heartbeat v1 group id null", cat(header(76, 1, 1, -1, "", 0), []byte{0}, cstr("m"), i32(0), []byte{0, 0, 0}),
			"group_id at offset 1: invalid length -1", false},
		{"share group heartbeat v1 member id null", cat(header(76, 1, 1, -1, "", 0), cstr("sg"), []byte{0}, i32(0), []byte{0, 0, 0}),
			"member_id at offset 4: invalid length -1", false},
		{"share group heartbeat v1 rack id past the end", cat(header(76, 1, 1, -1, "", 0), shareHeartbeatV1, []byte{50}, []byte{0, 0}),
			"rack_id at offset 10: length 49 exceeds the 2 bytes remaining", false},
		{"share group heartbeat v1 topic names 2^31-1", cat(header(76, 1, 1, -1, "", 0), shareHeartbeatV1, []byte{0}, hugeCompact, []byte{0}),
			"subscribed_topic_names at offset 15: 2147483646 elements of at least 1 bytes", false},
		{"share group heartbeat v1 topic name null", cat(header(76, 1, 1, -1, "", 0), shareHeartbeatV1, []byte{0, 3}, cstr("t"), []byte{0, 0}),
			"subscribed_topic_names at offset 14: invalid length -1", false},
		// ShareGroupDescribe v1.
		{"share group describe v1 group ids null", cat(header(77, 1, 1, -1, "", 0), []byte{0, 1, 0}),
			"group_ids at offset 1: invalid array count -1", true},
		{"share group describe v1 group ids beyond the bytes", cat(header(77, 1, 1, -1, "", 0), []byte{9}, cstr("g"), []byte{1, 0}),
			"group_ids at offset 1: 8 elements of at least 1 bytes need more than the 4 bytes remaining", false},
		{"share group describe v1 missing the operations flag", cat(header(77, 1, 1, -1, "", 0), []byte{2}, cstr("g")),
			"include_authorized_operations at offset 3: need 1 bytes, 0 remain", false},
		// The share-group offset APIs.
		{"describe share group offsets v1 groups null", cat(header(90, 1, 1, -1, "", 0), []byte{0, 0}),
			"groups at offset 1: invalid array count -1", true},
		{"describe share group offsets v1 partitions null", cat(header(90, 1, 1, -1, "", 0), []byte{2}, cstr("g"), []byte{2}, cstr("t"), []byte{0, 0, 0, 0}),
			"partitions at offset 7: invalid array count -1", true},
		{"describe share group offsets v0 partitions beyond the bytes", cat(header(90, 0, 1, -1, "", 0), []byte{2}, cstr("g"), []byte{2}, cstr("t"), []byte{50}, make([]byte, 12)),
			"partitions at offset 7: 49 elements of at least 4 bytes need more than the 12 bytes remaining", false},
		{"alter share group offsets v0 topics null", cat(header(91, 0, 1, -1, "", 0), cstr("sg"), []byte{0, 0}),
			"topics at offset 4: invalid array count -1", true},
		{"alter share group offsets v0 partitions beyond the bytes", cat(header(91, 0, 1, -1, "", 0), cstr("sg"), []byte{2}, cstr("t"), []byte{100}, make([]byte, 20)),
			"partitions at offset 7: 99 elements of at least 13 bytes need more than the 20 bytes remaining", false},
		{"alter share group offsets v0 group id null", cat(header(91, 0, 1, -1, "", 0), []byte{0}, []byte{1, 0}),
			"group_id at offset 1: invalid length -1", false},
		{"delete share group offsets v0 topics null", cat(header(92, 0, 1, -1, "", 0), cstr("sg"), []byte{0, 0}),
			"topics at offset 4: invalid array count -1", true},
		{"delete share group offsets v0 topics 2^31-1", cat(header(92, 0, 1, -1, "", 0), cstr("sg"), hugeCompact, make([]byte, 8)),
			"topics at offset 8: 2147483646 elements of at least 2 bytes", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := Decode(tc.frame)
			if !errors.Is(err, ErrMalformedRequest) || !wrapsOneSentinel(err) {
				t.Fatalf("err = %v, want ErrMalformedRequest", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, tc.want)
			}
			if req == nil || req.Msg != nil || req.Header.Key != int16(binary.BigEndian.Uint16(tc.frame)) {
				t.Fatalf("request %+v", req)
			}
			body := bodyOf(t, tc.frame, req.Header)
			direct := NewRequest(req.Header.Key)
			direct.SetVersion(req.Header.Version)
			if kerr := direct.ReadFrom(body); (kerr == nil) != tc.kmsgAccepts {
				t.Errorf("kmsg alone: %v, want accepted %v", kerr, tc.kmsgAccepts)
			}
		})
	}
}
