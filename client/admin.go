package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Admin manages topics, configs and consumer groups over the Kafka
// protocol (franz-go's kadm), and the cluster over the brokers' HTTP admin
// API (cluster.go). Get one from Client.Admin.
type Admin struct {
	c    *Client
	k    *kadm.Client
	http *http.Client
}

// Kadm returns the underlying kadm client, for what this type does not wrap.
func (a *Admin) Kadm() *kadm.Client { return a.k }

// TopicSpec describes a topic to create. Zero Partitions or
// ReplicationFactor take the broker's defaults.
type TopicSpec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	Configs           map[string]string // e.g. "cleanup.policy": "compact"
}

// CreateTopic creates a topic. An existing one is ErrTopicExists.
func (a *Admin) CreateTopic(ctx context.Context, s TopicSpec) error {
	parts, rf := s.Partitions, s.ReplicationFactor
	if parts == 0 {
		parts = -1
	}
	if rf == 0 {
		rf = -1
	}
	var cfg map[string]*string
	for k, v := range s.Configs {
		if cfg == nil {
			cfg = map[string]*string{}
		}
		cfg[k] = new(v)
	}
	res, err := a.k.CreateTopic(ctx, parts, rf, cfg, s.Name)
	if err == nil {
		err = res.Err
	}
	if err != nil && res.ErrMessage != "" {
		return &Error{Op: "create topic", Topic: s.Name, Partition: -1, Code: codeOf(err), Message: res.ErrMessage, Err: err}
	}
	return wrap("create topic", s.Name, -1, err)
}

// DeleteTopics deletes topics and their records.
func (a *Admin) DeleteTopics(ctx context.Context, names ...string) error {
	res, err := a.k.DeleteTopics(ctx, names...)
	if err != nil {
		return wrap("delete topics", "", -1, err)
	}
	for _, n := range names {
		if r, ok := res[n]; ok && r.Err != nil {
			return wrap("delete topic", n, -1, r.Err)
		}
	}
	return nil
}

// AddPartitions adds n partitions to topic. Keys hash over the new
// count from then on, so a key's later records may land elsewhere: its
// order holds only within each period.
func (a *Admin) AddPartitions(ctx context.Context, topic string, n int) error {
	res, err := a.k.CreatePartitions(ctx, n, topic)
	if err == nil {
		if r, ok := res[topic]; ok {
			err = r.Err
		}
	}
	return wrap("add partitions", topic, -1, err)
}

// TopicInfo describes a topic and where its partitions are.
type TopicInfo struct {
	Name       string
	ID         string
	Internal   bool
	Partitions []PartitionInfo
}

// PartitionInfo is one partition's placement.
type PartitionInfo struct {
	Partition   int32
	Leader      int32 // -1 during an election
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
}

// ListTopics lists the topics, sorted by name, without internal ones
// unless internal is set.
func (a *Admin) ListTopics(ctx context.Context, internal bool) ([]TopicInfo, error) {
	ts, err := a.metadata(ctx, nil)
	if err != nil {
		return nil, wrap("list topics", "", -1, err)
	}
	out := make([]TopicInfo, 0, len(ts))
	for _, t := range ts {
		if t.err == nil && (internal || !t.Internal) {
			out = append(out, t.TopicInfo)
		}
	}
	return out, nil
}

// DescribeTopic describes one topic; an unknown one is ErrUnknownTopic.
func (a *Admin) DescribeTopic(ctx context.Context, name string) (TopicInfo, error) {
	ts, err := a.metadata(ctx, []string{name})
	if err == nil && len(ts) != 1 {
		err = kerr.UnknownTopicOrPartition
	}
	if err == nil {
		err = ts[0].err
	}
	if err != nil {
		return TopicInfo{}, wrap("describe topic", name, -1, err)
	}
	return ts[0].TopicInfo, nil
}

type topicMeta struct {
	TopicInfo
	err error
}

