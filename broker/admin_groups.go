package broker

// The consumer groups' HTTP admin API. Every call goes through the
// internal client (lag.go), as a Kafka admin tool's would: groups live on
// their coordinators, which may be other brokers.
//
//	GET    /v1/groups                  every group in the cluster
//	GET    /v1/groups/{group}          members, assignments and lag
//	POST   /v1/groups/{group}/reset    {"topic":"t","to":"earliest"}
//	DELETE /v1/groups/{group}          delete an empty group
//
// Errors follow admin_http.go: 400 bad input, 404 unknown group or topic,
// 409 refused while the group has members, 503 when the coordinator or a
// partition leader cannot be reached.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// groupTimeout bounds one group admin request.
const groupTimeout = 30 * time.Second

// registerGroupRoutes adds the group routes. The lag monitor is created
// here, before the HTTP server starts, because the routes use it.
func (b *Broker) registerGroupRoutes() {
	b.lag = newLagMonitor(b)
	routes := map[string]func(*http.Request) (int, any, error){
		"GET /v1/groups":                b.httpGroups,
		"GET /v1/groups/{group}":        b.httpGroup,
		"POST /v1/groups/{group}/reset": b.httpGroupReset,
		"DELETE /v1/groups/{group}":     b.httpGroupDelete,
	}
	for pattern, h := range routes {
		b.http.Handle(pattern, b.adminHandler(h))
	}
}

// groupErr maps a Kafka error from a group request to an HTTP status.
func groupErr(group string, err error) error {
	switch {
	case errors.Is(err, kerr.GroupIDNotFound):
		return apiErr(http.StatusNotFound, "unknown group %q", group)
	case errors.Is(err, kerr.NonEmptyGroup):
		return apiErr(http.StatusConflict, "group %q has active members; stop the group's consumers first", group)
	case errors.Is(err, kerr.UnknownMemberID):
		// An admin commit is refused while the group has members.
		return apiErr(http.StatusConflict, "group %q has active members; stop the group's consumers first", group)
	case errors.Is(err, kerr.RebalanceInProgress):
		return apiErr(http.StatusConflict, "group %q is rebalancing; stop the group's consumers first", group)
	case errors.Is(err, kerr.InvalidGroupID):
		return apiErr(http.StatusBadRequest, "invalid group id %q", group)
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		return apiErr(http.StatusNotFound, "group %q: %v", group, err)
	}
	return apiErr(http.StatusServiceUnavailable, "group %q: %v", group, err)
}

func (b *Broker) groupAdmin(r *http.Request) (*kadm.Client, context.Context, context.CancelFunc, error) {
	adm, err := b.lag.admin()
	if err != nil {
		return nil, nil, nil, apiErr(http.StatusServiceUnavailable, "%v", err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), groupTimeout)
	return adm, ctx, cancel, nil
}

// ---- GET /v1/groups ----

type groupsView struct {
	Groups []listedGroupView `json:"groups"`
	// Errors lists brokers that could not be asked: the list may miss the
	// groups they coordinate.
	Errors []string `json:"errors,omitempty"`
}

type listedGroupView struct {
	Group        string `json:"group"`
	State        string `json:"state"`
	ProtocolType string `json:"protocol_type"`
	Coordinator  int32  `json:"coordinator"`
}

func (b *Broker) httpGroups(r *http.Request) (int, any, error) {
	adm, ctx, cancel, err := b.groupAdmin(r)
	if err != nil {
		return 0, nil, err
	}
	defer cancel()
	listed, err := adm.ListGroups(ctx)
	out := groupsView{Groups: []listedGroupView{}}
	var se *kadm.ShardErrors
	switch {
	case errors.As(err, &se) && !se.AllFailed:
		for _, e := range se.Errs {
			out.Errors = append(out.Errors, fmt.Sprintf("broker %d: %v", e.Broker.NodeID, e.Err))
		}
	case err != nil:
		return 0, nil, apiErr(http.StatusServiceUnavailable, "listing groups: %v", err)
	}
	for _, g := range listed.Sorted() {
		out.Groups = append(out.Groups, listedGroupView{Group: g.Group, State: g.State, ProtocolType: g.ProtocolType, Coordinator: g.Coordinator})
	}
	return http.StatusOK, out, nil
}

