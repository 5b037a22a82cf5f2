package controller

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Operations a Command carries.
const (
	OpInit             = "init"              // ClusterID
	OpRegisterBroker   = "register_broker"   // Broker
	OpCreateTopic      = "create_topic"      // Topic, TopicID, Partitions, ReplicationFactor, Configs
	OpDeleteTopic      = "delete_topic"      // Topic, TopicID
	OpCreatePartitions = "create_partitions" // Topic, Partitions (the new total)
	OpSetConfigs       = "set_configs"       // Topic, Configs (the complete new overrides)
	OpSetGroupConfigs  = "set_group_configs" // Group, Configs (the complete new set; empty removes)
	OpAllocProducerIDs = "alloc_producer_ids"
	OpSetLeader        = "set_leader"   // TopicID, Partition, Leader, Term
	OpSetReplicas      = "set_replicas" // TopicID, Partition, Replicas
	OpDrainBroker      = "drain_broker" // BrokerID, Draining
	// OpReassign starts moving a partition to the replicas in Replicas:
	// the assignment becomes the old replicas plus the new ones, with
	// Target naming the new set. TopicID, Partition, Replicas.
	OpReassign = "reassign"
	// OpCompleteReassign ends a move once the partition's raft membership
	// is Target: Replicas becomes Target. TopicID, Partition, Replicas (the
	// Target it completes, so a stale completion is refused).
	OpCompleteReassign = "complete_reassign"
)

// MaxPartitions bounds a topic's partition count: each is a raft group,
// a directory and open files.
const MaxPartitions = 10000

// ProducerIDBlock is how many producer ids one OpAllocProducerIDs reserves.
const ProducerIDBlock = 1000

// Command is one controller log entry, JSON encoded.
type Command struct {
	Op                string            `json:"op"`
	ClusterID         string            `json:"cluster_id,omitempty"`
	Broker            *BrokerInfo       `json:"broker,omitempty"`
	BrokerID          int32             `json:"broker_id,omitempty"`
	Draining          bool              `json:"draining,omitempty"`
	Topic             string            `json:"topic,omitempty"`
	Group             string            `json:"group,omitempty"`
	TopicID           TopicID           `json:"topic_id"`
	Partitions        int32             `json:"partitions,omitempty"`
	ReplicationFactor int16             `json:"replication_factor,omitempty"`
	Configs           map[string]string `json:"configs,omitempty"`
	Partition         int32             `json:"partition,omitempty"`
	Leader            int32             `json:"leader,omitempty"`
	Term              uint64            `json:"term,omitempty"`
	Replicas          []int32           `json:"replicas,omitempty"`
	// Assignments, when set on OpCreateTopic, places the replicas of each
	// partition explicitly (CreateTopics' replica assignment).
	Assignments [][]int32 `json:"assignments,omitempty"`
}

// Result is what applying a Command answers: a Kafka error code (0 for
// success) with a message, and a value (the first producer id of a block).
type Result struct {
	Code    int16  `json:"code"`
	Message string `json:"message,omitempty"`
	Value   int64  `json:"value,omitempty"`
}

// Err returns the result as an error, nil on success. The error unwraps to
// the *kerr.Error of the code.
func (r Result) Err() error {
	if r.Code == 0 {
		return nil
	}
	return &Error{Code: kerr.ErrorForCode(r.Code), Message: r.Message}
}

// Error is a refused command: a Kafka error and why.
type Error struct {
	Code    error
	Message string
}

func (e *Error) Error() string { return e.Code.Error() + ": " + e.Message }
func (e *Error) Unwrap() error { return e.Code }

func fail(code *kerr.Error, format string, args ...any) Result {
	return Result{Code: code.Code, Message: fmt.Sprintf(format, args...)}
}

