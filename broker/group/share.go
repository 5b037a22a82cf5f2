package group

import (
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Share groups (KIP-932): members heartbeat to the coordinator, which
// assigns partitions on the server; more members than partitions is
// normal (members then share partitions). Which records a member gets is
// decided by each partition's leader (the share-partition state), not
// here. Membership lives in memory only: after a coordinator change the
// members are told UNKNOWN_MEMBER_ID and rejoin at once with the same id,
// which is what clients do anyway.

// TopicInfo is a topic as share-group assignment needs it.
type TopicInfo struct {
	ID         [16]byte
	Partitions int32
}

// shareGroup is one share group's membership. Guarded by its shard's mutex.
type shareGroup struct {
	id      string
	epoch   int32 // group epoch: bumped by every membership or subscription change
	members map[string]*shareMember
}

type shareMember struct {
	id, clientID, clientHost string
	rack                     string
	epoch, prevEpoch         int32
	topics                   []string // sorted subscription
	deadline                 time.Time
	assigned                 map[string][]int32 // topic -> partitions, as of the group epoch
}

// ShareConfig holds the share-group membership timings (Kafka's
// group.share.session.timeout.ms, heartbeat interval and max size).
type ShareConfig struct {
	SessionTimeout    time.Duration // 45 s
	HeartbeatInterval time.Duration // 5 s
	MaxSize           int           // 200
}

func (c *ShareConfig) defaults() {
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 45 * time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 5 * time.Second
	}
	if c.MaxSize == 0 {
		c.MaxSize = 200
	}
}

// ShareGroupHeartbeat joins (epoch 0), keeps alive, or leaves (epoch -1) a
// share group, answering the member's full assignment whenever its epoch
// moves.
func (c *Coordinator) ShareGroupHeartbeat(r *kmsg.ShareGroupHeartbeatRequest, clientID, clientHost string) Responder {
	resp := r.ResponseKind().(*kmsg.ShareGroupHeartbeatResponse)
	fail := func(code int16, msg string) Responder {
		resp.ErrorCode = code
		if msg != "" {
			resp.ErrorMessage = &msg
		}
		return now(resp)
	}
	switch {
	case r.MemberID == "" || len(r.MemberID) > 36:
		return fail(kerr.InvalidRequest.Code, "member id must be 1 to 36 characters")
	case r.MemberEpoch == 0 && len(r.SubscribedTopicNames) == 0:
		return fail(kerr.InvalidRequest.Code, "a joining member must subscribe to topics")
	case r.MemberEpoch < -1:
		return fail(kerr.InvalidRequest.Code, "member epoch below -1")
	}
	s, code := c.lookup(r.GroupID)
	if code != 0 {
		return fail(code, "")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fail(kerr.NotCoordinator.Code, "")
	}
	if _, classic := s.groups[r.GroupID]; classic {
		// Not UNKNOWN_MEMBER_ID or GROUP_ID_NOT_FOUND: clients rejoin on
		// those at once, without backoff.
		return fail(kerr.InconsistentGroupProtocol.Code, "group "+r.GroupID+" is a classic consumer group")
	}
	t := time.Now()
	g := s.shares[r.GroupID]
	if r.MemberEpoch == -1 {
		if g == nil || g.members[r.MemberID] == nil {
			return fail(kerr.UnknownMemberID.Code, "")
		}
		delete(g.members, r.MemberID)
		g.epoch++
		s.reassign(g)
		resp.MemberID, resp.MemberEpoch = &r.MemberID, -1
		return now(resp)
	}
	if g == nil {
		if r.MemberEpoch != 0 {
			return fail(kerr.GroupIDNotFound.Code, "")
		}
		g = &shareGroup{id: r.GroupID, members: map[string]*shareMember{}}
		s.shares[r.GroupID] = g
	}
	m := g.members[r.MemberID]
	switch {
	case r.MemberEpoch == 0 && m == nil:
		if len(g.members) >= c.cfg.Share.MaxSize {
			return fail(kerr.GroupMaxSizeReached.Code, "")
		}
		// Its subscription (required to join) bumps the group epoch below.
		m = &shareMember{id: r.MemberID}
		g.members[m.id] = m
	case r.MemberEpoch == 0:
		// A rejoin with the same id (after an error or a coordinator
		// change) gets the current epoch and its full assignment.
	case m == nil:
		return fail(kerr.UnknownMemberID.Code, "")
	case r.MemberEpoch != m.epoch && r.MemberEpoch != m.prevEpoch:
		return fail(kerr.FencedMemberEpoch.Code, "")
	}
	m.clientID, m.clientHost, m.deadline = clientID, clientHost, t.Add(c.cfg.Share.SessionTimeout)
	if r.RackID != nil {
		m.rack = *r.RackID
	}
	if r.SubscribedTopicNames != nil {
		topics := slices.Clone(r.SubscribedTopicNames)
		slices.Sort(topics)
		topics = slices.Compact(topics)
		if !slices.Equal(topics, m.topics) {
			m.topics = topics
			g.epoch++
		}
	}
	s.reassign(g)
	sendAssignment := r.MemberEpoch == 0 || m.epoch != g.epoch || r.SubscribedTopicNames != nil
	if m.epoch != g.epoch {
		m.prevEpoch, m.epoch = m.epoch, g.epoch
	}
	resp.MemberID, resp.MemberEpoch = &r.MemberID, m.epoch
	resp.HeartbeatIntervalMillis = int32(c.cfg.Share.HeartbeatInterval.Milliseconds())
	if sendAssignment {
		a := kmsg.NewShareGroupHeartbeatResponseAssignment()
		for _, topic := range m.topics {
			info, ok := c.host.Topic(topic)
			if !ok || len(m.assigned[topic]) == 0 {
				continue
			}
			tp := kmsg.NewShareGroupHeartbeatResponseAssignmentTopicPartition()
			tp.TopicID, tp.Partitions = info.ID, slices.Clone(m.assigned[topic])
			a.TopicPartitions = append(a.TopicPartitions, tp)
		}
		resp.Assignment = &a
	}
	return now(resp)
}

