package group

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetCommit stores a group's offsets once they are replicated. A
// commit with generation -1 and no member id is an admin commit (offset
// reset), accepted only while the group has no members.
func (c *Coordinator) OffsetCommit(r *kmsg.OffsetCommitRequest) Responder {
	resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
	codes := make([][]int16, len(r.Topics))
	for i, rt := range r.Topics {
		codes[i] = make([]int16, len(rt.Partitions))
	}
	build := func() kmsg.Response {
		for i, rt := range r.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for j, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, codes[i][j]
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}
	failAll := func(code int16) Responder {
		for _, cs := range codes {
			for j := range cs {
				cs[j] = code
			}
		}
		return now(build())
	}
	s, code := c.lookup(r.Group)
	if code != 0 {
		return failAll(code)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return failAll(kerr.NotCoordinator.Code)
	}
	t := time.Now()
	g := s.groups[r.Group]
	admin := r.Generation < 0 && r.MemberID == ""
	switch {
	case g == nil && admin:
		g = newGroup(r.Group, t)
		s.groups[r.Group] = g
	case g == nil:
		return failAll(kerr.IllegalGeneration.Code)
	case admin && len(g.members) == 0:
	case admin:
		return failAll(kerr.UnknownMemberID.Code)
	default:
		m, code := g.check(r.MemberID, deref(r.InstanceID), r.Generation)
		if code != 0 {
			return failAll(code)
		}
		if g.state == stateCompletingRebalance {
			return failAll(kerr.RebalanceInProgress.Code)
		}
		m.deadline = t.Add(m.sessionTimeout)
	}
	type pending struct {
		tp topicPartition
		o  committed
	}
	var recs []kv
	var accepted []pending
	for i, rt := range r.Topics {
		for j, rp := range rt.Partitions {
			exists, known := c.host.PartitionExists(rt.Topic, rp.Partition)
			switch {
			case known && !exists:
				codes[i][j] = kerr.UnknownTopicOrPartition.Code
				continue
			case rp.Metadata != nil && len(*rp.Metadata) > c.cfg.OffsetMetadataMaxBytes:
				codes[i][j] = kerr.OffsetMetadataTooLarge.Code
				continue
			}
			tp := topicPartition{rt.Topic, rp.Partition}
			o := committed{offset: rp.Offset, leaderEpoch: rp.LeaderEpoch, metadata: deref(rp.Metadata), timestamp: t.UnixMilli()}
			if r.Version < 6 {
				o.leaderEpoch = -1
			}
			recs = append(recs, kv{offsetKey(g.id, tp), offsetValue(o)})
			accepted = append(accepted, pending{tp, o})
		}
	}
	if len(recs) == 0 {
		return now(build())
	}
	wait := s.append(recs)
	done := make(chan struct{})
	// The commit is applied when replicated whether or not the client is
	// still there to hear it, so memory never lags the log.
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(done)
		base, err := wait()
		if err != nil {
			ec := appendCode(err)
			for i, rt := range r.Topics {
				for j := range rt.Partitions {
					if codes[i][j] == 0 {
						codes[i][j] = ec
					}
				}
			}
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed || s.groups[g.id] != g {
			return
		}
		for k, p := range accepted {
			p.o.logOffset = base + int64(k)
			if cur, ok := g.offsets[p.tp]; !ok || cur.logOffset < p.o.logOffset {
				g.offsets[p.tp] = p.o
			}
		}
	}()
	return func() kmsg.Response {
		<-done
		return build()
	}
}

