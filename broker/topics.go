package broker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/broker/controller"
	"github.com/sluicemq/sluice/log/vfs"
	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
)

// replica is what the handlers use of a partition hosted on this broker:
// *replication.Replica. Reads go to Partition() on any replica; writes and
// ListOffsets need the leader and answer NOT_LEADER_OR_FOLLOWER elsewhere.
type replica interface {
	Partition() *partition.Partition
	Produce(records []byte, acks int16) func() (partition.ProduceResult, error)
	ListOffset(ts int64) (offset, timestamp int64, err error)
	DeleteRecords(offset int64) (int64, error)
	ApplyRetention() error
	SetConfig(cfg partition.Config) error
	Leader() (raft.ServerID, uint64)
	IsLeader() bool
	ConfirmLeader() bool
	ProposeShare(group string, term uint64, delta []byte) error
	ProposeShareReset(group string, delta []byte) error
	Ready() bool
	InSync() []raft.ServerID
	Close() error
}

// topic is one topic as this broker sees it: the controller's metadata
// plus the replicas hosted here. It is immutable once published; changes
// publish a new one, so handlers read a *topic without locks.
type topic struct {
	name      string
	id        [16]byte
	overrides map[string]string
	assign    []controller.Assignment
	parts     []replica // nil where this broker hosts no replica
}

// partition returns the local replica of partition i, or nil when t is nil
// (an unknown topic), i is out of range, or no replica of i is hosted here.
func (t *topic) partition(i int32) replica {
	if t == nil || i < 0 || int(i) >= len(t.parts) {
		return nil
	}
	return t.parts[i]
}

// has reports whether partition i exists (hosted here or not).
func (t *topic) has(i int32) bool { return t != nil && i >= 0 && int(i) < len(t.assign) }

// partitionError is the error for partition i of t when partition(i) is
// nil: unknown, or hosted elsewhere (clients then refresh metadata).
func (t *topic) partitionError(i int32) *kerr.Error {
	if t.has(i) {
		return kerr.NotLeaderForPartition
	}
	return kerr.UnknownTopicOrPartition
}

type partKey struct {
	id controller.TopicID
	p  int32
}

// view is a published set of topics.
type view struct {
	state  *controller.State
	topics map[string]*topic
	ids    map[[16]byte]*topic
}

// identity is <data_dir>/node.json: which node and cluster the directory
// belongs to, so a broker started on the wrong directory refuses it.
type identity struct {
	Version   int    `json:"version"`
	NodeID    int32  `json:"node_id"`
	ClusterID string `json:"cluster_id,omitempty"`
}

// registry keeps the topics and the replicas hosted on this broker in
// line with the controller's metadata (reconcile), and turns topic
// changes into controller proposals.
type registry struct {
	b        *Broker
	dir      string
	defaults map[string]string
	lg       zerolog.Logger

	cur atomic.Pointer[view]

	mu       sync.Mutex // guards replicas, configs and failed; held by reconcile
	replicas map[partKey]replica
	configs  map[partKey]partition.Config
	// failed: assigned here, but not open: it did not open (e.g.
	// log.ErrCorrupt; reconcile retries) or its log failed on an I/O error
	// (not reopened by this process; see watchDamage).
	failed map[partKey]failure
	kick   chan struct{} // asks reconcileLoop for another pass

	idMu      sync.Mutex
	ident     identity
	pidMu     sync.Mutex
	nextPID   int64
	pidEnd    int64
	cleanedUp atomic.Bool
}

// checkIdentity reads node.json, creating it on a fresh directory, and
// refuses a directory that belongs to another node or cluster.
func checkIdentity(dir string, nodeID int32, clusterID string) (identity, error) {
	if _, err := os.Stat(filepath.Join(dir, "metadata.json")); err == nil {
		return identity{}, fmt.Errorf("broker: %s was written by the single-node format of an earlier Sluice (metadata.json); move it away or choose another data_dir", dir)
	}
	path := filepath.Join(dir, "node.json")
	b, err := vfs.ReadFile(vfs.OS{}, path, 1<<20)
	switch {
	case errors.Is(err, os.ErrNotExist):
		id := identity{Version: 1, NodeID: nodeID, ClusterID: clusterID}
		return id, writeIdentity(dir, id)
	case err != nil:
		return identity{}, err
	}
	var id identity
	if err := json.Unmarshal(b, &id); err != nil {
		return identity{}, fmt.Errorf("broker: %s is damaged: %w", path, err)
	}
	if id.NodeID != nodeID {
		return identity{}, fmt.Errorf("broker: data directory %s belongs to node %d, this is node %d: refusing to use it", dir, id.NodeID, nodeID)
	}
	if clusterID != "" && id.ClusterID != "" && id.ClusterID != clusterID {
		return identity{}, fmt.Errorf("broker: data directory %s belongs to cluster %q, configured %q: refusing to use it", dir, id.ClusterID, clusterID)
	}
	return id, nil
}

