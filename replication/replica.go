package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/partition"
)

// ReplicaConfig describes one replica of one partition.
type ReplicaConfig struct {
	Dir       string // the partition's directory (segment log, snapshots)
	Topic     string
	Partition int32
	Config    partition.Config
	Options   partition.Options // FS, Logger (default: Logger below), Now, MaxProducers
	ID        raft.ServerID     // this broker's raft id
	Transport raft.Transport    // the group's transport; Close closes it (raft.WithClose)
	Stable    raft.StableStore  // term and vote
	// Snapshots: nil means a SnapshotStore under Dir/snapshots over the
	// partition's log, which streams segment files to a follower whose
	// needed entries retention deleted. A store whose snapshots hold
	// manifests only (raft.FileSnapshotStore) cannot bring such a follower
	// back (FSM.Restore: ErrSnapshotNeedsSegments).
	Snapshots raft.SnapshotStore
	// Bootstrap: non-empty bootstraps the group with these voters if it
	// has no state yet (every initial replica passes the identical list);
	// empty waits to be added by the leader.
	Bootstrap []raft.Server
	Tune      func(*raft.Config) // optional, applied after RaftConfig
	Logger    zerolog.Logger
	// OnLeaderChange, optional, is called (not under locks, from one
	// goroutine, in order) whenever the locally observed leader or term
	// changes; leader is "" while none is known.
	OnLeaderChange func(leader raft.ServerID, term uint64)
}

// Replica is one replica of a partition: its segment log, which is the
// group's raft log (LogStore), the partition state machine (FSM) and the
// group's *raft.Raft.
//
// Writes (Produce, DeleteRecords, retention) are proposed by the leader
// once it is ready: after winning an election it applies everything in its
// log (one raft.Barrier per term) before it takes a proposal, so its
// producer table and high watermark are complete. Reads go through
// Partition() on any replica, up to the committed high watermark.
//
// Errors are *kerr.Error: NOT_LEADER_FOR_PARTITION when this replica is not
// a ready leader, when leadership is lost while a write is pending (its
// outcome is then unknown; idempotent producers' retries are deduplicated),
// while its raft restarts and after Close; KAFKA_STORAGE_ERROR when the log
// fails.
//
// After installing a snapshot over a log that held entries at or past the
// snapshot's index, raft's cached last entry is stale (hashicorp/raft#697):
// the replica then restarts its raft (Shutdown, NewRaft over the same log,
// stable store, snapshots and transport), from its watcher goroutine, never
// from raft's own. Its methods stay usable meanwhile.
type Replica struct {
	cfg   ReplicaConfig
	lg    zerolog.Logger
	part  *partition.Partition
	store *LogStore
	fsm   *FSM
	snaps raft.SnapshotStore
	rc    *raft.Config   // for restarts
	trans raft.Transport // cfg.Transport with its Close hidden from raft

	// rf is the group's running raft; a restart swaps it. lifeMu orders
	// restarts and Close: a restart never starts a raft after Close began.
	rf       atomic.Pointer[raftInstance]
	lifeMu   sync.Mutex
	closed   bool // under lifeMu
	restarts atomic.Uint64

	// proposeMu orders proposals: the producer sequence check, recording
	// the in-flight batch and raft.Apply happen under it, so raft's entry
	// order is sequence order. Leadership transitions clear the in-flight
	// batches under it too.
	proposeMu sync.Mutex
	// readyTerm is the term in which this replica is a leader that has
	// applied its whole log; 0 when it is not.
	readyTerm atomic.Uint64

	// acks=1 proposals waiting for the leader's fsync, by the address of
	// their command's first byte, which raft hands to StoreLogs unchanged.
	ackMu  sync.Mutex
	acks1  map[*byte]*proposal
	nAcks1 atomic.Int32
	obsCh  chan raft.Observation
	obs    *raft.Observer

	// lagging holds the followers whose heartbeats the leader's raft
	// reports failing (FailedHeartbeatObservation) until they resume;
	// InSync leaves them out. Cleared when leadership changes.
	lagMu   sync.Mutex
	lagging map[raft.ServerID]bool
	closing chan struct{}
	watched chan struct{} // closed when watch has returned

	closeOnce sync.Once
	closeErr  error
}