// OffsetFetch answers committed offsets (v8+: for several groups).
func (c *Coordinator) OffsetFetch(r *kmsg.OffsetFetchRequest) Responder {
	resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
	if r.Version >= 8 {
		for _, rg := range r.Groups {
			out := kmsg.NewOffsetFetchResponseGroup()
			out.Group = rg.Group
			var req []kmsg.OffsetFetchRequestTopic
			if rg.Topics != nil {
				req = make([]kmsg.OffsetFetchRequestTopic, 0, len(rg.Topics))
				for _, t := range rg.Topics {
					rt := kmsg.NewOffsetFetchRequestTopic()
					rt.Topic, rt.Partitions = t.Topic, t.Partitions
					req = append(req, rt)
				}
			}
			topics, code := c.fetchOffsets(rg.Group, req, rg.Topics == nil)
			out.ErrorCode = code
			for _, t := range topics {
				ot := kmsg.NewOffsetFetchResponseGroupTopic()
				ot.Topic = t.Topic
				for _, p := range t.Partitions {
					op := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					op.Partition, op.Offset, op.LeaderEpoch, op.Metadata, op.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
					ot.Partitions = append(ot.Partitions, op)
				}
				out.Topics = append(out.Topics, ot)
			}
			resp.Groups = append(resp.Groups, out)
		}
		return now(resp)
	}
	all := r.Topics == nil && r.Version >= 2
	topics, code := c.fetchOffsets(r.Group, r.Topics, all)
	resp.Topics = topics
	if r.Version >= 2 {
		resp.ErrorCode = code
	} else if code != 0 {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = code
			}
		}
	}
	return now(resp)
}

func (c *Coordinator) fetchOffsets(groupID string, req []kmsg.OffsetFetchRequestTopic, all bool) ([]kmsg.OffsetFetchResponseTopic, int16) {
	unknown := func(code int16) []kmsg.OffsetFetchResponseTopic {
		var out []kmsg.OffsetFetchResponseTopic
		for _, rt := range req {
			t := kmsg.NewOffsetFetchResponseTopic()
			t.Topic = rt.Topic
			for _, p := range rt.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch, rp.ErrorCode = p, -1, -1, code
				empty := ""
				rp.Metadata = &empty
				t.Partitions = append(t.Partitions, rp)
			}
			out = append(out, t)
		}
		return out
	}
	s, code := c.lookup(groupID)
	if code != 0 {
		return unknown(0), code
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[groupID]
	if g == nil {
		return unknown(0), 0
	}
	if all {
		byTopic := map[string][]topicPartition{}
		for tp := range g.offsets {
			byTopic[tp.topic] = append(byTopic[tp.topic], tp)
		}
		names := make([]string, 0, len(byTopic))
		for n := range byTopic {
			names = append(names, n)
		}
		slices.Sort(names)
		req = req[:0]
		for _, n := range names {
			rt := kmsg.NewOffsetFetchRequestTopic()
			rt.Topic = n
			for _, tp := range byTopic[n] {
				rt.Partitions = append(rt.Partitions, tp.partition)
			}
			slices.Sort(rt.Partitions)
			req = append(req, rt)
		}
	}
	out := unknown(0)
	for i, rt := range req {
		for j, p := range rt.Partitions {
			if o, ok := g.offsets[topicPartition{rt.Topic, p}]; ok {
				rp := &out[i].Partitions[j]
				md := o.metadata
				rp.Offset, rp.LeaderEpoch, rp.Metadata = o.offset, o.leaderEpoch, &md
			}
		}
	}
	return out, 0
}

// OffsetDelete removes committed offsets of topics the group no longer
// consumes. It waits for replication in the responder.
func (c *Coordinator) OffsetDelete(r *kmsg.OffsetDeleteRequest) Responder {
	return func() kmsg.Response { return c.offsetDelete(r)() }
}

