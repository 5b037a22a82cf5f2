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