// OpenReplica opens the partition in cfg.Dir as a replica and starts its
// raft.
func OpenReplica(cfg ReplicaConfig) (*Replica, error) {
	if cfg.Transport == nil || cfg.Stable == nil || cfg.ID == "" || cfg.Dir == "" {
		return nil, fmt.Errorf("replication: replica needs Dir, ID, Transport and Stable")
	}
	lg := cfg.Logger.With().Str("topic", cfg.Topic).Int32("partition", cfg.Partition).Logger()
	opts := cfg.Options
	if opts.Logger == nil {
		opts.Logger = &cfg.Logger
	}
	p, err := partition.OpenReplicated(cfg.Dir, cfg.Topic, cfg.Partition, cfg.Config, opts)
	if err != nil {
		return nil, err
	}
	r := &Replica{
		cfg: cfg, lg: lg, part: p,
		acks1:   map[*byte]*proposal{},
		obsCh:   make(chan raft.Observation, 1),
		closing: make(chan struct{}),
		watched: make(chan struct{}),
	}
	if err := r.start(); err != nil {
		if r.store != nil {
			r.store.Close()
		}
		p.Close()
		return nil, err
	}
	return r, nil
}

func (r *Replica) start() error {
	cfg := r.cfg
	r.store = NewLogStore(r.part.Log(), WithLogger(r.lg))
	r.store.stored = r.onStored
	r.fsm = NewPartitionFSM(r.store, r.part, WithLogger(r.lg))
	r.snaps = cfg.Snapshots
	if r.snaps == nil {
		s, err := NewSnapshotStore(filepath.Join(cfg.Dir, "snapshots"), r.part.Log(), r.lg)
		if err != nil {
			return err
		}
		r.snaps = s
	}
	if err := r.fsm.Init(r.snaps); err != nil {
		return err
	}
	rc := RaftConfig(cfg.ID)
	rc.Logger = HCLogger(r.lg.With().Str("component", "raft").Logger().Level(zerolog.WarnLevel))
	if cfg.Tune != nil {
		cfg.Tune(rc)
	}
	if err := CheckConfig(rc); err != nil {
		return err
	}
	if len(cfg.Bootstrap) > 0 {
		has, err := raft.HasExistingState(r.store, cfg.Stable, r.snaps)
		if err != nil {
			return fmt.Errorf("replication: existing state: %w", err)
		}
		if !has {
			conf := raft.Configuration{Servers: cfg.Bootstrap}
			if err := raft.BootstrapCluster(rc, r.store, cfg.Stable, r.snaps, cfg.Transport, conf); err != nil {
				return fmt.Errorf("replication: bootstrap: %w", err)
			}
		}
	}
	r.rc = rc
	// A local append waiting longer than three heartbeat timeouts is a
	// stalled disk, not a slow one (keepOpen).
	r.store.stallAfter = 3 * rc.HeartbeatTimeout
	r.trans = keepOpen(cfg.Transport, r.store.Stalled)
	rf, err := raft.NewRaft(rc, r.fsm, r.store, cfg.Stable, r.snaps, r.trans)
	if err != nil {
		return fmt.Errorf("replication: start raft: %w", err)
	}
	r.rf.Store(newInstance(rf))
	r.obs = raft.NewObserver(r.obsCh, false, r.observe)
	rf.RegisterObserver(r.obs)
	go r.watch()
	return nil
}

