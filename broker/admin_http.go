package broker

// The cluster operations' HTTP admin API (JSON), served on http_addr by
// every broker. Long operations (moves, decommissioning) are recorded in
// the controller and driven by the controller leader (clusterops.go); the
// endpoints answer 202 at once and GET endpoints show progress.
//
//	GET  /v1/cluster                                  brokers, controller, partitions
//	POST /v1/partitions/{topic}/{partition}/move      {"replicas":[2,3,4]}
//	GET  /v1/partitions/{topic}/{partition}/move      progress of a move
//	POST /v1/partitions/{topic}/{partition}/leader    {"broker":2}
//	POST /v1/leaders/rebalance                        leadership to preferred replicas
//	POST /v1/brokers/{id}/decommission                drain: move every replica off
//	GET  /v1/brokers/{id}/decommission                progress of a drain
//	POST /v1/brokers/{id}/undrain                     stop draining
//
// Consumer groups (admin_groups.go):
//
//	GET    /v1/groups                                 groups, state, protocol type
//	GET    /v1/groups/{group}                         members, assignments, lag
//	POST   /v1/groups/{group}/reset                   {"topic":"t","to":"earliest"}
//	DELETE /v1/groups/{group}                         delete an empty group
//
// Errors are {"error": "..."} with a 4xx status for bad requests (400
// malformed, 404 unknown topic, partition, broker or group, 409 refused in the
// current state) and 503 when the controller or a partition leader cannot
// be reached.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/broker/controller"
)

// maxAdminBody bounds an admin request body.
const maxAdminBody = 64 << 10

// apiError is an HTTP error answer.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func apiErr(status int, format string, args ...any) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// registerAdminRoutes adds the cluster operations and the group routes to
// the HTTP server.
func (b *Broker) registerAdminRoutes() {
	routes := map[string]func(*http.Request) (int, any, error){
		"GET /v1/cluster": b.httpCluster,
		"POST /v1/partitions/{topic}/{partition}/move":   b.httpMove,
		"GET /v1/partitions/{topic}/{partition}/move":    b.httpMoveStatus,
		"POST /v1/partitions/{topic}/{partition}/leader": b.httpTransfer,
		"POST /v1/leaders/rebalance":                     b.httpRebalance,
		"POST /v1/brokers/{id}/decommission":             b.httpDecommission,
		"GET /v1/brokers/{id}/decommission":              b.httpDecommissionStatus,
		"POST /v1/brokers/{id}/undrain":                  b.httpUndrain,
	}
	for pattern, h := range routes {
		b.http.Handle(pattern, b.adminHandler(h))
	}
	b.registerGroupRoutes()
	b.registerDebugFSRoutes()
}

// adminHandler runs h and writes its answer or error as JSON.
func (b *Broker) adminHandler(h func(*http.Request) (int, any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, body, err := h(r)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				ae = &apiError{status: http.StatusInternalServerError, msg: err.Error()}
			}
			if ae.status >= 500 {
				b.lg.Warn().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("admin request failed")
			}
			status, body = ae.status, map[string]string{"error": ae.msg}
		}
		writeJSON(w, status, body)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		fmt.Fprintf(&buf, "{\"error\": %q}\n", err.Error())
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// decodeBody reads one JSON object into v, refusing unknown fields,
// trailing data and bodies over maxAdminBody.
func decodeBody(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	if err != nil {
		return apiErr(http.StatusBadRequest, "reading the body: %v", err)
	}
	if len(body) > maxAdminBody {
		return apiErr(http.StatusRequestEntityTooLarge, "body over %d bytes", maxAdminBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiErr(http.StatusBadRequest, "body: %v", err)
	}
	if dec.More() {
		return apiErr(http.StatusBadRequest, "body: trailing data after the JSON object")
	}
	return nil
}

// pathPartition resolves {topic} and {partition}.
func (b *Broker) pathPartition(r *http.Request) (*controller.State, *controller.TopicState, int32, error) {
	st := b.ctrl.State()
	name := r.PathValue("topic")
	t := st.Topic(name)
	if t == nil {
		return nil, nil, 0, apiErr(http.StatusNotFound, "unknown topic %q", name)
	}
	p, err := strconv.ParseInt(r.PathValue("partition"), 10, 32)
	if err != nil || p < 0 {
		return nil, nil, 0, apiErr(http.StatusBadRequest, "partition %q: want a number >= 0", r.PathValue("partition"))
	}
	if int(p) >= len(t.Partitions) {
		return nil, nil, 0, apiErr(http.StatusNotFound, "topic %q has no partition %d (it has %d)", name, p, len(t.Partitions))
	}
	return st, t, int32(p), nil
}

// pathBroker resolves {id} to a registered broker.
func (b *Broker) pathBroker(r *http.Request) (*controller.State, *controller.BrokerInfo, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 32)
	if err != nil || id < 0 {
		return nil, nil, apiErr(http.StatusBadRequest, "broker id %q: want a number >= 0", r.PathValue("id"))
	}
	st := b.ctrl.State()
	br := st.Brokers[int32(id)]
	if br == nil {
		return nil, nil, apiErr(http.StatusNotFound, "broker %d is not registered", id)
	}
	return st, br, nil
}

