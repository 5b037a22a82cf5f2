package controller

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func mustApply(t *testing.T, s *State, index uint64, cmd Command) Result {
	t.Helper()
	b, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return s.apply(index, b)
}

func threeBrokers(t *testing.T) *State {
	s := emptyState()
	for i := int32(1); i <= 3; i++ {
		if r := mustApply(t, s, uint64(i), Command{Op: OpRegisterBroker, Broker: &BrokerInfo{ID: i, Host: "h", Port: 9091 + i}}); r.Code != 0 {
			t.Fatal(r)
		}
	}
	return s
}

// Every broker holds the same number of replicas and preferred leaders
// rotate, so leadership spreads; replicas of a partition are distinct.
func TestPlacementSpreads(t *testing.T) {
	s := threeBrokers(t)
	id := TopicID{7}
	if r := mustApply(t, s, 10, Command{Op: OpCreateTopic, Topic: "a", TopicID: id, Partitions: 6, ReplicationFactor: 3}); r.Code != 0 {
		t.Fatal(r)
	}
	replicas, leaders := map[int32]int{}, map[int32]int{}
	for _, a := range s.Topic("a").Partitions {
		if hasDuplicates(a.Replicas) || len(a.Replicas) != 3 || !slices.Equal(a.Replicas, a.Bootstrap) || a.Leader != -1 {
			t.Fatalf("bad assignment %+v", a)
		}
		leaders[a.Replicas[0]]++
		for _, r := range a.Replicas {
			replicas[r]++
		}
	}
	for b := int32(1); b <= 3; b++ {
		if replicas[b] != 6 || leaders[b] != 2 {
			t.Fatalf("broker %d: %d replicas, %d preferred leaderships; want 6 and 2", b, replicas[b], leaders[b])
		}
	}
	if s.TopicByID(id) != s.Topic("a") {
		t.Fatal("topic not found by id")
	}
	// Growing keeps the replication factor.
	if r := mustApply(t, s, 11, Command{Op: OpCreatePartitions, Topic: "a", Partitions: 8}); r.Code != 0 {
		t.Fatal(r)
	}
	if p := s.Topic("a").Partitions; len(p) != 8 || len(p[7].Replicas) != 3 {
		t.Fatalf("after growing: %+v", p)
	}
}

func TestApplyRefusals(t *testing.T) {
	s := threeBrokers(t)
	cases := []struct {
		cmd  Command
		want *kerr.Error
	}{
		{Command{Op: OpCreateTopic, Topic: "x", TopicID: TopicID{1}, Partitions: 1, ReplicationFactor: 4}, kerr.InvalidReplicationFactor},
		{Command{Op: OpCreateTopic, Topic: "x", TopicID: TopicID{1}, Partitions: 0, ReplicationFactor: 1}, kerr.InvalidPartitions},
		{Command{Op: OpCreateTopic, Topic: "x", TopicID: TopicID{1}, Partitions: MaxPartitions + 1, ReplicationFactor: 1}, kerr.InvalidPartitions},
		{Command{Op: OpDeleteTopic, Topic: "nope"}, kerr.UnknownTopicOrPartition},
		{Command{Op: OpCreatePartitions, Topic: "nope", Partitions: 3}, kerr.UnknownTopicOrPartition},
		{Command{Op: OpSetReplicas, TopicID: TopicID{9}, Partition: 0, Replicas: []int32{1}}, kerr.UnknownTopicOrPartition},
		{Command{Op: "bogus"}, kerr.InvalidRequest},
	}
	for i, c := range cases {
		if r := mustApply(t, s, uint64(20+i), c.cmd); r.Code != c.want.Code {
			t.Errorf("%+v: code %d (%s), want %s", c.cmd, r.Code, r.Message, c.want.Message)
		}
	}
	if r := s.apply(40, []byte("{not json")); r.Code != kerr.InvalidRequest.Code {
		t.Errorf("garbage: %+v", r)
	}
	mustApply(t, s, 41, Command{Op: OpCreateTopic, Topic: "x", TopicID: TopicID{1}, Partitions: 2, ReplicationFactor: 1})
	// A retried proposal (same topic id) succeeds without a change; another
	// id for the name is refused.
	if r := mustApply(t, s, 42, Command{Op: OpCreateTopic, Topic: "x", TopicID: TopicID{1}, Partitions: 2, ReplicationFactor: 1}); r.Code != 0 {
		t.Errorf("retried create: %+v", r)
	}
	if r := mustApply(t, s, 42, Command{Op: OpCreateTopic, Topic: "x", TopicID: TopicID{2}, Partitions: 2, ReplicationFactor: 1}); r.Code != kerr.TopicAlreadyExists.Code {
		t.Errorf("duplicate create: %+v", r)
	}
	if r := mustApply(t, s, 43, Command{Op: OpCreatePartitions, Topic: "x", Partitions: 2}); r.Code != kerr.InvalidPartitions.Code {
		t.Errorf("shrink: %+v", r)
	}
	if r := mustApply(t, s, 44, Command{Op: OpSetReplicas, TopicID: TopicID{1}, Partition: 0, Replicas: []int32{1, 1}}); r.Code != kerr.InvalidReplicaAssignment.Code {
		t.Errorf("duplicate replicas: %+v", r)
	}
	if r := mustApply(t, s, 45, Command{Op: OpSetReplicas, TopicID: TopicID{1}, Partition: 0, Replicas: []int32{9}}); r.Code != kerr.BrokerNotAvailable.Code {
		t.Errorf("unknown broker: %+v", r)
	}
}