// observe is the observer's filter, run on raft's goroutines: it records
// failing and resumed heartbeats itself (cheap, never blocking) and
// passes leadership changes on to watch.
func (r *Replica) observe(o *raft.Observation) bool {
	switch d := o.Data.(type) {
	case raft.LeaderObservation, raft.RaftState:
		return true
	case raft.FailedHeartbeatObservation:
		r.lagMu.Lock()
		if r.lagging == nil {
			r.lagging = map[raft.ServerID]bool{}
		}
		r.lagging[d.PeerID] = true
		r.lagMu.Unlock()
	case raft.ResumedHeartbeatObservation:
		r.lagMu.Lock()
		delete(r.lagging, d.PeerID)
		r.lagMu.Unlock()
	}
	return false
}

// InSync returns, on the leader, the voters of the group's configuration
// that the leader is in contact with (itself included): Kafka's ISR as
// raft sees it. A follower whose heartbeats fail drops out until they
// resume; a replica still catching up as a non-voter (during a move) is
// not a voter. Elsewhere it returns nil: only the leader knows.
func (r *Replica) InSync() []raft.ServerID {
	rf := r.rf.Load()
	if rf.State() != raft.Leader {
		return nil
	}
	f := rf.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	r.lagMu.Lock()
	defer r.lagMu.Unlock()
	var out []raft.ServerID
	for _, sv := range f.Configuration().Servers {
		if sv.Suffrage == raft.Voter && !r.lagging[sv.ID] {
			out = append(out, sv.ID)
		}
	}
	return out
}

// raftInstance is one run of the group's raft. gone is closed once the
// replica has shut it down (restart or Close): raft's Shutdown answers
// neither the futures still queued in its channels (an Apply or Barrier
// in applyCh, a VerifyLeader in verifyCh) nor committed entries not yet
// applied, so waiters also watch gone (await).
type raftInstance struct {
	*raft.Raft
	gone     chan struct{}
	goneOnce sync.Once
}

func newInstance(rf *raft.Raft) *raftInstance {
	return &raftInstance{Raft: rf, gone: make(chan struct{})}
}

// shutdown shuts the raft down and then releases every waiter. Calling it
// again (Close after a failed restart) does no harm.
func (ri *raftInstance) shutdown() error {
	err := ri.Shutdown().Error()
	ri.goneOnce.Do(func() { close(ri.gone) })
	return err
}

// await is f.Error(), or raft.ErrRaftShutdown once gone is closed and f has
// no answer: its outcome is then unknown (an entry may still have been
// stored, and commit under the next leader).
func await(f raft.Future, gone <-chan struct{}) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }() // ends with f; never, for a future raft dropped
	select {
	case err := <-done:
		return err
	case <-gone:
		select {
		case err := <-done:
			return err
		default:
			return raft.ErrRaftShutdown
		}
	}
}

// keepOpen returns t without its raft.WithClose: raft's Shutdown closes a
// transport that has it, and a restart runs a new raft over the same one.
// Close closes it instead. WithPreVote is kept (raft checks for it).
//
// It also holds replication while stalled reports true (this replica's
// log append has been waiting on the disk too long): a leader whose disk
// stalls blocks in StoreLogs, but hashicorp/raft's heartbeats go on from
// other goroutines, so followers would never elect another leader. With
// its AppendEntries refused they time out and do; the stalled leader
// steps down when its append returns and it hears the new term.
func keepOpen(t raft.Transport, stalled func() bool) raft.Transport {
	h := holdable{t, stalled}
	if pv, ok := t.(raft.WithPreVote); ok {
		return transportPreVote{h, pv}
	}
	return transportOnly{h}
}

// errStalled fails replication RPCs of a replica whose disk is stalled.
var errStalled = errors.New("replication: local log append stalled; not replicating")

type holdable struct {
	raft.Transport
	stalled func() bool
}

func (t holdable) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if t.stalled() {
		return errStalled
	}
	return t.Transport.AppendEntries(id, target, args, resp)
}