// metadata asks a broker directly (nil topics: all). kadm answers from
// franz-go's metadata cache, up to 5 s stale, so a topic just deleted
// would still be described.
func (a *Admin) metadata(ctx context.Context, topics []string) ([]topicMeta, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	if topics != nil {
		req.Topics = []kmsg.MetadataRequestTopic{}
		for _, t := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			req.Topics = append(req.Topics, rt)
		}
	}
	resp, err := req.RequestWith(ctx, a.c.cl)
	if err != nil {
		return nil, err
	}
	var out []topicMeta
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		tm := topicMeta{TopicInfo: TopicInfo{Name: *t.Topic, ID: kadm.TopicID(t.TopicID).String(), Internal: t.IsInternal}, err: kerr.ErrorForCode(t.ErrorCode)}
		for _, p := range t.Partitions {
			tm.Partitions = append(tm.Partitions, PartitionInfo{Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: p.Replicas, ISR: p.ISR})
		}
		slices.SortFunc(tm.Partitions, func(x, y PartitionInfo) int { return int(x.Partition - y.Partition) })
		out = append(out, tm)
	}
	slices.SortFunc(out, func(x, y topicMeta) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// ConfigEntry is one topic config and where its value comes from.
type ConfigEntry struct {
	Name   string
	Value  string
	Source string // "topic" when set on the topic, else where the default comes from
}

// DescribeTopicConfigs returns every config of topic, sorted by name.
func (a *Admin) DescribeTopicConfigs(ctx context.Context, topic string) ([]ConfigEntry, error) {
	rc, err := a.k.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return nil, wrap("describe configs", topic, -1, err)
	}
	r, err := rc.On(topic, nil)
	if err == nil {
		err = r.Err
	}
	if err != nil {
		return nil, wrap("describe configs", topic, -1, err)
	}
	out := make([]ConfigEntry, 0, len(r.Configs))
	for _, c := range r.Configs {
		src := strings.ToLower(strings.TrimPrefix(c.Source.String(), "DYNAMIC_"))
		if src == "topic_config" {
			src = "topic"
		}
		out = append(out, ConfigEntry{Name: c.Key, Value: c.MaybeValue(), Source: src})
	}
	slices.SortFunc(out, func(x, y ConfigEntry) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// AlterTopicConfigs sets the configs in set and returns those named in
// reset to their defaults, leaving the rest alone.
func (a *Admin) AlterTopicConfigs(ctx context.Context, topic string, set map[string]string, reset ...string) error {
	var ac []kadm.AlterConfig
	for _, k := range slices.Sorted(mapKeys(set)) {
		ac = append(ac, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: new(set[k])})
	}
	for _, k := range reset {
		ac = append(ac, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	res, err := a.k.AlterTopicConfigs(ctx, ac, topic)
	if err != nil {
		return wrap("alter configs", topic, -1, err)
	}
	r, err := res.On(topic, nil)
	if err == nil {
		err = r.Err
	}
	if err != nil && r.ErrMessage != "" {
		return &Error{Op: "alter configs", Topic: topic, Partition: -1, Code: codeOf(err), Message: r.ErrMessage, Err: err}
	}
	return wrap("alter configs", topic, -1, err)
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func codeOf(err error) int16 {
	if ke, ok := errors.AsType[*kerr.Error](err); ok {
		return ke.Code
	}
	return 0
}

// ---- groups ----

// GroupInfo is a listed consumer group.
type GroupInfo struct {
	Name         string
	State        string // Empty, PreparingRebalance, CompletingRebalance, Stable, Dead
	ProtocolType string // "consumer" for consumer groups
	Coordinator  int32
}

// ListGroups lists every group in the cluster, sorted by name.
func (a *Admin) ListGroups(ctx context.Context) ([]GroupInfo, error) {
	ls, err := a.k.ListGroups(ctx)
	if err != nil {
		return nil, wrap("list groups", "", -1, err)
	}
	var out []GroupInfo
	for _, g := range ls.Sorted() {
		out = append(out, GroupInfo{Name: g.Group, State: g.State, ProtocolType: g.ProtocolType, Coordinator: g.Coordinator})
	}
	return out, nil
}

// GroupDescription is a group's state and members.
type GroupDescription struct {
	GroupInfo
	Protocol string // the assignor, e.g. cooperative-sticky
	Members  []GroupMember
}

// GroupMember is one member and what it was assigned.
type GroupMember struct {
	ID         string
	InstanceID string
	ClientID   string
	Host       string
	Assigned   map[string][]int32 // topic -> partitions, sorted
}

// DescribeGroup describes group; an unknown one is ErrUnknownGroup.
func (a *Admin) DescribeGroup(ctx context.Context, group string) (GroupDescription, error) {
	ds, err := a.k.DescribeGroups(ctx, group)
	if err != nil {
		return GroupDescription{}, wrap("describe group", "", -1, err)
	}
	d, ok := ds[group]
	switch {
	case !ok || d.State == "Dead":
		return GroupDescription{}, groupErr("describe group", group, kerr.GroupIDNotFound)
	case d.Err != nil:
		return GroupDescription{}, groupErr("describe group", group, d.Err)
	}
	out := GroupDescription{
		GroupInfo: GroupInfo{Name: group, State: d.State, ProtocolType: d.ProtocolType, Coordinator: d.Coordinator.NodeID},
		Protocol:  d.Protocol,
	}
	for _, m := range d.Members {
		gm := GroupMember{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost, Assigned: map[string][]int32{}}
		if m.InstanceID != nil {
			gm.InstanceID = *m.InstanceID
		}
		if c, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range c.Topics {
				ps := slices.Clone(t.Partitions)
				slices.Sort(ps)
				gm.Assigned[t.Topic] = ps
			}
		}
		out.Members = append(out.Members, gm)
	}
	return out, nil
}

// DeleteGroup deletes a group and its committed offsets. A group with
// running members is ErrGroupNotEmpty; stop its consumers first.
func (a *Admin) DeleteGroup(ctx context.Context, group string) error {
	res, err := a.k.DeleteGroup(ctx, group)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return groupErr("delete group", group, err)
	}
	return nil
}

// groupErr wraps a group error, naming the group in the message.
func groupErr(op, group string, err error) error {
	e := wrap(op, "", -1, err).(*Error)
	if e.Message == "" {
		e.Message = fmt.Sprintf("group %q", group)
	}
	return e
}

// notEmptyErr is the broker's refusal of op on a group with members
// (ErrGroupNotEmpty), explained by message.
func notEmptyErr(op, message string) error {
	return &Error{Op: op, Partition: -1, Code: kerr.NonEmptyGroup.Code, Message: message, Err: kerr.NonEmptyGroup}
}

// PartitionLag is a group's position on one partition.
type PartitionLag struct {
	Topic     string
	Partition int32
	Committed int64  // -1: nothing committed
	Start     int64  // the log start offset
	End       int64  // the high watermark
	Lag       int64  // records from the committed offset (or the log start) to the end
	Member    string // the member assigned the partition, if any
}

// GroupLag is a group's lag on every partition it committed or is
// assigned, sorted by topic and partition.
type GroupLag struct {
	Group      string
	State      string
	Partitions []PartitionLag
	Total      int64
}

// Lag measures how far group is behind. Partitions whose lag could not be
// measured make it return an error naming the first.
func (a *Admin) Lag(ctx context.Context, group string) (GroupLag, error) {
	ls, err := a.k.Lag(ctx, group)
	if err != nil {
		return GroupLag{}, wrap("group lag", "", -1, err)
	}
	l, ok := ls[group]
	if !ok || l.State == "Dead" {
		return GroupLag{}, groupErr("group lag", group, kerr.GroupIDNotFound)
	}
	if err := l.Error(); err != nil {
		return GroupLag{}, groupErr("group lag", group, err)
	}
	out := GroupLag{Group: group, State: l.State}
	for _, m := range l.Lag.Sorted() {
		if m.Err != nil {
			return GroupLag{}, wrap("group lag", m.Topic, m.Partition, m.Err)
		}
		pl := PartitionLag{Topic: m.Topic, Partition: m.Partition, Committed: m.Commit.At, Start: m.Start.Offset, End: m.End.Offset, Lag: m.Lag}
		if m.Member != nil {
			pl.Member = m.Member.MemberID
		}
		out.Partitions = append(out.Partitions, pl)
		out.Total += m.Lag
	}
	return out, nil
}

// CommittedOffsets returns the group's committed offsets: topic ->
// partition -> the next offset to consume.
func (a *Admin) CommittedOffsets(ctx context.Context, group string) (map[string]map[int32]int64, error) {
	res, err := a.k.FetchOffsets(ctx, group)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		return nil, groupErr("fetch offsets", group, err)
	}
	out := map[string]map[int32]int64{}
	res.Each(func(o kadm.OffsetResponse) {
		if o.At < 0 {
			return
		}
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.At
	})
	return out, nil
}

// OffsetReset is one partition's committed offset before and after a reset.
type OffsetReset struct {
	Partition int32
	Old       int64 // -1: nothing was committed
	New       int64
}

// ResetOffsets rewinds (or forwards) group on topic to `to`, for the
// listed partitions or all: the explicit replay of an existing group. It
// is an admin commit, which the broker accepts only while the group has
// no members (ErrGroupNotEmpty otherwise): stop the consumers, reset,
// start them again. AtOffset is clamped to each partition's log.
func (a *Admin) ResetOffsets(ctx context.Context, group, topic string, to Offset, partitions ...int32) ([]OffsetReset, error) {
	out, err := a.PlanResetOffsets(ctx, group, topic, to, partitions...)
	if err != nil {
		return nil, err
	}
	commit := kadm.Offsets{}
	for _, r := range out {
		commit.Add(kadm.Offset{Topic: topic, Partition: r.Partition, At: r.New, LeaderEpoch: -1})
	}
	res, err := a.k.CommitOffsets(ctx, group, commit)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		if errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) || errors.Is(err, kerr.RebalanceInProgress) {
			// How the broker refuses an admin commit to a live group.
			return nil, notEmptyErr("reset offsets", fmt.Sprintf("group %q has members; stop its consumers first", group))
		}
		return nil, groupErr("reset offsets", group, err)
	}
	return out, nil
}