func writeIdentity(dir string, id identity) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	return vfs.WriteFileAtomic(vfs.OS{}, filepath.Join(dir, "node.json"), b)
}

func newRegistry(b *Broker, ident identity, defaults map[string]string) *registry {
	r := &registry{
		b: b, dir: b.cfg.DataDir, defaults: defaults, lg: b.lg.With().Str("component", "registry").Logger(),
		replicas: map[partKey]replica{}, configs: map[partKey]partition.Config{}, failed: map[partKey]failure{}, kick: make(chan struct{}, 1), ident: ident,
	}
	r.cur.Store(&view{state: &controller.State{}, topics: map[string]*topic{}, ids: map[[16]byte]*topic{}})
	return r
}

func (r *registry) view() *view { return r.cur.Load() }

func (r *registry) get(name string) *topic { return r.view().topics[name] }

func (r *registry) getByID(id [16]byte) *topic { return r.view().ids[id] }

// list returns the topics sorted by name.
func (r *registry) list() []*topic {
	v := r.view()
	out := make([]*topic, 0, len(v.topics))
	for _, name := range slices.Sorted(maps.Keys(v.topics)) {
		out = append(out, v.topics[name])
	}
	return out
}

func (r *registry) clusterID() string {
	r.idMu.Lock()
	defer r.idMu.Unlock()
	return r.ident.ClusterID
}

func (r *registry) topicDir(id controller.TopicID) string {
	return filepath.Join(r.dir, "topics", id.String())
}

func (r *registry) partDir(id controller.TopicID, p int32) string {
	return filepath.Join(r.topicDir(id), strconv.Itoa(int(p)))
}

func groupID(id controller.TopicID, p int32) string {
	return "p/" + id.String() + "/" + strconv.Itoa(int(p))
}

// reconcileLoop applies every new controller state: it opens the replicas
// assigned to this broker, closes (and deletes) those no longer assigned,
// applies config changes and publishes the view. It is the only goroutine
// that opens or closes replicas.
func (r *registry) reconcileLoop() {
	defer r.b.bgWG.Done()
	select {
	case <-r.b.idChecked:
	case <-r.b.closing:
		return
	}
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		changed := r.b.ctrl.Changed()
		if !r.reconcile(r.b.ctrl.State()) {
			retry.Reset(time.Second)
		}
		select {
		case <-r.b.closing:
			return
		case <-changed:
		case <-retry.C:
		case <-r.kick:
		}
	}
}