// A published state is never changed: apply works on a clone.
func TestApplyCopyOnWrite(t *testing.T) {
	s := threeBrokers(t)
	mustApply(t, s, 10, Command{Op: OpCreateTopic, Topic: "a", TopicID: TopicID{3}, Partitions: 2, ReplicationFactor: 2})
	old := s
	oldTopic := s.Topic("a")
	oldReplicas := slices.Clone(oldTopic.Partitions[0].Replicas)
	n := s.clone()
	mustApply(t, n, 11, Command{Op: OpSetLeader, TopicID: TopicID{3}, Partition: 0, Leader: 2, Term: 5})
	mustApply(t, n, 12, Command{Op: OpSetReplicas, TopicID: TopicID{3}, Partition: 0, Replicas: []int32{3, 1}})
	mustApply(t, n, 13, Command{Op: OpSetConfigs, Topic: "a", Configs: map[string]string{"retention.ms": "5"}})
	mustApply(t, n, 14, Command{Op: OpDeleteTopic, Topic: "a"})
	if old.Topic("a") != oldTopic || oldTopic.Partitions[0].Leader != -1 || !slices.Equal(oldTopic.Partitions[0].Replicas, oldReplicas) || oldTopic.Configs != nil {
		t.Fatalf("published state changed: %+v", oldTopic)
	}
	if n.Topic("a") != nil || n.TopicByID(TopicID{3}) != nil {
		t.Fatal("delete did not remove the topic")
	}
}

// Leader reports for older terms never overwrite newer ones.
func TestSetLeaderTerms(t *testing.T) {
	s := threeBrokers(t)
	mustApply(t, s, 10, Command{Op: OpCreateTopic, Topic: "a", TopicID: TopicID{3}, Partitions: 1, ReplicationFactor: 3})
	mustApply(t, s, 11, Command{Op: OpSetLeader, TopicID: TopicID{3}, Leader: 2, Term: 5})
	mustApply(t, s, 12, Command{Op: OpSetLeader, TopicID: TopicID{3}, Leader: 1, Term: 4})
	if a := s.Topic("a").Partitions[0]; a.Leader != 2 || a.LeaderTerm != 5 {
		t.Fatalf("stale report won: %+v", a)
	}
	mustApply(t, s, 13, Command{Op: OpSetLeader, TopicID: TopicID{3}, Leader: 3, Term: 6})
	if a := s.Topic("a").Partitions[0]; a.Leader != 3 {
		t.Fatalf("newer report lost: %+v", a)
	}
	// Producer id blocks never overlap.
	a := mustApply(t, s, 14, Command{Op: OpAllocProducerIDs})
	b := mustApply(t, s, 15, Command{Op: OpAllocProducerIDs})
	if b.Value-a.Value != ProducerIDBlock {
		t.Fatalf("blocks %d and %d", a.Value, b.Value)
	}
	// The state survives a snapshot round trip, index lookups included.
	enc, err := s.encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeState(enc)
	if err != nil {
		t.Fatal(err)
	}
	if d.TopicByID(TopicID{3}) == nil || d.NextProducerID != s.NextProducerID || len(d.Brokers) != 3 || d.Index != 15 {
		t.Fatalf("decoded %+v", d)
	}
}