// propose applies cmd and maps a refusal to an HTTP status.
func (b *Broker) proposeAdmin(r *http.Request, cmd controller.Command) error {
	ctx, cancel := context.WithTimeout(r.Context(), controllerTimeout)
	defer cancel()
	res, err := b.ctrl.Propose(ctx, cmd)
	if err != nil {
		return apiErr(http.StatusServiceUnavailable, "controller: %v", err)
	}
	var ce *controller.Error
	if err := res.Err(); errors.As(err, &ce) {
		status := http.StatusConflict
		switch ce.Code {
		case kerr.UnknownTopicOrPartition, kerr.BrokerNotAvailable:
			status = http.StatusNotFound
		case kerr.InvalidReplicaAssignment, kerr.InvalidRequest:
			status = http.StatusBadRequest
		case kerr.LeaderNotAvailable:
			status = http.StatusServiceUnavailable
		}
		return apiErr(status, "%s", ce.Message)
	}
	return nil
}

// ---- GET /v1/cluster ----

type clusterView struct {
	ClusterID  string         `json:"cluster_id"`
	Controller controllerView `json:"controller"`
	Brokers    []brokerView   `json:"brokers"`
	Topics     []topicView    `json:"topics"`
}

type controllerView struct {
	Leader  int32    `json:"leader"` // -1: none known
	Voters  []int32  `json:"voters"`
	Members []member `json:"members,omitempty"` // the controller group's raft configuration
}

type brokerView struct {
	ID        int32  `json:"id"`
	KafkaAddr string `json:"kafka_addr"`
	RaftAddr  string `json:"raft_addr"`
	HTTPAddr  string `json:"http_addr,omitempty"`
	Voter     bool   `json:"voter"`
	Draining  bool   `json:"draining"`
	Replicas  int    `json:"replicas"`
	Leaders   int    `json:"leaders"`
}

type topicView struct {
	Name       string          `json:"name"`
	ID         string          `json:"id"`
	Partitions []partitionView `json:"partitions"`
}

type partitionView struct {
	Partition int32   `json:"partition"`
	Replicas  []int32 `json:"replicas"`
	Target    []int32 `json:"target,omitempty"` // set while the partition moves
	Leader    int32   `json:"leader"`           // -1: none known
	Epoch     int32   `json:"epoch"`
}

