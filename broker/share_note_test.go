package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/protocol/sluiceapi"
)

// noteClient is a raw client for share sessions and SluiceShareNote:
// franz-go sends only the keys in its MaxVersions.
type noteClient struct {
	t     *testing.T
	cl    *kgo.Client
	group string
	topic [16]byte
}

func (n *noteClient) fetch(member string, epoch int32, acks map[int64]kgo.AckStatus) *kmsg.ShareFetchResponseTopicPartition {
	n.t.Helper()
	r := kmsg.NewPtrShareFetchRequest()
	r.GroupID, r.MemberID, r.ShareSessionEpoch = &n.group, &member, epoch
	r.MaxWaitMillis, r.MinBytes, r.MaxBytes, r.MaxRecords, r.BatchSize = 2000, 1, 1<<20, 10, 10
	rt := kmsg.NewShareFetchRequestTopic()
	rt.TopicID = n.topic
	rp := kmsg.NewShareFetchRequestTopicPartition()
	for off, st := range acks {
		ab := kmsg.NewShareFetchRequestTopicPartitionAcknowledgementBatch()
		ab.FirstOffset, ab.LastOffset, ab.AcknowledgeTypes = off, off, []int8{int8(st)}
		rp.AcknowledgementBatches = append(rp.AcknowledgementBatches, ab)
	}
	sortAcks(rp.AcknowledgementBatches)
	rt.Partitions = append(rt.Partitions, rp)
	r.Topics = append(r.Topics, rt)
	resp, err := r.RequestWith(ctx(n.t), n.cl.Broker(1))
	if err != nil || resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		n.t.Fatalf("share fetch: %v %+v", err, resp)
	}
	p := &resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || p.AcknowledgeErrorCode != 0 {
		n.t.Fatalf("share fetch partition: %+v", p)
	}
	return p
}

func sortAcks(bs []kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch) {
	for i := 1; i < len(bs); i++ {
		for j := i; j > 0 && bs[j].FirstOffset < bs[j-1].FirstOffset; j-- {
			bs[j], bs[j-1] = bs[j-1], bs[j]
		}
	}
}

// note sends notes for partition p of topic and returns the top-level and
// partition error codes.
func (n *noteClient) note(group string, member *string, topic [16]byte, p int32, notes ...sluiceapi.ShareNote) (int16, int16) {
	n.t.Helper()
	r := &sluiceapi.ShareNoteRequest{GroupID: group, MemberID: member, Topics: []sluiceapi.ShareNoteRequestTopic{{
		TopicID: topic, Partitions: []sluiceapi.ShareNoteRequestPartition{{Partition: p, Notes: notes}},
	}}}
	resp, err := r.RequestWith(ctx(n.t), n.cl.Broker(1))
	if err != nil {
		n.t.Fatalf("share note: %v", err)
	}
	if resp.ErrorCode != 0 {
		return resp.ErrorCode, 0
	}
	if len(resp.Topics) != 1 || resp.Topics[0].TopicID != topic || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].Partition != p {
		n.t.Fatalf("share note response %+v", resp)
	}
	return 0, resp.Topics[0].Partitions[0].ErrorCode
}

