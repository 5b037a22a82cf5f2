package broker

// SluiceShareNote (protocol/sluiceapi): a share-group member's last error
// for records it holds, kept by the share-partition until the record is
// done and written to its dead letter as sluice.dlq.error.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/group"
	"github.com/sluicemq/sluice/protocol/sluiceapi"
)

func (b *Broker) shareNote(r *sluiceapi.ShareNoteRequest) kmsg.Response {
	resp := r.ResponseKind().(*sluiceapi.ShareNoteResponse)
	if r.GroupID == "" || len(r.GroupID) > group.MaxGroupIDLen || r.MemberID != nil && (*r.MemberID == "" || len(*r.MemberID) > 36) {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	for _, rt := range r.Topics {
		t := b.reg.getByID(rt.TopicID)
		ot := sluiceapi.ShareNoteResponseTopic{TopicID: rt.TopicID}
		for _, rp := range rt.Partitions {
			ot.Partitions = append(ot.Partitions, sluiceapi.ShareNoteResponsePartition{
				Partition: rp.Partition,
				ErrorCode: b.shareNotePartition(t, r.GroupID, r.MemberID, rp.Partition, rp.Notes),
			})
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return resp
}

// shareNotePartition keeps one partition's notes and returns its error
// code. A malformed note refuses them all; a note on a record the member
// does not hold is refused alone.
func (b *Broker) shareNotePartition(t *topic, groupID string, member *string, p int32, notes []sluiceapi.ShareNote) int16 {
	for _, n := range notes {
		if n.Offset < 0 || len(n.Text) > sluiceapi.MaxNoteText {
			return kerr.InvalidRequest.Code
		}
	}
	switch {
	case t == nil:
		return kerr.UnknownTopicID.Code
	case !t.has(p):
		return kerr.UnknownTopicOrPartition.Code
	}
	h, err := b.share.entry(groupID, t, p, false)
	switch {
	case err != nil:
		return code(err)
	case h == nil:
		return kerr.InvalidRecordState.Code // no share-partition here: nothing is acquired
	}
	return ackCode(h.note(member, notes))
}