// PlanResetOffsets is ResetOffsets without the commit (a dry run): the
// offsets a reset would move group to now. It works while the group has
// members; the reset itself would still be refused then.
func (a *Admin) PlanResetOffsets(ctx context.Context, group, topic string, to Offset, partitions ...int32) ([]OffsetReset, error) {
	return a.planReset(ctx, "reset offsets", topic, to, partitions, func(partitions []int32) (map[int32]int64, error) {
		committed, err := a.k.FetchOffsetsForTopics(ctx, group, topic)
		if err != nil {
			return nil, groupErr("reset offsets", group, err)
		}
		old := map[int32]int64{}
		for _, p := range partitions {
			if o, ok := committed.Lookup(topic, p); ok && o.Err == nil && o.At >= 0 {
				old[p] = o.At
			}
		}
		return old, nil
	})
}

// planReset is the plan of a reset (op names it in errors): to resolved
// on the listed partitions of topic, or all, in order, each with its old
// offset from old (-1 where old has none). old is asked for those
// partitions once to is resolved.
func (a *Admin) planReset(ctx context.Context, op, topic string, to Offset, partitions []int32,
	old func(partitions []int32) (map[int32]int64, error)) ([]OffsetReset, error) {
	targets, err := a.offsetsAt(ctx, topic, to)
	if err != nil {
		return nil, err
	}
	partitions = slices.Clone(partitions)
	if len(partitions) == 0 {
		for p := range targets {
			partitions = append(partitions, p)
		}
	}
	slices.Sort(partitions)
	olds, err := old(partitions)
	if err != nil {
		return nil, err
	}
	var out []OffsetReset
	for _, p := range partitions {
		at, ok := targets[p]
		if !ok {
			return nil, wrap(op, topic, p, kerr.UnknownTopicOrPartition)
		}
		r := OffsetReset{Partition: p, Old: -1, New: at}
		if o, ok := olds[p]; ok {
			r.Old = o
		}
		out = append(out, r)
	}
	return out, nil
}

