package broker

// Cluster operations: moving a partition's replicas (and so draining a
// broker), transferring a partition's leadership, and handing leadership
// to preferred replicas. The HTTP side is admin_http.go.
//
// A move is recorded in the controller before anything happens
// (controller.OpReassign: the assignment becomes old ∪ new replicas with
// Target naming the new set), so it survives the broker that drives it:
// the controller leader drives every recorded move (runMoves), one at a
// time, from the state alone, and a new controller leader resumes where
// the old one stopped. Each step looks at the partition's raft
// configuration as its leader sees it and does the next missing change:
//
//  1. every target replica that is not a voter is added as a non-voter,
//     waited for until it has applied what the leader had committed, then
//     promoted to voter;
//  2. every voter outside the target is removed, the leader last: it first
//     hands leadership to a target replica;
//  3. when the configuration is exactly the target, OpCompleteReassign sets
//     the assignment to it, and the brokers left out close and delete their
//     replicas (registry.reconcile).
//
// Every step is idempotent, so repeating one after a crash is harmless.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/broker/controller"
	"github.com/sluicemq/sluice/partition"
)

// RPC methods of cluster operations (on the internal listener).
const (
	methodOpsReplica   = "ops.replica"   // a local replica's status, or a membership change on its leader
	methodOpsRebalance = "ops.rebalance" // hand the partitions this broker leads to their preferred replicas
	methodOpsProgress  = "ops.progress"  // the moves the controller leader drives
)

// Timings of cluster operations.
const (
	opsCallTimeout       = 15 * time.Second // one RPC, one membership change
	moveAttemptTimeout   = 2 * time.Minute  // one attempt at driving a move; then the next move gets a turn
	moveRetryDelay       = 200 * time.Millisecond
	movesPollInterval    = 500 * time.Millisecond
	rebalanceConcurrency = 4
)

// raftReplica is what cluster operations use of a hosted replica
// (*replication.Replica). Raft is called for each use: a replica may
// restart its raft.
type raftReplica interface {
	Raft() *raft.Raft
	IsLeader() bool
	Partition() *partition.Partition
}

var (
	errNotHosted    = errors.New("no replica of the partition is hosted here")
	errNotLeader    = errors.New("this replica is not the partition's leader")
	errNoLeader     = errors.New("the partition has no reachable leader")
	errNotControl   = errors.New("this broker is no longer the controller leader")
	errUnknownBrokr = errors.New("broker is not registered")
)

// clusterOps runs cluster operations on one broker: the RPC handlers every
// broker serves, the move driver (active on the controller leader) and the
// preferred-leader balancer.
type clusterOps struct {
	b    *Broker
	lg   zerolog.Logger
	kick chan struct{} // a replica opened: check leaders shortly

	mu       sync.Mutex
	moves    map[partKey]*moveProgress // moves driven here, while controller leader
	drainErr map[int32]string          // why a draining broker cannot progress
	next     int                       // round robin over pending moves
	settled  map[partKey]bool          // replicas the post-open leader check has seen with a leader

	// afterChange, for tests, is called after each membership change a
	// move makes (action, broker).
	afterChange atomic.Pointer[func(action string, broker int32)]
}