func (t holdable) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	if t.stalled() {
		return nil, errStalled
	}
	return t.Transport.AppendEntriesPipeline(id, target)
}

type transportOnly struct{ holdable }

type transportPreVote struct {
	holdable
	pv raft.WithPreVote
}

func (t transportPreVote) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.pv.RequestPreVote(id, target, args, resp)
}

// restartRaft replaces the group's raft with a new instance over the same
// stores, so that it reads its last log entry back from the log: the fix
// for the stale cached entry an InstallSnapshot can leave
// (hashicorp/raft#697). It runs on the watcher goroutine, outside raft's.
// Proposals to the old raft fail with ErrRaftShutdown
// (NOT_LEADER_FOR_PARTITION); the replica is a follower anyway, as it
// has just installed a leader's snapshot.
func (r *Replica) restartRaft() error {
	r.lifeMu.Lock()
	defer r.lifeMu.Unlock()
	if r.closed {
		return nil
	}
	r.unready()
	old := r.rf.Load()
	old.DeregisterObserver(r.obs)
	// Until the new raft sets its own, heartbeats queue like other RPCs
	// instead of reaching the old raft, which ignores them.
	r.trans.SetHeartbeatHandler(nil)
	if err := old.shutdown(); err != nil {
		return fmt.Errorf("replication: restart raft: shutdown: %w", err)
	}
	rf, err := raft.NewRaft(r.rc, r.fsm, r.store, r.cfg.Stable, r.snaps, r.trans)
	if err != nil {
		return fmt.Errorf("replication: restart raft: %w", err)
	}
	rf.RegisterObserver(r.obs)
	r.rf.Store(newInstance(rf))
	n := r.restarts.Add(1)
	last, _ := r.store.LastIndex()
	r.lg.Warn().Uint64("last_index", last).Uint64("restarts", n).
		Msg("restarted raft after a snapshot install cut the log below its cached last entry (hashicorp/raft#697)")
	return nil
}

// RaftRestarts counts the raft restarts after snapshot installs
// (hashicorp/raft#697) since open.
func (r *Replica) RaftRestarts() uint64 { return r.restarts.Load() }

// Partition is the read side: Fetch (up to the committed high watermark,
// on any replica), ListOffset without a leadership check, HighWatermark,
// LogStartOffset, Changed, Config, Log, Topic, Index.
func (r *Replica) Partition() *partition.Partition { return r.part }

// FSM is the replica's state machine (for metrics and tests).
func (r *Replica) FSM() *FSM { return r.fsm }

// Raft is the group's raft, for membership changes and leadership
// transfer. A restart after a snapshot install (hashicorp/raft#697)
// replaces it: call Raft for each use rather than keeping the result; the
// replaced instance answers ErrRaftShutdown.
func (r *Replica) Raft() *raft.Raft { return r.rf.Load().Raft }

// Leader is the leader this replica knows of ("" when none) and its term.
func (r *Replica) Leader() (id raft.ServerID, term uint64) {
	rf := r.rf.Load()
	_, id = rf.LeaderWithID()
	return id, rf.CurrentTerm()
}

// IsLeader reports whether this replica is the group's leader.
func (r *Replica) IsLeader() bool { return r.rf.Load().State() == raft.Leader }

// Ready reports whether this replica is the leader and has applied its
// whole log in its term, so it takes writes.
func (r *Replica) Ready() bool {
	t := r.readyTerm.Load()
	rf := r.rf.Load()
	return t != 0 && t == rf.CurrentTerm() && rf.State() == raft.Leader
}

// SetConfig applies a changed topic configuration to this replica (every
// replica gets it from the broker's metadata; it is not replicated here).
func (r *Replica) SetConfig(cfg partition.Config) error { return r.part.SetConfig(cfg) }