// ---- GET /v1/groups/{group} ----

type groupView struct {
	Group        string         `json:"group"`
	State        string         `json:"state"`
	ProtocolType string         `json:"protocol_type"`
	Protocol     string         `json:"protocol"`
	Coordinator  int32          `json:"coordinator"`
	Members      []memberView   `json:"members"`
	Partitions   []partitionLag `json:"partitions"` // those with a committed offset
	Totals       lagTotals      `json:"totals"`
}

type memberView struct {
	MemberID   string           `json:"member_id"`
	InstanceID string           `json:"instance_id,omitempty"`
	ClientID   string           `json:"client_id"`
	ClientHost string           `json:"client_host"`
	Assigned   []assignmentView `json:"assigned"` // decoded from the consumer protocol
}

type assignmentView struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions"`
}

type lagTotals struct {
	LagRecords int64 `json:"lag_records"`
	// MaxLagSeconds is the largest partition time lag.
	MaxLagSeconds float64 `json:"max_lag_seconds"`
	// Unmeasured counts partitions whose lag could not be measured.
	Unmeasured int `json:"unmeasured,omitempty"`
}

func (b *Broker) httpGroup(r *http.Request) (int, any, error) {
	name := r.PathValue("group")
	adm, ctx, cancel, err := b.groupAdmin(r)
	if err != nil {
		return 0, nil, err
	}
	defer cancel()
	described, err := adm.DescribeGroups(ctx, name)
	if err != nil {
		return 0, nil, groupErr(name, err)
	}
	dg, ok := described[name]
	switch {
	case !ok:
		return 0, nil, apiErr(http.StatusServiceUnavailable, "group %q: not described", name)
	case dg.Err != nil:
		return 0, nil, groupErr(name, dg.Err)
	case dg.State == "Dead":
		return 0, nil, apiErr(http.StatusNotFound, "unknown group %q", name)
	}
	out := groupView{
		Group: name, State: dg.State, ProtocolType: dg.ProtocolType, Protocol: dg.Protocol, Coordinator: dg.Coordinator.NodeID,
		Members: []memberView{}, Partitions: []partitionLag{},
	}
	for _, m := range dg.Members {
		mv := memberView{MemberID: m.MemberID, ClientID: m.ClientID, ClientHost: m.ClientHost, Assigned: []assignmentView{}}
		if m.InstanceID != nil {
			mv.InstanceID = *m.InstanceID
		}
		if c, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range c.Topics {
				ps := slices.Clone(t.Partitions)
				slices.Sort(ps)
				mv.Assigned = append(mv.Assigned, assignmentView{Topic: t.Topic, Partitions: ps})
			}
			slices.SortFunc(mv.Assigned, func(a, b assignmentView) int { return strings.Compare(a.Topic, b.Topic) })
		}
		out.Members = append(out.Members, mv)
	}
	committed, err := adm.FetchOffsets(ctx, name)
	if err != nil {
		return 0, nil, groupErr(name, err)
	}
	var tps []topicPartition
	for _, o := range committed.Sorted() {
		if o.Err == nil && o.At >= 0 {
			tps = append(tps, topicPartition{o.Topic, o.Partition})
		}
	}
	lr := newLagReader(ctx, b, time.Now())
	lr.prefetch(tps)
	for _, tp := range tps {
		o, _ := committed.Lookup(tp.topic, tp.partition)
		pl := lr.lag(tp.topic, tp.partition, o.At)
		if pl.Error != "" {
			out.Totals.Unmeasured++
		} else {
			out.Totals.LagRecords += pl.LagRecords
			out.Totals.MaxLagSeconds = max(out.Totals.MaxLagSeconds, pl.LagSeconds)
		}
		out.Partitions = append(out.Partitions, pl)
	}
	return http.StatusOK, out, nil
}

// ---- POST /v1/groups/{group}/reset ----