// A move: reassign adds the new replicas next to the old ones (so both
// sets host the partition) and records the target; completing it leaves
// the target. Repeats are harmless, conflicting or stale ones refused.
func TestReassign(t *testing.T) {
	s := threeBrokers(t)
	mustApply(t, s, 4, Command{Op: OpRegisterBroker, Broker: &BrokerInfo{ID: 4, Host: "h", Port: 9095}})
	id := TopicID{5}
	mustApply(t, s, 10, Command{Op: OpCreateTopic, Topic: "a", TopicID: id, Partitions: 2, Assignments: [][]int32{{1, 2, 3}, {2, 3, 1}}})
	move := Command{Op: OpReassign, TopicID: id, Partition: 0, Replicas: []int32{2, 3, 4}}
	if r := mustApply(t, s, 11, move); r.Code != kerr.LeaderNotAvailable.Code {
		t.Fatalf("move before any leader: %+v", r)
	}
	mustApply(t, s, 12, Command{Op: OpSetLeader, TopicID: id, Partition: 0, Leader: 1, Term: 2})
	before := s.clone()
	if r := mustApply(t, s, 13, move); r.Code != 0 {
		t.Fatal(r)
	}
	a := s.Topic("a").Partitions[0]
	if !slices.Equal(a.Replicas, []int32{1, 2, 3, 4}) || !slices.Equal(a.Target, []int32{2, 3, 4}) || a.Epoch != 1 || !slices.Equal(a.Bootstrap, []int32{1, 2, 3}) {
		t.Fatalf("during the move: %+v", a)
	}
	if b := before.Topic("a").Partitions[0]; b.Target != nil || len(b.Replicas) != 3 {
		t.Fatalf("published state changed: %+v", b)
	}
	if r := mustApply(t, s, 14, move); r.Code != 0 || s.Topic("a").Partitions[0].Epoch != 1 {
		t.Fatalf("repeat: %+v %+v", r, s.Topic("a").Partitions[0])
	}
	other := Command{Op: OpReassign, TopicID: id, Partition: 0, Replicas: []int32{1, 2, 4}}
	if r := mustApply(t, s, 15, other); r.Code != kerr.ReassignmentInProgress.Code {
		t.Fatalf("second target: %+v", r)
	}
	if r := mustApply(t, s, 16, Command{Op: OpCompleteReassign, TopicID: id, Partition: 0, Replicas: []int32{1, 2, 4}}); r.Code != kerr.ReassignmentInProgress.Code {
		t.Fatalf("completing another target: %+v", r)
	}
	// Growing the topic meanwhile keeps the replication factor of the target.
	mustApply(t, s, 17, Command{Op: OpCreatePartitions, Topic: "a", Partitions: 3})
	if p := s.Topic("a").Partitions[2]; len(p.Replicas) != 3 {
		t.Fatalf("new partition during a move: %+v", p)
	}
	done := Command{Op: OpCompleteReassign, TopicID: id, Partition: 0, Replicas: []int32{2, 3, 4}}
	for i := range 2 { // the second is a repeat
		if r := mustApply(t, s, uint64(18+i), done); r.Code != 0 {
			t.Fatal(r)
		}
	}
	if a := s.Topic("a").Partitions[0]; !slices.Equal(a.Replicas, []int32{2, 3, 4}) || a.Target != nil || a.Epoch != 2 {
		t.Fatalf("after the move: %+v", a)
	}
	if r := mustApply(t, s, 20, Command{Op: OpCompleteReassign, TopicID: id, Partition: 1, Replicas: []int32{1}}); r.Code != kerr.NoReassignmentInProgress.Code {
		t.Fatalf("completing no move: %+v", r)
	}
	// A new order of the same brokers only changes the preferred leader.
	mustApply(t, s, 21, Command{Op: OpSetLeader, TopicID: id, Partition: 1, Leader: 2, Term: 1})
	if r := mustApply(t, s, 22, Command{Op: OpReassign, TopicID: id, Partition: 1, Replicas: []int32{3, 1, 2}}); r.Code != 0 {
		t.Fatal(r)
	}
	if a := s.Topic("a").Partitions[1]; !slices.Equal(a.Replicas, []int32{3, 1, 2}) || a.Target != nil || a.Epoch != 0 {
		t.Fatalf("reorder: %+v", a)
	}
	// Draining brokers take no new replicas; bad targets are refused.
	mustApply(t, s, 23, Command{Op: OpDrainBroker, BrokerID: 4, Draining: true})
	for _, bad := range [][]int32{{3, 1, 4}, {1, 1, 2}, nil, {1, 9}} {
		if r := mustApply(t, s, 24, Command{Op: OpReassign, TopicID: id, Partition: 1, Replicas: bad}); r.Code != kerr.InvalidReplicaAssignment.Code {
			t.Errorf("target %v: %+v", bad, r)
		}
	}
	if r := mustApply(t, s, 25, Command{Op: OpReassign, TopicID: id, Partition: 7, Replicas: []int32{1}}); r.Code != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("unknown partition: %+v", r)
	}
	// The state survives a snapshot round trip with a move in progress.
	mustApply(t, s, 26, Command{Op: OpReassign, TopicID: id, Partition: 1, Replicas: []int32{3, 1}})
	enc, _ := s.encode()
	d, err := decodeState(enc)
	if err != nil || !slices.Equal(d.Topic("a").Partitions[1].Target, []int32{3, 1}) {
		t.Fatalf("decoded %+v %v", d.Topic("a").Partitions[1], err)
	}
}