// apply applies cmd to s (a private copy) at raft index. It is
// deterministic: every controller replica computes the same state, so
// placement decisions are made here from the state alone.
func (s *State) apply(index uint64, data []byte) Result {
	var cmd Command
	if err := json.Unmarshal(data, &cmd); err != nil {
		return fail(kerr.InvalidRequest, "undecodable command: %v", err)
	}
	s.Index = index
	switch cmd.Op {
	case OpInit:
		if s.ClusterID == "" {
			s.ClusterID = cmd.ClusterID
		}
		return Result{}
	case OpRegisterBroker:
		if cmd.Broker == nil || cmd.Broker.ID < 0 {
			return fail(kerr.InvalidRequest, "register: no broker")
		}
		b := *cmd.Broker
		if old := s.Brokers[b.ID]; old != nil {
			b.Draining = old.Draining
		}
		b.Incarnate = index
		s.Brokers[b.ID] = &b
		return Result{}
	case OpDrainBroker:
		old := s.Brokers[cmd.BrokerID]
		if old == nil {
			return fail(kerr.BrokerNotAvailable, "broker %d is not registered", cmd.BrokerID)
		}
		b := *old
		b.Draining = cmd.Draining
		s.Brokers[b.ID] = &b
		return Result{}
	case OpCreateTopic:
		return s.createTopic(cmd)
	case OpDeleteTopic:
		t := s.Topics[cmd.Topic]
		if t == nil || (cmd.TopicID != TopicID{} && t.ID != cmd.TopicID) {
			return fail(kerr.UnknownTopicOrPartition, "topic %q does not exist", cmd.Topic)
		}
		delete(s.Topics, t.Name)
		delete(s.byID, t.ID)
		return Result{}
	case OpCreatePartitions:
		return s.createPartitions(cmd)
	case OpSetConfigs:
		if s.Topics[cmd.Topic] == nil {
			return fail(kerr.UnknownTopicOrPartition, "topic %q does not exist", cmd.Topic)
		}
		t := s.mutTopic(cmd.Topic)
		t.Configs = maps.Clone(cmd.Configs)
		return Result{}
	case OpSetGroupConfigs:
		if cmd.Group == "" {
			return fail(kerr.InvalidGroupID, "empty group id")
		}
		if len(cmd.Configs) == 0 {
			if s.GroupConfigs != nil {
				delete(s.GroupConfigs, cmd.Group)
			}
			return Result{}
		}
		if s.GroupConfigs == nil {
			s.GroupConfigs = map[string]map[string]string{}
		}
		s.GroupConfigs[cmd.Group] = maps.Clone(cmd.Configs)
		return Result{}
	case OpAllocProducerIDs:
		first := s.NextProducerID
		s.NextProducerID += ProducerIDBlock
		return Result{Value: first}
	case OpSetLeader:
		t := s.byID[cmd.TopicID]
		if t == nil || cmd.Partition < 0 || int(cmd.Partition) >= len(t.Partitions) {
			return fail(kerr.UnknownTopicOrPartition, "no partition %s/%d", cmd.TopicID, cmd.Partition)
		}
		if a := t.Partitions[cmd.Partition]; cmd.Term < a.LeaderTerm || (cmd.Term == a.LeaderTerm && cmd.Leader == a.Leader) {
			return Result{} // stale or known: nothing to change
		}
		t = s.mutTopic(t.Name)
		t.Partitions[cmd.Partition].Leader, t.Partitions[cmd.Partition].LeaderTerm = cmd.Leader, cmd.Term
		return Result{}
	case OpSetReplicas:
		t := s.byID[cmd.TopicID]
		if t == nil || cmd.Partition < 0 || int(cmd.Partition) >= len(t.Partitions) {
			return fail(kerr.UnknownTopicOrPartition, "no partition %s/%d", cmd.TopicID, cmd.Partition)
		}
		for _, id := range cmd.Replicas {
			if s.Brokers[id] == nil {
				return fail(kerr.BrokerNotAvailable, "broker %d is not registered", id)
			}
		}
		if len(cmd.Replicas) == 0 || hasDuplicates(cmd.Replicas) {
			return fail(kerr.InvalidReplicaAssignment, "replicas %v", cmd.Replicas)
		}
		t = s.mutTopic(t.Name)
		a := &t.Partitions[cmd.Partition]
		a.Replicas = slices.Clone(cmd.Replicas)
		a.Epoch++
		return Result{}
	case OpReassign:
		return s.reassign(cmd)
	case OpCompleteReassign:
		return s.completeReassign(cmd)
	default:
		return fail(kerr.InvalidRequest, "unknown operation %q", cmd.Op)
	}
}

