package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Share-group configs (KIP-932's, and Sluice's for queues), set per group
// with Admin.SetShareGroupConfig. The broker documents each one's range
// and default (sluicectl share-group config GROUP lists them).
const (
	ShareAutoOffsetReset        = "share.auto.offset.reset"          // latest (default) or earliest: where a new group starts
	ShareRecordLockDurationMs   = "share.record.lock.duration.ms"    // how long a worker holds a record before it is delivered again
	ShareDeliveryCountLimit     = "share.delivery.count.limit"       // deliveries before a record is archived (and dead-lettered)
	SharePartitionMaxLocks      = "share.partition.max.record.locks" // records in flight per partition
	ShareRetryBackoffMs         = "share.retry.backoff.ms"           // delay before a released or timed-out record is redelivered
	ShareRetryBackoffMultiplier = "share.retry.backoff.multiplier"   // growth of that delay per delivery
	ShareRetryBackoffMaxMs      = "share.retry.backoff.max.ms"       // its cap
	ShareDeadLetterTopic        = "share.dead.letter.topic"          // where rejected and exhausted records go; empty for none
	ShareKeyOrdering            = "share.key.ordering"               // true: one record per key in flight, in offset order
	ShareDelayHeader            = "share.delay.header"               // header holding a not-before time; default sluice.not-before
)

// SetShareGroupConfig sets the share-group configs in set on group and
// returns those named in reset to their defaults, leaving the rest alone.
// The group need not exist yet: configure it before its first worker
// starts (share.auto.offset.reset in particular). Unknown names and
// values out of range are refused whole (an *Error with the broker's
// message, errors.Is kerr.InvalidConfig).
func (a *Admin) SetShareGroupConfig(ctx context.Context, group string, set map[string]string, reset ...string) error {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	for _, k := range slices.Sorted(mapKeys(set)) {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Op, c.Name, c.Value = kmsg.IncrementalAlterConfigOpSet, k, kmsg.StringPtr(set[k])
		rr.Configs = append(rr.Configs, c)
	}
	for _, k := range reset {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Op, c.Name = kmsg.IncrementalAlterConfigOpDelete, k
		rr.Configs = append(rr.Configs, c)
	}
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, a.c.cl)
	if err != nil {
		return groupErr("set share group config", group, err)
	}
	if len(resp.Resources) != 1 {
		return groupErr("set share group config", group, kerr.UnknownServerError)
	}
	r := resp.Resources[0]
	if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
		e := &Error{Op: "set share group config", Partition: -1, Code: r.ErrorCode, Err: err}
		if r.ErrorMessage != nil {
			e.Message = *r.ErrorMessage
		}
		return groupErr("set share group config", group, e)
	}
	return nil
}