func (c *Coordinator) offsetDelete(r *kmsg.OffsetDeleteRequest) Responder {
	resp := r.ResponseKind().(*kmsg.OffsetDeleteResponse)
	s, code := c.lookup(r.Group)
	if code != 0 {
		resp.ErrorCode = code
		return now(resp)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[r.Group]
	if s.closed || g == nil {
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return now(resp)
	}
	if g.protocolType != "" && g.protocolType != "consumer" && len(g.members) > 0 {
		resp.ErrorCode = kerr.NonEmptyGroup.Code
		return now(resp)
	}
	var recs []kv
	var gone []topicPartition
	for _, rt := range r.Topics {
		st := kmsg.NewOffsetDeleteResponseTopic()
		st.Topic = rt.Topic
		busy := len(g.members) > 0 && g.subscribed(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetDeleteResponseTopicPartition()
			sp.Partition = rp.Partition
			tp := topicPartition{rt.Topic, rp.Partition}
			if busy {
				sp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			} else if _, ok := g.offsets[tp]; ok {
				recs = append(recs, kv{offsetKey(g.id, tp), nil})
				gone = append(gone, tp)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if len(recs) == 0 {
		return now(resp)
	}
	if err := s.removeOffsets(g, recs, gone); err != 0 {
		resp.ErrorCode, resp.Topics = err, nil
	}
	return now(resp)
}

// removeOffsets writes tombstones and forgets the offsets once they are
// replicated; the caller holds s.mu, which is released while waiting.
func (s *shard) removeOffsets(g *group, recs []kv, gone []topicPartition) int16 {
	wait := s.append(recs)
	s.mu.Unlock()
	base, err := wait()
	s.mu.Lock()
	if err != nil {
		return appendCode(err)
	}
	for k, tp := range gone {
		if cur, ok := g.offsets[tp]; ok && cur.logOffset < base+int64(k) {
			delete(g.offsets, tp)
		}
	}
	return 0
}

// DeleteGroups removes empty groups and their offsets; the responder
// waits for the tombstones to replicate.
func (c *Coordinator) DeleteGroups(r *kmsg.DeleteGroupsRequest) Responder {
	return func() kmsg.Response {
		resp := r.ResponseKind().(*kmsg.DeleteGroupsResponse)
		for _, id := range r.Groups {
			out := kmsg.NewDeleteGroupsResponseGroup()
			out.Group = id
			out.ErrorCode = c.deleteGroup(id)
			resp.Groups = append(resp.Groups, out)
		}
		return resp
	}
}

func (c *Coordinator) deleteGroup(id string) int16 {
	s, code := c.lookup(id)
	if code != 0 {
		return code
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[id]
	switch {
	case s.closed || g == nil:
		return kerr.GroupIDNotFound.Code
	case g.state != stateEmpty:
		return kerr.NonEmptyGroup.Code
	}
	if code := s.dropGroup(g); code != 0 {
		return code
	}
	return 0
}

// dropGroup writes tombstones for an empty group's offsets and metadata
// and forgets it; s.mu is held (and released while waiting).
func (s *shard) dropGroup(g *group) int16 {
	var recs []kv
	for tp := range g.offsets {
		recs = append(recs, kv{offsetKey(g.id, tp), nil})
	}
	recs = append(recs, kv{groupKey(g.id), nil})
	wait := s.append(recs)
	s.mu.Unlock()
	_, err := wait()
	s.mu.Lock()
	if err != nil {
		return appendCode(err)
	}
	// A member that joined while the tombstones were written keeps the
	// group (its metadata is written after them).
	if s.groups[g.id] == g && g.state == stateEmpty && len(g.members) == 0 {
		g.state = stateDead
		delete(s.groups, g.id)
	}
	return 0
}

// ListGroups lists the groups this broker coordinates.
func (c *Coordinator) ListGroups(r *kmsg.ListGroupsRequest) Responder {
	resp := r.ResponseKind().(*kmsg.ListGroupsResponse)
	wants := func(kind string) bool {
		return len(r.TypesFilter) == 0 || slices.ContainsFunc(r.TypesFilter, func(t string) bool { return strings.EqualFold(t, kind) })
	}
	classic, share := wants("classic"), wants("share")
	c.mu.Lock()
	shards := make([]*shard, 0, len(c.shards))
	for _, s := range c.shards {
		shards = append(shards, s)
	}
	c.mu.Unlock()
	for _, s := range shards {
		if !s.loaded.Load() {
			resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
			continue
		}
		s.mu.Lock()
		if share {
			s.listShares(r.StatesFilter, &resp.Groups)
		}
		for _, g := range s.groups {
			if !classic {
				break
			}
			st := g.state.String()
			if len(r.StatesFilter) > 0 && !slices.ContainsFunc(r.StatesFilter, func(f string) bool { return strings.EqualFold(f, st) }) {
				continue
			}
			lg := kmsg.NewListGroupsResponseGroup()
			lg.Group, lg.ProtocolType, lg.GroupState, lg.GroupType = g.id, g.protocolType, st, "classic"
			resp.Groups = append(resp.Groups, lg)
		}
		s.mu.Unlock()
	}
	slices.SortFunc(resp.Groups, func(a, b kmsg.ListGroupsResponseGroup) int { return strings.Compare(a.Group, b.Group) })
	return now(resp)
}

// DescribeGroups describes groups and their members.
func (c *Coordinator) DescribeGroups(r *kmsg.DescribeGroupsRequest) Responder {
	resp := r.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, id := range r.Groups {
		dg := kmsg.NewDescribeGroupsResponseGroup()
		dg.Group = id
		c.describe(id, r.Version, &dg)
		resp.Groups = append(resp.Groups, dg)
	}
	return now(resp)
}

func (c *Coordinator) describe(id string, version int16, dg *kmsg.DescribeGroupsResponseGroup) {
	s, code := c.lookup(id)
	if code != 0 {
		dg.ErrorCode = code
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[id]
	if g == nil {
		dg.State = stateDead.String()
		if version >= 6 {
			dg.ErrorCode = kerr.GroupIDNotFound.Code
		}
		return
	}
	dg.State, dg.ProtocolType = g.state.String(), g.protocolType
	if g.state == stateStable || g.state == stateCompletingRebalance {
		dg.Protocol = g.protocol
	}
	for _, mid := range g.memberOrder() {
		m := g.members[mid]
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID, dm.ClientID, dm.ClientHost = m.id, m.clientID, m.clientHost
		if m.instanceID != "" {
			inst := m.instanceID
			dm.InstanceID = &inst
		}
		dm.ProtocolMetadata = m.metadata(g.protocol)
		if g.state == stateStable {
			dm.MemberAssignment = m.assignment
		}
		dg.Members = append(dg.Members, dm)
	}
}

// cleanup expires the offsets of groups that stayed empty past the
// retention, and offsets of deleted topics.
func (s *shard) cleanup(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	retention := s.c.cfg.OffsetsRetention
	// dropGroup and removeOffsets release s.mu while they wait.
	for _, g := range slices.Collect(maps.Values(s.groups)) {
		if s.groups[g.id] != g {
			continue
		}
		if g.state == stateEmpty {
			newest := g.stateSince
			for _, o := range g.offsets {
				newest = maxTime(newest, time.UnixMilli(o.timestamp))
			}
			if t.Sub(newest) > retention {
				s.c.lg.Info().Str("group", g.id).Msg("group coordinator: empty group expired")
				s.dropGroup(g)
				if s.closed {
					return
				}
				continue
			}
		}
		var recs []kv
		var gone []topicPartition
		for tp, o := range g.offsets {
			// A commit was checked against the topic when it was made, so
			// a topic missing now (and a minute later, metadata settled)
			// was deleted.
			if exists, known := s.c.host.PartitionExists(tp.topic, tp.partition); known && !exists && t.Sub(time.UnixMilli(o.timestamp)) > time.Minute {
				recs = append(recs, kv{offsetKey(g.id, tp), nil})
				gone = append(gone, tp)
			}
		}
		if len(recs) > 0 {
			s.removeOffsets(g, recs, gone)
			if s.closed {
				return
			}
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Offset is one committed offset of a group, as Coordinated reports it.
type Offset struct {
	Topic     string
	Partition int32
	Offset    int64
	// CommitTime is when it was committed.
	CommitTime time.Time
}

// GroupInfo is a group this broker coordinates, for lag metrics.
type GroupInfo struct {
	Group   string
	State   string
	Members int
	Offsets []Offset
}

// Coordinated lists the groups this broker coordinates now, with their
// committed offsets, sorted by group and partition.
func (c *Coordinator) Coordinated() []GroupInfo {
	var out []GroupInfo
	for _, s := range c.loadedShards() {
		s.mu.Lock()
		for _, g := range s.groups {
			gi := GroupInfo{Group: g.id, State: g.state.String(), Members: len(g.members)}
			for tp, o := range g.offsets {
				gi.Offsets = append(gi.Offsets, Offset{Topic: tp.topic, Partition: tp.partition, Offset: o.offset, CommitTime: time.UnixMilli(o.timestamp)})
			}
			slices.SortFunc(gi.Offsets, func(a, b Offset) int {
				if a.Topic != b.Topic {
					return strings.Compare(a.Topic, b.Topic)
				}
				return int(a.Partition - b.Partition)
			})
			out = append(out, gi)
		}
		s.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b GroupInfo) int { return strings.Compare(a.Group, b.Group) })
	return out
}
