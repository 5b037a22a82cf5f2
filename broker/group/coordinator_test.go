package group

import (
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/log/batch"
)

// memStore is an in-memory __consumer_offsets partition: appends commit
// at once unless failing is set.
type memStore struct {
	mu      sync.Mutex
	batches [][]byte
	next    int64
	failing error
}

func (m *memStore) Append(b []byte) func() (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failing != nil {
		err := m.failing
		return func() (int64, error) { return 0, err }
	}
	h, err := batch.ParseHeader(b)
	if err != nil {
		return func() (int64, error) { return 0, err }
	}
	b = append([]byte(nil), b...)
	batch.SetBaseOffset(b, m.next)
	base := m.next
	m.next += int64(h.LastOffsetDelta) + 1
	m.batches = append(m.batches, b)
	return func() (int64, error) { return base, nil }
}

func (m *memStore) Read(offset int64, _ int) ([][]byte, func(), int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out [][]byte
	for _, b := range m.batches {
		h, _ := batch.ParseHeader(b)
		if h.LastOffset() >= offset {
			out = append(out, b)
		}
	}
	return out, func() {}, m.next, nil
}

func (m *memStore) LogStart() int64 { return 0 }

// fakeHost leads partition 0 of a one-partition __consumer_offsets.
type fakeHost struct {
	mu      sync.Mutex
	store   *memStore
	term    uint64
	leading bool
	topics  map[string]bool // nil: every topic exists
}

func (h *fakeHost) OffsetsPartitions() int32 { return 1 }

func (h *fakeHost) OffsetsPartition(int32) (Store, uint64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.store, h.term, h.leading
}

func (h *fakeHost) PartitionExists(topic string, _ int32) (bool, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.topics == nil || h.topics[topic], true
}

func (h *fakeHost) Topic(name string) (TopicInfo, bool) {
	if ok, _ := h.PartitionExists(name, 0); !ok {
		return TopicInfo{}, false
	}
	return TopicInfo{ID: [16]byte{1, byte(len(name))}, Partitions: 3}, true
}

func (h *fakeHost) setLeader(leading bool, term uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.leading, h.term = leading, term
}

func newTestCoordinator(t *testing.T, h *fakeHost, cfg Config) *Coordinator {
	t.Helper()
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t))
	if cfg.MinSessionTimeout == 0 {
		cfg.MinSessionTimeout = 10 * time.Millisecond
	}
	if cfg.InitialRebalanceDelay == 0 {
		cfg.InitialRebalanceDelay = -1
	}
	cfg.Tick = 5 * time.Millisecond
	c := New(cfg, h)
	t.Cleanup(c.Close)
	waitLoaded(t, c, "g")
	return c
}