func (b *Broker) httpCluster(*http.Request) (int, any, error) {
	v := b.reg.view()
	st := v.state
	out := clusterView{ClusterID: st.ClusterID, Controller: controllerView{Leader: b.ctrl.Leader()}, Brokers: []brokerView{}, Topics: []topicView{}}
	for _, vt := range b.voters {
		out.Controller.Voters = append(out.Controller.Voters, vt.ID)
	}
	if f := b.ctrl.Raft().GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			out.Controller.Members = append(out.Controller.Members, member{ID: controller.ParseServerID(s.ID), Voter: s.Suffrage == raft.Voter})
		}
	}
	counts, leaders := replicaCounts(st), map[int32]int{}
	for _, name := range st.TopicNames() {
		ts := st.Topics[name]
		tv := topicView{Name: name, ID: ts.ID.String()}
		local := v.ids[ts.ID]
		for i, a := range ts.Partitions {
			leader := a.Leader
			if local != nil && i < len(local.assign) {
				leader, _ = leaderOf(local, i)
			}
			if leader >= 0 {
				leaders[leader]++
			}
			tv.Partitions = append(tv.Partitions, partitionView{Partition: int32(i), Replicas: a.Replicas, Target: a.Target, Leader: leader, Epoch: a.Epoch})
		}
		out.Topics = append(out.Topics, tv)
	}
	for _, id := range st.BrokerIDs() {
		br := st.Brokers[id]
		out.Brokers = append(out.Brokers, brokerView{
			ID: id, KafkaAddr: br.Host + ":" + strconv.Itoa(int(br.Port)), RaftAddr: br.RaftAddr, HTTPAddr: br.HTTPAddr,
			Voter: br.Voter, Draining: br.Draining, Replicas: counts[id], Leaders: leaders[id],
		})
	}
	return http.StatusOK, out, nil
}

// ---- moves ----

type moveRequest struct {
	Replicas []int32 `json:"replicas"`
}

type moveView struct {
	Topic     string        `json:"topic"`
	Partition int32         `json:"partition"`
	State     string        `json:"state"` // moving or done
	Replicas  []int32       `json:"replicas"`
	Target    []int32       `json:"target,omitempty"`
	Progress  *moveProgress `json:"progress,omitempty"`
	// ProgressError says why the controller leader's progress report is
	// missing.
	ProgressError string `json:"progress_error,omitempty"`
}

func (b *Broker) moveView(ctx context.Context, st *controller.State, t *controller.TopicState, p int32) moveView {
	a := t.Partitions[p]
	mv := moveView{Topic: t.Name, Partition: p, State: "done", Replicas: a.Replicas, Target: a.Target}
	if a.Target == nil {
		return mv
	}
	mv.State = "moving"
	rep, err := b.ops.fetchProgress(ctx)
	if err != nil {
		mv.ProgressError = err.Error()
		return mv
	}
	mv.Progress = rep.Moves[progressKey(partKey{t.ID, p})]
	return mv
}

func (b *Broker) httpMove(r *http.Request) (int, any, error) {
	st, t, p, err := b.pathPartition(r)
	if err != nil {
		return 0, nil, err
	}
	var req moveRequest
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	a := t.Partitions[p]
	switch {
	case len(req.Replicas) == 0:
		return 0, nil, apiErr(http.StatusBadRequest, "replicas: want one or more broker ids")
	case hasDuplicateIDs(req.Replicas):
		return 0, nil, apiErr(http.StatusBadRequest, "replicas %v: a broker is listed twice", req.Replicas)
	case len(req.Replicas) > len(st.Brokers):
		return 0, nil, apiErr(http.StatusBadRequest, "replicas %v: %d replicas, but the cluster has %d registered brokers", req.Replicas, len(req.Replicas), len(st.Brokers))
	}
	for _, id := range req.Replicas {
		br := st.Brokers[id]
		if br == nil {
			return 0, nil, apiErr(http.StatusBadRequest, "replicas %v: broker %d is not registered", req.Replicas, id)
		}
		if br.Draining && !slices.Contains(a.Replicas, id) {
			return 0, nil, apiErr(http.StatusBadRequest, "replicas %v: broker %d is draining and takes no new replicas", req.Replicas, id)
		}
	}
	if a.Target != nil && !slices.Equal(a.Target, req.Replicas) {
		return 0, nil, apiErr(http.StatusConflict, "partition %s/%d is already moving to %v; wait for that move to finish", t.Name, p, a.Target)
	}
	if err := b.proposeAdmin(r, controller.Command{Op: controller.OpReassign, TopicID: t.ID, Partition: p, Replicas: req.Replicas}); err != nil {
		return 0, nil, err
	}
	b.lg.Info().Str("topic", t.Name).Int32("partition", p).Ints32("from", a.Replicas).Ints32("to", req.Replicas).Msg("partition move requested")
	st = b.ctrl.State()
	if t = st.TopicByID(t.ID); t == nil {
		return 0, nil, apiErr(http.StatusNotFound, "topic deleted meanwhile")
	}
	mv := b.moveView(r.Context(), st, t, p)
	if mv.State == "done" {
		return http.StatusOK, mv, nil
	}
	return http.StatusAccepted, mv, nil
}

