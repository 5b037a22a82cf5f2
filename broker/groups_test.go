package broker

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/broker/config"
)

// groupCluster starts three brokers whose group settings suit tests.
func groupCluster(t *testing.T) map[int32]*Broker {
	t.Helper()
	return startCluster(t, 3, 3, func(c *config.Config) {
		c.OffsetsTopicPartitions = 3
		c.GroupMinSessionTimeout = 500 * time.Millisecond
		c.GroupInitialRebalanceDelay = 200 * time.Millisecond
	})
}

// groupMember is one franz-go group consumer recording what it got and
// what it was assigned.
type groupMember struct {
	name string
	cl   *kgo.Client

	mu       sync.Mutex
	assigned map[int32]bool
	revoked  [][]int32 // each revocation's partitions
	lost     bool
}

func (m *groupMember) owned() map[int32]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[int32]bool{}
	for p := range m.assigned {
		out[p] = true
	}
	return out
}

// seen collects every record the members consume, by value.
type seen struct {
	mu   sync.Mutex
	vals map[string]int
}

func (s *seen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.vals)
}

func startMember(t *testing.T, b *Broker, name, group, topic string, s *seen, opts ...kgo.Opt) *groupMember {
	t.Helper()
	m := &groupMember{name: name, assigned: map[int32]bool{}}
	base := []kgo.Opt{
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ClientID(name),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.SessionTimeout(3 * time.Second), kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.RebalanceTimeout(5 * time.Second), kgo.AutoCommitInterval(200 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range a[topic] {
				m.assigned[p] = true
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.revoked = append(m.revoked, r[topic])
			for _, p := range r[topic] {
				delete(m.assigned, p)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.lost = true
			for _, p := range r[topic] {
				delete(m.assigned, p)
			}
		}),
	}
	cl, err := kgo.NewClient(append(append(base, kgo.SeedBrokers(b.KafkaAddr())), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	m.cl = cl
	go func() {
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			s.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { s.vals[string(r.Value)]++ })
			s.mu.Unlock()
		}
	}()
	t.Cleanup(cl.Close)
	return m
}

func produceN(t *testing.T, cl *kgo.Client, topic string, from, n int) {
	t.Helper()
	var recs []*kgo.Record
	for i := from; i < from+n; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i % 97)), Value: []byte(strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func createRF(t *testing.T, cl *kgo.Client, topic string, partitions int32, rf int16) {
	t.Helper()
	r, err := kadm.NewClient(cl).CreateTopic(ctx(t), partitions, rf, nil, topic)
	if err != nil || r.Err != nil {
		t.Fatalf("create %s: %v %v", topic, err, r.Err)
	}
}

// TestGroupMembersSharePartitions: three members share six partitions,
// members leave and join, every record is consumed, and with the
// cooperative-sticky assignor a join moves only some partitions.
func TestGroupMembersSharePartitions(t *testing.T) {
	bs := groupCluster(t)
	cl := newClient(t, bs[1])
	createRF(t, cl, "signups", 6, 3)
	produceN(t, cl, "signups", 0, 600)

	s := &seen{vals: map[string]int{}}
	var members []*groupMember
	for i := range 3 {
		members = append(members, startMember(t, bs[int32(i+1)], fmt.Sprintf("m%d", i), "email", "signups", s,
			kgo.Balancers(kgo.CooperativeStickyBalancer())))
	}
	waitFor(t, 60*time.Second, "600 records consumed", func() bool { return s.count() == 600 })
	waitFor(t, 30*time.Second, "six partitions spread over three members", func() bool {
		total := 0
		for _, m := range members {
			n := len(m.owned())
			if n == 0 {
				return false
			}
			total += n
		}
		return total == 6
	})
	before := map[string]map[int32]bool{}
	for _, m := range members {
		before[m.name] = m.owned()
	}

	// A fourth member joins: cooperative rebalancing moves partitions to it
	// without taking every partition from everyone.
	m3 := startMember(t, bs[2], "m3", "email", "signups", s, kgo.Balancers(kgo.CooperativeStickyBalancer()))
	waitFor(t, 60*time.Second, "the new member gets partitions", func() bool { return len(m3.owned()) > 0 })
	kept := 0
	for _, m := range members {
		for p := range before[m.name] {
			if m.owned()[p] {
				kept++
			}
		}
		m.mu.Lock()
		for _, r := range m.revoked {
			if len(r) == len(before[m.name]) && len(r) > 0 {
				t.Errorf("%s had all its partitions %v revoked by a join (eager, not cooperative)", m.name, r)
			}
		}
		m.mu.Unlock()
	}
	if kept < 2 {
		t.Errorf("only %d partitions stayed with their owner across the join", kept)
	}

	// One member leaves; the others take over its partitions and nothing
	// produced meanwhile is lost.
	members[0].cl.Close()
	produceN(t, cl, "signups", 600, 300)
	waitFor(t, 60*time.Second, "900 records consumed after a member left", func() bool { return s.count() == 900 })
	waitFor(t, 30*time.Second, "all six partitions owned by the remaining members", func() bool {
		total := 0
		for _, m := range append(members[1:], m3) {
			total += len(m.owned())
		}
		return total == 6
	})
	adm := kadm.NewClient(cl)
	dg, err := adm.DescribeGroups(ctx(t), "email")
	if err != nil || dg.Error() != nil {
		t.Fatalf("describe: %v %v", err, dg.Error())
	}
	if g := dg["email"]; g.State != "Stable" || len(g.Members) != 3 || g.Protocol != "cooperative-sticky" {
		t.Errorf("group after leave: state %s, %d members, protocol %s", g.State, len(g.Members), g.Protocol)
	}
}

// TestGroupSurvivesCoordinatorLoss: the broker coordinating a group stops;
// the group's committed offsets are served by the new coordinator and a
// consumer resumes exactly there.
func TestGroupSurvivesCoordinatorLoss(t *testing.T) {
	bs := groupCluster(t)
	cl := newClient(t, bs[1])
	createRF(t, cl, "orders", 3, 3)
	produceN(t, cl, "orders", 0, 300)

	s := &seen{vals: map[string]int{}}
	m := startMember(t, bs[1], "a", "billing", "orders", s, kgo.DisableAutoCommit())
	waitFor(t, 60*time.Second, "300 records consumed", func() bool { return s.count() == 300 })
	if err := m.cl.CommitUncommittedOffsets(ctx(t)); err != nil {
		t.Fatalf("commit: %v", err)
	}
	m.cl.Close()

	adm := kadm.NewClient(cl)
	fc := adm.FindGroupCoordinators(ctx(t), "billing")
	if fc["billing"].Err != nil {
		t.Fatalf("find coordinator: %v", fc["billing"].Err)
	}
	coord := fc["billing"].NodeID
	bs[coord].Shutdown(context.Background())
	var other *Broker
	for id, b := range bs {
		if id != coord {
			other = b
			break
		}
	}
	cl2 := newClient(t, other)
	produceN(t, cl2, "orders", 300, 60)

	s2 := &seen{vals: map[string]int{}}
	startMember(t, other, "b", "billing", "orders", s2)
	waitFor(t, 60*time.Second, "the 60 new records", func() bool { return s2.count() >= 60 })
	time.Sleep(500 * time.Millisecond) // anything replayed would arrive now
	s2.mu.Lock()
	defer s2.mu.Unlock()
	for v := range s2.vals {
		if n, _ := strconv.Atoi(v); n < 300 {
			t.Errorf("record %s was replayed although its offset was committed", v)
		}
	}
	if len(s2.vals) != 60 {
		t.Errorf("resumed consumer got %d records, want the 60 uncommitted", len(s2.vals))
	}
}

// TestGroupsFanOutAndReplay: two groups each get every record; resetting
// one to a timestamp replays from there through the standard admin API.
func TestGroupsFanOutAndReplay(t *testing.T) {
	bs := groupCluster(t)
	cl := newClient(t, bs[1])
	createRF(t, cl, "clicks", 2, 3)
	produceN(t, cl, "clicks", 0, 100)
	time.Sleep(20 * time.Millisecond)
	mark := time.Now()
	time.Sleep(20 * time.Millisecond)
	produceN(t, cl, "clicks", 100, 50)

	email, analytics := &seen{vals: map[string]int{}}, &seen{vals: map[string]int{}}
	me := startMember(t, bs[2], "e", "email", "clicks", email)
	ma := startMember(t, bs[3], "a", "analytics", "clicks", analytics)
	waitFor(t, 60*time.Second, "both groups get all 150", func() bool { return email.count() == 150 && analytics.count() == 150 })
	for _, m := range []*groupMember{me, ma} {
		if err := m.cl.CommitUncommittedOffsets(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	ma.cl.Close()

	adm := kadm.NewClient(cl)
	lag, err := adm.Lag(ctx(t), "analytics")
	if err != nil || lag.Error() != nil {
		t.Fatalf("lag: %v %v", err, lag.Error())
	}
	if total := lag["analytics"].Lag.Total(); total != 0 {
		t.Errorf("analytics lag %d after consuming everything, want 0", total)
	}
	// Reset analytics to the timestamp: what ListOffsets finds after it.
	listed, err := adm.ListOffsetsAfterMilli(ctx(t), mark.UnixMilli(), "clicks")
	if err != nil || listed.Error() != nil {
		t.Fatalf("list offsets: %v %v", err, listed.Error())
	}
	resp, err := adm.CommitOffsets(ctx(t), "analytics", listed.Offsets())
	if err != nil || resp.Error() != nil {
		t.Fatalf("reset commit: %v %v", err, resp.Error())
	}
	fetched, err := adm.FetchOffsets(ctx(t), "analytics")
	if err != nil || fetched.Error() != nil {
		t.Fatalf("fetch offsets: %v %v", err, fetched.Error())
	}
	var committed int64
	fetched.Each(func(o kadm.OffsetResponse) { committed += o.At })
	if committed != 100 {
		t.Errorf("offsets after reset sum to %d, want 100 (the records before the timestamp)", committed)
	}
	replay := &seen{vals: map[string]int{}}
	startMember(t, bs[1], "a2", "analytics", "clicks", replay)
	waitFor(t, 60*time.Second, "the 50 records after the timestamp replayed", func() bool { return replay.count() == 50 })
	replay.mu.Lock()
	for v := range replay.vals {
		if n, _ := strconv.Atoi(v); n < 100 {
			t.Errorf("replay from the timestamp returned record %s from before it", v)
		}
	}
	replay.mu.Unlock()
	// The email group was not moved.
	eo, err := adm.FetchOffsets(ctx(t), "email")
	if err != nil {
		t.Fatal(err)
	}
	var emailAt int64
	eo.Each(func(o kadm.OffsetResponse) { emailAt += o.At })
	if emailAt != 150 {
		t.Errorf("email offsets sum to %d, want 150", emailAt)
	}
	groups, err := adm.ListGroups(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := groups["email"]; !ok {
		t.Errorf("ListGroups misses email: %v", groups.Groups())
	}
}