// reconcile brings the local replicas in line with st. It returns false
// when something failed and should be retried.
func (r *registry) reconcile(st *controller.State) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ok := true
	self := r.b.cfg.NodeID
	want := map[partKey]bool{}
	for _, t := range st.Topics {
		cfg := partitionConfig(effectiveConfigs(r.defaults, t.Configs))
		for i, a := range t.Partitions {
			if !slices.Contains(a.Replicas, self) {
				continue
			}
			k := partKey{t.ID, int32(i)}
			want[k] = true
			if rep := r.replicas[k]; rep != nil {
				if r.configs[k] != cfg {
					if err := rep.SetConfig(cfg); err != nil {
						r.lg.Error().Err(err).Str("topic", t.Name).Int("partition", i).Msg("apply topic config")
						ok = false
					} else {
						r.configs[k] = cfg
					}
				}
				continue
			}
			if r.failed[k] == failedIO {
				continue // see watchDamage: only a restart or a move off and back
			}
			rep, err := r.openReplica(st, t, int32(i), a, cfg)
			if err != nil {
				r.lg.Error().Err(err).Str("topic", t.Name).Int("partition", i).Msg("open replica")
				r.failed[k] = failedOpen
				ok = false
				continue
			}
			delete(r.failed, k)
			r.replicas[k], r.configs[k] = rep, cfg
			r.b.bgWG.Add(1)
			go r.watchDamage(k, t.Name, rep)
			r.b.ops.kickBalance() // spread leaders once the new group has one
		}
	}
	for k, rep := range r.replicas {
		if want[k] {
			continue
		}
		if err := rep.Close(); err != nil {
			r.lg.Error().Err(err).Str("topic_id", k.id.String()).Int32("partition", k.p).Msg("close replica")
		}
		delete(r.replicas, k)
		delete(r.configs, k)
		r.b.mux.RemoveGroup(groupID(k.id, k.p))
		r.removeDir(r.partDir(k.id, k.p))
		if st.TopicByID(k.id) == nil || !wantsTopic(want, k.id) {
			r.removeDir(r.topicDir(k.id))
		}
		r.lg.Info().Str("topic_id", k.id.String()).Int32("partition", k.p).Msg("replica removed")
	}
	// A replica that never opened (a damaged log refuses to) is removed
	// too once it is moved off: moving it back then starts it empty, to
	// be repaired from its peers, instead of reopening the damage.
	for k := range r.failed {
		if want[k] {
			continue
		}
		delete(r.failed, k)
		r.removeDir(r.partDir(k.id, k.p))
		if st.TopicByID(k.id) == nil || !wantsTopic(want, k.id) {
			r.removeDir(r.topicDir(k.id))
		}
		r.lg.Warn().Str("topic_id", k.id.String()).Int32("partition", k.p).Msg("replica that failed to open removed")
	}
	r.publish(st)
	return ok
}

// watchDamage takes rep out of service when its log turns out to be
// untrustworthy while running, so it neither votes nor leads nor serves:
//   - stored data found corrupt by a read: the replica counts as failed
//     to open, exactly as if the damage had been found at start, and
//     reconcile retries the open, which the damaged log refuses, until an
//     operator moves the replica off this broker and back to rebuild it
//     from its peers;
//   - a write or fsync error (the log failed closed): the page cache may
//     still show what the disk lost, so the replica is not reopened by
//     this process at all; a restart of the broker reopens it (recovery
//     then reads what the disk really holds), or a move off and back
//     rebuilds it. Left running, its raft instance kept campaigning and
//     winning elections it could not serve.
func (r *registry) watchDamage(k partKey, name string, rep replica) {
	defer r.b.bgWG.Done()
	l := rep.Partition().Log()
	ioFailed := false
	select {
	case <-l.Damaged():
	case <-l.Failed():
		ioFailed = true
	case <-l.Stopped():
		return
	case <-r.b.closing:
		return
	}
	// Under r.mu, like reconcile's closes: no open of the same directory
	// may start before this close ends.
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.replicas[k] != rep {
		return
	}
	if ioFailed {
		r.lg.Error().Str("topic", name).Int32("partition", k.p).
			Msg("replica's log failed on an I/O error: replica closed until this broker restarts (or the replica is moved off and back)")
		r.failed[k] = failedIO
	} else {
		r.lg.Error().Str("topic", name).Int32("partition", k.p).
			Msg("replica's stored data is corrupt: replica closed until repaired (move it off this broker and back)")
		r.failed[k] = failedOpen
	}
	delete(r.replicas, k)
	delete(r.configs, k)
	r.publish(r.cur.Load().state)
	if err := rep.Close(); err != nil {
		r.lg.Warn().Err(err).Str("topic", name).Int32("partition", k.p).Msg("close untrustworthy replica")
	}
	r.b.mux.RemoveGroup(groupID(k.id, k.p))
	r.kickReconcile()
}

// failure is why a replica assigned here is not open.
type failure uint8

const (
	failedOpen failure = iota + 1 // the open failed (a damaged log refuses to); retried
	failedIO                      // its log failed on an I/O error; not reopened by this process
)

// kickReconcile asks for a reconcile pass soon.
func (r *registry) kickReconcile() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// wantsTopic reports whether a replica of topic id is assigned here.
func wantsTopic(want map[partKey]bool, id controller.TopicID) bool {
	for k := range want {
		if k.id == id {
			return true
		}
	}
	return false
}