// reassign starts a move of a partition to cmd.Replicas. Repeating it is
// harmless; a different target while one is in progress is refused.
func (s *State) reassign(cmd Command) Result {
	t := s.byID[cmd.TopicID]
	if t == nil || cmd.Partition < 0 || int(cmd.Partition) >= len(t.Partitions) {
		return fail(kerr.UnknownTopicOrPartition, "no partition %s/%d", cmd.TopicID, cmd.Partition)
	}
	a := t.Partitions[cmd.Partition]
	target := cmd.Replicas
	if len(target) == 0 || hasDuplicates(target) {
		return fail(kerr.InvalidReplicaAssignment, "replicas %v: want one or more distinct brokers", target)
	}
	for _, id := range target {
		b := s.Brokers[id]
		if b == nil {
			return fail(kerr.InvalidReplicaAssignment, "broker %d is not registered", id)
		}
		if b.Draining && !slices.Contains(a.Replicas, id) {
			return fail(kerr.InvalidReplicaAssignment, "broker %d is draining: it takes no new replicas", id)
		}
	}
	switch {
	case a.Target != nil && slices.Equal(a.Target, target):
		return Result{} // a repeat
	case a.Target != nil:
		return fail(kerr.ReassignmentInProgress, "partition %s/%d is already moving to %v", t.Name, cmd.Partition, a.Target)
	case a.Leader < 0:
		// Until a leader is known, some initial replicas may not have
		// bootstrapped the group yet; after the epoch changes they never
		// would.
		return fail(kerr.LeaderNotAvailable, "partition %s/%d has no leader yet", t.Name, cmd.Partition)
	}
	t = s.mutTopic(t.Name)
	m := &t.Partitions[cmd.Partition]
	if sameSet(m.Replicas, target) {
		m.Replicas = slices.Clone(target) // a new order: only the preferred leader changes
		return Result{}
	}
	union := slices.Clone(m.Replicas)
	for _, id := range target {
		if !slices.Contains(union, id) {
			union = append(union, id)
		}
	}
	if !slices.Equal(union, m.Replicas) {
		m.Replicas = union
		m.Epoch++
	}
	m.Target = slices.Clone(target)
	return Result{}
}

// completeReassign ends a move: Replicas becomes Target.
func (s *State) completeReassign(cmd Command) Result {
	t := s.byID[cmd.TopicID]
	if t == nil || cmd.Partition < 0 || int(cmd.Partition) >= len(t.Partitions) {
		return fail(kerr.UnknownTopicOrPartition, "no partition %s/%d", cmd.TopicID, cmd.Partition)
	}
	a := t.Partitions[cmd.Partition]
	switch {
	case a.Target == nil && slices.Equal(a.Replicas, cmd.Replicas):
		return Result{} // a repeat
	case a.Target == nil:
		return fail(kerr.NoReassignmentInProgress, "partition %s/%d is not moving", t.Name, cmd.Partition)
	case !slices.Equal(a.Target, cmd.Replicas):
		return fail(kerr.ReassignmentInProgress, "partition %s/%d is moving to %v, not %v", t.Name, cmd.Partition, a.Target, cmd.Replicas)
	}
	t = s.mutTopic(t.Name)
	m := &t.Partitions[cmd.Partition]
	m.Replicas, m.Target = m.Target, nil
	m.Epoch++
	return Result{}
}

// sameSet reports whether a and b hold the same brokers (in any order);
// neither has duplicates.
func sameSet(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for _, id := range a {
		if !slices.Contains(b, id) {
			return false
		}
	}
	return true
}

func hasDuplicates(ids []int32) bool {
	s := slices.Clone(ids)
	slices.Sort(s)
	return len(slices.Compact(s)) != len(ids)
}