// offsetsAt resolves to on every partition of topic.
func (a *Admin) offsetsAt(ctx context.Context, topic string, to Offset) (map[int32]int64, error) {
	list := func(lo kadm.ListedOffsets, err error) (map[int32]int64, error) {
		if err == nil {
			err = lo.Error()
		}
		if err == nil && len(lo[topic]) == 0 {
			err = kerr.UnknownTopicOrPartition
		}
		if err != nil {
			return nil, wrap("list offsets", topic, -1, err)
		}
		out := map[int32]int64{}
		for p, o := range lo[topic] {
			out[p] = o.Offset
		}
		return out, nil
	}
	switch to.kind {
	case offsetEnd:
		return list(a.k.ListEndOffsets(ctx, topic))
	case offsetTime:
		return list(a.k.ListOffsetsAfterMilli(ctx, to.at, topic))
	case offsetExact:
		starts, err := list(a.k.ListStartOffsets(ctx, topic))
		if err != nil {
			return nil, err
		}
		ends, err := list(a.k.ListEndOffsets(ctx, topic))
		if err != nil {
			return nil, err
		}
		for p, s := range starts {
			starts[p] = min(max(to.at, s), ends[p])
		}
		return starts, nil
	}
	return list(a.k.ListStartOffsets(ctx, topic))
}