// Values of resetRequest.To.
const (
	resetEarliest  = "earliest"
	resetLatest    = "latest"
	resetTimestamp = "timestamp"
	resetOffset    = "offset"
)

type resetRequest struct {
	Topic       string  `json:"topic"`
	To          string  `json:"to"`
	TimestampMs *int64  `json:"timestamp_ms"` // to=timestamp: the first record at or after it
	Offset      *int64  `json:"offset"`       // to=offset, clamped to the log's bounds
	Partitions  []int32 `json:"partitions"`   // empty: every partition
	DryRun      bool    `json:"dry_run"`
}

type resetView struct {
	Group      string               `json:"group"`
	Topic      string               `json:"topic"`
	To         string               `json:"to"`
	DryRun     bool                 `json:"dry_run"`
	Partitions []resetPartitionView `json:"partitions"`
}

type resetPartitionView struct {
	Partition int32 `json:"partition"`
	OldOffset int64 `json:"old_offset"` // -1: nothing was committed
	NewOffset int64 `json:"new_offset"`
	// Clamped is set when the requested offset was outside the log and
	// the nearest bound was taken instead.
	Clamped bool `json:"clamped,omitempty"`
}

// check validates the request on its own, before any lookup.
func (q *resetRequest) check() error {
	switch {
	case q.Topic == "":
		return apiErr(http.StatusBadRequest, "topic: required")
	case q.To != resetEarliest && q.To != resetLatest && q.To != resetTimestamp && q.To != resetOffset:
		return apiErr(http.StatusBadRequest, "to %q: want earliest, latest, timestamp or offset", q.To)
	case q.To == resetTimestamp && q.TimestampMs == nil:
		return apiErr(http.StatusBadRequest, "timestamp_ms: required with to=timestamp")
	case q.To == resetTimestamp && *q.TimestampMs < 0:
		return apiErr(http.StatusBadRequest, "timestamp_ms %d: want a time in milliseconds since the epoch, >= 0", *q.TimestampMs)
	case q.To != resetTimestamp && q.TimestampMs != nil:
		return apiErr(http.StatusBadRequest, "timestamp_ms: only with to=timestamp")
	case q.To == resetOffset && q.Offset == nil:
		return apiErr(http.StatusBadRequest, "offset: required with to=offset")
	case q.To == resetOffset && *q.Offset < 0:
		return apiErr(http.StatusBadRequest, "offset %d: want >= 0", *q.Offset)
	case q.To != resetOffset && q.Offset != nil:
		return apiErr(http.StatusBadRequest, "offset: only with to=offset")
	case hasDuplicateIDs(q.Partitions):
		return apiErr(http.StatusBadRequest, "partitions %v: a partition is listed twice", q.Partitions)
	}
	for _, p := range q.Partitions {
		if p < 0 {
			return apiErr(http.StatusBadRequest, "partitions %v: want numbers >= 0", q.Partitions)
		}
	}
	return nil
}

