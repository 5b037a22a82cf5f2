package group

import (
	"bytes"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Responder finishes a request; it may block (a JoinGroup waits for the
// rebalance), and always returns.
type Responder func() kmsg.Response

func now(r kmsg.Response) Responder { return func() kmsg.Response { return r } }

func ms(v int32) time.Duration { return time.Duration(v) * time.Millisecond }

// wait returns a responder that waits for ch or the coordinator's end.
func waitFor[T kmsg.Response](c *Coordinator, ch chan T, closed T) Responder {
	return func() kmsg.Response {
		select {
		case r := <-ch:
			return r
		case <-c.ctx.Done():
			return closed
		}
	}
}

// JoinGroup adds or updates a member and waits for the rebalance to
// complete (Kafka's classic protocol).
func (c *Coordinator) JoinGroup(r *kmsg.JoinGroupRequest, clientID, clientHost string) Responder {
	resp := r.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.MemberID, resp.Generation = r.MemberID, -1
	fail := func(code int16) Responder { resp.ErrorCode = code; return now(resp) }
	session, rebalance := ms(r.SessionTimeoutMillis), ms(r.RebalanceTimeoutMillis)
	if r.Version == 0 {
		rebalance = session
	}
	instance := deref(r.InstanceID)
	switch {
	case r.Group == "" || len(r.Group) > MaxGroupIDLen:
		return fail(kerr.InvalidGroupID.Code)
	case session < c.cfg.MinSessionTimeout || session > c.cfg.MaxSessionTimeout:
		return fail(kerr.InvalidSessionTimeout.Code)
	case rebalance <= 0:
		return fail(kerr.InvalidSessionTimeout.Code)
	case r.ProtocolType == "" || len(r.Protocols) == 0:
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	protos := make([]protocol, len(r.Protocols))
	for i, p := range r.Protocols {
		// Byte fields alias the request frame, which is reused: copy.
		protos[i] = protocol{name: p.Name, metadata: bytes.Clone(p.Metadata)}
	}
	s, code := c.shardFor(r.Group)
	if code != 0 {
		return fail(code)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fail(kerr.NotCoordinator.Code)
	}
	if _, share := s.shares[r.Group]; share {
		return fail(kerr.InconsistentGroupProtocol.Code) // a share group of that name
	}
	t := time.Now()
	g := s.groups[r.Group]
	if g == nil {
		if r.MemberID != "" {
			return fail(kerr.UnknownMemberID.Code)
		}
		g = newGroup(r.Group, t)
		s.groups[r.Group] = g
	}
	if len(g.members) > 0 {
		if r.ProtocolType != g.protocolType || !g.supportsAll(protos) {
			return fail(kerr.InconsistentGroupProtocol.Code)
		}
	}
	pj := &pendingJoin{version: r.Version, ch: make(chan *kmsg.JoinGroupResponse, 1)}
	closedResp := r.ResponseKind().(*kmsg.JoinGroupResponse)
	closedResp.ErrorCode, closedResp.Generation = kerr.NotCoordinator.Code, -1

	if r.MemberID == "" && instance == "" {
		if len(g.members)+len(g.pending) >= c.cfg.MaxGroupSize {
			return fail(kerr.GroupMaxSizeReached.Code)
		}
		id := newMemberID(clientID)
		if r.Version >= 4 {
			// KIP-394: hand out the id and let the member rejoin with it,
			// so a member that never comes back holds no slot for long.
			g.pending[id] = t.Add(session)
			resp.MemberID = id
			return fail(kerr.MemberIDRequired.Code)
		}
		s.addMember(g, &member{id: id, clientID: clientID, clientHost: clientHost}, r, protos, pj, t)
		return waitFor(c, pj.ch, closedResp)
	}
	if r.MemberID == "" { // a static member (re)joining
		if old, ok := g.static[instance]; ok {
			return s.replaceStatic(g, g.members[old], r, protos, pj, clientID, clientHost, t, closedResp)
		}
		if len(g.members)+len(g.pending) >= c.cfg.MaxGroupSize {
			return fail(kerr.GroupMaxSizeReached.Code)
		}
		m := &member{id: newMemberID(clientID), instanceID: instance, clientID: clientID, clientHost: clientHost}
		s.addMember(g, m, r, protos, pj, t)
		return waitFor(c, pj.ch, closedResp)
	}
	if instance != "" {
		if cur, ok := g.static[instance]; ok && cur != r.MemberID {
			return fail(kerr.FencedInstanceID.Code)
		}
	}
	if _, ok := g.pending[r.MemberID]; ok {
		delete(g.pending, r.MemberID)
		m := &member{id: r.MemberID, instanceID: instance, clientID: clientID, clientHost: clientHost}
		s.addMember(g, m, r, protos, pj, t)
		return waitFor(c, pj.ch, closedResp)
	}
	m := g.members[r.MemberID]
	if m == nil {
		return fail(kerr.UnknownMemberID.Code)
	}
	return s.rejoin(g, m, r, protos, pj, t, closedResp)
}

func (s *shard) setJoin(m *member, r *kmsg.JoinGroupRequest, protos []protocol, pj *pendingJoin, t time.Time) {
	if m.join != nil && m.join != pj {
		// A member rejoining while its previous join waits: the older
		// request is superseded (Kafka answers it the same way).
		s.answerJoin(m, kerr.UnknownMemberID.Code)
	}
	m.protocols, m.join = protos, pj
	m.sessionTimeout, m.rebalanceTimeout = ms(r.SessionTimeoutMillis), ms(r.RebalanceTimeoutMillis)
	if r.Version == 0 {
		m.rebalanceTimeout = m.sessionTimeout
	}
	m.deadline = t.Add(m.sessionTimeout)
}

func (s *shard) addMember(g *group, m *member, r *kmsg.JoinGroupRequest, protos []protocol, pj *pendingJoin, t time.Time) {
	m.joinedAt = s.c.seq.Add(1)
	s.setJoin(m, r, protos, pj, t)
	if len(g.members) == 0 {
		g.protocolType = r.ProtocolType
	}
	g.members[m.id] = m
	if m.instanceID != "" {
		g.static[m.instanceID] = m.id
	}
	if g.state == statePreparingRebalance && g.initialDelay {
		// Another member arrived during the initial delay: wait a delay
		// more, up to the rebalance timeout.
		g.rebalanceDeadline = minTime(t.Add(s.c.cfg.InitialRebalanceDelay), g.rebalanceLimit)
	}
	if g.state != statePreparingRebalance {
		s.prepareRebalance(g, t)
	}
	s.tryCompleteJoin(g, t)
}

// rejoin is a known member joining again: it waits for a rebalance, or,
// when nothing changed and the group is settled, gets the current
// generation back at once.
func (s *shard) rejoin(g *group, m *member, r *kmsg.JoinGroupRequest, protos []protocol, pj *pendingJoin, t time.Time, closedResp *kmsg.JoinGroupResponse) Responder {
	unchanged := sameProtocols(m.protocols, protos)
	switch g.state {
	case stateCompletingRebalance, stateStable:
		if unchanged && (g.state == stateCompletingRebalance || m.id != g.leader) {
			m.deadline = t.Add(m.sessionTimeout)
			return now(s.joinResponse(g, m, pj.version))
		}
		s.setJoin(m, r, protos, pj, t)
		s.prepareRebalance(g, t)
	default:
		s.setJoin(m, r, protos, pj, t)
	}
	s.tryCompleteJoin(g, t)
	return waitFor(s.c, pj.ch, closedResp)
}

// replaceStatic gives a static member that restarted a new member id in
// place of its old one, fencing the old id (KIP-345).
func (s *shard) replaceStatic(g *group, old *member, r *kmsg.JoinGroupRequest, protos []protocol, pj *pendingJoin, clientID, clientHost string, t time.Time, closedResp *kmsg.JoinGroupResponse) Responder {
	s.answerJoin(old, kerr.FencedInstanceID.Code)
	s.answerSync(old, kerr.FencedInstanceID.Code)
	delete(g.members, old.id)
	newID := newMemberID(clientID)
	wasLeader := g.leader == old.id
	if wasLeader {
		g.leader = newID
	}
	unchanged := sameProtocols(old.protocols, protos)
	old.id, old.clientID, old.clientHost = newID, clientID, clientHost
	g.members[newID] = old
	g.static[old.instanceID] = newID
	if g.state == stateStable && unchanged && !wasLeader {
		old.deadline = t.Add(ms(r.SessionTimeoutMillis))
		return now(s.joinResponse(g, old, pj.version))
	}
	s.setJoin(old, r, protos, pj, t)
	if g.state != statePreparingRebalance {
		s.prepareRebalance(g, t)
	}
	s.tryCompleteJoin(g, t)
	return waitFor(s.c, pj.ch, closedResp)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// prepareRebalance starts a rebalance: every member must rejoin before
// the deadline. A group that was empty first waits the initial delay.
func (s *shard) prepareRebalance(g *group, t time.Time) {
	if g.state == stateCompletingRebalance {
		for _, m := range g.members {
			s.answerSync(m, kerr.RebalanceInProgress.Code)
		}
	}
	wasEmpty := g.state == stateEmpty
	g.setState(statePreparingRebalance, t)
	timeout := g.maxRebalanceTimeout()
	g.initialDelay = wasEmpty && s.c.cfg.InitialRebalanceDelay > 0
	if g.initialDelay {
		g.rebalanceLimit = t.Add(timeout)
		g.rebalanceDeadline = minTime(t.Add(s.c.cfg.InitialRebalanceDelay), g.rebalanceLimit)
	} else {
		g.rebalanceDeadline = t.Add(timeout)
	}
}

func (s *shard) tryCompleteJoin(g *group, t time.Time) {
	if g.state == statePreparingRebalance && !g.initialDelay && g.allJoined() {
		s.completeJoin(g, t)
	}
}

// completeJoin ends PreparingRebalance: members that did not rejoin are
// removed, the generation advances, and every joined member is answered
// (the leader with everyone's metadata, to run the assignor).
func (s *shard) completeJoin(g *group, t time.Time) {
	for _, m := range g.members {
		if m.join == nil {
			s.removeMember(g, m)
		}
	}
	clear(g.pending)
	g.generation++
	g.initialDelay = false
	if len(g.members) == 0 {
		g.protocol, g.leader = "", ""
		g.setState(stateEmpty, t)
		s.persistGroup(g)
		return
	}
	g.protocol = g.selectProtocol()
	order := g.memberOrder()
	if _, ok := g.members[g.leader]; !ok {
		g.leader = order[0]
	}
	g.setState(stateCompletingRebalance, t)
	// The leader has the rebalance timeout to send the assignment.
	g.rebalanceDeadline = t.Add(g.maxRebalanceTimeout())
	for _, id := range order {
		m := g.members[id]
		m.assignment = nil
		resp := s.joinResponse(g, m, m.join.version)
		m.join.ch <- resp
		m.join = nil
		m.deadline = t.Add(m.sessionTimeout)
	}
}

func (s *shard) joinResponse(g *group, m *member, version int16) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Version = version
	resp.Generation, resp.MemberID, resp.LeaderID = g.generation, m.id, g.leader
	pt, p := g.protocolType, g.protocol
	resp.ProtocolType, resp.Protocol = &pt, &p
	if m.id == g.leader {
		for _, id := range g.memberOrder() {
			o := g.members[id]
			rm := kmsg.NewJoinGroupResponseMember()
			rm.MemberID, rm.ProtocolMetadata = o.id, o.metadata(g.protocol)
			if o.instanceID != "" {
				inst := o.instanceID
				rm.InstanceID = &inst
			}
			resp.Members = append(resp.Members, rm)
		}
	}
	return resp
}

// persistGroup writes the group's membership in the background (an empty
// group after its members left: its offsets' retention starts then).
func (s *shard) persistGroup(g *group) {
	wait := s.append([]kv{{groupKey(g.id), groupValue(g)}})
	s.c.wg.Add(1)
	go func() {
		defer s.c.wg.Done()
		if _, err := wait(); err != nil {
			s.c.lg.Warn().Err(err).Str("group", g.id).Msg("group coordinator: group metadata not written")
		}
	}()
}

func (s *shard) answerJoin(m *member, code int16) {
	if m.join == nil {
		return
	}
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Version = m.join.version
	resp.ErrorCode, resp.MemberID, resp.Generation = code, m.id, -1
	m.join.ch <- resp
	m.join = nil
}

func (s *shard) answerSync(m *member, code int16) {
	if m.sync == nil {
		return
	}
	resp := kmsg.NewPtrSyncGroupResponse()
	resp.Version, resp.ErrorCode = m.sync.version, code
	m.sync.ch <- resp
	m.sync = nil
}

func (s *shard) removeMember(g *group, m *member) {
	s.answerJoin(m, kerr.UnknownMemberID.Code)
	s.answerSync(m, kerr.UnknownMemberID.Code)
	delete(g.members, m.id)
	if m.instanceID != "" && g.static[m.instanceID] == m.id {
		delete(g.static, m.instanceID)
	}
}

// memberLeft reacts to a member's removal outside a join.
func (s *shard) memberLeft(g *group, t time.Time) {
	switch g.state {
	case stateStable, stateCompletingRebalance:
		s.prepareRebalance(g, t)
		s.tryCompleteJoin(g, t)
	case statePreparingRebalance:
		s.tryCompleteJoin(g, t)
	}
}

// tick expires sessions and ends rebalances that ran out of time.
func (s *shard) tick(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.expireShares(t)
	for _, g := range s.groups {
		changed := false
		for id, d := range g.pending {
			if t.After(d) {
				delete(g.pending, id)
				changed = true
			}
		}
		for _, m := range g.members {
			if m.join == nil && m.sync == nil && t.After(m.deadline) {
				s.c.lg.Info().Str("group", g.id).Str("member", m.id).Msg("group coordinator: session expired")
				s.removeMember(g, m)
				changed = true
			}
		}
		switch {
		case g.state == statePreparingRebalance && !t.Before(g.rebalanceDeadline):
			s.completeJoin(g, t)
		case g.state == stateCompletingRebalance && !t.Before(g.rebalanceDeadline):
			// The leader never sent the assignment: start over.
			s.prepareRebalance(g, t)
			s.tryCompleteJoin(g, t)
		case changed:
			s.memberLeft(g, t)
		}
	}
}

// SyncGroup delivers the leader's assignment to every member.
func (c *Coordinator) SyncGroup(r *kmsg.SyncGroupRequest) Responder {
	resp := r.ResponseKind().(*kmsg.SyncGroupResponse)
	fail := func(code int16) Responder { resp.ErrorCode = code; return now(resp) }
	s, code := c.lookup(r.Group)
	if code != 0 {
		return fail(code)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[r.Group]
	if s.closed || g == nil {
		return fail(kerr.UnknownMemberID.Code)
	}
	m, code := g.check(r.MemberID, deref(r.InstanceID), r.Generation)
	if code != 0 {
		return fail(code)
	}
	if (r.ProtocolType != nil && *r.ProtocolType != g.protocolType) || (r.Protocol != nil && *r.Protocol != g.protocol) {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	t := time.Now()
	m.deadline = t.Add(m.sessionTimeout)
	switch g.state {
	case stateCompletingRebalance:
	case stateStable:
		s.fillSync(g, m, resp)
		return now(resp)
	default:
		return fail(kerr.RebalanceInProgress.Code)
	}
	s.answerSync(m, kerr.RebalanceInProgress.Code) // a duplicate sync supersedes the first
	ps := &pendingSync{version: r.Version, ch: make(chan *kmsg.SyncGroupResponse, 1)}
	m.sync = ps
	if m.id == g.leader {
		given := map[string][]byte{}
		for _, a := range r.GroupAssignment {
			given[a.MemberID] = bytes.Clone(a.MemberAssignment) // the frame is reused
		}
		for id, o := range g.members {
			o.assignment = given[id]
		}
		gen := g.generation
		wait := s.append([]kv{{groupKey(g.id), groupValue(g)}})
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			_, err := wait()
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.closed || s.groups[g.id] != g || g.generation != gen || g.state != stateCompletingRebalance {
				return // a newer rebalance answered the waiting syncs
			}
			if err != nil {
				c.lg.Warn().Err(err).Str("group", g.id).Msg("group coordinator: assignment not written")
				for _, o := range g.members {
					o.assignment = nil
					s.answerSync(o, appendCode(err))
				}
				s.prepareRebalance(g, time.Now())
				return
			}
			g.setState(stateStable, time.Now())
			for _, o := range g.members {
				if o.sync != nil {
					out := o.sync
					o.sync = nil
					sr := kmsg.NewPtrSyncGroupResponse()
					sr.Version = out.version
					s.fillSync(g, o, sr)
					out.ch <- sr
				}
			}
		}()
	}
	closedResp := r.ResponseKind().(*kmsg.SyncGroupResponse)
	closedResp.ErrorCode = kerr.NotCoordinator.Code
	return waitFor(c, ps.ch, closedResp)
}

func (s *shard) fillSync(g *group, m *member, resp *kmsg.SyncGroupResponse) {
	pt, p := g.protocolType, g.protocol
	resp.ProtocolType, resp.Protocol = &pt, &p
	resp.MemberAssignment = m.assignment
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
}

// check finds a member of the current generation, fencing replaced
// static members.
func (g *group) check(memberID, instance string, generation int32) (*member, int16) {
	if instance != "" {
		if cur, ok := g.static[instance]; ok && cur != memberID {
			return nil, kerr.FencedInstanceID.Code
		}
	}
	m := g.members[memberID]
	if m == nil {
		return nil, kerr.UnknownMemberID.Code
	}
	if generation != g.generation {
		return nil, kerr.IllegalGeneration.Code
	}
	return m, 0
}

// Heartbeat keeps a member's session alive and tells it when to rejoin.
func (c *Coordinator) Heartbeat(r *kmsg.HeartbeatRequest) Responder {
	resp := r.ResponseKind().(*kmsg.HeartbeatResponse)
	s, code := c.lookup(r.Group)
	if code != 0 {
		resp.ErrorCode = code
		return now(resp)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[r.Group]
	if s.closed || g == nil || g.state == stateEmpty {
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return now(resp)
	}
	m, code := g.check(r.MemberID, deref(r.InstanceID), r.Generation)
	if code != 0 {
		resp.ErrorCode = code
		return now(resp)
	}
	m.deadline = time.Now().Add(m.sessionTimeout)
	if g.state == statePreparingRebalance {
		resp.ErrorCode = kerr.RebalanceInProgress.Code
	}
	return now(resp)
}

// LeaveGroup removes members (v3+: several, by member or instance id).
func (c *Coordinator) LeaveGroup(r *kmsg.LeaveGroupRequest) Responder {
	resp := r.ResponseKind().(*kmsg.LeaveGroupResponse)
	s, code := c.lookup(r.Group)
	if code != 0 {
		resp.ErrorCode = code
		return now(resp)
	}
	leaving := r.Members
	if r.Version < 3 {
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID = r.MemberID
		leaving = []kmsg.LeaveGroupRequestMember{m}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[r.Group]
	t := time.Now()
	left := false
	for _, lm := range leaving {
		out := kmsg.NewLeaveGroupResponseMember()
		out.MemberID, out.InstanceID = lm.MemberID, lm.InstanceID
		out.ErrorCode = s.leave(g, lm.MemberID, deref(lm.InstanceID))
		if out.ErrorCode == 0 {
			left = true
		}
		resp.Members = append(resp.Members, out)
	}
	if left {
		s.memberLeft(g, t)
	}
	if r.Version < 3 {
		resp.ErrorCode, resp.Members = resp.Members[0].ErrorCode, nil
	}
	return now(resp)
}

func (s *shard) leave(g *group, memberID, instance string) int16 {
	if s.closed || g == nil {
		return kerr.UnknownMemberID.Code
	}
	if instance != "" {
		cur, ok := g.static[instance]
		if !ok {
			return kerr.UnknownMemberID.Code
		}
		if memberID != "" && cur != memberID {
			return kerr.FencedInstanceID.Code
		}
		memberID = cur
	}
	if _, ok := g.pending[memberID]; ok {
		delete(g.pending, memberID)
		return 0
	}
	m := g.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	s.removeMember(g, m)
	return 0
}