// watch follows leadership: it reports leader changes, makes a new leader
// ready (barrier, then clear the in-flight view) and unready when it
// loses leadership. It also restarts raft when the FSM's Restore asks for
// it (hashicorp/raft#697).
func (r *Replica) watch() {
	defer close(r.watched)
	var lastID raft.ServerID
	var lastTerm uint64
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		rf := r.rf.Load()
		select {
		case <-r.closing:
			return
		case <-r.fsm.stale:
			if err := r.restartRaft(); err != nil {
				// The replica can take no part in the group any more;
				// every call answers NOT_LEADER_FOR_PARTITION until Close.
				r.lg.Error().Err(err).Msg("raft restart failed")
			}
			rf = r.rf.Load()
		case <-rf.LeaderCh():
		case <-r.obsCh:
		case <-retry.C:
		}
		_, id := rf.LeaderWithID()
		term := rf.CurrentTerm()
		if (id != lastID || term != lastTerm) && r.cfg.OnLeaderChange != nil {
			r.cfg.OnLeaderChange(id, term)
		}
		lastID, lastTerm = id, term
		if rf.State() != raft.Leader {
			r.unready()
			continue
		}
		if r.readyTerm.Load() == term {
			continue
		}
		r.unready() // a previous term's view must not survive into this one
		// ReadIndex and producer state both need everything in the log
		// applied: a barrier commits an entry of this term (and so every
		// earlier one) and returns once the FSM has applied them.
		err := await(rf.Barrier(0), rf.gone)
		if err == nil && rf.State() == raft.Leader && rf.CurrentTerm() == term {
			r.proposeMu.Lock()
			r.part.ClearInflight()
			r.readyTerm.Store(term)
			r.proposeMu.Unlock()
			r.lg.Info().Uint64("term", term).Int64("high_watermark", r.part.HighWatermark()).Msg("leader ready")
			continue
		}
		// Lost it again, the barrier failed, or raft was shut down (Close
		// or a restart, which only this goroutine does): look again
		// shortly.
		retry.Reset(50 * time.Millisecond)
	}
}

// unready stops taking writes and forgets the in-flight proposals, whose
// outcome is unknown; acks=1 waiters learn theirs from their futures.
func (r *Replica) unready() {
	r.lagMu.Lock()
	clear(r.lagging) // only a leader's view; the next leader starts afresh
	r.lagMu.Unlock()
	if r.readyTerm.Swap(0) == 0 {
		return
	}
	r.proposeMu.Lock()
	r.part.ClearInflight()
	r.proposeMu.Unlock()
	r.ackMu.Lock()
	clear(r.acks1)
	r.nAcks1.Store(0)
	r.ackMu.Unlock()
	r.lg.Info().Msg("no longer leader")
}

// proposal is one proposed produce batch. It is the partition's Pending for
// the in-flight batch: Wait gives the base offset once the entry is
// committed and applied.
type proposal struct {
	future raft.ApplyFuture // set under proposeMu before anyone can Wait
	gone   chan struct{}    // of the raft instance future belongs to
	once   sync.Once
	done   chan struct{}
	off    int64
	err    error

	// acks=1: closed when the leader's log has fsynced the entry.
	stored    chan struct{}
	storedOff int64
}