// reassign spreads every subscribed topic's partitions over its
// subscribers: with no more members than partitions each partition has
// one member, otherwise each member gets one and partitions are shared
// (Kafka's simple assignor). Deterministic by member id.
func (s *shard) reassign(g *shareGroup) {
	subs := map[string][]string{}
	for _, m := range g.members {
		m.assigned = map[string][]int32{}
		for _, t := range m.topics {
			subs[t] = append(subs[t], m.id)
		}
	}
	for topic, ids := range subs {
		info, ok := s.c.host.Topic(topic)
		if !ok || info.Partitions <= 0 {
			continue
		}
		slices.Sort(ids)
		n := int32(len(ids))
		if n <= info.Partitions {
			for p := range info.Partitions {
				id := ids[p%n]
				g.members[id].assigned[topic] = append(g.members[id].assigned[topic], p)
			}
			continue
		}
		for i, id := range ids {
			g.members[id].assigned[topic] = []int32{int32(i) % info.Partitions}
		}
	}
}

// expireShares fences share members whose session ran out.
func (s *shard) expireShares(t time.Time) {
	for id, g := range s.shares {
		changed := false
		for mid, m := range g.members {
			if t.After(m.deadline) {
				delete(g.members, mid)
				changed = true
				s.c.lg.Info().Str("group", id).Str("member", mid).Msg("share group: session expired")
			}
		}
		if changed {
			g.epoch++
			s.reassign(g)
		}
	}
}

// ShareGroupDescribe describes share groups.
func (c *Coordinator) ShareGroupDescribe(r *kmsg.ShareGroupDescribeRequest) Responder {
	resp := r.ResponseKind().(*kmsg.ShareGroupDescribeResponse)
	for _, id := range r.GroupIDs {
		dg := kmsg.NewShareGroupDescribeResponseGroup()
		dg.GroupID, dg.AuthorizedOperations = id, -2147483648
		s, code := c.lookup(id)
		if code != 0 {
			dg.ErrorCode = code
			resp.Groups = append(resp.Groups, dg)
			continue
		}
		s.mu.Lock()
		g := s.shares[id]
		if g == nil {
			dg.ErrorCode = kerr.GroupIDNotFound.Code
		} else {
			dg.GroupState, dg.GroupEpoch, dg.AssignmentEpoch, dg.Assignor = "Stable", g.epoch, g.epoch, "simple"
			if len(g.members) == 0 {
				dg.GroupState = "Empty"
			}
			ids := make([]string, 0, len(g.members))
			for mid := range g.members {
				ids = append(ids, mid)
			}
			slices.Sort(ids)
			for _, mid := range ids {
				m := g.members[mid]
				dm := kmsg.NewShareGroupDescribeResponseGroupMember()
				dm.MemberID, dm.MemberEpoch, dm.ClientID, dm.ClientHost = m.id, m.epoch, m.clientID, m.clientHost
				dm.SubscribedTopicNames = slices.Clone(m.topics)
				if m.rack != "" {
					rack := m.rack
					dm.RackID = &rack
				}
				for _, topic := range m.topics {
					info, ok := c.host.Topic(topic)
					if !ok || len(m.assigned[topic]) == 0 {
						continue
					}
					tp := kmsg.NewShareGroupDescribeResponseGroupMemberAssignmentTopicPartition()
					tp.TopicID, tp.Topic, tp.Partitions = info.ID, topic, slices.Clone(m.assigned[topic])
					dm.Assignment.TopicPartitions = append(dm.Assignment.TopicPartitions, tp)
				}
				dg.Members = append(dg.Members, dm)
			}
		}
		s.mu.Unlock()
		resp.Groups = append(resp.Groups, dg)
	}
	return now(resp)
}

// ShareGroupMembers reports how many members share group id has and
// whether this coordinator knows it, for the offset administration APIs
// (which need an empty group). code sends the caller elsewhere
// (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, INVALID_GROUP_ID) or is
// GROUP_ID_NOT_FOUND for a classic group, as Kafka answers for a group of
// another type. With create an unknown group is created empty: Kafka 4.2
// does so on AlterShareGroupOffsets, so a group's start can be set before
// its first member joins (and ListGroups shows it).
func (c *Coordinator) ShareGroupMembers(id string, create bool) (members int, known bool, code int16) {
	s, code := c.lookup(id)
	if code != 0 {
		return 0, false, code
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, false, kerr.NotCoordinator.Code
	}
	if _, classic := s.groups[id]; classic {
		return 0, false, kerr.GroupIDNotFound.Code
	}
	g := s.shares[id]
	if g == nil && create {
		g = &shareGroup{id: id, members: map[string]*shareMember{}}
		s.shares[id] = g
	}
	if g == nil {
		return 0, false, 0
	}
	return len(g.members), true, 0
}

// ShareGroups lists the share groups this broker coordinates (ListGroups
// shows them with type "share").
func (s *shard) listShares(states []string, out *[]kmsg.ListGroupsResponseGroup) {
	for _, g := range s.shares {
		st := "Stable"
		if len(g.members) == 0 {
			st = "Empty"
		}
		if len(states) > 0 && !slices.ContainsFunc(states, func(f string) bool { return strings.EqualFold(f, st) }) {
			continue
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group, lg.ProtocolType, lg.GroupState, lg.GroupType = g.id, "share", st, "share"
		*out = append(*out, lg)
	}
}