func (r *registry) openReplica(st *controller.State, t *controller.TopicState, p int32, a controller.Assignment, cfg partition.Config) (replica, error) {
	var boot []raft.Server
	if a.Epoch == 0 && slices.Contains(a.Bootstrap, r.b.cfg.NodeID) {
		for _, id := range a.Bootstrap {
			br := st.Brokers[id]
			if br == nil || br.RaftAddr == "" {
				return nil, fmt.Errorf("broker %d of the initial replicas is not registered yet", id)
			}
			boot = append(boot, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(strconv.Itoa(int(id))), Address: raft.ServerAddress(br.RaftAddr)})
		}
	}
	if err := os.MkdirAll(r.topicDir(t.ID), 0o755); err != nil {
		return nil, err
	}
	// For operators: which topic a directory of ids holds.
	if name := filepath.Join(r.topicDir(t.ID), "topic.json"); !exists(name) {
		b, _ := json.Marshal(map[string]string{"name": t.Name, "id": t.ID.String()})
		if err := vfs.WriteFileAtomic(vfs.OS{}, name, b); err != nil {
			return nil, err
		}
	}
	plg := r.b.lg.With().Str("component", "partition").Logger()
	rlg := r.b.lg.With().Str("component", "replica").Str("topic", t.Name).Int32("partition", p).Logger()
	gid := groupID(t.ID, p)
	topicID := t.ID
	isOffsets := t.Name == offsetsTopic
	// The first election of a partition should go to its preferred
	// replica (the first listed), as Kafka starts a new partition there:
	// otherwise the leader balancer moves it a moment later and clients
	// stall while they follow. The other bootstrap replicas wait three
	// heartbeat timeouts before campaigning until they know a leader.
	var slowed atomic.Bool
	slowed.Store(boot != nil && len(a.Replicas) > 0 && a.Replicas[0] != r.b.cfg.NodeID)
	var opened atomic.Pointer[replication.Replica]
	openDone := make(chan struct{})
	tune := func(c *raft.Config) {
		r.b.tuneRaft(c)
		if slowed.Load() {
			c.HeartbeatTimeout *= 3
			c.ElectionTimeout *= 3
		}
	}
	rep, err := replication.OpenReplica(replication.ReplicaConfig{
		Dir: r.partDir(t.ID, p), Topic: t.Name, Partition: p, Config: cfg,
		Options:   partition.Options{Logger: &plg, FS: r.b.debugFS.partitionFS(), CacheWindow: r.b.cfg.PageCacheWindow},
		ID:        raft.ServerID(strconv.Itoa(int(r.b.cfg.NodeID))),
		Transport: r.b.mux.Group(gid),
		Stable:    r.b.stable.Group(gid),
		Bootstrap: boot,
		Tune:      tune,
		Logger:    rlg,
		OnLeaderChange: func(leader raft.ServerID, term uint64) {
			if leader != "" && slowed.CompareAndSwap(true, false) {
				go r.restoreTimeouts(openDone, &opened)
			}
			if leader == raft.ServerID(strconv.Itoa(int(r.b.cfg.NodeID))) {
				r.b.reportLeader(topicID, p, term)
			}
			if isOffsets {
				r.b.groups.Kick()
			}
		},
	})
	opened.Store(rep)
	close(openDone)
	if err != nil {
		r.b.mux.RemoveGroup(gid)
		return nil, err
	}
	return rep, nil
}

// restoreTimeouts gives a replica that waited for its preferred replica's
// first election the broker's raft timeouts again.
func (r *registry) restoreTimeouts(openDone <-chan struct{}, opened *atomic.Pointer[replication.Replica]) {
	select {
	case <-openDone:
	case <-r.b.closing:
		return
	}
	rep := opened.Load()
	if rep == nil {
		return
	}
	rf := rep.Raft()
	rc := rf.ReloadableConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout = r.b.cfg.RaftHeartbeatTimeout, r.b.cfg.RaftHeartbeatTimeout
	if err := rf.ReloadConfig(rc); err != nil {
		r.lg.Debug().Err(err).Msg("restore raft timeouts")
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// removeDir deletes a directory by renaming it aside first, so a crash
// midway never leaves a half-deleted replica that looks whole.
func (r *registry) removeDir(dir string) {
	gone := dir + ".deleted"
	if err := os.Rename(dir, gone); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			r.lg.Error().Err(err).Str("dir", dir).Msg("cannot remove directory")
		}
		return
	}
	os.RemoveAll(gone)
	// A snapshot install interrupted by a crash leaves its staging area
	// beside the replica's directory (log.Log.NewStaging).
	os.RemoveAll(dir + ".staging")
}