func (p *proposal) Done() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait resolves the future once (raft's futures are single-reader).
func (p *proposal) Wait() (int64, error) {
	p.once.Do(func() {
		defer close(p.done)
		if err := await(p.future, p.gone); err != nil {
			p.err = err
			return
		}
		switch v := p.future.Response().(type) {
		case int64:
			p.off = v
		case error:
			p.err = v
		default:
			p.err = fmt.Errorf("replication: produce applied with response %v (%T)", v, v)
		}
	})
	return p.off, p.err
}

// Produce proposes one produced batch (records: exactly one RecordBatch
// v2). It copies records behind the command tag; ProduceCommand avoids the
// copy. acks: -1 answers once the batch is committed (fsynced by a
// majority) and applied; 1 once the leader's log has fsynced it; 0 at once
// (the returned wait does not block). A duplicate of a recent batch of an
// idempotent producer is answered with the original's offset.
func (r *Replica) Produce(records []byte, acks int16) (wait func() (partition.ProduceResult, error)) {
	cmd := make([]byte, 1+len(records))
	copy(cmd[1:], records)
	return r.ProduceCommand(cmd, acks)
}

// ProduceCommand is Produce without the copy: cmd[0] is a spare byte the
// replica overwrites with CmdProduce, and cmd[1:] is the batch. The
// caller hands cmd over for good and must never reuse it: the log stamps
// the base offset into it, the leader's FSM reads it, and the LogStore
// keeps it in its tail cache to send to followers after the entry is
// applied; the garbage collector has it once all of them let go.
func (r *Replica) ProduceCommand(cmd []byte, acks int16) (wait func() (partition.ProduceResult, error)) {
	if len(cmd) < 1 {
		return failed(kerr.CorruptMessage)
	}
	if !r.Ready() {
		return failed(kerr.NotLeaderForPartition)
	}
	pr, err := r.part.Prepare(cmd[1:])
	if err != nil {
		return failed(err)
	}
	if len(pr.Batch) != len(cmd)-1 {
		return failed(kerr.CorruptMessage)
	}
	cmd[0] = CmdProduce
	h := pr.Header
	prop := &proposal{done: make(chan struct{})}
	if acks == 1 {
		prop.stored = make(chan struct{})
	}
	r.proposeMu.Lock()
	if !r.Ready() {
		r.proposeMu.Unlock()
		return failed(kerr.NotLeaderForPartition)
	}
	if h.ProducerID >= 0 {
		dup, err := r.part.Sequence(h, prop)
		if err != nil {
			r.proposeMu.Unlock()
			return failed(err)
		}
		if dup != nil {
			r.proposeMu.Unlock()
			if acks == 0 {
				return r.noAck(pr)
			}
			return func() (partition.ProduceResult, error) {
				off, err := dup.Wait()
				if err != nil {
					return partition.ProduceResult{}, r.kafkaErr(err)
				}
				return r.result(off, pr), nil
			}
		}
	}
	if acks == 1 {
		r.ackMu.Lock()
		r.acks1[&cmd[0]] = prop
		r.nAcks1.Add(1)
		r.ackMu.Unlock()
	}
	rf := r.rf.Load()
	prop.future, prop.gone = rf.Apply(cmd, 0), rf.gone
	r.proposeMu.Unlock()

	switch acks {
	case 0:
		return r.noAck(pr)
	case 1:
		return func() (partition.ProduceResult, error) {
			select {
			case <-prop.stored:
				return r.result(prop.storedOff, pr), nil
			default:
			}
			go prop.Wait() // resolves done; ends with the proposal's future
			select {
			case <-prop.stored:
				return r.result(prop.storedOff, pr), nil
			case <-prop.done:
			}
			r.ackMu.Lock()
			if r.acks1[&cmd[0]] == prop {
				delete(r.acks1, &cmd[0])
				r.nAcks1.Add(-1)
			}
			r.ackMu.Unlock()
			select {
			case <-prop.stored: // stored, then failed to commit: acks=1 is satisfied
				return r.result(prop.storedOff, pr), nil
			default:
			}
			off, err := prop.Wait()
			if err != nil {
				return partition.ProduceResult{}, r.kafkaErr(err)
			}
			return r.result(off, pr), nil
		}
	default:
		return func() (partition.ProduceResult, error) {
			off, err := prop.Wait()
			if err != nil {
				return partition.ProduceResult{}, r.kafkaErr(err)
			}
			return r.result(off, pr), nil
		}
	}
}

func (r *Replica) noAck(pr partition.Prepared) func() (partition.ProduceResult, error) {
	return func() (partition.ProduceResult, error) {
		return partition.ProduceResult{BaseOffset: -1, LogAppendTime: pr.LogAppendTime, LogStartOffset: r.part.LogStartOffset()}, nil
	}
}

func (r *Replica) result(off int64, pr partition.Prepared) partition.ProduceResult {
	return partition.ProduceResult{BaseOffset: off, LogAppendTime: pr.LogAppendTime, LogStartOffset: r.part.LogStartOffset()}
}

func failed(err error) func() (partition.ProduceResult, error) {
	return func() (partition.ProduceResult, error) { return partition.ProduceResult{}, err }
}

// onStored is the LogStore's hook after a successful StoreLogs: on the
// leader, the entries are the proposers' own raft.Logs, whose Data is the
// command buffer, so an acks=1 proposal is found by its first byte's
// address. The log stamped the base offset into the batch.
func (r *Replica) onStored(logs []*raft.Log) {
	if r.nAcks1.Load() == 0 {
		return
	}
	r.ackMu.Lock()
	defer r.ackMu.Unlock()
	for _, l := range logs {
		if !isProduce(l.Data) || len(l.Data) < 9 {
			continue
		}
		p := r.acks1[&l.Data[0]]
		if p == nil {
			continue
		}
		delete(r.acks1, &l.Data[0])
		r.nAcks1.Add(-1)
		p.storedOff = int64(binary.BigEndian.Uint64(l.Data[1:9]))
		close(p.stored)
	}
}

// kafkaErr maps an error from raft, the FSM or the log onto a Kafka code.
func (r *Replica) kafkaErr(err error) error {
	var ke *kerr.Error
	switch {
	case errors.As(err, &ke):
		return err
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrRaftShutdown),
		errors.Is(err, raft.ErrAbortedByRestore), errors.Is(err, raft.ErrNotVoter):
		return kerr.NotLeaderForPartition
	}
	r.lg.Error().Err(err).Msg("replica storage error")
	return kerr.KafkaStorageError
}

