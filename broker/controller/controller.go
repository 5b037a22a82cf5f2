// Package controller is the cluster's metadata service: a raft group whose
// replicated state (State) names the brokers, the topics with their ids,
// configs and replica assignments, the last known partition leaders and
// the producer-id counter. Every broker runs a replica of the group, the
// first 3 or 5 as voters and the rest as non-voters, so every broker reads
// metadata locally; changes are proposed to the group's leader (forwarded
// there over the internal RPC channel when proposed elsewhere).
//
// Commands are applied deterministically (apply.go): placement is computed
// from the state, never from local knowledge, so all replicas agree.
package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/replication"
)

// RPC is the broker-to-broker request channel (the raft transport's mux).
type RPC interface {
	Handle(method string, h func(ctx context.Context, req []byte) ([]byte, error))
	Call(ctx context.Context, to raft.ServerAddress, method string, req []byte) ([]byte, error)
}

// Voter is a controller voter: a broker id and its raft address.
type Voter struct {
	ID       int32
	RaftAddr string
}

// Config configures a Controller.
type Config struct {
	NodeID    int32
	RaftAddr  string // this broker's advertised raft address
	Dir       string // the controller's raft log and snapshots
	Voters    []Voter
	Transport raft.Transport
	RPC       RPC
	Stable    raft.StableStore
	Tune      func(*raft.Config)
	Logger    zerolog.Logger
}

// RPC method names.
const (
	methodPropose = "controller.propose"
	methodJoin    = "controller.join"
)

// ErrNoLeader is returned when no controller leader could be reached
// before the context ended.
var ErrNoLeader = errors.New("controller: no controller leader")

// Controller is one broker's replica of the controller group.
type Controller struct {
	cfg   Config
	lg    zerolog.Logger
	store *raftboltdb.BoltStore
	raft  *raft.Raft
	fsm   *fsm
	voter bool
}

// Open starts the broker's controller replica. A voter whose group has no
// state yet bootstraps it with cfg.Voters (every voter passes the same
// list, which raft allows); a non-voter waits to be added by the leader,
// which Join asks for.
func Open(cfg Config) (*Controller, error) {
	c := &Controller{cfg: cfg, lg: cfg.Logger.With().Str("component", "controller").Logger(), fsm: newFSM()}
	for _, v := range cfg.Voters {
		if v.ID == cfg.NodeID {
			c.voter = true
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	// Unlike a partition's, the controller's log is not data that must
	// outlive raft's compaction: the state is small, lives in memory and is
	// in every snapshot. So the log is a raft-boltdb file that raft
	// compacts behind its snapshots, and stays bounded.
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "log.db")})
	if err != nil {
		return nil, fmt.Errorf("controller: open log: %w", err)
	}
	c.store = store
	l := store // closed on the error paths below
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hclog.NewNullLogger())
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("controller: snapshot store: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = serverID(cfg.NodeID)
	rc.Logger = replication.HCLogger(c.lg)
	rc.BatchApplyCh = true
	rc.NoLegacyTelemetry = true
	// Snapshot every 1024 changes and keep 4096 entries behind the latest
	// one, so a briefly lagging broker catches up from the log and the file
	// stays bounded; at start the state comes from the latest snapshot and
	// the entries after it.
	rc.SnapshotThreshold, rc.SnapshotInterval, rc.TrailingLogs = 1024, 2*time.Minute, 4096
	rc.MaxAppendEntries = 64
	if cfg.Tune != nil {
		cfg.Tune(rc)
	}
	if c.voter {
		has, err := raft.HasExistingState(store, cfg.Stable, snaps)
		if err != nil {
			l.Close()
			return nil, err
		}
		if !has {
			var servers []raft.Server
			for _, v := range cfg.Voters {
				servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: serverID(v.ID), Address: raft.ServerAddress(v.RaftAddr)})
			}
			if err := raft.BootstrapCluster(rc, store, cfg.Stable, snaps, cfg.Transport, raft.Configuration{Servers: servers}); err != nil {
				l.Close()
				return nil, fmt.Errorf("controller: bootstrap: %w", err)
			}
			c.lg.Info().Int("voters", len(servers)).Msg("bootstrapped the controller group")
		}
	}
	r, err := raft.NewRaft(rc, c.fsm, store, cfg.Stable, snaps, cfg.Transport)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("controller: start raft: %w", err)
	}
	c.raft = r
	cfg.RPC.Handle(methodPropose, c.handlePropose)
	cfg.RPC.Handle(methodJoin, c.handleJoin)
	return c, nil
}

