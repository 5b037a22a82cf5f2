package broker

// Share-group offset administration (KIP-932): DescribeShareGroupOffsets,
// AlterShareGroupOffsets and DeleteShareGroupOffsets.
//
// Clients send them to the group's coordinator, but a share group's state
// lives with each partition: the leader's working copy, committed through
// the partition's raft group (share.go). So the coordinator checks the
// membership (Alter and Delete need an empty group) and asks each
// partition's leader over the internal RPC methodShareOffsets, one call
// per leader. Describe answers from the committed state on the leader.
// Alter and Delete replace that state through raft (CmdShareReset) and
// drop the leader's working copy, so the change survives a leader change
// and nothing in flight writes over it.
//
// A member may join between the coordinator's check and a partition's
// reset. That is harmless: it fetches from the new state, and its
// acknowledgements of records it got before are refused
// (INVALID_RECORD_STATE), their state being gone.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/controller"
	"github.com/sluicemq/sluice/partition/share"
)

// methodShareOffsets is the internal RPC a coordinator sends partition
// leaders (on the internal listener).
const methodShareOffsets = "share.offsets"

// Actions of a shareOffsetsRequest.
const (
	shareDescribe = "describe"
	shareAlter    = "alter"
	shareDelete   = "delete"
)

// shareOffsetsRequest asks a broker about share-partitions it leads.
type shareOffsetsRequest struct {
	Group  string            `json:"group"`
	Action string            `json:"action"`
	Parts  []shareOffsetPart `json:"parts"`
}

// shareOffsetPart is one share-partition in a shareOffsetsRequest and,
// filled in, in its answer.
type shareOffsetPart struct {
	Ref       int                `json:"ref"` // the caller's index, echoed
	TopicID   controller.TopicID `json:"topic_id"`
	Partition int32              `json:"partition"`
	// Offset: alter asks for this start; the answer is the start offset
	// (alter: as set, after clamping), -1 where the group has no state.
	Offset int64 `json:"offset"`
	Lag    int64 `json:"lag"`   // describe; -1 unknown
	Epoch  int32 `json:"epoch"` // describe: the leader epoch; -1 unknown
	Found  bool  `json:"found"` // describe, delete: the group had state here
	Code   int16 `json:"code"`
}

// register installs the RPC handler; the mux exists.
func (m *shareManager) register() {
	m.b.mux.Handle(methodShareOffsets, m.handleOffsets)
}

func (m *shareManager) handleOffsets(_ context.Context, body []byte) ([]byte, error) {
	var req shareOffsetsRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("share offsets: bad request: %v", err)
	}
	return json.Marshal(m.serveOffsets(req))
}

// serveOffsets runs a request on the share-partitions it names; those not
// led here answer NOT_LEADER_OR_FOLLOWER.
func (m *shareManager) serveOffsets(req shareOffsetsRequest) []shareOffsetPart {
	out := make([]shareOffsetPart, 0, len(req.Parts))
	for _, sp := range req.Parts {
		out = append(out, m.serveOffset(req.Group, req.Action, sp))
	}
	return out
}

func (m *shareManager) serveOffset(group, action string, sp shareOffsetPart) shareOffsetPart {
	sp.Lag, sp.Epoch = -1, -1
	t := m.b.reg.getByID(sp.TopicID)
	if !t.has(sp.Partition) {
		sp.Offset, sp.Code = -1, kerr.UnknownTopicOrPartition.Code
		return sp
	}
	var err error
	switch action {
	case shareDescribe:
		sp, err = m.describeOffset(group, t, sp)
	case shareAlter:
		sp.Offset, err = m.setStart(group, t, sp.Partition, sp.Offset)
	case shareDelete:
		sp.Found, err = m.deleteState(group, t, sp.Partition)
	default:
		err = kerr.InvalidRequest
	}
	sp.Code = code(err)
	return sp
}

// describeOffset fills in group's start offset, lag and leader epoch on
// partition sp of t. It reads the committed state on the leader, which is
// the leader's view: a working copy's changes are committed before the
// call that made them returns (owners and lock deadlines are not, and
// are not shown). Lag is KIP-1226's: the records from the start to the
// high watermark less those already acknowledged or archived.
func (m *shareManager) describeOffset(group string, t *topic, sp shareOffsetPart) (shareOffsetPart, error) {
	sp.Offset = -1
	rep := t.partition(sp.Partition)
	if rep == nil || !rep.Ready() {
		return sp, kerr.NotLeaderForPartition
	}
	_, term := rep.Leader()
	sp.Epoch = clampEpoch(term)
	st, ok := rep.Partition().ShareStats(group)
	if !ok {
		return sp, nil
	}
	hw := rep.Partition().HighWatermark()
	sp.Offset, sp.Found = st.Start, true
	sp.Lag = max(0, hw-st.Start-int64(st.Acknowledged+st.Archived))
	return sp, nil
}