// moveProgress is what the driver last did for a move.
type moveProgress struct {
	Step    string    `json:"step"`
	Error   string    `json:"error,omitempty"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
}

func newClusterOps(b *Broker) *clusterOps {
	return &clusterOps{
		b: b, lg: b.lg.With().Str("component", "cluster_ops").Logger(),
		kick:  make(chan struct{}, 1),
		moves: map[partKey]*moveProgress{}, drainErr: map[int32]string{}, settled: map[partKey]bool{},
	}
}

// register installs the RPC handlers; the mux exists.
func (o *clusterOps) register() {
	o.b.mux.Handle(methodOpsReplica, o.handleReplica)
	o.b.mux.Handle(methodOpsRebalance, o.handleRebalance)
	o.b.mux.Handle(methodOpsProgress, o.handleProgress)
}

// localReplica returns the replica of (id, p) hosted here, or nil.
func (o *clusterOps) localReplica(id controller.TopicID, p int32) raftReplica {
	rep := o.b.reg.getByID(id).partition(p)
	if rep == nil {
		return nil
	}
	rr, _ := rep.(raftReplica)
	return rr
}

// ---- the replica RPC: status and membership changes ----

type replicaRequest struct {
	TopicID   controller.TopicID `json:"topic_id"`
	Partition int32              `json:"partition"`
	// Action: status, add_nonvoter, add_voter, remove, transfer.
	Action string `json:"action"`
	Broker int32  `json:"broker,omitempty"`
	Addr   string `json:"addr,omitempty"`
}

// member is one server of a partition's raft configuration.
type member struct {
	ID    int32 `json:"id"`
	Voter bool  `json:"voter"`
}

// replicaStatus is a replica as its broker sees it.
type replicaStatus struct {
	Hosted        bool     `json:"hosted"`
	Leader        bool     `json:"leader"`
	LeaderID      int32    `json:"leader_id"`
	Term          uint64   `json:"term"`
	AppliedIndex  uint64   `json:"applied_index"`
	LastIndex     uint64   `json:"last_index"`
	CommitIndex   uint64   `json:"commit_index"`
	HighWatermark int64    `json:"high_watermark"`
	Servers       []member `json:"servers,omitempty"`
}

func (s replicaStatus) server(id int32) (member, bool) {
	for _, m := range s.Servers {
		if m.ID == id {
			return m, true
		}
	}
	return member{}, false
}

func (o *clusterOps) handleReplica(ctx context.Context, body []byte) ([]byte, error) {
	var req replicaRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("ops: bad request: %v", err)
	}
	st, err := o.replica(req)
	if err != nil {
		return nil, err
	}
	return json.Marshal(st)
}

// replica serves a replicaRequest for a replica hosted here.
func (o *clusterOps) replica(req replicaRequest) (replicaStatus, error) {
	rep := o.localReplica(req.TopicID, req.Partition)
	if rep == nil {
		if req.Action == "status" {
			return replicaStatus{LeaderID: -1}, nil
		}
		return replicaStatus{}, errNotHosted
	}
	rf := rep.Raft()
	if req.Action == "status" {
		_, lid := rf.LeaderWithID()
		st := replicaStatus{
			Hosted: true, Leader: rep.IsLeader(), LeaderID: -1, Term: rf.CurrentTerm(),
			AppliedIndex: rf.AppliedIndex(), LastIndex: rf.LastIndex(), CommitIndex: rf.CommitIndex(),
			HighWatermark: rep.Partition().HighWatermark(),
		}
		if lid != "" {
			st.LeaderID = controller.ParseServerID(lid)
		}
		if f := rf.GetConfiguration(); f.Error() == nil {
			for _, s := range f.Configuration().Servers {
				st.Servers = append(st.Servers, member{ID: controller.ParseServerID(s.ID), Voter: s.Suffrage == raft.Voter})
			}
		}
		return st, nil
	}
	if !rep.IsLeader() {
		return replicaStatus{}, errNotLeader
	}
	id := raft.ServerID(strconv.Itoa(int(req.Broker)))
	addr := raft.ServerAddress(req.Addr)
	var err error
	switch req.Action {
	case "add_nonvoter":
		err = rf.AddNonvoter(id, addr, 0, opsCallTimeout).Error()
	case "add_voter":
		err = rf.AddVoter(id, addr, 0, opsCallTimeout).Error()
	case "remove":
		err = rf.RemoveServer(id, 0, opsCallTimeout).Error()
	case "transfer":
		err = rf.LeadershipTransferToServer(id, addr).Error()
	case "barrier":
		// Commits everything the leader has appended, membership changes
		// included: GetConfiguration answers the latest configuration,
		// which may not be committed yet.
		err = rf.Barrier(opsCallTimeout).Error()
	default:
		err = fmt.Errorf("ops: unknown action %q", req.Action)
	}
	if err != nil {
		return replicaStatus{}, fmt.Errorf("%s %d: %w", req.Action, req.Broker, err)
	}
	o.lg.Info().Str("action", req.Action).Int32("broker", req.Broker).Str("topic", rep.Partition().Topic()).
		Int32("partition", req.Partition).Msg("partition raft change done")
	return replicaStatus{}, nil
}

// call sends req to broker's replica service (directly when it is this
// broker).
func (o *clusterOps) call(ctx context.Context, st *controller.State, broker int32, req replicaRequest) (replicaStatus, error) {
	if broker == o.b.cfg.NodeID {
		return o.replica(req)
	}
	br := st.Brokers[broker]
	if br == nil {
		return replicaStatus{}, fmt.Errorf("%w: %d", errUnknownBrokr, broker)
	}
	body, _ := json.Marshal(req)
	cctx, cancel := context.WithTimeout(ctx, opsCallTimeout)
	defer cancel()
	out, err := o.b.mux.Call(cctx, raft.ServerAddress(br.RaftAddr), methodOpsReplica, body)
	if err != nil {
		return replicaStatus{}, fmt.Errorf("broker %d: %w", broker, err)
	}
	var rs replicaStatus
	if err := json.Unmarshal(out, &rs); err != nil {
		return replicaStatus{}, fmt.Errorf("broker %d: bad answer: %w", broker, err)
	}
	return rs, nil
}

// change asks the partition's leader (on broker leader) to do action on
// broker target.
func (o *clusterOps) change(ctx context.Context, st *controller.State, k partKey, leader int32, action string, target int32) error {
	br := st.Brokers[target]
	if br == nil {
		return fmt.Errorf("%w: %d", errUnknownBrokr, target)
	}
	_, err := o.call(ctx, st, leader, replicaRequest{TopicID: k.id, Partition: k.p, Action: action, Broker: target, Addr: br.RaftAddr})
	if f := o.afterChange.Load(); f != nil && err == nil {
		(*f)(action, target)
	}
	return err
}

// findLeader asks the brokers holding a replica (the last reported leader
// first) until one says it leads the partition.
func (o *clusterOps) findLeader(ctx context.Context, st *controller.State, k partKey, a controller.Assignment) (int32, replicaStatus, error) {
	order := slices.Clone(a.Replicas)
	if i := slices.Index(order, a.Leader); i > 0 {
		order[0], order[i] = order[i], order[0]
	}
	var lastErr error
	for i := 0; i < len(order); i++ {
		id := order[i]
		rs, err := o.call(ctx, st, id, replicaRequest{TopicID: k.id, Partition: k.p, Action: "status"})
		switch {
		case err != nil:
			lastErr = err
		case rs.Leader:
			return id, rs, nil
		case rs.LeaderID >= 0 && slices.Contains(order[i+1:], rs.LeaderID):
			// Ask the leader it names next.
			j := i + 1 + slices.Index(order[i+1:], rs.LeaderID)
			order[i+1], order[j] = order[j], order[i+1]
		}
	}
	if lastErr != nil {
		return -1, replicaStatus{}, fmt.Errorf("%w (%v)", errNoLeader, lastErr)
	}
	return -1, replicaStatus{}, errNoLeader
}

// ---- moves, driven by the controller leader ----

// runMoves drives the recorded moves and starts those that drain brokers,
// while this broker is the controller leader.
func (o *clusterOps) runMoves() {
	defer o.b.bgWG.Done()
	ctx := o.b.stopCtx
	t := time.NewTicker(movesPollInterval)
	defer t.Stop()
	for {
		changed := o.b.ctrl.Changed()
		if o.b.ctrl.IsLeader() && o.b.ready.Load() {
			if o.stepMoves(ctx) {
				continue // more to do at once
			}
		} else {
			o.mu.Lock()
			clear(o.moves)
			clear(o.drainErr)
			o.mu.Unlock()
		}
		select {
		case <-o.b.closing:
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// stepMoves does one unit of work: one attempt at one pending move, or
// starting one move off a draining broker. It reports whether it did
// something worth following up at once.
func (o *clusterOps) stepMoves(ctx context.Context) bool {
	st := o.b.ctrl.State()
	pending := pendingMoves(st)
	o.mu.Lock()
	for k := range o.moves {
		if !slices.Contains(pending, k) {
			delete(o.moves, k)
		}
	}
	n := o.next
	o.next++
	o.mu.Unlock()
	if len(pending) > 0 {
		k := pending[n%len(pending)]
		actx, cancel := context.WithTimeout(ctx, moveAttemptTimeout)
		err := o.driveMove(actx, k)
		cancel()
		if err != nil && ctx.Err() == nil {
			ev := o.lg.Debug()
			if o.progress(k, "", err) {
				ev = o.lg.Warn() // a new error; repeats go to debug
			}
			ev.Err(err).Str("topic_id", k.id.String()).Int32("partition", k.p).Msg("move not finished; will retry")
			select {
			case <-ctx.Done():
			case <-time.After(moveRetryDelay):
			}
		}
		return ctx.Err() == nil
	}
	return o.startDrainMove(ctx, st)
}

// pendingMoves lists the partitions with a Target, in a stable order.
func pendingMoves(st *controller.State) []partKey {
	var out []partKey
	for _, name := range st.TopicNames() {
		t := st.Topics[name]
		for i, a := range t.Partitions {
			if a.Target != nil {
				out = append(out, partKey{t.ID, int32(i)})
			}
		}
	}
	return out
}

// progress records a move's step (unless empty) and error; it reports
// whether the error differs from the one recorded before.
func (o *clusterOps) progress(k partKey, step string, err error) (changed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	p := o.moves[k]
	if p == nil {
		p = &moveProgress{Started: now}
		o.moves[k] = p
	}
	if step != "" {
		p.Step = step
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	changed, p.Error, p.Updated = msg != p.Error, msg, now
	return changed
}

// driveMove takes the move of k as far as it can: it returns nil once the
// move is complete (or the partition is gone), an error when a step failed
// (the caller retries later).
func (o *clusterOps) driveMove(ctx context.Context, k partKey) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !o.b.ctrl.IsLeader() {
			return errNotControl
		}
		st := o.b.ctrl.State()
		t := st.TopicByID(k.id)
		if t == nil || int(k.p) >= len(t.Partitions) || t.Partitions[k.p].Target == nil {
			return nil
		}
		a := t.Partitions[k.p]
		lg := o.lg.With().Str("topic", t.Name).Int32("partition", k.p).Ints32("target", a.Target).Logger()
		leader, ls, err := o.findLeader(ctx, st, k, a)
		if err != nil {
			return err
		}
		if len(ls.Servers) == 0 {
			return fmt.Errorf("leader %d reported no raft configuration", leader)
		}
		done, err := o.moveStep(ctx, st, k, a, leader, ls, lg)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// moveStep does the next membership change of a move. It returns true
// once the move is complete.
func (o *clusterOps) moveStep(ctx context.Context, st *controller.State, k partKey, a controller.Assignment, leader int32, ls replicaStatus, lg zerolog.Logger) (bool, error) {
	// 1. Add and promote the new replicas, one at a time.
	for _, id := range a.Target {
		m, in := ls.server(id)
		if in && m.Voter {
			continue
		}
		if !in {
			o.progress(k, fmt.Sprintf("adding broker %d as a non-voter", id), nil)
			lg.Info().Int32("broker", id).Int32("leader", leader).Msg("move: adding a non-voter")
			if err := o.change(ctx, st, k, leader, "add_nonvoter", id); err != nil {
				return false, err
			}
		}
		o.progress(k, fmt.Sprintf("waiting for broker %d to catch up", id), nil)
		if err := o.waitCaughtUp(ctx, st, k, leader, id); err != nil {
			return false, err
		}
		o.progress(k, fmt.Sprintf("promoting broker %d to voter", id), nil)
		lg.Info().Int32("broker", id).Int32("leader", leader).Msg("move: promoting to voter")
		return false, o.change(ctx, st, k, leader, "add_voter", id)
	}
	// 2. Remove the others, the leader last (after handing leadership over).
	var leaderGoes bool
	for _, m := range ls.Servers {
		if slices.Contains(a.Target, m.ID) {
			continue
		}
		if m.ID == leader {
			leaderGoes = true
			continue
		}
		o.progress(k, fmt.Sprintf("removing broker %d", m.ID), nil)
		lg.Info().Int32("broker", m.ID).Int32("leader", leader).Msg("move: removing a replica")
		return false, o.change(ctx, st, k, leader, "remove", m.ID)
	}
	if leaderGoes {
		to := a.Target[0]
		o.progress(k, fmt.Sprintf("transferring leadership from broker %d to %d", leader, to), nil)
		lg.Info().Int32("from", leader).Int32("to", to).Msg("move: transferring leadership off a removed replica")
		if err := o.change(ctx, st, k, leader, "transfer", to); err != nil {
			return false, err
		}
		return false, o.waitNewLeader(ctx, st, k, a, leader)
	}
	// 3. The configuration is the target. It is the latest one, which
	// raft may not have committed yet: a removed replica deleting its data
	// before then could leave an acknowledged record on one disk. A barrier
	// on the leader commits it first; then record the move.
	o.progress(k, "committing the new configuration", nil)
	if err := o.change(ctx, st, k, leader, "barrier", leader); err != nil {
		return false, err
	}
	o.progress(k, "completing", nil)
	res, err := o.b.ctrl.Propose(ctx, controller.Command{Op: controller.OpCompleteReassign, TopicID: k.id, Partition: k.p, Replicas: a.Target})
	if err != nil {
		return false, err
	}
	if err := res.Err(); err != nil {
		return false, err
	}
	lg.Info().Msg("move complete")
	return true, nil
}

// waitCaughtUp waits until broker id's replica has applied everything the
// leader had committed when the wait began.
func (o *clusterOps) waitCaughtUp(ctx context.Context, st *controller.State, k partKey, leader, id int32) error {
	ls, err := o.call(ctx, st, leader, replicaRequest{TopicID: k.id, Partition: k.p, Action: "status"})
	if err != nil {
		return err
	}
	if !ls.Leader {
		return errNotLeader
	}
	for {
		fs, err := o.call(ctx, st, id, replicaRequest{TopicID: k.id, Partition: k.p, Action: "status"})
		if err == nil && fs.Hosted && fs.AppliedIndex >= ls.CommitIndex {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker %d did not catch up to index %d: %w (last status %+v, %v)", id, ls.CommitIndex, ctx.Err(), fs, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitNewLeader waits until a replica other than old leads.
func (o *clusterOps) waitNewLeader(ctx context.Context, st *controller.State, k partKey, a controller.Assignment, old int32) error {
	for {
		id, _, err := o.findLeader(ctx, st, k, a)
		if err == nil && id != old {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no new leader after the transfer: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// replicaCounts counts the replicas each registered broker holds (moving
// partitions count on both sides).
func replicaCounts(st *controller.State) map[int32]int {
	n := map[int32]int{}
	for id := range st.Brokers {
		n[id] = 0
	}
	for _, t := range st.Topics {
		for _, a := range t.Partitions {
			for _, id := range a.Replicas {
				n[id]++
			}
		}
	}
	return n
}

// drainTarget is the replica set partition a should move to so that it
// leaves broker from: from is replaced, in place, by the eligible broker
// with the fewest replicas that holds none of a's (ties: lowest id).
func drainTarget(st *controller.State, a controller.Assignment, from int32) ([]int32, error) {
	counts := replicaCounts(st)
	best := int32(-1)
	for _, id := range st.BrokerIDs() {
		if st.Brokers[id].Draining || slices.Contains(a.Replicas, id) {
			continue
		}
		if best < 0 || counts[id] < counts[best] {
			best = id
		}
	}
	if best < 0 {
		return nil, fmt.Errorf("replicas %v: no other broker that is not draining can take broker %d's replica", a.Replicas, from)
	}
	out := slices.Clone(a.Replicas)
	out[slices.Index(out, from)] = best
	return out, nil
}

// drainingPartitions lists the partitions with a replica on broker id.
func drainingPartitions(st *controller.State, id int32) []partKey {
	var out []partKey
	for _, name := range st.TopicNames() {
		t := st.Topics[name]
		for i, a := range t.Partitions {
			if slices.Contains(a.Replicas, id) {
				out = append(out, partKey{t.ID, int32(i)})
			}
		}
	}
	return out
}

// startDrainMove records the next move off a draining broker. It reports
// whether it recorded one.
func (o *clusterOps) startDrainMove(ctx context.Context, st *controller.State) bool {
	for _, id := range st.BrokerIDs() {
		if !st.Brokers[id].Draining {
			continue
		}
		for _, k := range drainingPartitions(st, id) {
			t := st.TopicByID(k.id)
			a := t.Partitions[k.p]
			target, err := drainTarget(st, a, id)
			if err != nil {
				o.setDrainErr(id, fmt.Sprintf("partition %s/%d: %v", t.Name, k.p, err))
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, opsCallTimeout)
			res, err := o.b.ctrl.Propose(pctx, controller.Command{Op: controller.OpReassign, TopicID: k.id, Partition: k.p, Replicas: target})
			cancel()
			if err == nil {
				err = res.Err()
			}
			if err != nil {
				o.setDrainErr(id, fmt.Sprintf("partition %s/%d: %v", t.Name, k.p, err))
				continue
			}
			o.setDrainErr(id, "")
			o.lg.Info().Int32("broker", id).Str("topic", t.Name).Int32("partition", k.p).Ints32("target", target).Msg("decommission: moving a replica off the broker")
			return true
		}
	}
	return false
}

func (o *clusterOps) setDrainErr(id int32, msg string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if msg == "" {
		delete(o.drainErr, id)
	} else {
		o.drainErr[id] = msg
	}
}

// progressReport is what the controller leader knows of the moves it
// drives.
type progressReport struct {
	Leader   int32                    `json:"leader"`
	Moves    map[string]*moveProgress `json:"moves"` // by "<topic id>/<partition>"
	DrainErr map[int32]string         `json:"drain_errors,omitempty"`
}

func progressKey(k partKey) string { return k.id.String() + "/" + strconv.Itoa(int(k.p)) }

func (o *clusterOps) localProgress() progressReport {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := progressReport{Leader: o.b.cfg.NodeID, Moves: map[string]*moveProgress{}, DrainErr: maps.Clone(o.drainErr)}
	for k, p := range o.moves {
		c := *p
		r.Moves[progressKey(k)] = &c
	}
	return r
}

func (o *clusterOps) handleProgress(ctx context.Context, _ []byte) ([]byte, error) {
	if !o.b.ctrl.IsLeader() {
		return nil, errNotControl
	}
	return json.Marshal(o.localProgress())
}

// fetchProgress asks the controller leader for its progress report.
func (o *clusterOps) fetchProgress(ctx context.Context) (progressReport, error) {
	if o.b.ctrl.IsLeader() {
		return o.localProgress(), nil
	}
	addr, _ := o.b.ctrl.Raft().LeaderWithID()
	if addr == "" {
		return progressReport{}, controller.ErrNoLeader
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := o.b.mux.Call(cctx, addr, methodOpsProgress, nil)
	if err != nil {
		return progressReport{}, err
	}
	var r progressReport
	return r, json.Unmarshal(out, &r)
}

// ---- leadership: preferred replicas ----

// transferResult is one leadership hand-over a rebalance tried.
type transferResult struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	From      int32  `json:"from"`
	To        int32  `json:"to"`
	Error     string `json:"error,omitempty"`
}

// balanceLocal hands each partition this broker leads to its preferred
// replica (the first listed) when that one is registered, a voter and
// caught up. Partitions being moved are left alone. With onlyNew it looks
// only at replicas not yet settled (the checks after replicas open): a
// replica settles once it is seen with a leader that is not this broker,
// or is the preferred one, or has handed leadership over. It reports
// whether some replica it looked at did not settle, to look again soon.
func (o *clusterOps) balanceLocal(ctx context.Context, onlyNew bool) (results []transferResult, unsettled bool) {
	st := o.b.ctrl.State()
	self := o.b.cfg.NodeID
	type job struct {
		k    partKey
		name string
		to   int32
		rep  raftReplica
	}
	var jobs []job
	seen := map[partKey]bool{}
	o.mu.Lock()
	for _, t := range o.b.reg.list() {
		ts := st.TopicByID(t.id)
		for i, part := range t.parts {
			rep, ok := part.(raftReplica)
			if part == nil || !ok || ts == nil || i >= len(ts.Partitions) {
				continue
			}
			k := partKey{t.id, int32(i)}
			seen[k] = true
			if onlyNew && o.settled[k] {
				continue
			}
			if _, lid := rep.Raft().LeaderWithID(); lid == "" {
				unsettled = true
				continue
			}
			a := ts.Partitions[i]
			if a.Target != nil || len(a.Replicas) == 0 || a.Replicas[0] == self || !rep.IsLeader() ||
				st.Brokers[a.Replicas[0]] == nil || st.Brokers[a.Replicas[0]].Draining {
				o.settled[k] = true
				continue
			}
			jobs = append(jobs, job{k, t.name, a.Replicas[0], rep})
		}
	}
	for k := range o.settled {
		if !seen[k] {
			delete(o.settled, k)
		}
	}
	o.mu.Unlock()

	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, rebalanceConcurrency)
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := o.handOver(ctx, st, j.k, j.rep, j.to)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				unsettled = true
			} else {
				o.mu.Lock()
				o.settled[j.k] = true
				o.mu.Unlock()
			}
			if errors.Is(err, errSkip) {
				return
			}
			r := transferResult{Topic: j.name, Partition: j.k.p, From: self, To: j.to}
			if err != nil {
				r.Error = err.Error()
				o.lg.Debug().Err(err).Str("topic", j.name).Int32("partition", j.k.p).Int32("to", j.to).Msg("preferred leader not restored")
			} else {
				o.lg.Info().Str("topic", j.name).Int32("partition", j.k.p).Int32("to", j.to).Msg("leadership handed to the preferred replica")
			}
			results = append(results, r)
		}()
	}
	wg.Wait()
	slices.SortFunc(results, func(a, b transferResult) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return results, unsettled
}

// errSkip: the preferred replica cannot take over now (not a voter, not
// caught up, unreachable); the next check tries again.
var errSkip = errors.New("skip")

// handOver transfers leadership of the local replica rep to broker to if
// to is a voter that has stored everything committed so far.
func (o *clusterOps) handOver(ctx context.Context, st *controller.State, k partKey, rep raftReplica, to int32) error {
	rf := rep.Raft()
	f := rf.GetConfiguration()
	if err := f.Error(); err != nil {
		return errSkip
	}
	voter := false
	for _, s := range f.Configuration().Servers {
		voter = voter || (controller.ParseServerID(s.ID) == to && s.Suffrage == raft.Voter)
	}
	if !voter {
		return errSkip
	}
	// A replica that just lost leadership may still be one entry (the new
	// leader's no-op) behind; give it a moment to catch up rather than
	// skipping it until the next periodic check.
	caughtUp := false
	for try := 0; try < 10 && !caughtUp; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return errSkip
			case <-time.After(100 * time.Millisecond):
			}
		}
		commit := rf.CommitIndex()
		fs, err := o.call(ctx, st, to, replicaRequest{TopicID: k.id, Partition: k.p, Action: "status"})
		if err != nil || !fs.Hosted {
			return errSkip
		}
		caughtUp = fs.LastIndex >= commit
	}
	if !caughtUp {
		return errSkip
	}
	br := st.Brokers[to]
	if err := rep.Raft().LeadershipTransferToServer(raft.ServerID(strconv.Itoa(int(to))), raft.ServerAddress(br.RaftAddr)).Error(); err != nil {
		return err
	}
	return nil
}

func (o *clusterOps) handleRebalance(ctx context.Context, _ []byte) ([]byte, error) {
	res, _ := o.balanceLocal(ctx, false)
	return json.Marshal(res)
}

// kickBalance asks the balancer to look at new replicas shortly.
func (o *clusterOps) kickBalance() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// balanceLoop is the automatic preferred-leader balancer: every
// LeaderRebalanceInterval, and shortly after replicas open (a new topic,
// a restart) until each has a leader, it hands the partitions this broker
// leads to their preferred replicas. A leadership moved away explicitly
// therefore lasts until the next periodic check.
func (o *clusterOps) balanceLoop() {
	defer o.b.bgWG.Done()
	ctx := o.b.stopCtx
	settle := max(3*o.b.cfg.RaftHeartbeatTimeout, 300*time.Millisecond)
	tick := time.NewTicker(o.b.cfg.LeaderRebalanceInterval)
	defer tick.Stop()
	soon := time.NewTimer(time.Hour)
	soon.Stop()
	defer soon.Stop()
	retries := 0
	for {
		select {
		case <-o.b.closing:
			return
		case <-o.kick:
			retries = 0
			soon.Reset(settle)
		case <-soon.C:
			if _, unsettled := o.balanceLocal(ctx, true); unsettled && retries < 60 {
				retries++
				soon.Reset(settle)
			}
		case <-tick.C:
			o.balanceLocal(ctx, false)
		}
	}
}

// rebalanceAll asks every registered broker to hand the partitions it
// leads to their preferred replicas.
func (o *clusterOps) rebalanceAll(ctx context.Context) ([]transferResult, map[int32]string) {
	st := o.b.ctrl.State()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var all []transferResult
	errs := map[int32]string{}
	for _, id := range st.BrokerIDs() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var res []transferResult
			var err error
			if id == o.b.cfg.NodeID {
				res, _ = o.balanceLocal(ctx, false)
			} else {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				var out []byte
				out, err = o.b.mux.Call(cctx, raft.ServerAddress(st.Brokers[id].RaftAddr), methodOpsRebalance, nil)
				cancel()
				if err == nil {
					err = json.Unmarshal(out, &res)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[id] = err.Error()
			}
			all = append(all, res...)
		}()
	}
	wg.Wait()
	slices.SortFunc(all, func(a, b transferResult) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return all, errs
}