// ConfirmLeader reports whether this replica leads and a majority still
// agrees (a quorum round trip): a leader paused and resumed believes it
// leads until it hears the new term, and must not answer for the group.
func (r *Replica) ConfirmLeader() bool {
	if !r.Ready() {
		return false
	}
	rf := r.rf.Load()
	return await(rf.VerifyLeader(), rf.gone) == nil
}

// ListOffset answers ListOffsets on the leader: after it is ready (it has
// applied its whole log in this term), VerifyLeader confirms that a
// quorum still follows it (the ReadIndex recipe), so the high watermark
// it reads covers every acknowledged write. Elsewhere it is
// NOT_LEADER_FOR_PARTITION.
func (r *Replica) ListOffset(ts int64) (offset, timestamp int64, err error) {
	if !r.Ready() {
		return 0, 0, kerr.NotLeaderForPartition
	}
	rf := r.rf.Load()
	if err := await(rf.VerifyLeader(), rf.gone); err != nil {
		return 0, 0, r.kafkaErr(err)
	}
	return r.part.ListOffset(ts)
}

// DeleteRecords moves the log start of every replica to offset (-1: the
// high watermark), through a replicated command, and returns the new low
// watermark. Leader only.
func (r *Replica) DeleteRecords(offset int64) (lowWatermark int64, err error) {
	if !r.Ready() {
		return 0, kerr.NotLeaderForPartition
	}
	hw := r.part.HighWatermark()
	if offset == -1 {
		offset = hw
	}
	if offset < 0 || offset > hw {
		return 0, kerr.OffsetOutOfRange
	}
	if offset <= r.part.LogStartOffset() {
		return r.part.LogStartOffset(), nil
	}
	if err := r.propose(appendDeleteBefore(nil, CmdDeleteRecords, offset)); err != nil {
		return 0, err
	}
	return r.part.LogStartOffset(), nil
}