// publish builds and publishes the view of st; the caller holds mu.
func (r *registry) publish(st *controller.State) {
	v := &view{state: st, topics: make(map[string]*topic, len(st.Topics)), ids: make(map[[16]byte]*topic, len(st.Topics))}
	for _, ts := range st.Topics {
		t := &topic{name: ts.Name, id: ts.ID, overrides: ts.Configs, assign: ts.Partitions, parts: make([]replica, len(ts.Partitions))}
		for i := range ts.Partitions {
			t.parts[i] = r.replicas[partKey{ts.ID, int32(i)}]
		}
		v.topics[t.name], v.ids[t.id] = t, t
	}
	r.cur.Store(v)
}

// removeLeftovers deletes directories of topics the metadata no longer
// has (deleted while this broker was down) and of interrupted deletions.
// It runs once, after this broker's registration was applied, so the
// local metadata is at least as new as anything that happened before it.
func (r *registry) removeLeftovers() {
	if r.cleanedUp.Swap(true) {
		return
	}
	st := r.b.ctrl.State()
	entries, _ := os.ReadDir(filepath.Join(r.dir, "topics"))
	for _, e := range entries {
		path := filepath.Join(r.dir, "topics", e.Name())
		var id controller.TopicID
		switch {
		case filepath.Ext(e.Name()) == ".deleted":
			os.RemoveAll(path)
		case id.UnmarshalText([]byte(e.Name())) != nil:
			r.lg.Warn().Str("dir", path).Msg("directory belongs to no topic; leaving it alone")
		case st.TopicByID(id) == nil:
			r.lg.Info().Str("dir", path).Msg("removing the files of a deleted topic")
			r.removeDir(path)
		}
	}
}

func (r *registry) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, rep := range r.replicas {
		if err := rep.Close(); err != nil {
			r.lg.Error().Err(err).Str("topic_id", k.id.String()).Int32("partition", k.p).Msg("close replica")
		}
	}
	r.replicas = map[partKey]replica{}
}

// topicError is a Kafka error with a message for the response.
type topicError struct {
	code *kerr.Error
	msg  string
}

func (e *topicError) Error() string { return e.code.Message + ": " + e.msg }
func (e *topicError) Unwrap() error { return e.code }

func terr(code *kerr.Error, format string, args ...any) error {
	return &topicError{code: code, msg: fmt.Sprintf(format, args...)}
}

// controllerTimeout bounds how long a handler waits for the controller.
const controllerTimeout = 15 * time.Second

// propose applies a controller command and turns its outcome into a
// Kafka error.
func (r *registry) propose(cmd controller.Command) (controller.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), controllerTimeout)
	defer cancel()
	res, err := r.b.ctrl.Propose(ctx, cmd)
	if err != nil {
		r.lg.Warn().Err(err).Str("op", cmd.Op).Msg("controller proposal failed")
		return res, terr(kerr.RequestTimedOut, "controller: %v", err)
	}
	var ce *controller.Error
	if err := res.Err(); errors.As(err, &ce) {
		if code, ok := ce.Code.(*kerr.Error); ok {
			return res, terr(code, "%s", ce.Message)
		}
		return res, err
	}
	return res, nil
}