// waitLoaded waits until group's shard serves requests.
func waitLoaded(t *testing.T, c *Coordinator, group string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, code := c.shardFor(group); code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("shard never loaded")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type joinReq struct {
	member, instance string
	session          time.Duration
	protocols        []string
}

func join(c *Coordinator, group string, j joinReq) (Responder, *kmsg.JoinGroupRequest) {
	r := kmsg.NewPtrJoinGroupRequest()
	r.Version = 9
	r.Group, r.MemberID, r.ProtocolType = group, j.member, "consumer"
	if j.instance != "" {
		r.InstanceID = &j.instance
	}
	if j.session == 0 {
		j.session = 10 * time.Second
	}
	r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = int32(j.session.Milliseconds()), 5000
	if j.protocols == nil {
		j.protocols = []string{"range"}
	}
	for _, p := range j.protocols {
		jp := kmsg.NewJoinGroupRequestProtocol()
		md := kmsg.ConsumerMemberMetadata{Topics: []string{"t"}}
		jp.Name, jp.Metadata = p, md.AppendTo(nil)
		r.Protocols = append(r.Protocols, jp)
	}
	return c.JoinGroup(r, "client", "/127.0.0.1"), r
}

// joinNew joins as a new dynamic member (KIP-394: twice).
func joinNew(t *testing.T, c *Coordinator, group string) string {
	t.Helper()
	resp, _ := join(c, group, joinReq{})
	jr := resp().(*kmsg.JoinGroupResponse)
	if jr.ErrorCode != kerr.MemberIDRequired.Code || jr.MemberID == "" {
		t.Fatalf("first join: code %d member %q, want MEMBER_ID_REQUIRED with an id", jr.ErrorCode, jr.MemberID)
	}
	return jr.MemberID
}

// async runs a blocking responder.
func async(r Responder) <-chan kmsg.Response {
	ch := make(chan kmsg.Response, 1)
	go func() { ch <- r() }()
	return ch
}

func recv[T kmsg.Response](t *testing.T, ch <-chan kmsg.Response) T {
	t.Helper()
	select {
	case r := <-ch:
		return r.(T)
	case <-time.After(10 * time.Second):
		t.Fatal("no response")
	}
	var zero T
	return zero
}

func syncGroup(c *Coordinator, group, member string, gen int32, assign map[string]string) Responder {
	r := kmsg.NewPtrSyncGroupRequest()
	r.Version = 5
	r.Group, r.MemberID, r.Generation = group, member, gen
	pt, p := "consumer", "range"
	r.ProtocolType, r.Protocol = &pt, &p
	for m, a := range assign {
		ga := kmsg.NewSyncGroupRequestGroupAssignment()
		ga.MemberID, ga.MemberAssignment = m, []byte(a)
		r.GroupAssignment = append(r.GroupAssignment, ga)
	}
	return c.SyncGroup(r)
}

func heartbeat(c *Coordinator, group, member string, gen int32) int16 {
	r := kmsg.NewPtrHeartbeatRequest()
	r.Version = 4
	r.Group, r.MemberID, r.Generation = group, member, gen
	return r.ResponseKind().(*kmsg.HeartbeatResponse).ErrorCode + c.Heartbeat(r)().(*kmsg.HeartbeatResponse).ErrorCode
}

// formGroup makes a stable two-member group and returns the member ids
// (leader first) and the generation.
func formGroup(t *testing.T, c *Coordinator, group string) (leader, follower string, gen int32) {
	t.Helper()
	a, b := joinNew(t, c, group), joinNew(t, c, group)
	ra, _ := join(c, group, joinReq{member: a})
	rb, _ := join(c, group, joinReq{member: b})
	ja, jb := recv[*kmsg.JoinGroupResponse](t, async(ra)), recv[*kmsg.JoinGroupResponse](t, async(rb))
	if ja.ErrorCode != 0 || jb.ErrorCode != 0 {
		t.Fatalf("join codes %d %d", ja.ErrorCode, jb.ErrorCode)
	}
	if ja.Generation != jb.Generation || ja.LeaderID != jb.LeaderID {
		t.Fatalf("members disagree: %+v %+v", ja, jb)
	}
	leader, follower = ja.LeaderID, a
	if leader == a {
		follower = b
	}
	lead := ja
	if jb.MemberID == leader {
		lead = jb
	}
	if len(lead.Members) != 2 {
		t.Fatalf("leader got %d members, want 2", len(lead.Members))
	}
	fs := async(syncGroup(c, group, follower, ja.Generation, nil))
	ls := async(syncGroup(c, group, leader, ja.Generation, map[string]string{leader: "L", follower: "F"}))
	if got := recv[*kmsg.SyncGroupResponse](t, ls); got.ErrorCode != 0 || string(got.MemberAssignment) != "L" {
		t.Fatalf("leader sync: code %d assignment %q", got.ErrorCode, got.MemberAssignment)
	}
	if got := recv[*kmsg.SyncGroupResponse](t, fs); got.ErrorCode != 0 || string(got.MemberAssignment) != "F" {
		t.Fatalf("follower sync: code %d assignment %q", got.ErrorCode, got.MemberAssignment)
	}
	return leader, follower, ja.Generation
}

func TestJoinSyncHeartbeat(t *testing.T) {
	c := newTestCoordinator(t, &fakeHost{store: &memStore{}, term: 1, leading: true}, Config{})
	leader, follower, gen := formGroup(t, c, "g")
	if gen != 1 {
		t.Errorf("generation %d, want 1", gen)
	}
	for _, m := range []string{leader, follower} {
		if code := heartbeat(c, "g", m, gen); code != 0 {
			t.Errorf("heartbeat %s: code %d", m, code)
		}
	}
	if code := heartbeat(c, "g", leader, gen+1); code != kerr.IllegalGeneration.Code {
		t.Errorf("heartbeat with a wrong generation: code %d", code)
	}
	if code := heartbeat(c, "g", "nobody", gen); code != kerr.UnknownMemberID.Code {
		t.Errorf("heartbeat of an unknown member: code %d", code)
	}
	// A third member makes the others rejoin.
	third := joinNew(t, c, "g")
	r3, _ := join(c, "g", joinReq{member: third})
	ch3 := async(r3)
	if code := heartbeat(c, "g", leader, gen); code != kerr.RebalanceInProgress.Code {
		t.Errorf("heartbeat during a rebalance: code %d", code)
	}
	rl, _ := join(c, "g", joinReq{member: leader})
	rf, _ := join(c, "g", joinReq{member: follower})
	chl, chf := async(rl), async(rf)
	for _, ch := range []<-chan kmsg.Response{ch3, chl, chf} {
		if j := recv[*kmsg.JoinGroupResponse](t, ch); j.ErrorCode != 0 || j.Generation != gen+1 || j.LeaderID != leader {
			t.Errorf("rejoin: code %d generation %d leader %s, want 0 %d %s", j.ErrorCode, j.Generation, j.LeaderID, gen+1, leader)
		}
	}
}

func TestSessionExpiryRemovesMember(t *testing.T) {
	c := newTestCoordinator(t, &fakeHost{store: &memStore{}, term: 1, leading: true}, Config{})
	a, b := joinNew(t, c, "g"), joinNew(t, c, "g")
	ra, _ := join(c, "g", joinReq{member: a, session: 10 * time.Second})
	rb, _ := join(c, "g", joinReq{member: b, session: 50 * time.Millisecond})
	ja, jb := recv[*kmsg.JoinGroupResponse](t, async(ra)), recv[*kmsg.JoinGroupResponse](t, async(rb))
	ls := async(syncGroup(c, "g", ja.LeaderID, ja.Generation, map[string]string{a: "A", b: "B"}))
	other := a
	if ja.LeaderID == a {
		other = b
	}
	recv[*kmsg.SyncGroupResponse](t, async(syncGroup(c, "g", other, jb.Generation, nil)))
	recv[*kmsg.SyncGroupResponse](t, ls)
	// b stops heartbeating; a keeps going and is told to rejoin.
	deadline := time.Now().Add(5 * time.Second)
	for heartbeat(c, "g", a, ja.Generation) != kerr.RebalanceInProgress.Code {
		if time.Now().After(deadline) {
			t.Fatal("b's session never expired")
		}
		time.Sleep(5 * time.Millisecond)
	}
	r, _ := join(c, "g", joinReq{member: a})
	j := recv[*kmsg.JoinGroupResponse](t, async(r))
	if j.ErrorCode != 0 || j.Generation != ja.Generation+1 || j.LeaderID != a || len(j.Members) != 1 {
		t.Fatalf("after expiry: %+v", j)
	}
}

func commit(c *Coordinator, group, member string, gen int32, topic string, part int32, offset int64) int16 {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version = 8
	r.Group, r.MemberID, r.Generation = group, member, gen
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	md := "meta"
	rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = part, offset, 7, &md
	rt.Partitions = append(rt.Partitions, rp)
	r.Topics = append(r.Topics, rt)
	return c.OffsetCommit(r)().(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
}

func fetchOffset(t *testing.T, c *Coordinator, group, topic string, part int32) (int64, int32, int16) {
	t.Helper()
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version = 8
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	rt := kmsg.NewOffsetFetchRequestGroupTopic()
	rt.Topic, rt.Partitions = topic, []int32{part}
	rg.Topics = append(rg.Topics, rt)
	r.Groups = append(r.Groups, rg)
	g := c.OffsetFetch(r)().(*kmsg.OffsetFetchResponse).Groups[0]
	if g.ErrorCode != 0 {
		return -1, -1, g.ErrorCode
	}
	p := g.Topics[0].Partitions[0]
	return p.Offset, p.LeaderEpoch, p.ErrorCode
}

func TestOffsetsSurviveCoordinatorMove(t *testing.T) {
	store := &memStore{}
	h := &fakeHost{store: store, term: 1, leading: true}
	c := newTestCoordinator(t, h, Config{})
	leader, follower, gen := formGroup(t, c, "g")
	if code := commit(c, "g", leader, gen, "t", 0, 42); code != 0 {
		t.Fatalf("commit: code %d", code)
	}
	if code := commit(c, "g", follower, gen, "t", 1, 7); code != 0 {
		t.Fatalf("commit: code %d", code)
	}
	if code := commit(c, "g", leader, gen, "t", 0, 43); code != 0 {
		t.Fatalf("commit: code %d", code)
	}
	if code := commit(c, "g", leader, gen+1, "t", 0, 99); code != kerr.IllegalGeneration.Code {
		t.Errorf("commit from a stale generation: code %d", code)
	}
	if code := commit(c, "g", "", -1, "t", 0, 0); code != kerr.UnknownMemberID.Code {
		t.Errorf("admin commit to an active group: code %d", code)
	}
	// Leadership moves away and back (a new term): the shard is rebuilt
	// from the log alone.
	h.setLeader(false, 1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, code := c.shardFor("g"); code == kerr.NotCoordinator.Code {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still coordinating after losing leadership")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if code := heartbeat(c, "g", leader, gen); code != kerr.NotCoordinator.Code {
		t.Errorf("heartbeat away from the coordinator: code %d", code)
	}
	h.setLeader(true, 3)
	waitLoaded(t, c, "g")
	if off, epoch, code := fetchOffset(t, c, "g", "t", 0); off != 43 || epoch != 7 || code != 0 {
		t.Errorf("offset after reload = %d epoch %d code %d, want 43 7 0", off, epoch, code)
	}
	if off, _, _ := fetchOffset(t, c, "g", "t", 1); off != 7 {
		t.Errorf("offset of partition 1 after reload = %d, want 7", off)
	}
	if off, _, _ := fetchOffset(t, c, "g", "t", 2); off != -1 {
		t.Errorf("uncommitted partition = %d, want -1", off)
	}
	// The membership came back too: the members heartbeat on.
	for _, m := range []string{leader, follower} {
		if code := heartbeat(c, "g", m, gen); code != 0 {
			t.Errorf("heartbeat after reload: code %d", code)
		}
	}
	if got := describe(c, "g"); got.State != "Stable" || len(got.Members) != 2 {
		t.Errorf("after reload: state %s with %d members", got.State, len(got.Members))
	}
}

func describe(c *Coordinator, group string) kmsg.DescribeGroupsResponseGroup {
	r := kmsg.NewPtrDescribeGroupsRequest()
	r.Version = 5
	r.Groups = []string{group}
	return c.DescribeGroups(r)().(*kmsg.DescribeGroupsResponse).Groups[0]
}

func TestStaticMemberRejoinsWithoutRebalance(t *testing.T) {
	// The initial delay lets both static members into the first generation.
	c := newTestCoordinator(t, &fakeHost{store: &memStore{}, term: 1, leading: true}, Config{InitialRebalanceDelay: 300 * time.Millisecond})
	ra, _ := join(c, "g", joinReq{instance: "a"})
	rb, _ := join(c, "g", joinReq{instance: "b"})
	ja, jb := recv[*kmsg.JoinGroupResponse](t, async(ra)), recv[*kmsg.JoinGroupResponse](t, async(rb))
	if ja.ErrorCode != 0 || jb.ErrorCode != 0 || ja.Generation != 1 || jb.Generation != 1 {
		t.Fatalf("static joins: codes %d %d generations %d %d, want one generation 1", ja.ErrorCode, jb.ErrorCode, ja.Generation, jb.Generation)
	}
	leader, other := ja, jb
	if jb.MemberID == ja.LeaderID {
		leader, other = jb, ja
	}
	os := async(syncGroup(c, "g", other.MemberID, other.Generation, nil))
	recv[*kmsg.SyncGroupResponse](t, async(syncGroup(c, "g", leader.MemberID, leader.Generation, map[string]string{leader.MemberID: "L", other.MemberID: "O"})))
	recv[*kmsg.SyncGroupResponse](t, os)
	// The non-leader restarts: same instance id, no member id.
	inst := "a"
	if other.MemberID == jb.MemberID {
		inst = "b"
	}
	rr, _ := join(c, "g", joinReq{instance: inst})
	j := recv[*kmsg.JoinGroupResponse](t, async(rr))
	if j.ErrorCode != 0 || j.Generation != other.Generation || j.MemberID == other.MemberID {
		t.Fatalf("static rejoin: code %d generation %d member %s (old %s)", j.ErrorCode, j.Generation, j.MemberID, other.MemberID)
	}
	s := recv[*kmsg.SyncGroupResponse](t, async(syncGroup(c, "g", j.MemberID, j.Generation, nil)))
	if s.ErrorCode != 0 || string(s.MemberAssignment) != "O" {
		t.Errorf("static member's assignment after rejoin: code %d %q, want O", s.ErrorCode, s.MemberAssignment)
	}
	r := kmsg.NewPtrHeartbeatRequest()
	r.Version = 4
	r.Group, r.MemberID, r.Generation, r.InstanceID = "g", other.MemberID, other.Generation, &inst
	if code := c.Heartbeat(r)().(*kmsg.HeartbeatResponse).ErrorCode; code != kerr.FencedInstanceID.Code {
		t.Errorf("old member id of a replaced static member: code %d, want FENCED_INSTANCE_ID", code)
	}
	if code := heartbeat(c, "g", leader.MemberID, leader.Generation); code != 0 {
		t.Errorf("leader was made to rebalance: code %d", code)
	}
}

func TestLeaveAndDeleteGroup(t *testing.T) {
	store := &memStore{}
	h := &fakeHost{store: store, term: 1, leading: true}
	c := newTestCoordinator(t, h, Config{})
	leader, follower, gen := formGroup(t, c, "g")
	if code := commit(c, "g", leader, gen, "t", 0, 5); code != 0 {
		t.Fatal(code)
	}
	del := func() int16 {
		r := kmsg.NewPtrDeleteGroupsRequest()
		r.Groups = []string{"g"}
		return c.DeleteGroups(r)().(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode
	}
	if code := del(); code != kerr.NonEmptyGroup.Code {
		t.Errorf("deleting an active group: code %d", code)
	}
	lr := kmsg.NewPtrLeaveGroupRequest()
	lr.Version = 4
	lr.Group = "g"
	for _, m := range []string{leader, follower} {
		lm := kmsg.NewLeaveGroupRequestMember()
		lm.MemberID = m
		lr.Members = append(lr.Members, lm)
	}
	if resp := c.LeaveGroup(lr)().(*kmsg.LeaveGroupResponse); resp.ErrorCode != 0 || resp.Members[0].ErrorCode != 0 || resp.Members[1].ErrorCode != 0 {
		t.Fatalf("leave: %+v", resp)
	}
	if got := describe(c, "g"); got.State != "Empty" {
		t.Fatalf("after everyone left: %s", got.State)
	}
	// An empty group takes admin commits (offset resets).
	if code := commit(c, "g", "", -1, "t", 0, 1); code != 0 {
		t.Errorf("admin commit to an empty group: code %d", code)
	}
	if off, _, _ := fetchOffset(t, c, "g", "t", 0); off != 1 {
		t.Errorf("offset after reset = %d, want 1", off)
	}
	if code := del(); code != 0 {
		t.Fatalf("delete: code %d", code)
	}
	if code := del(); code != kerr.GroupIDNotFound.Code {
		t.Errorf("second delete: code %d", code)
	}
	// Deleted in the log too: a reload finds nothing.
	h.setLeader(true, 2)
	waitLoaded(t, c, "g")
	if off, _, _ := fetchOffset(t, c, "g", "t", 0); off != -1 {
		t.Errorf("offset after delete and reload = %d, want -1", off)
	}
}

func TestFailedAppendIsNotApplied(t *testing.T) {
	store := &memStore{}
	c := newTestCoordinator(t, &fakeHost{store: store, term: 1, leading: true}, Config{})
	if code := commit(c, "g", "", -1, "t", 0, 10); code != 0 {
		t.Fatal(code)
	}
	store.mu.Lock()
	store.failing = kerr.NotLeaderForPartition
	store.mu.Unlock()
	if code := commit(c, "g", "", -1, "t", 0, 20); code != kerr.NotCoordinator.Code {
		t.Errorf("commit that failed to replicate: code %d, want NOT_COORDINATOR", code)
	}
	if off, _, _ := fetchOffset(t, c, "g", "t", 0); off != 10 {
		t.Errorf("offset = %d, want 10 (the failed commit must not apply)", off)
	}
}

func TestBadRequests(t *testing.T) {
	h := &fakeHost{store: &memStore{}, term: 1, leading: true, topics: map[string]bool{"t": true}}
	c := newTestCoordinator(t, h, Config{MaxGroupSize: 2, MaxSessionTimeout: time.Minute})
	code := func(r Responder) int16 { return r().(*kmsg.JoinGroupResponse).ErrorCode }
	if r, _ := join(c, "", joinReq{}); code(r) != kerr.InvalidGroupID.Code {
		t.Error("empty group id accepted")
	}
	if r, _ := join(c, "g", joinReq{session: time.Hour}); code(r) != kerr.InvalidSessionTimeout.Code {
		t.Error("session timeout above the maximum accepted")
	}
	if r, _ := join(c, "g", joinReq{member: "made-up"}); code(r) != kerr.UnknownMemberID.Code {
		t.Error("unknown member id accepted for a new group")
	}
	joinNew(t, c, "g")
	joinNew(t, c, "g")
	if r, _ := join(c, "g", joinReq{}); code(r) != kerr.GroupMaxSizeReached.Code {
		t.Error("group grew past group.max.size")
	}
	if code := commit(c, "h", "", -1, "missing", 0, 1); code != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("commit to a missing topic: code %d", code)
	}
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version = 8
	r.Group, r.Generation = "h", -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	big := string(make([]byte, 5000))
	rp.Metadata = &big
	rt.Partitions = append(rt.Partitions, rp)
	r.Topics = append(r.Topics, rt)
	if got := c.OffsetCommit(r)().(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode; got != kerr.OffsetMetadataTooLarge.Code {
		t.Errorf("oversized metadata: code %d", got)
	}
}

func TestEmptyGroupOffsetsExpire(t *testing.T) {
	c := newTestCoordinator(t, &fakeHost{store: &memStore{}, term: 1, leading: true}, Config{OffsetsRetention: time.Millisecond})
	if code := commit(c, "g", "", -1, "t", 0, 3); code != 0 {
		t.Fatal(code)
	}
	s, _ := c.shardFor("g")
	s.cleanup(time.Now().Add(time.Second))
	if off, _, _ := fetchOffset(t, c, "g", "t", 0); off != -1 {
		t.Errorf("offset after retention = %d, want -1", off)
	}
	if got := describe(c, "g"); got.State != "Dead" {
		t.Errorf("expired group state %s, want Dead", got.State)
	}
}

func TestPartitionOfMatchesKafka(t *testing.T) {
	// Java: "test".hashCode() = 3556498; "polygenelubricants".hashCode()
	// = Integer.MIN_VALUE, which Kafka's Utils.abs maps to 0.
	for _, tc := range []struct {
		group string
		n     int32
		want  int32
	}{
		{"test", 50, 3556498 % 50},
		{"polygenelubricants", 50, 0},
		{"", 7, 0},
	} {
		if got := PartitionOf(tc.group, tc.n); got != tc.want {
			t.Errorf("PartitionOf(%q, %d) = %d, want %d", tc.group, tc.n, got, tc.want)
		}
	}
}

func TestOffsetsOfDeletedTopicsAreRemoved(t *testing.T) {
	h := &fakeHost{store: &memStore{}, term: 1, leading: true, topics: map[string]bool{"kept": true, "gone": true}}
	c := newTestCoordinator(t, h, Config{})
	for _, topic := range []string{"kept", "gone"} {
		if code := commit(c, "g", "", -1, topic, 0, 5); code != 0 {
			t.Fatal(code)
		}
	}
	h.mu.Lock()
	delete(h.topics, "gone")
	h.mu.Unlock()
	s, _ := c.shardFor("g")
	s.cleanup(time.Now()) // too recent: the broker may not have heard of the topic yet
	if off, _, _ := fetchOffset(t, c, "g", "gone", 0); off != 5 {
		t.Fatalf("a fresh commit was removed: offset %d", off)
	}
	s.cleanup(time.Now().Add(2 * time.Minute))
	if off, _, _ := fetchOffset(t, c, "g", "gone", 0); off != -1 {
		t.Errorf("offset of a deleted topic = %d, want -1", off)
	}
	if off, _, _ := fetchOffset(t, c, "g", "kept", 0); off != 5 {
		t.Errorf("offset of an existing topic = %d, want 5", off)
	}
	// Removed in the log, not only in memory.
	h.setLeader(true, 2)
	waitLoaded(t, c, "g")
	if off, _, _ := fetchOffset(t, c, "g", "gone", 0); off != -1 {
		t.Errorf("offset of a deleted topic came back after a reload: %d", off)
	}
}

func TestOffsetDeleteRefusesSubscribedTopics(t *testing.T) {
	c := newTestCoordinator(t, &fakeHost{store: &memStore{}, term: 1, leading: true}, Config{})
	leader, _, gen := formGroup(t, c, "g") // members subscribe to "t"
	for _, topic := range []string{"t", "old"} {
		if code := commit(c, "g", leader, gen, topic, 0, 9); code != 0 {
			t.Fatal(code)
		}
	}
	del := func(topic string) (int16, int16) {
		r := kmsg.NewPtrOffsetDeleteRequest()
		r.Group = "g"
		rt := kmsg.NewOffsetDeleteRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewOffsetDeleteRequestTopicPartition()
		rt.Partitions = append(rt.Partitions, rp)
		r.Topics = append(r.Topics, rt)
		resp := c.OffsetDelete(r)().(*kmsg.OffsetDeleteResponse)
		if len(resp.Topics) == 0 {
			return resp.ErrorCode, -1
		}
		return resp.ErrorCode, resp.Topics[0].Partitions[0].ErrorCode
	}
	if top, part := del("t"); top != 0 || part != kerr.GroupSubscribedToTopic.Code {
		t.Errorf("deleting offsets of a subscribed topic: codes %d/%d, want GROUP_SUBSCRIBED_TO_TOPIC", top, part)
	}
	if top, part := del("old"); top != 0 || part != 0 {
		t.Errorf("deleting offsets of an unsubscribed topic: codes %d/%d", top, part)
	}
	if off, _, _ := fetchOffset(t, c, "g", "old", 0); off != -1 {
		t.Errorf("offset after OffsetDelete = %d, want -1", off)
	}
	if off, _, _ := fetchOffset(t, c, "g", "t", 0); off != 9 {
		t.Errorf("offset of the subscribed topic = %d, want 9", off)
	}
	r := kmsg.NewPtrOffsetDeleteRequest()
	r.Group = "nope"
	if code := c.OffsetDelete(r)().(*kmsg.OffsetDeleteResponse).ErrorCode; code != kerr.GroupIDNotFound.Code {
		t.Errorf("OffsetDelete of an unknown group: code %d", code)
	}
}