func (b *Broker) httpGroupReset(r *http.Request) (int, any, error) {
	name := r.PathValue("group")
	var req resetRequest
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	if err := req.check(); err != nil {
		return 0, nil, err
	}
	t := b.ctrl.State().Topic(req.Topic)
	if t == nil {
		return 0, nil, apiErr(http.StatusNotFound, "unknown topic %q", req.Topic)
	}
	parts := req.Partitions
	if len(parts) == 0 {
		for p := range t.Partitions {
			parts = append(parts, int32(p))
		}
	}
	for _, p := range parts {
		if int(p) >= len(t.Partitions) {
			return 0, nil, apiErr(http.StatusNotFound, "topic %q has no partition %d (it has %d)", req.Topic, p, len(t.Partitions))
		}
	}
	slices.Sort(parts)

	adm, ctx, cancel, err := b.groupAdmin(r)
	if err != nil {
		return 0, nil, err
	}
	defer cancel()
	old, err := adm.FetchOffsetsForTopics(ctx, name, req.Topic)
	if err != nil {
		return 0, nil, groupErr(name, err)
	}
	targets, err := b.resetTargets(ctx, adm, &req)
	if err != nil {
		return 0, nil, err
	}
	out := resetView{Group: name, Topic: req.Topic, To: req.To, DryRun: req.DryRun}
	var commit kadm.OffsetsList
	for _, p := range parts {
		pv := resetPartitionView{Partition: p, OldOffset: -1}
		if o, ok := old.Lookup(req.Topic, p); ok && o.Err == nil && o.At >= 0 {
			pv.OldOffset = o.At
		}
		tg, ok := targets[p]
		if !ok {
			return 0, nil, apiErr(http.StatusServiceUnavailable, "offsets of %s/%d not listed", req.Topic, p)
		}
		pv.NewOffset, pv.Clamped = tg.offset, tg.clamped
		out.Partitions = append(out.Partitions, pv)
		commit = append(commit, kadm.Offset{Topic: req.Topic, Partition: p, At: tg.offset, LeaderEpoch: -1})
	}
	if req.DryRun {
		return http.StatusOK, out, nil
	}
	res, err := adm.CommitOffsets(ctx, name, commit.Offsets())
	if err != nil {
		return 0, nil, groupErr(name, err)
	}
	if err := res.Error(); err != nil {
		return 0, nil, groupErr(name, err)
	}
	b.lg.Info().Str("group", name).Str("topic", req.Topic).Str("to", req.To).Int("partitions", len(parts)).Msg("consumer group offsets reset")
	return http.StatusOK, out, nil
}

type resetTarget struct {
	offset  int64
	clamped bool
}

// resetTargets lists the new offset of every partition of the topic.
func (b *Broker) resetTargets(ctx context.Context, adm *kadm.Client, req *resetRequest) (map[int32]resetTarget, error) {
	list := func(f func(context.Context, ...string) (kadm.ListedOffsets, error)) (map[int32]int64, error) {
		lo, err := f(ctx, req.Topic)
		if err == nil {
			err = lo.Error()
		}
		if err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				return nil, apiErr(http.StatusNotFound, "unknown topic %q", req.Topic)
			}
			return nil, apiErr(http.StatusServiceUnavailable, "listing offsets of %q: %v", req.Topic, err)
		}
		out := map[int32]int64{}
		for p, o := range lo[req.Topic] {
			out[p] = o.Offset
		}
		return out, nil
	}
	var offs map[int32]int64
	var err error
	switch req.To {
	case resetEarliest:
		offs, err = list(adm.ListStartOffsets)
	case resetLatest:
		offs, err = list(adm.ListEndOffsets)
	case resetTimestamp:
		// Past the last record this is the end offset, as Kafka's tool.
		offs, err = list(func(ctx context.Context, topics ...string) (kadm.ListedOffsets, error) {
			return adm.ListOffsetsAfterMilli(ctx, *req.TimestampMs, topics...)
		})
	case resetOffset:
		var starts, ends map[int32]int64
		if starts, err = list(adm.ListStartOffsets); err != nil {
			return nil, err
		}
		if ends, err = list(adm.ListEndOffsets); err != nil {
			return nil, err
		}
		out := map[int32]resetTarget{}
		for p, s := range starts {
			o := min(max(*req.Offset, s), ends[p])
			out[p] = resetTarget{offset: o, clamped: o != *req.Offset}
		}
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[int32]resetTarget{}
	for p, o := range offs {
		out[p] = resetTarget{offset: o}
	}
	return out, nil
}

// ---- DELETE /v1/groups/{group} ----

type deleteGroupView struct {
	Group   string `json:"group"`
	Deleted bool   `json:"deleted"`
}

func (b *Broker) httpGroupDelete(r *http.Request) (int, any, error) {
	name := r.PathValue("group")
	adm, ctx, cancel, err := b.groupAdmin(r)
	if err != nil {
		return 0, nil, err
	}
	defer cancel()
	res, err := adm.DeleteGroup(ctx, name)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return 0, nil, groupErr(name, err)
	}
	b.lg.Info().Str("group", name).Msg("consumer group deleted")
	return http.StatusOK, deleteGroupView{Group: name, Deleted: true}, nil
}