// create makes a topic with replication factor rf. With validateOnly it
// only checks what can be checked locally.
func (r *registry) create(name string, partitions int32, rf int16, assignments [][]int32, overrides map[string]string, validateOnly bool) (*topic, error) {
	if err := validTopicName(name); err != nil {
		return nil, terr(kerr.InvalidTopicException, "%v", err)
	}
	if partitions < 1 || partitions > controller.MaxPartitions {
		return nil, terr(kerr.InvalidPartitions, "%d partitions; must be 1 to %d", partitions, controller.MaxPartitions)
	}
	overrides, err := validateTopicConfigs(overrides)
	if err != nil {
		return nil, terr(kerr.InvalidConfig, "%v", err)
	}
	st := r.b.ctrl.State()
	if st.Topic(name) != nil {
		return nil, terr(kerr.TopicAlreadyExists, "topic %q already exists", name)
	}
	if n := len(st.Brokers); assignments == nil && (rf < 1 || int(rf) > n) {
		return nil, terr(kerr.InvalidReplicationFactor, "replication factor %d; the cluster has %d registered brokers", rf, n)
	}
	if validateOnly {
		return &topic{name: name, overrides: overrides}, nil
	}
	var id controller.TopicID
	rand.Read(id[:])
	if _, err := r.propose(controller.Command{
		Op: controller.OpCreateTopic, Topic: name, TopicID: id, Partitions: partitions, ReplicationFactor: rf,
		Assignments: assignments, Configs: overrides,
	}); err != nil {
		return nil, err
	}
	r.waitView(func(v *view) bool { return v.ids[id] != nil })
	r.lg.Info().Str("topic", name).Int32("partitions", partitions).Int16("replication_factor", rf).Msg("topic created")
	if t := r.getByID(id); t != nil {
		return t, nil
	}
	return &topic{name: name, id: id, overrides: overrides}, nil
}

// waitView waits (briefly) until the published view satisfies ok, so a
// client that created a topic finds it in its next request here.
func (r *registry) waitView(ok func(*view) bool) {
	deadline := time.Now().Add(5 * time.Second)
	for !ok(r.view()) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// delete removes a topic from the metadata; every broker then removes its
// replicas and files (reconcile).
func (r *registry) delete(t *topic) error {
	if _, err := r.propose(controller.Command{Op: controller.OpDeleteTopic, Topic: t.name, TopicID: t.id}); err != nil {
		return err
	}
	r.waitView(func(v *view) bool { return v.ids[t.id] == nil })
	r.lg.Info().Str("topic", t.name).Msg("topic deleted")
	return nil
}

// addPartitions grows a topic to count partitions.
func (r *registry) addPartitions(t *topic, count int32, validateOnly bool) error {
	have := int32(len(t.assign))
	switch {
	case count <= have:
		return terr(kerr.InvalidPartitions, "topic %q has %d partitions; the new count %d must be larger", t.name, have, count)
	case count > controller.MaxPartitions:
		return terr(kerr.InvalidPartitions, "%d partitions; the limit is %d", count, controller.MaxPartitions)
	case validateOnly:
		return nil
	}
	if _, err := r.propose(controller.Command{Op: controller.OpCreatePartitions, Topic: t.name, Partitions: count}); err != nil {
		return err
	}
	r.waitView(func(v *view) bool { nt := v.ids[t.id]; return nt == nil || len(nt.assign) >= int(count) })
	return nil
}

// setOverrides replaces a topic's config overrides.
func (r *registry) setOverrides(t *topic, overrides map[string]string, validateOnly bool) error {
	overrides, err := validateTopicConfigs(overrides)
	if err != nil {
		return terr(kerr.InvalidConfig, "%v", err)
	}
	if validateOnly {
		return nil
	}
	if _, err = r.propose(controller.Command{Op: controller.OpSetConfigs, Topic: t.name, Configs: overrides}); err != nil {
		return err
	}
	// So a DescribeConfigs right after the alter sees it (the view is
	// published separately from the controller's state).
	r.waitView(func(v *view) bool { nt := v.ids[t.id]; return nt == nil || maps.Equal(nt.overrides, overrides) })
	return nil
}

// allocProducerID hands out a new producer id from a block reserved
// through the controller, so ids are unique across the cluster and a
// restart never reuses one.
func (r *registry) allocProducerID() (int64, error) {
	r.pidMu.Lock()
	defer r.pidMu.Unlock()
	if r.nextPID >= r.pidEnd {
		res, err := r.propose(controller.Command{Op: controller.OpAllocProducerIDs})
		if err != nil {
			return 0, err
		}
		r.nextPID, r.pidEnd = res.Value, res.Value+controller.ProducerIDBlock
	}
	id := r.nextPID
	r.nextPID++
	return id, nil
}

// newClusterID is 16 random bytes in URL-safe base64 without padding, the
// shape of Kafka's cluster ids.
func newClusterID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