func hasDuplicateIDs(ids []int32) bool {
	s := slices.Clone(ids)
	slices.Sort(s)
	return len(slices.Compact(s)) != len(ids)
}

func (b *Broker) httpMoveStatus(r *http.Request) (int, any, error) {
	st, t, p, err := b.pathPartition(r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, b.moveView(r.Context(), st, t, p), nil
}

// ---- leadership ----

type transferRequest struct {
	Broker *int32 `json:"broker"`
}

type transferView struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Previous  int32  `json:"previous_leader"`
	Leader    int32  `json:"leader"`
	Note      string `json:"note,omitempty"`
}

func (b *Broker) httpTransfer(r *http.Request) (int, any, error) {
	st, t, p, err := b.pathPartition(r)
	if err != nil {
		return 0, nil, err
	}
	var req transferRequest
	if err := decodeBody(r, &req); err != nil {
		return 0, nil, err
	}
	a := t.Partitions[p]
	switch {
	case req.Broker == nil:
		return 0, nil, apiErr(http.StatusBadRequest, "broker: required")
	case !slices.Contains(a.Replicas, *req.Broker):
		return 0, nil, apiErr(http.StatusBadRequest, "broker %d holds no replica of %s/%d (replicas %v)", *req.Broker, t.Name, p, a.Replicas)
	case a.Target != nil:
		return 0, nil, apiErr(http.StatusConflict, "partition %s/%d is moving to %v; transfer leadership after the move", t.Name, p, a.Target)
	}
	to := *req.Broker
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	k := partKey{t.ID, p}
	leader, ls, err := b.ops.findLeader(ctx, st, k, a)
	if err != nil {
		return 0, nil, apiErr(http.StatusServiceUnavailable, "%v", err)
	}
	out := transferView{Topic: t.Name, Partition: p, Previous: leader, Leader: to}
	if leader == to {
		out.Note = "already the leader"
		return http.StatusOK, out, nil
	}
	if m, ok := ls.server(to); !ok || !m.Voter {
		return 0, nil, apiErr(http.StatusConflict, "broker %d is not a voter of the partition's raft group yet", to)
	}
	if err := b.ops.change(ctx, st, k, leader, "transfer", to); err != nil {
		return 0, nil, apiErr(http.StatusServiceUnavailable, "leadership transfer to broker %d: %v", to, err)
	}
	if err := b.ops.waitNewLeader(ctx, st, k, a, leader); err != nil {
		return 0, nil, apiErr(http.StatusServiceUnavailable, "%v", err)
	}
	if id, _, err := b.ops.findLeader(ctx, st, k, a); err == nil {
		out.Leader = id
	}
	b.lg.Info().Str("topic", t.Name).Int32("partition", p).Int32("from", leader).Int32("to", out.Leader).Msg("partition leadership transferred")
	if b.cfg.AutoLeaderRebalance && a.Replicas[0] != out.Leader {
		out.Note = "auto_leader_rebalance hands leadership back to the preferred replica (the first listed) at its next check; to make this lasting, move the partition to the same brokers with this one first"
	}
	return http.StatusOK, out, nil
}

type rebalanceView struct {
	Transfers []transferResult `json:"transfers"`
	Errors    map[int32]string `json:"errors,omitempty"` // brokers that could not be asked
}

func (b *Broker) httpRebalance(r *http.Request) (int, any, error) {
	ctx, cancel := context.WithTimeout(r.Context(), 40*time.Second)
	defer cancel()
	res, errs := b.ops.rebalanceAll(ctx)
	if res == nil {
		res = []transferResult{}
	}
	return http.StatusOK, rebalanceView{Transfers: res, Errors: errs}, nil
}