func (s *State) createTopic(cmd Command) Result {
	switch {
	case s.Topics[cmd.Topic] != nil && s.Topics[cmd.Topic].ID == cmd.TopicID && cmd.TopicID != TopicID{}:
		// The same proposal applied twice: Propose retries when a forwarded
		// call's outcome was unknown, and this one had succeeded.
		return Result{}
	case s.Topics[cmd.Topic] != nil:
		return fail(kerr.TopicAlreadyExists, "topic %q already exists", cmd.Topic)
	case s.byID[cmd.TopicID] != nil || cmd.TopicID == TopicID{}:
		return fail(kerr.InvalidRequest, "topic id %s is taken", cmd.TopicID)
	case cmd.Partitions < 1 || cmd.Partitions > MaxPartitions:
		return fail(kerr.InvalidPartitions, "%d partitions; must be 1 to %d", cmd.Partitions, MaxPartitions)
	}
	t := &TopicState{Name: cmd.Topic, ID: cmd.TopicID, Configs: maps.Clone(cmd.Configs)}
	if len(cmd.Assignments) > 0 {
		if len(cmd.Assignments) != int(cmd.Partitions) {
			return fail(kerr.InvalidReplicaAssignment, "%d assignments for %d partitions", len(cmd.Assignments), cmd.Partitions)
		}
		for p, r := range cmd.Assignments {
			if len(r) == 0 || len(r) != len(cmd.Assignments[0]) || hasDuplicates(r) {
				return fail(kerr.InvalidReplicaAssignment, "partition %d: replicas %v; every partition needs the same number of distinct brokers", p, r)
			}
			for _, id := range r {
				if s.Brokers[id] == nil {
					return fail(kerr.InvalidReplicaAssignment, "partition %d: broker %d is not registered", p, id)
				}
			}
			t.Partitions = append(t.Partitions, Assignment{Replicas: slices.Clone(r), Bootstrap: slices.Clone(r), Leader: -1})
		}
	} else {
		eligible := s.eligible()
		if cmd.ReplicationFactor < 1 || int(cmd.ReplicationFactor) > len(eligible) {
			return fail(kerr.InvalidReplicationFactor, "replication factor %d; %d brokers can take replicas", cmd.ReplicationFactor, len(eligible))
		}
		t.Partitions = place(eligible, 0, cmd.Partitions, int(cmd.ReplicationFactor), int(cmd.TopicID[0]))
	}
	s.Topics[t.Name], s.byID[t.ID] = t, t
	return Result{}
}

func (s *State) createPartitions(cmd Command) Result {
	old := s.Topics[cmd.Topic]
	switch {
	case old == nil:
		return fail(kerr.UnknownTopicOrPartition, "topic %q does not exist", cmd.Topic)
	case cmd.Partitions <= int32(len(old.Partitions)):
		return fail(kerr.InvalidPartitions, "topic %q has %d partitions; the new count %d must be larger", cmd.Topic, len(old.Partitions), cmd.Partitions)
	case cmd.Partitions > MaxPartitions:
		return fail(kerr.InvalidPartitions, "%d partitions; the limit is %d", cmd.Partitions, MaxPartitions)
	}
	rf := len(old.Partitions[0].Replicas)
	if t := old.Partitions[0].Target; t != nil {
		rf = len(t) // partition 0 is moving: Replicas holds old and new
	}
	eligible := s.eligible()
	if rf > len(eligible) {
		return fail(kerr.InvalidReplicationFactor, "replication factor %d; %d brokers can take replicas", rf, len(eligible))
	}
	t := s.mutTopic(cmd.Topic)
	t.Partitions = append(t.Partitions, place(eligible, int32(len(t.Partitions)), cmd.Partitions, rf, int(t.ID[0]))...)
	return Result{}
}

// eligible returns the brokers that may take new replicas, sorted.
func (s *State) eligible() []int32 {
	var ids []int32
	for id, b := range s.Brokers {
		if !b.Draining {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// place assigns partitions from..to-1 round-robin over brokers, as
// Kafka's default assignor does: partition p's replicas are rf consecutive
// brokers starting at (seed+p) mod n. First replicas (preferred leaders)
// rotate, so leaders spread evenly, and each broker holds about
// partitions*rf/n replicas.
func place(brokers []int32, from, to int32, rf, seed int) []Assignment {
	n := len(brokers)
	out := make([]Assignment, 0, to-from)
	for p := from; p < to; p++ {
		r := make([]int32, rf)
		for j := range r {
			r[j] = brokers[(seed+int(p)+j)%n]
		}
		out = append(out, Assignment{Replicas: r, Bootstrap: slices.Clone(r), Leader: -1})
	}
	return out
}
