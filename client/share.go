package client

import (
	"context"
	"slices"
	"strings"

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
