package group

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// state is a classic group's state, as Kafka names them.
type state int8

const (
	stateEmpty state = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

func (s state) String() string {
	switch s {
	case stateEmpty:
		return "Empty"
	case statePreparingRebalance:
		return "PreparingRebalance"
	case stateCompletingRebalance:
		return "CompletingRebalance"
	case stateStable:
		return "Stable"
	}
	return "Dead"
}

// protocol is one assignor a member supports, with its metadata (for the
// consumer protocol: the subscription).
type protocol struct {
	name     string
	metadata []byte
}

// member is one member of a group.
type member struct {
	id, instanceID   string
	clientID         string
	clientHost       string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocols        []protocol
	assignment       []byte
	joinedAt         uint64    // order of first join: the leader is the earliest
	deadline         time.Time // session expiry, pushed by every request
	join             *pendingJoin
	sync             *pendingSync
}

func (m *member) metadata(name string) []byte {
	for _, p := range m.protocols {
		if p.name == name {
			return p.metadata
		}
	}
	return nil
}

func (m *member) supports(name string) bool {
	return slices.ContainsFunc(m.protocols, func(p protocol) bool { return p.name == name })
}

func sameProtocols(a, b []protocol) bool {
	return slices.EqualFunc(a, b, func(x, y protocol) bool {
		return x.name == y.name && string(x.metadata) == string(y.metadata)
	})
}

// pendingJoin is a JoinGroup waiting for the rebalance to complete.
type pendingJoin struct {
	version int16
	ch      chan *kmsg.JoinGroupResponse
}

// pendingSync is a SyncGroup waiting for the leader's assignment.
type pendingSync struct {
	version int16
	ch      chan *kmsg.SyncGroupResponse
}

// committed is one committed offset.
type committed struct {
	offset      int64
	leaderEpoch int32
	metadata    string
	timestamp   int64 // commit time, ms
	logOffset   int64 // where the commit record is in __consumer_offsets
}

// group is one consumer group: membership (classic protocol) and
// committed offsets. Guarded by its shard's mutex.
type group struct {
	id           string
	state        state
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	static       map[string]string    // instance id -> member id
	pending      map[string]time.Time // KIP-394 member ids handed out, until this deadline
	offsets      map[topicPartition]committed
	stateSince   time.Time
	// rebalanceDeadline ends PreparingRebalance: members that have not
	// rejoined by then are removed. initialDelay marks the delay of a
	// group that was empty (group.initial.rebalance.delay.ms), which waits
	// even when every member has joined, so a starting fleet joins once.
	rebalanceDeadline time.Time
	rebalanceLimit    time.Time
	initialDelay      bool
}

func newGroup(id string, now time.Time) *group {
	return &group{
		id: id, state: stateEmpty, members: map[string]*member{}, static: map[string]string{},
		pending: map[string]time.Time{}, offsets: map[topicPartition]committed{}, stateSince: now,
	}
}

func (g *group) setState(s state, now time.Time) {
	if g.state != s {
		g.state, g.stateSince = s, now
	}
}

// memberOrder lists member ids by first join, so responses and the leader
// choice are deterministic.
func (g *group) memberOrder() []string {
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		ma, mb := g.members[a], g.members[b]
		if ma.joinedAt != mb.joinedAt {
			if ma.joinedAt < mb.joinedAt {
				return -1
			}
			return 1
		}
		if a < b {
			return -1
		}
		if a > b {
			return 1
		}
		return 0
	})
	return ids
}

// candidates are the protocols every member supports.
func (g *group) supportsAll(protocols []protocol) bool {
	for _, m := range g.members {
		if !slices.ContainsFunc(protocols, func(p protocol) bool { return m.supports(p.name) }) {
			return false
		}
	}
	return true
}

// selectProtocol picks, among the protocols every member supports, the
// one most members prefer (each votes for its first supported
// candidate); ties go to the leader's preference order.
func (g *group) selectProtocol() string {
	order := g.memberOrder()
	if len(order) == 0 {
		return ""
	}
	var cands []string
	for _, p := range g.members[order[0]].protocols {
		all := true
		for _, m := range g.members {
			if !m.supports(p.name) {
				all = false
				break
			}
		}
		if all {
			cands = append(cands, p.name)
		}
	}
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if slices.Contains(cands, p.name) {
				votes[p.name]++
				break
			}
		}
	}
	best := ""
	for _, c := range cands {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

func (g *group) allJoined() bool {
	if len(g.pending) > 0 {
		return false
	}
	for _, m := range g.members {
		if m.join == nil {
			return false
		}
	}
	return true
}

func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// subscribed reports whether any member of a consumer-protocol group
// subscribes to topic (OffsetDelete refuses to delete those offsets).
func (g *group) subscribed(topic string) bool {
	if g.protocolType != "consumer" || g.protocol == "" {
		return false
	}
	for _, m := range g.members {
		var md kmsg.ConsumerMemberMetadata
		if md.ReadFrom(m.metadata(g.protocol)) != nil {
			return true // unknown: be safe
		}
		if slices.Contains(md.Topics, topic) {
			return true
		}
	}
	return false
}