// TestShareNoteDeadLetterError: a member's notes reach the dead letters
// as sluice.dlq.error: the latest note of a rejected record, and the
// note of the last delivery of a record released until the delivery
// limit. Notes are refused for records the member does not hold, at
// another delivery, past the window, in an unknown topic or partition,
// over the size limit or without a group; notes of records acknowledged
// or dead-lettered are dropped.
func TestShareNoteDeadLetterError(t *testing.T) {
	b := startBroker(t, t.TempDir())
	cl := newClient(t, b, kgo.MaxVersions(sluiceapi.AddVersions(nil)))
	createTopic(t, b, "orders", 1, nil)
	setGroupConfigs(t, cl, "billing", map[string]string{
		"share.auto.offset.reset":    "earliest",
		"share.delivery.count.limit": "2",
		"share.dead.letter.topic":    "orders.dlq",
	})
	if err := cl.ProduceSync(ctx(t),
		&kgo.Record{Topic: "orders", Value: []byte("bad card")},
		&kgo.Record{Topic: "orders", Value: []byte("gateway down")},
		&kgo.Record{Topic: "orders", Value: []byte("fine")},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	n := &noteClient{t: t, cl: cl, group: "billing", topic: b.reg.get("orders").id}
	str := func(s string) *string { return &s }

	p := n.fetch("m-1", 0, nil)
	if len(p.AcquiredRecords) != 1 || p.AcquiredRecords[0].FirstOffset != 0 || p.AcquiredRecords[0].LastOffset != 2 || p.AcquiredRecords[0].DeliveryCount != 1 {
		t.Fatalf("acquired %+v", p.AcquiredRecords)
	}

	// Refused.
	for _, tc := range []struct {
		name         string
		group        string
		member       *string
		topic        [16]byte
		p            int32
		note         sluiceapi.ShareNote
		top, partErr int16
	}{
		{"another member's record", "billing", str("m-2"), n.topic, 0, sluiceapi.ShareNote{Offset: 0, DeliveryCount: 1, Text: "x"}, 0, kerr.InvalidRecordState.Code},
		{"another delivery", "billing", str("m-1"), n.topic, 0, sluiceapi.ShareNote{Offset: 0, DeliveryCount: 2, Text: "x"}, 0, kerr.InvalidRecordState.Code},
		{"past the window", "billing", nil, n.topic, 0, sluiceapi.ShareNote{Offset: 99, DeliveryCount: 1, Text: "x"}, 0, kerr.InvalidRecordState.Code},
		{"a group with no share-partition here", "nobody", nil, n.topic, 0, sluiceapi.ShareNote{Offset: 0, DeliveryCount: 1, Text: "x"}, 0, kerr.InvalidRecordState.Code},
		{"text over the limit", "billing", str("m-1"), n.topic, 0, sluiceapi.ShareNote{Offset: 0, DeliveryCount: 1, Text: strings.Repeat("x", sluiceapi.MaxNoteText+1)}, 0, kerr.InvalidRequest.Code},
		{"a negative offset", "billing", str("m-1"), n.topic, 0, sluiceapi.ShareNote{Offset: -1, DeliveryCount: 1, Text: "x"}, 0, kerr.InvalidRequest.Code},
		{"an unknown topic id", "billing", str("m-1"), [16]byte{7}, 0, sluiceapi.ShareNote{Offset: 0, DeliveryCount: 1, Text: "x"}, 0, kerr.UnknownTopicID.Code},
		{"an unknown partition", "billing", str("m-1"), n.topic, 5, sluiceapi.ShareNote{Offset: 0, DeliveryCount: 1, Text: "x"}, 0, kerr.UnknownTopicOrPartition.Code},
		{"no group", "", str("m-1"), n.topic, 0, sluiceapi.ShareNote{Offset: 0, DeliveryCount: 1, Text: "x"}, kerr.InvalidRequest.Code, 0},
		{"an empty member id", "billing", str(""), n.topic, 0, sluiceapi.ShareNote{Offset: 0, DeliveryCount: 1, Text: "x"}, kerr.InvalidRequest.Code, 0},
	} {
		if top, pe := n.note(tc.group, tc.member, tc.topic, tc.p, tc.note); top != tc.top || pe != tc.partErr {
			t.Errorf("%s: codes %d/%d, want %d/%d", tc.name, top, pe, tc.top, tc.partErr)
		}
	}

	// Kept: the latest note per record wins; a null member id names
	// whoever holds the record; one refused note does not drop the others.
	for _, ns := range [][]sluiceapi.ShareNote{
		{{Offset: 0, DeliveryCount: 1, Text: "first try"}},
		{{Offset: 0, DeliveryCount: 1, Text: "card declined: insufficient funds"}, {Offset: 2, DeliveryCount: 1, Text: "never mind"}},
	} {
		if top, pe := n.note("billing", str("m-1"), n.topic, 0, ns...); top != 0 || pe != 0 {
			t.Fatalf("note %+v: codes %d/%d", ns, top, pe)
		}
	}
	if top, pe := n.note("billing", nil, n.topic, 0, sluiceapi.ShareNote{Offset: 1, DeliveryCount: 1, Text: "gateway timeout"},
		sluiceapi.ShareNote{Offset: 7, DeliveryCount: 1, Text: "refused"}); top != 0 || pe != kerr.InvalidRecordState.Code {
		t.Fatalf("mixed notes: codes %d/%d, want INVALID_RECORD_STATE for the one refused", top, pe)
	}
	h, err := b.share.entry("billing", b.reg.get("orders"), 0, false)
	if err != nil || h == nil {
		t.Fatalf("share-partition: %v", err)
	}
	notes := func() map[int64]string {
		h.mu.Lock()
		defer h.mu.Unlock()
		out := map[int64]string{}
		for k, v := range h.notes {
			out[k] = v
		}
		return out
	}
	if got := notes(); len(got) != 3 || got[0] != "card declined: insufficient funds" || got[1] != "gateway timeout" || got[2] != "never mind" {
		t.Fatalf("notes %v", got)
	}

	// REJECT 0, RELEASE 1 (delivery 1 of 2), ACCEPT 2: the accepted
	// record's note goes.
	p = n.fetch("m-1", 1, map[int64]kgo.AckStatus{0: kgo.AckReject, 1: kgo.AckRelease, 2: kgo.AckAccept})
	if got := notes(); got[2] != "" {
		t.Errorf("the accepted record's note was kept: %v", got)
	}
	if len(p.AcquiredRecords) == 0 {
		p = n.fetch("m-1", 2, nil)
	}
	if len(p.AcquiredRecords) != 1 || p.AcquiredRecords[0].FirstOffset != 1 || p.AcquiredRecords[0].LastOffset != 1 || p.AcquiredRecords[0].DeliveryCount != 2 {
		t.Fatalf("redelivery %+v", p.AcquiredRecords)
	}
	if top, pe := n.note("billing", nil, n.topic, 0, sluiceapi.ShareNote{Offset: 1, DeliveryCount: 2, Text: "gateway timeout again"}); top != 0 || pe != 0 {
		t.Fatalf("note on the redelivery: codes %d/%d", top, pe)
	}
	// The last RELEASE reaches the delivery limit: dead letter.
	ack := kmsg.NewPtrShareAcknowledgeRequest()
	ack.GroupID, ack.MemberID, ack.ShareSessionEpoch = &n.group, str("m-1"), -1
	at := kmsg.NewShareAcknowledgeRequestTopic()
	at.TopicID = n.topic
	ap := kmsg.NewShareAcknowledgeRequestTopicPartition()
	ab := kmsg.NewShareAcknowledgeRequestTopicPartitionAcknowledgementBatch()
	ab.FirstOffset, ab.LastOffset, ab.AcknowledgeTypes = 1, 1, []int8{int8(kgo.AckRelease)}
	ap.AcknowledgementBatches = append(ap.AcknowledgementBatches, ab)
	at.Partitions = append(at.Partitions, ap)
	ack.Topics = append(ack.Topics, at)
	if resp, err := ack.RequestWith(ctx(t), cl.Broker(1)); err != nil || resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("acknowledge: %v %+v", err, resp)
	}

	dead := map[string]map[string]string{}
	for _, r := range consume(t, b, "orders.dlq", 2, nil) {
		hs := map[string]string{}
		for _, rh := range r.Headers {
			hs[rh.Key] = string(rh.Value)
		}
		dead[string(r.Value)] = hs
	}
	if hs := dead["bad card"]; hs["sluice.dlq.reason"] != "rejected" || hs["sluice.dlq.error"] != "card declined: insufficient funds" || hs["sluice.dlq.offset"] != "0" {
		t.Errorf("rejected dead letter: %v", hs)
	}
	if hs := dead["gateway down"]; hs["sluice.dlq.reason"] != "delivery limit" || hs["sluice.dlq.error"] != "gateway timeout again" || hs["sluice.dlq.delivery.count"] != "2" {
		t.Errorf("delivery-limit dead letter: %v", hs)
	}
	waitFor(t, 10*time.Second, "the dead letters' notes dropped", func() bool { return len(notes()) == 0 })
}

// TestShareNoteWithoutNote: a dead letter whose member sent no note has
// no sluice.dlq.error header.
func TestShareNoteWithoutNote(t *testing.T) {
	b := startBroker(t, t.TempDir())
	cl := newClient(t, b)
	createTopic(t, b, "jobs", 1, nil)
	setGroupConfigs(t, cl, "runners", map[string]string{"share.auto.offset.reset": "earliest", "share.dead.letter.topic": "jobs.dlq"})
	if err := cl.ProduceSync(ctx(t), &kgo.Record{Topic: "jobs", Value: []byte("job")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	n := &noteClient{t: t, cl: cl, group: "runners", topic: b.reg.get("jobs").id}
	if p := n.fetch("m-1", 0, nil); len(p.AcquiredRecords) != 1 {
		t.Fatalf("acquired %+v", p.AcquiredRecords)
	}
	n.fetch("m-1", 1, map[int64]kgo.AckStatus{0: kgo.AckReject})
	r := consume(t, b, "jobs.dlq", 1, nil)[0]
	for _, rh := range r.Headers {
		if rh.Key == "sluice.dlq.error" {
			t.Fatalf("sluice.dlq.error %q without a note", rh.Value)
		}
	}
}