// ShareGroupConfig returns every share-group config of group, sorted by
// name: Source is "group" for values set on the group, "default"
// otherwise. Any group name answers, configured or not.
func (a *Admin) ShareGroupConfig(ctx context.Context, group string) ([]ConfigEntry, error) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, a.c.cl)
	if err != nil {
		return nil, groupErr("share group config", group, err)
	}
	if len(resp.Resources) != 1 {
		return nil, groupErr("share group config", group, kerr.UnknownServerError)
	}
	r := resp.Resources[0]
	if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
		e := &Error{Op: "share group config", Partition: -1, Code: r.ErrorCode, Err: err}
		if r.ErrorMessage != nil {
			e.Message = *r.ErrorMessage
		}
		return nil, groupErr("share group config", group, e)
	}
	out := make([]ConfigEntry, 0, len(r.Configs))
	for _, c := range r.Configs {
		src := "default"
		if c.Source == kmsg.ConfigSourceGroupConfig {
			src = "group"
		}
		v := ""
		if c.Value != nil {
			v = *c.Value
		}
		out = append(out, ConfigEntry{Name: c.Name, Value: v, Source: src})
	}
	slices.SortFunc(out, func(x, y ConfigEntry) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// ListShareGroups lists the share groups of the cluster, sorted by name;
// their ProtocolType is "share". (ListGroups lists every kind.)
func (a *Admin) ListShareGroups(ctx context.Context) ([]GroupInfo, error) {
	ls, err := a.k.ListGroupsByType(ctx, []string{"share"})
	if err != nil {
		return nil, wrap("list share groups", "", -1, err)
	}
	out := []GroupInfo{}
	for _, g := range ls.Sorted() {
		out = append(out, GroupInfo{Name: g.Group, State: g.State, ProtocolType: g.ProtocolType, Coordinator: g.Coordinator})
	}
	return out, nil
}

// ShareGroupDescription is a share group's state, members and
// assignments. Unlike classic groups, the coordinator assigns
// partitions, and several members may share one.
type ShareGroupDescription struct {
	Group           string
	State           string // Empty, Stable, Dead
	Coordinator     int32
	Epoch           int32 // the group epoch: bumped by every membership or subscription change
	AssignmentEpoch int32
	Assignor        string
	Members         []ShareGroupMember // sorted by ID
}

// ShareGroupMember is one member of a share group.
type ShareGroupMember struct {
	ID         string
	ClientID   string
	Host       string
	Epoch      int32
	Subscribed []string           // topics, sorted
	Assigned   map[string][]int32 // topic -> partitions, sorted
}

// DescribeShareGroup describes group, asking its coordinator. An unknown
// group, or one that is not a share group, is ErrUnknownGroup.
func (a *Admin) DescribeShareGroup(ctx context.Context, group string) (ShareGroupDescription, error) {
	ds, err := a.k.DescribeShareGroups(ctx, group)
	if err != nil {
		return ShareGroupDescription{}, groupErr("describe share group", group, err)
	}
	d, ok := ds[group]
	switch {
	case !ok || d.GroupState == "Dead":
		return ShareGroupDescription{}, groupErr("describe share group", group, kerr.GroupIDNotFound)
	case d.Err != nil:
		return ShareGroupDescription{}, groupErr("describe share group", group, d.Err)
	}
	out := ShareGroupDescription{Group: group, State: d.GroupState, Coordinator: d.Coordinator.NodeID, Epoch: d.GroupEpoch,
		AssignmentEpoch: d.AssignmentEpoch, Assignor: d.Assignor, Members: []ShareGroupMember{}}
	for _, m := range d.Members {
		sm := ShareGroupMember{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost, Epoch: m.MemberEpoch,
			Subscribed: slices.Sorted(slices.Values(m.SubscribedTopicNames)), Assigned: map[string][]int32{}}
		for t, ps := range m.Assignment {
			parts := make([]int32, 0, len(ps))
			for p := range ps {
				parts = append(parts, p)
			}
			slices.Sort(parts)
			sm.Assigned[t] = parts
		}
		out.Members = append(out.Members, sm)
	}
	return out, nil
}

// ShareOffset is a share group's position on one partition: its
// share-partition start offset (SPSO). Every record before it is done
// (acknowledged or archived); some after it may be done too.
type ShareOffset struct {
	Topic       string
	Partition   int32
	Start       int64 // the SPSO
	Lag         int64 // records from Start to the end not yet done; -1: unknown
	LeaderEpoch int32 // the partition leader's epoch when it answered
}

// ShareGroupOffsets returns group's start offset on every partition it
// has state on, sorted by topic and partition (empty when it has none:
// it never consumed, or its offsets were deleted). An unknown group, or
// one that is not a share group, is ErrUnknownGroup; a partition whose
// leader did not answer fails the call (retriable).
func (a *Admin) ShareGroupOffsets(ctx context.Context, group string) ([]ShareOffset, error) {
	res, err := a.k.DescribeShareGroupOffsets(ctx, group)
	if err != nil {
		return nil, groupErr("share group offsets", group, err)
	}
	d, ok := res[group]
	switch {
	case !ok:
		return nil, groupErr("share group offsets", group, kerr.GroupIDNotFound)
	case d.Err != nil:
		return nil, groupErr("share group offsets", group, d.Err)
	}
	out := []ShareOffset{}
	for _, o := range d.Offsets.Sorted() {
		if o.Err != nil {
			return nil, wrap("share group offsets", o.Topic, o.Partition, o.Err)
		}
		if o.StartOffset >= 0 {
			out = append(out, ShareOffset{Topic: o.Topic, Partition: o.Partition, Start: o.StartOffset, Lag: o.Lag, LeaderEpoch: o.LeaderEpoch})
		}
	}
	return out, nil
}

// ResetShareGroupOffsets moves group's start offset on topic to `to`, for
// the listed partitions or all: records from there are delivered again
// (as first deliveries) or skipped. Old is -1 where the group had no
// state. The broker accepts it only while the group has no members
// (ErrGroupNotEmpty otherwise): stop the workers, reset, start them
// again. An unknown group is created, so a group's start can be set
// before its first worker. AtOffset is clamped to each partition's log.
func (a *Admin) ResetShareGroupOffsets(ctx context.Context, group, topic string, to Offset, partitions ...int32) ([]OffsetReset, error) {
	out, err := a.PlanResetShareGroupOffsets(ctx, group, topic, to, partitions...)
	if err != nil {
		return nil, err
	}
	set := kadm.Offsets{}
	for _, r := range out {
		set.Add(kadm.Offset{Topic: topic, Partition: r.Partition, At: r.New})
	}
	res, err := a.k.AlterShareGroupOffsets(ctx, group, set)
	if errors.Is(err, kerr.NonEmptyGroup) {
		return nil, notEmptyErr("reset share group offsets", fmt.Sprintf("share group %q has members; stop its workers first", group))
	}
	if err != nil {
		return nil, groupErr("reset share group offsets", group, err)
	}
	for _, r := range out {
		if err, _ := res.Lookup(topic, r.Partition); err != nil {
			return nil, wrap("reset share group offsets", topic, r.Partition, err)
		}
	}
	return out, nil
}

// PlanResetShareGroupOffsets is ResetShareGroupOffsets without the change
// (a dry run): the start offsets a reset would set now. It works while
// the group has members; the reset itself would be refused then.
func (a *Admin) PlanResetShareGroupOffsets(ctx context.Context, group, topic string, to Offset, partitions ...int32) ([]OffsetReset, error) {
	return a.planReset(ctx, "reset share group offsets", topic, to, partitions, func(partitions []int32) (map[int32]int64, error) {
		return a.shareStarts(ctx, group, topic, partitions)
	})
}

// shareStarts returns group's start offsets on those partitions of topic
// where it has state (none for an unknown group). It asks for them alone,
// so a leader elsewhere that does not answer does not matter.
func (a *Admin) shareStarts(ctx context.Context, group, topic string, partitions []int32) (map[int32]int64, error) {
	req := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
	rg := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
	rg.GroupID = group
	rt := kmsg.NewDescribeShareGroupOffsetsRequestGroupTopic()
	rt.Topic, rt.Partitions = topic, partitions
	rg.Topics = append(rg.Topics, rt)
	req.Groups = append(req.Groups, rg)
	resp, err := req.RequestWith(ctx, a.c.cl)
	if err == nil && len(resp.Groups) != 1 {
		err = kerr.UnknownServerError
	}
	if err != nil {
		return nil, groupErr("share group offsets", group, err)
	}
	out := map[int32]int64{}
	switch err := kerr.ErrorForCode(resp.Groups[0].ErrorCode); {
	case errors.Is(err, kerr.GroupIDNotFound):
		return out, nil
	case err != nil:
		return nil, groupErr("share group offsets", group, err)
	}
	for _, t := range resp.Groups[0].Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, wrap("share group offsets", t.Topic, p.Partition, err)
			}
			if p.StartOffset >= 0 {
				out[p.Partition] = p.StartOffset
			}
		}
	}
	return out, nil
}

// DeleteShareGroupOffsets removes group's state on topics, so its next
// worker starts by share.auto.offset.reset. The group must have no
// members (ErrGroupNotEmpty). A topic that does not exist, or on which
// the group has no offsets, is ErrUnknownTopic; an unknown group
// ErrUnknownGroup.
func (a *Admin) DeleteShareGroupOffsets(ctx context.Context, group string, topics ...string) error {
	if len(topics) == 0 {
		return nil
	}
	res, err := a.k.DeleteShareGroupOffsets(ctx, group, topics...)
	if errors.Is(err, kerr.NonEmptyGroup) {
		return notEmptyErr("delete share group offsets", fmt.Sprintf("share group %q has members; stop its workers first", group))
	}
	if err != nil {
		return groupErr("delete share group offsets", group, err)
	}
	for _, topic := range topics {
		if err, ok := res.Lookup(topic); !ok || err != nil {
			if err == nil {
				err = kerr.UnknownServerError
			}
			return wrap("delete share group offsets", topic, -1, err)
		}
	}
	return nil
}
