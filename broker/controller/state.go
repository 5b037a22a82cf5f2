package controller

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// State is the cluster metadata the controller group replicates. A
// published State is never modified: apply works on a copy, so readers may
// hold one without locks.
type State struct {
	ClusterID      string                 `json:"cluster_id"`
	Brokers        map[int32]*BrokerInfo  `json:"brokers"`
	Topics         map[string]*TopicState `json:"topics"`
	NextProducerID int64                  `json:"next_producer_id"`
	// GroupConfigs are the dynamic configs of consumer and share groups
	// (Kafka's GROUP config resource), by group id.
	GroupConfigs map[string]map[string]string `json:"group_configs,omitempty"`
	// Index is the raft index of the last command applied.
	Index uint64 `json:"index"`

	byID map[TopicID]*TopicState
}

// BrokerInfo is a registered broker.
type BrokerInfo struct {
	ID        int32  `json:"id"`
	Host      string `json:"host"` // advertised Kafka host
	Port      int32  `json:"port"` // advertised Kafka port
	RaftAddr  string `json:"raft_addr"`
	HTTPAddr  string `json:"http_addr,omitempty"`
	Draining  bool   `json:"draining,omitempty"` // being decommissioned: gets no new replicas
	Voter     bool   `json:"voter,omitempty"`    // a controller voter
	Incarnate uint64 `json:"incarnation"`        // raft index of its last registration
}

// TopicID is a Kafka topic id.
type TopicID [16]byte

func (id TopicID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText writes the id as 32 hex digits.
func (id TopicID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads 32 hex digits.
func (id *TopicID) UnmarshalText(b []byte) error {
	if len(b) != 32 {
		return fmt.Errorf("controller: topic id %q: want 32 hex digits", b)
	}
	_, err := hex.Decode(id[:], b)
	return err
}

// TopicState is one topic.
type TopicState struct {
	Name       string            `json:"name"`
	ID         TopicID           `json:"id"`
	Configs    map[string]string `json:"configs,omitempty"` // overrides of the broker defaults
	Partitions []Assignment      `json:"partitions"`
}

// Assignment is one partition's replica placement and last known leader.
type Assignment struct {
	// Replicas are the brokers holding the partition; the first is the
	// preferred leader.
	Replicas []int32 `json:"replicas"`
	// Bootstrap is the voter set the partition's raft group was created
	// with. Only these replicas bootstrap the group, and only while Epoch
	// is 0; replicas added later join through raft membership changes.
	Bootstrap []int32 `json:"bootstrap"`
	// Epoch counts replica set changes.
	Epoch int32 `json:"epoch"`
	// Target, when set, is the replica set a reassignment (a move) is
	// heading for; Replicas then holds the old and the new replicas
	// together, so every broker of either set hosts a replica while the
	// partition's raft membership changes. Completing the move sets
	// Replicas to Target and clears it. See broker/clusterops.go.
	Target []int32 `json:"target,omitempty"`
	// Leader is the last leader a replica reported (-1: none yet), and
	// LeaderTerm the raft term it reported it for; later terms win.
	Leader     int32  `json:"leader"`
	LeaderTerm uint64 `json:"leader_term"`
}

// Topic returns the topic named name, or nil.
func (s *State) Topic(name string) *TopicState {
	if s == nil {
		return nil
	}
	return s.Topics[name]
}

// TopicByID returns the topic with id, or nil.
func (s *State) TopicByID(id TopicID) *TopicState {
	if s == nil {
		return nil
	}
	return s.byID[id]
}

// BrokerIDs returns the registered broker ids, sorted.
func (s *State) BrokerIDs() []int32 {
	ids := slices.Collect(maps.Keys(s.Brokers))
	slices.Sort(ids)
	return ids
}

// TopicNames returns the topic names, sorted.
func (s *State) TopicNames() []string {
	names := slices.Collect(maps.Keys(s.Topics))
	sort.Strings(names)
	return names
}

func emptyState() *State {
	return &State{Brokers: map[int32]*BrokerInfo{}, Topics: map[string]*TopicState{}, byID: map[TopicID]*TopicState{}}
}

// clone copies the maps; TopicState and BrokerInfo values are replaced,
// never changed, by apply (see mutTopic).
func (s *State) clone() *State {
	c := *s
	c.Brokers = maps.Clone(s.Brokers)
	c.Topics = maps.Clone(s.Topics)
	c.byID = maps.Clone(s.byID)
	c.GroupConfigs = maps.Clone(s.GroupConfigs) // values are replaced, never changed
	return &c
}

// mutTopic replaces the topic named name by a deep copy and returns it, so
// it can be changed without touching published states.
func (s *State) mutTopic(name string) *TopicState {
	old := s.Topics[name]
	t := *old
	t.Configs = maps.Clone(old.Configs)
	t.Partitions = slices.Clone(old.Partitions)
	for i := range t.Partitions {
		t.Partitions[i].Replicas = slices.Clone(t.Partitions[i].Replicas)
		t.Partitions[i].Bootstrap = slices.Clone(t.Partitions[i].Bootstrap)
		t.Partitions[i].Target = slices.Clone(t.Partitions[i].Target)
	}
	s.Topics[name], s.byID[t.ID] = &t, &t
	return &t
}

func (s *State) encode() ([]byte, error) { return json.Marshal(s) }

func decodeState(b []byte) (*State, error) {
	s := emptyState()
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("controller: decode state: %w", err)
	}
	if s.Brokers == nil {
		s.Brokers = map[int32]*BrokerInfo{}
	}
	if s.Topics == nil {
		s.Topics = map[string]*TopicState{}
	}
	s.byID = map[TopicID]*TopicState{}
	for _, t := range s.Topics {
		s.byID[t.ID] = t
	}
	return s, nil
}