func serverID(id int32) raft.ServerID { return raft.ServerID(strconv.Itoa(int(id))) }

// ParseServerID turns a raft server id back into a broker id (-1 if it is
// not one).
func ParseServerID(id raft.ServerID) int32 {
	n, err := strconv.ParseInt(string(id), 10, 32)
	if err != nil {
		return -1
	}
	return int32(n)
}

// State is the latest applied metadata. It is never nil and never changes;
// Changed says when a newer one is published.
func (c *Controller) State() *State { return c.fsm.state() }

// Changed returns a channel closed when the next state is published.
func (c *Controller) Changed() <-chan struct{} { return c.fsm.changed() }

// Leader is the controller leader's broker id, -1 when unknown.
func (c *Controller) Leader() int32 {
	_, id := c.raft.LeaderWithID()
	if id == "" {
		return -1
	}
	return ParseServerID(id)
}

// IsLeader reports whether this broker is the controller leader.
func (c *Controller) IsLeader() bool { return c.raft.State() == raft.Leader }

// Raft exposes the group for membership changes and stats.
func (c *Controller) Raft() *raft.Raft { return c.raft }

// Propose applies cmd through the controller leader, forwarding it there
// when this broker is not the leader, and waits until this broker's state
// includes it. It retries while there is no leader or leadership moves
// (a command whose outcome was unknown may then be applied twice; every
// command is written so that a repeat is harmless or refused cleanly).
func (c *Controller) Propose(ctx context.Context, cmd Command) (Result, error) {
	data, err := json.Marshal(cmd)
	if err != nil {
		return Result{}, err
	}
	for {
		res, index, err := c.proposeOnce(ctx, data)
		if err == nil {
			return res, c.waitApplied(ctx, index)
		}
		c.lg.Debug().Err(err).Str("op", cmd.Op).Msg("propose: retrying")
		select {
		case <-ctx.Done():
			return Result{}, fmt.Errorf("%w: %v (last error: %v)", ErrNoLeader, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type proposeReply struct {
	Result Result `json:"result"`
	Index  uint64 `json:"index"`
}

func (c *Controller) proposeOnce(ctx context.Context, data []byte) (Result, uint64, error) {
	if c.raft.State() == raft.Leader {
		return c.applyLocal(ctx, data)
	}
	addr, _ := c.raft.LeaderWithID()
	if addr == "" {
		return Result{}, 0, ErrNoLeader
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := c.cfg.RPC.Call(cctx, addr, methodPropose, data)
	if err != nil {
		return Result{}, 0, err
	}
	var rep proposeReply
	if err := json.Unmarshal(b, &rep); err != nil {
		return Result{}, 0, fmt.Errorf("controller: bad propose reply: %w", err)
	}
	return rep.Result, rep.Index, nil
}

func (c *Controller) applyLocal(ctx context.Context, data []byte) (Result, uint64, error) {
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	f := c.raft.Apply(data, timeout)
	if err := f.Error(); err != nil {
		return Result{}, 0, err
	}
	res, _ := f.Response().(Result)
	return res, f.Index(), nil
}

// handlePropose serves a forwarded proposal; only the leader applies it.
func (c *Controller) handlePropose(ctx context.Context, req []byte) ([]byte, error) {
	if c.raft.State() != raft.Leader {
		return nil, raft.ErrNotLeader
	}
	res, index, err := c.applyLocal(ctx, req)
	if err != nil {
		return nil, err
	}
	return json.Marshal(proposeReply{Result: res, Index: index})
}

func (c *Controller) waitApplied(ctx context.Context, index uint64) error {
	for {
		ch := c.fsm.changed()
		if c.fsm.state().Index >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("controller: waiting for metadata index %d: %w", index, ctx.Err())
		}
	}
}

type joinRequest struct {
	ID       int32  `json:"id"`
	RaftAddr string `json:"raft_addr"`
}

// Join asks the controller leader to add this broker as a non-voter (a
// voter is a member from bootstrap). It retries until ctx ends.
func (c *Controller) Join(ctx context.Context) error {
	if c.voter {
		return nil
	}
	req, _ := json.Marshal(joinRequest{ID: c.cfg.NodeID, RaftAddr: c.cfg.RaftAddr})
	for {
		var err error
		for _, v := range c.cfg.Voters {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = c.cfg.RPC.Call(cctx, raft.ServerAddress(v.RaftAddr), methodJoin, req)
			cancel()
			if err == nil {
				return nil
			}
		}
		c.lg.Debug().Err(err).Msg("join: retrying")
		select {
		case <-ctx.Done():
			return fmt.Errorf("controller: join: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// handleJoin adds a broker as a non-voter; a voter that is not the leader
// forwards the request to the leader.
func (c *Controller) handleJoin(ctx context.Context, req []byte) ([]byte, error) {
	var j joinRequest
	if err := json.Unmarshal(req, &j); err != nil || j.ID < 0 || j.RaftAddr == "" {
		return nil, fmt.Errorf("controller: bad join request")
	}
	if c.raft.State() != raft.Leader {
		addr, _ := c.raft.LeaderWithID()
		if addr == "" {
			return nil, ErrNoLeader
		}
		return c.cfg.RPC.Call(ctx, addr, methodJoin, req)
	}
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == serverID(j.ID) && s.Address == raft.ServerAddress(j.RaftAddr) {
			return []byte("{}"), nil // already a member
		}
	}
	if err := c.raft.AddNonvoter(serverID(j.ID), raft.ServerAddress(j.RaftAddr), 0, 10*time.Second).Error(); err != nil {
		return nil, err
	}
	c.lg.Info().Int32("broker", j.ID).Str("raft_addr", j.RaftAddr).Msg("added broker to the controller group as a non-voter")
	return []byte("{}"), nil
}

// Close stops the replica.
func (c *Controller) Close() error {
	err := c.raft.Shutdown().Error()
	if cerr := c.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// fsm applies commands to copies of the state and publishes them.
type fsm struct {
	mu  sync.Mutex
	st  *State
	chg chan struct{}
}

func newFSM() *fsm { return &fsm{st: emptyState(), chg: make(chan struct{})} }

func (f *fsm) state() *State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fsm) changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.chg
}

func (f *fsm) publish(s *State) {
	f.mu.Lock()
	f.st = s
	close(f.chg)
	f.chg = make(chan struct{})
	f.mu.Unlock()
}

func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch copies the state once per batch of committed entries.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	cur := f.state()
	next := cur.clone()
	for i, l := range logs {
		if l.Type != raft.LogCommand || l.Index <= cur.Index {
			continue // configuration changes, or replays of applied entries
		}
		out[i] = next.apply(l.Index, l.Data)
	}
	f.publish(next)
	return out
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	b, err := f.state().encode()
	if err != nil {
		return nil, err
	}
	return stateSnapshot(b), nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 256<<20))
	if err != nil {
		return err
	}
	s, err := decodeState(b)
	if err != nil {
		return err
	}
	f.publish(s)
	return nil
}

type stateSnapshot []byte

func (s stateSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s stateSnapshot) Release() {}
