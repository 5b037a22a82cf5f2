package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestShareSessionReplacedReleasesOnlyItsRecords: a member that opens a
// new share session (epoch 0, as franz-go does after an error or a
// coordinator change) gets back what its old session held, and the
// release of the old session's records, which goes by member, does not
// release what the new session acquired: the new session's ACCEPT
// succeeds. (The release ran in the background and raced the new
// session's acquisition: its records were released under it, its ACCEPT
// failed with INVALID_RECORD_STATE or, had it fetched them again first,
// applied to their next delivery.)
func TestShareSessionReplacedReleasesOnlyItsRecords(t *testing.T) {
	b := startBroker(t, t.TempDir())
	cl := newClient(t, b, kgo.DefaultProduceTopic("q"), kgo.ProducerLinger(0))
	createTopic(t, b, "q", 1, nil)
	setGroupConfigs(t, cl, "g", map[string]string{"share.auto.offset.reset": "earliest", "share.delivery.count.limit": "100"})
	var recs []*kgo.Record
	for range 100 {
		recs = append(recs, &kgo.Record{Value: []byte("x")})
	}
	if err := cl.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	tid := b.reg.get("q").id
	fetch := func(member string) []kmsg.ShareFetchResponseTopicPartitionAcquiredRecord {
		t.Helper()
		req := kmsg.NewPtrShareFetchRequest()
		req.GroupID, req.MemberID = kmsg.StringPtr("g"), kmsg.StringPtr(member)
		req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.MaxRecords, req.BatchSize = 100, 1, 1<<20, 5, 5
		rt := kmsg.NewShareFetchRequestTopic()
		rt.TopicID = tid
		rt.Partitions = append(rt.Partitions, kmsg.NewShareFetchRequestTopicPartition())
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx(t), cl)
		if err != nil || resp.ErrorCode != 0 || len(resp.Topics) != 1 {
			t.Fatalf("share fetch: %v %+v", err, resp)
		}
		return resp.Topics[0].Partitions[0].AcquiredRecords
	}
	accept := func(member string, first, last int64) error {
		t.Helper()
		req := kmsg.NewPtrShareAcknowledgeRequest()
		req.GroupID, req.MemberID, req.ShareSessionEpoch = kmsg.StringPtr("g"), kmsg.StringPtr(member), 1
		rt := kmsg.NewShareAcknowledgeRequestTopic()
		rt.TopicID = tid
		rp := kmsg.NewShareAcknowledgeRequestTopicPartition()
		ab := kmsg.NewShareAcknowledgeRequestTopicPartitionAcknowledgementBatch()
		ab.FirstOffset, ab.LastOffset, ab.AcknowledgeTypes = first, last, []int8{int8(kgo.AckAccept)}
		rp.AcknowledgementBatches = append(rp.AcknowledgementBatches, ab)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
	}
	for round := range 10 {
		member := "m" + string(rune('a'+round))
		first := fetch(member)  // session 1
		second := fetch(member) // session 2 replaces it
		if len(first) == 0 || len(second) == 0 {
			t.Fatalf("round %d: sessions acquired %v and %v", round, first, second)
		}
		if second[0].FirstOffset != first[0].FirstOffset || second[0].DeliveryCount != first[0].DeliveryCount+1 {
			t.Errorf("round %d: the new session got %+v, not the old one's %+v again", round, second, first)
		}
		if err := accept(member, second[0].FirstOffset, second[len(second)-1].LastOffset); err != nil {
			t.Fatalf("round %d: the new session's ACCEPT of %+v (the old one held %+v): %v", round, second, first, err)
		}
	}
}