// setStart replaces group's state on partition p of t by an empty one at
// start, so every record from there is Available with no delivery. start
// is clamped to the log: below its start there is nothing left to deliver
// (Kafka's share-partition moves up to it at the next fetch) and past the
// high watermark nothing yet (Kafka's reset tools stop at the latest
// offset too). It returns the start set.
func (m *shareManager) setStart(group string, t *topic, p int32, start int64) (int64, error) {
	h, err := m.entry(group, t, p, true)
	if err != nil {
		return -1, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	part := h.rep.Partition()
	start = min(max(start, part.LogStartOffset()), part.HighWatermark())
	// The working copy is rebuilt from this state, with the group's
	// configs, at its next use.
	return start, h.reset(share.New(share.DefaultConfig(), start).TakeDelta())
}

// deleteState removes group's state on partition p of t, so the group's
// next member starts by share.auto.offset.reset; false when there was
// none.
func (m *shareManager) deleteState(group string, t *topic, p int32) (bool, error) {
	rep := t.partition(p)
	if rep == nil || !rep.Ready() {
		return false, kerr.NotLeaderForPartition
	}
	// Without committed state there is no working copy past its first
	// delta either: nothing to do (and no host to create).
	if _, ok := rep.Partition().ShareStats(group); !ok {
		return false, nil
	}
	h, err := m.entry(group, t, p, true)
	if err != nil {
		return false, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.rep.Partition().ShareStats(group); !ok {
		return false, nil // another delete won
	}
	return true, h.reset(nil)
}

// reset (h.mu held) replaces the group's committed state through raft
// (nil deletes it) and drops the working copy, which would otherwise
// write over it, and the notes on its records; waiting fetches look
// again.
func (h *shareHost) reset(delta []byte) error {
	err := h.rep.ProposeShareReset(h.key.group, delta)
	h.sp, h.notes = nil, nil
	h.poke()
	return err
}

// ---- the coordinator's side ----

// shareOffsetsCall runs action for parts on their leaders, one call per
// leader, concurrently, and returns the answers in any order (Ref says
// which). A partition whose leader is unknown or cannot be reached
// answers LEADER_NOT_AVAILABLE.
func (b *Broker) shareOffsetsCall(group, action string, parts []shareOffsetPart) []shareOffsetPart {
	var out []shareOffsetPart
	byLeader := map[int32][]shareOffsetPart{}
	for _, sp := range parts {
		t := b.reg.getByID(sp.TopicID)
		if !t.has(sp.Partition) { // deleted meanwhile
			sp.Offset, sp.Lag, sp.Epoch, sp.Code = -1, -1, -1, kerr.UnknownTopicOrPartition.Code
			out = append(out, sp)
			continue
		}
		leader, _ := leaderOf(t, int(sp.Partition))
		byLeader[leader] = append(byLeader[leader], sp)
	}
	ctx, cancel := context.WithTimeout(b.stopCtx, opsCallTimeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for leader, ps := range byLeader {
		wg.Go(func() {
			got := b.shareOffsetsAt(ctx, leader, shareOffsetsRequest{Group: group, Action: action, Parts: ps})
			mu.Lock()
			out = append(out, got...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// shareOffsetsAt sends req to broker id (directly when it is this one).
func (b *Broker) shareOffsetsAt(ctx context.Context, id int32, req shareOffsetsRequest) []shareOffsetPart {
	if id == b.cfg.NodeID {
		return b.share.serveOffsets(req)
	}
	fail := func(err error) []shareOffsetPart {
		b.lg.Warn().Err(err).Int32("broker", id).Str("group", req.Group).Str("action", req.Action).Msg("share offsets: leader not reached")
		for i := range req.Parts {
			sp := &req.Parts[i]
			sp.Offset, sp.Lag, sp.Epoch, sp.Code = -1, -1, -1, kerr.LeaderNotAvailable.Code
		}
		return req.Parts
	}
	br := b.ctrl.State().Brokers[id]
	if br == nil {
		return fail(fmt.Errorf("%w: %d", errUnknownBrokr, id))
	}
	body, _ := json.Marshal(req)
	resp, err := b.mux.Call(ctx, raft.ServerAddress(br.RaftAddr), methodShareOffsets, body)
	if err != nil {
		return fail(err)
	}
	var got []shareOffsetPart
	if err := json.Unmarshal(resp, &got); err != nil || !sameRefs(got, req.Parts) {
		return fail(fmt.Errorf("bad answer (%d of %d partitions): %v", len(got), len(req.Parts), err))
	}
	return got
}

// sameRefs reports whether an answer is for the partitions asked, in
// order (serveOffsets keeps it), so callers may index by Ref.
func sameRefs(got, asked []shareOffsetPart) bool {
	return slices.EqualFunc(got, asked, func(a, b shareOffsetPart) bool { return a.Ref == b.Ref })
}

// shareTopic returns the topic clients may name for share-group offsets:
// nil for unknown and internal topics.
func (b *Broker) shareTopic(name string) *topic {
	if isInternal(name) {
		return nil
	}
	return b.reg.get(name)
}

func (b *Broker) describeShareGroupOffsets(r *kmsg.DescribeShareGroupOffsetsRequest) responder {
	return func() kmsg.Response {
		resp := r.ResponseKind().(*kmsg.DescribeShareGroupOffsetsResponse)
		for _, g := range r.Groups {
			resp.Groups = append(resp.Groups, b.describeShareGroup(g))
		}
		return resp
	}
}

// describeShareGroup answers for one group; null topics mean every
// partition on which the group has state (and those whose leader could
// not be asked, with their error). As in Kafka, a partition without state
// (or of an unknown topic) has start offset -1 and no error. A group that
// the coordinator does not know and that has no state on any partition
// asked is GROUP_ID_NOT_FOUND: Kafka, which keeps share groups, answers
// an empty list for one it never had; Sluice's coordinator keeps
// membership in memory only, so the partitions decide.
func (b *Broker) describeShareGroup(rg kmsg.DescribeShareGroupOffsetsRequestGroup) kmsg.DescribeShareGroupOffsetsResponseGroup {
	out := kmsg.NewDescribeShareGroupOffsetsResponseGroup()
	out.GroupID = rg.GroupID
	_, known, ec := b.groups.ShareGroupMembers(rg.GroupID, false)
	if ec != 0 {
		out.ErrorCode = ec
		return out
	}
	type slot struct {
		topic string
		id    controller.TopicID
		p     int32
	}
	var slots []slot
	var parts []shareOffsetPart
	add := func(name string, t *topic, p int32) {
		if t != nil && t.has(p) {
			parts = append(parts, shareOffsetPart{Ref: len(slots), TopicID: t.id, Partition: p})
		}
		var id controller.TopicID
		if t != nil {
			id = t.id
		}
		slots = append(slots, slot{name, id, p})
	}
	if rg.Topics == nil {
		for _, t := range b.reg.list() {
			if !isInternal(t.name) {
				for i := range t.assign {
					add(t.name, t, int32(i))
				}
			}
		}
	}
	for _, rt := range rg.Topics {
		t := b.shareTopic(rt.Topic)
		for _, p := range rt.Partitions {
			add(rt.Topic, t, p)
		}
	}
	answers := make([]*shareOffsetPart, len(slots))
	got := b.shareOffsetsCall(rg.GroupID, shareDescribe, parts)
	found, failed := false, false
	for i := range got {
		answers[got[i].Ref] = &got[i]
		found = found || got[i].Found
		failed = failed || got[i].Code != 0
	}
	if !known && !found && !failed {
		out.ErrorCode = kerr.GroupIDNotFound.Code
		return out
	}
	index := map[string]int{}
	for i, s := range slots {
		a := answers[i]
		if rg.Topics == nil && (a == nil || !a.Found && a.Code == 0) {
			continue // no state there
		}
		k, ok := index[s.topic]
		if !ok {
			k = len(out.Topics)
			index[s.topic] = k
			ot := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopic()
			ot.Topic, ot.TopicID = s.topic, s.id
			out.Topics = append(out.Topics, ot)
		}
		op := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopicPartition()
		op.Partition, op.StartOffset, op.LeaderEpoch = s.p, -1, -1
		if a != nil {
			op.StartOffset, op.LeaderEpoch, op.Lag, op.ErrorCode = a.Offset, a.Epoch, a.Lag, a.Code
		}
		out.Topics[k].Partitions = append(out.Topics[k].Partitions, op)
	}
	return out
}

// alterShareGroupOffsets sets start offsets of an empty share group (a
// group with members is NON_EMPTY_GROUP for the whole request, as in
// Kafka). An unknown group is created, as Kafka 4.2 does. Per partition:
// an unknown topic or partition is UNKNOWN_TOPIC_OR_PARTITION, a negative
// offset INVALID_REQUEST, and an offset outside the log is clamped to it
// (setStart).
func (b *Broker) alterShareGroupOffsets(r *kmsg.AlterShareGroupOffsetsRequest) responder {
	return func() kmsg.Response {
		resp := r.ResponseKind().(*kmsg.AlterShareGroupOffsetsResponse)
		if _, ec, msg := b.emptyShareGroup(r.GroupID, true, "altered"); ec != 0 {
			resp.ErrorCode, resp.ErrorMessage = ec, msg
			return resp
		}
		type slot struct{ t, p int }
		var slots []slot
		var parts []shareOffsetPart
		for i, rt := range r.Topics {
			t := b.shareTopic(rt.Topic)
			ot := kmsg.NewAlterShareGroupOffsetsResponseTopic()
			ot.Topic = rt.Topic
			if t != nil {
				ot.TopicID = t.id
			}
			for j, rp := range rt.Partitions {
				op := kmsg.NewAlterShareGroupOffsetsResponseTopicPartition()
				op.Partition = rp.Partition
				switch {
				case !t.has(rp.Partition):
					op.ErrorCode = kerr.UnknownTopicOrPartition.Code
				case rp.StartOffset < 0:
					op.ErrorCode = kerr.InvalidRequest.Code
					op.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("start offset %d is negative", rp.StartOffset))
				default:
					parts = append(parts, shareOffsetPart{Ref: len(slots), TopicID: t.id, Partition: rp.Partition, Offset: rp.StartOffset})
					slots = append(slots, slot{i, j})
				}
				ot.Partitions = append(ot.Partitions, op)
			}
			resp.Topics = append(resp.Topics, ot)
		}
		for _, a := range b.shareOffsetsCall(r.GroupID, shareAlter, parts) {
			s := slots[a.Ref]
			resp.Topics[s.t].Partitions[s.p].ErrorCode = a.Code
		}
		return resp
	}
}

// emptyShareGroup checks that group has no members before its offsets
// are changed (done: "altered" or "deleted"): NON_EMPTY_GROUP, with a
// message, when it has some, or the coordinator's error; create makes an
// unknown group (see ShareGroupMembers). known says whether the
// coordinator knew the group.
func (b *Broker) emptyShareGroup(group string, create bool, done string) (known bool, code int16, msg *string) {
	members, known, ec := b.groups.ShareGroupMembers(group, create)
	if ec == 0 && members > 0 {
		return known, kerr.NonEmptyGroup.Code, kmsg.StringPtr(fmt.Sprintf("share group %q has %d members: its offsets can be %s only while it is empty", group, members, done))
	}
	return known, ec, nil
}

// deleteShareGroupOffsets removes an empty share group's state on whole
// topics (a group with members is NON_EMPTY_GROUP for the whole request,
// as in Kafka). Per topic: an unknown one, or one the group has no state
// on, is UNKNOWN_TOPIC_OR_PARTITION (Kafka's "no offset information to
// delete"); a partition that failed gives the topic its error. A group the
// coordinator does not know and that had state nowhere asked is
// GROUP_ID_NOT_FOUND (see describeShareGroup).
func (b *Broker) deleteShareGroupOffsets(r *kmsg.DeleteShareGroupOffsetsRequest) responder {
	return func() kmsg.Response {
		resp := r.ResponseKind().(*kmsg.DeleteShareGroupOffsetsResponse)
		known, ec, msg := b.emptyShareGroup(r.GroupID, false, "deleted")
		if ec != 0 {
			resp.ErrorCode, resp.ErrorMessage = ec, msg
			return resp
		}
		var parts []shareOffsetPart
		for i, rt := range r.Topics {
			ot := kmsg.NewDeleteShareGroupOffsetsResponseTopic()
			ot.Topic = rt.Topic
			if t := b.shareTopic(rt.Topic); t != nil {
				ot.TopicID = t.id
				for p := range t.assign {
					parts = append(parts, shareOffsetPart{Ref: i, TopicID: t.id, Partition: int32(p)})
				}
			}
			resp.Topics = append(resp.Topics, ot)
		}
		found := make([]bool, len(r.Topics))
		anyFound, failed := false, false
		for _, a := range b.shareOffsetsCall(r.GroupID, shareDelete, parts) {
			ot := &resp.Topics[a.Ref]
			if a.Code != 0 && ot.ErrorCode == 0 {
				ot.ErrorCode = a.Code
			}
			found[a.Ref] = found[a.Ref] || a.Found
			anyFound, failed = anyFound || a.Found, failed || a.Code != 0
		}
		if !known && !anyFound && !failed {
			resp.Topics = nil
			resp.ErrorCode = kerr.GroupIDNotFound.Code
			return resp
		}
		for i := range resp.Topics {
			if ot := &resp.Topics[i]; ot.ErrorCode == 0 && !found[i] {
				ot.ErrorCode = kerr.UnknownTopicOrPartition.Code
				ot.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("share group %q has no offsets on topic %q to delete", r.GroupID, ot.Topic))
			}
		}
		return resp
	}
}