// ApplyRetention is called periodically on every replica. The leader
// proposes a CmdRetention command when retention.ms or retention.bytes
// would move the log start (never past the high watermark); every replica
// applies it. Every replica also removes the segments below the log start
// that its snapshots no longer need, taking a snapshot first when only
// that holds the removal up.
func (r *Replica) ApplyRetention() error {
	if r.Ready() {
		if cut := r.part.RetentionCut(); cut > r.part.LogStartOffset() {
			if err := r.propose(appendDeleteBefore(nil, CmdRetention, cut)); err != nil {
				return err
			}
		}
	}
	blocked, err := r.fsm.trim()
	if err != nil {
		return r.kafkaErr(err)
	}
	if blocked {
		// Persist trims again once the snapshot is stored. A raft shut
		// down (Close, or a restart) trims at the next call.
		err := r.rf.Load().Snapshot().Error()
		if err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) && !errors.Is(err, raft.ErrRaftShutdown) {
			return r.kafkaErr(err)
		}
	}
	return nil
}

// Compact runs a cleaner pass over this replica's own log when the topic's
// cleanup.policy includes compact (partition.Compact: committed records
// only). It is not a replicated command: every replica cleans its own log,
// as Kafka's do, and keeps every raft entry, index, term and offset, so
// raft may still send the cleaned entries to a follower (docs/DESIGN.md
// "Compaction").
func (r *Replica) Compact() (log.CompactStats, error) {
	now := time.Now
	if r.cfg.Options.Now != nil {
		now = r.cfg.Options.Now
	}
	return r.part.Compact(now())
}

// ProposeShare replicates a share group's state delta through the group
// and waits until it is committed (and applied here). Only the leader may,
// and only in term, the term the delta's working copy was built in: a
// copy from an earlier term of this leader (leadership lost and won back
// while a request held it) would otherwise commit deltas beside the
// current copy's, and the state machine ignores a sequence number it has
// seen, so the current copy would silently diverge.
func (r *Replica) ProposeShare(group string, term uint64, delta []byte) error {
	if !r.Ready() || r.readyTerm.Load() != term {
		return kerr.NotLeaderForPartition
	}
	return r.propose(appendShareState(nil, group, delta))
}

// ProposeShareReset replaces a share group's state on this partition
// (partition.ResetShare on every replica; a nil delta deletes it) and
// waits until it is committed and applied here. Only the leader may; the
// caller drops any working copy of the state, which would write over it.
func (r *Replica) ProposeShareReset(group string, delta []byte) error {
	if !r.Ready() {
		return kerr.NotLeaderForPartition
	}
	return r.propose(appendShareReset(nil, group, delta))
}

func (r *Replica) propose(cmd []byte) error {
	rf := r.rf.Load()
	f := rf.Apply(cmd, 0)
	if err := await(f, rf.gone); err != nil {
		return r.kafkaErr(err)
	}
	if err, ok := f.Response().(error); ok {
		return r.kafkaErr(err)
	}
	return nil
}

// Close takes a snapshot (so that the next open replays nothing), shuts
// raft down, closes the transport (when it has a Close) and closes the
// partition. It is idempotent, and safe during a raft restart: it waits
// for the restart and shuts the new raft down.
func (r *Replica) Close() error {
	r.closeOnce.Do(func() {
		r.lifeMu.Lock()
		r.closed = true
		rf := r.rf.Load()
		r.lifeMu.Unlock()
		if err := rf.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			r.lg.Warn().Err(err).Msg("snapshot at close")
		}
		close(r.closing)
		err := rf.shutdown()
		rf.DeregisterObserver(r.obs)
		<-r.watched
		r.readyTerm.Store(0)
		if c, ok := r.cfg.Transport.(raft.WithClose); ok {
			if cerr := c.Close(); err == nil {
				err = cerr
			}
		}
		r.store.Close()
		if cerr := r.part.Close(); err == nil {
			err = cerr
		}
		r.closeErr = err
	})
	return r.closeErr
}