// ---- decommissioning ----

type decommissionView struct {
	Broker            int32           `json:"broker"`
	Draining          bool            `json:"draining"`
	Done              bool            `json:"done"`
	ReplicasRemaining int             `json:"replicas_remaining"`
	Partitions        []partitionMove `json:"partitions,omitempty"` // still on the broker
	Error             string          `json:"error,omitempty"`      // why draining cannot progress
	ProgressError     string          `json:"progress_error,omitempty"`
	Note              string          `json:"note,omitempty"`
}

type partitionMove struct {
	Topic     string        `json:"topic"`
	Partition int32         `json:"partition"`
	Replicas  []int32       `json:"replicas"`
	Target    []int32       `json:"target,omitempty"`
	Progress  *moveProgress `json:"progress,omitempty"`
}

func (b *Broker) decommissionView(ctx context.Context, st *controller.State, id int32) decommissionView {
	br := st.Brokers[id]
	v := decommissionView{Broker: id, Draining: br != nil && br.Draining}
	var rep progressReport
	if v.Draining {
		var err error
		if rep, err = b.ops.fetchProgress(ctx); err != nil {
			v.ProgressError = err.Error()
		}
		v.Error = rep.DrainErr[id]
	}
	for _, k := range drainingPartitions(st, id) {
		t := st.TopicByID(k.id)
		a := t.Partitions[k.p]
		v.Partitions = append(v.Partitions, partitionMove{Topic: t.Name, Partition: k.p, Replicas: a.Replicas, Target: a.Target, Progress: rep.Moves[progressKey(k)]})
	}
	v.ReplicasRemaining = len(v.Partitions)
	v.Done = v.Draining && v.ReplicasRemaining == 0
	switch {
	case v.Done:
		v.Note = "the broker holds no replicas and takes no new ones; it can be stopped"
	case v.Draining:
		v.Note = "replicas move off one partition at a time"
	}
	return v
}

func (b *Broker) httpDecommission(r *http.Request) (int, any, error) {
	st, br, err := b.pathBroker(r)
	if err != nil {
		return 0, nil, err
	}
	if br.Voter {
		return 0, nil, apiErr(http.StatusConflict, "broker %d is a controller voter and cannot be decommissioned this way: changing the controller voters is not supported yet (out of scope); decommission non-voter brokers, or move this broker's partitions with explicit moves", br.ID)
	}
	for _, k := range drainingPartitions(st, br.ID) {
		t := st.TopicByID(k.id)
		if _, err := drainTarget(st, t.Partitions[k.p], br.ID); err != nil {
			return 0, nil, apiErr(http.StatusConflict, "cannot decommission broker %d: partition %s/%d: %v", br.ID, t.Name, k.p, err)
		}
	}
	if !br.Draining {
		if err := b.proposeAdmin(r, controller.Command{Op: controller.OpDrainBroker, BrokerID: br.ID, Draining: true}); err != nil {
			return 0, nil, err
		}
		b.lg.Info().Int32("broker", br.ID).Msg("decommission requested: draining the broker")
	}
	return http.StatusAccepted, b.decommissionView(r.Context(), b.ctrl.State(), br.ID), nil
}

func (b *Broker) httpDecommissionStatus(r *http.Request) (int, any, error) {
	st, br, err := b.pathBroker(r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, b.decommissionView(r.Context(), st, br.ID), nil
}

func (b *Broker) httpUndrain(r *http.Request) (int, any, error) {
	_, br, err := b.pathBroker(r)
	if err != nil {
		return 0, nil, err
	}
	if br.Draining {
		if err := b.proposeAdmin(r, controller.Command{Op: controller.OpDrainBroker, BrokerID: br.ID, Draining: false}); err != nil {
			return 0, nil, err
		}
		b.lg.Info().Int32("broker", br.ID).Msg("broker no longer draining")
	}
	v := b.decommissionView(r.Context(), b.ctrl.State(), br.ID)
	v.Note = "the broker takes new replicas again; a move already started finishes, and replicas already moved stay where they are"
	return http.StatusOK, v, nil
}