func TestGroupConfigs(t *testing.T) {
	s := threeBrokers(t)
	mustApply(t, s, 10, Command{Op: OpSetGroupConfigs, Group: "g", Configs: map[string]string{"share.auto.offset.reset": "earliest"}})
	old := s.clone()
	n := s.clone()
	mustApply(t, n, 11, Command{Op: OpSetGroupConfigs, Group: "g", Configs: map[string]string{"share.delivery.count.limit": "3"}})
	mustApply(t, n, 12, Command{Op: OpSetGroupConfigs, Group: "h", Configs: map[string]string{"share.key.ordering": "true"}})
	if got := old.GroupConfigs["g"]; len(got) != 1 || got["share.auto.offset.reset"] != "earliest" || old.GroupConfigs["h"] != nil {
		t.Fatalf("published state changed: %v", old.GroupConfigs)
	}
	if got := n.GroupConfigs["g"]; len(got) != 1 || got["share.delivery.count.limit"] != "3" {
		t.Fatalf("set replaces the whole set: %v", got)
	}
	mustApply(t, n, 13, Command{Op: OpSetGroupConfigs, Group: "g"})
	if _, ok := n.GroupConfigs["g"]; ok {
		t.Fatal("an empty set did not remove the group's configs")
	}
	if r := mustApply(t, n, 14, Command{Op: OpSetGroupConfigs, Configs: map[string]string{"a": "b"}}); r.Code != kerr.InvalidGroupID.Code {
		t.Fatalf("empty group id: %+v", r)
	}
	// Survives encoding (snapshots).
	b, err := n.encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeState(b)
	if err != nil || d.GroupConfigs["h"]["share.key.ordering"] != "true" {
		t.Fatalf("decoded group configs %v, %v", d.GroupConfigs, err)
	}
}
