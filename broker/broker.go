// Package broker is the Sluice server: it wires the Kafka listener, request
// routing, the controller replica, the partition replicas placed on this
// broker (reconciled from the controller's metadata), the internal raft
// listener, the HTTP admin port and metrics.
//
// Concurrency: each connection has a reader goroutine that decodes requests
// and starts them in arrival order (so a producer's batches reach a
// partition in order) and a writer goroutine that waits for each response in
// that same order and writes it. A handler does its ordering-sensitive work
// when started and defers the waiting (fsync, fetch long-poll) to the
// function it returns, so pipelined produce requests share fsyncs.
package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/broker/config"
	"github.com/sluicemq/sluice/broker/controller"
	"github.com/sluicemq/sluice/broker/group"
	"github.com/sluicemq/sluice/broker/metrics"
	"github.com/sluicemq/sluice/replication"
	"github.com/sluicemq/sluice/replication/transport"
)

// Broker is one Sluice server: a member of the controller group and a
// replica of the partitions placed on it.
type Broker struct {
	cfg     config.Config
	lg      zerolog.Logger
	reg     *registry
	ops     *clusterOps
	groups  *group.Coordinator
	share   *shareManager
	lag     *lagMonitor // consumer lag and the group admin routes' client
	metrics *metrics.Metrics
	http    *metrics.Server
	debugFS debugFS // --debug-fault-fs (debug_fs.go)

	mux    *transport.Mux
	voters []config.Voter
	stable *replication.StableDB
	ctrl   *controller.Controller

	ln      net.Listener
	advHost string
	advPort int32
	// stopCtx ends when Shutdown begins; closing is its Done channel, for
	// selects. Background work derives its contexts from stopCtx.
	stopCtx  context.Context
	stop     context.CancelFunc
	closing  <-chan struct{}
	stopOnce sync.Once
	ready    atomic.Bool

	connMu   sync.Mutex
	conns    map[*conn]struct{}
	connWG   sync.WaitGroup
	bgWG     sync.WaitGroup
	reportWG sync.WaitGroup

	// idChecked is closed once the data directory's cluster id matches
	// the cluster's; replicas are opened only after.
	idChecked chan struct{}
	// readyCh is closed when the broker first becomes ready; Kafka
	// connections are accepted only after.
	readyCh chan struct{}
}

// New checks the configuration and the data directory's identity
// (refusing one that belongs to another node or cluster). Start makes it
// serve.
func New(cfg config.Config, lg zerolog.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	defaults := map[string]string{
		"cleanup.policy":         cfg.CleanupPolicy,
		"max.message.bytes":      strconv.FormatInt(int64(cfg.MaxMessageBytes), 10),
		"message.timestamp.type": cfg.MessageTimestampType,
		"retention.bytes":        strconv.FormatInt(cfg.RetentionBytes, 10),
		"retention.ms":           strconv.FormatInt(cfg.RetentionMs, 10),
		"segment.bytes":          strconv.FormatInt(cfg.SegmentBytes, 10),
		"segment.ms":             strconv.FormatInt(cfg.SegmentMs, 10),
	}
	if _, err := validateTopicConfigs(defaults); err != nil {
		return nil, fmt.Errorf("broker: topic defaults: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "topics"), 0o755); err != nil {
		return nil, err
	}
	ident, err := checkIdentity(cfg.DataDir, cfg.NodeID, cfg.ClusterID)
	if err != nil {
		return nil, err
	}
	b := &Broker{cfg: cfg, lg: lg, metrics: metrics.New(), conns: map[*conn]struct{}{}, idChecked: make(chan struct{}), readyCh: make(chan struct{})}
	b.stopCtx, b.stop = context.WithCancel(context.Background())
	b.closing = b.stopCtx.Done()
	b.debugFS.init(cfg, lg)
	b.reg = newRegistry(b, ident, defaults)
	b.ops = newClusterOps(b)
	b.share = newShareManager(b)
	b.metrics.SetPartitionSource(b.partitionStats)
	return b, nil
}

// initialDelay maps the configured delay to group.Config's (where zero
// means the default and negative means none).
func initialDelay(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// Start opens the internal listener and the controller replica, then the
// Kafka and HTTP listeners. Replicas open as the metadata assigns them;
// the broker reports ready once its registration is applied.
func (b *Broker) Start() error {
	voters, err := b.cfg.Voters()
	if err != nil {
		return err
	}
	b.mux, err = transport.Listen(b.cfg.RaftAddr, transport.Options{
		Logger: b.lg.With().Str("component", "transport").Logger(), Advertise: raft.ServerAddress(b.cfg.AdvertisedRaft()),
	})
	if err != nil {
		return fmt.Errorf("broker: listen %s: %w", b.cfg.RaftAddr, err)
	}
	b.ops.register()
	b.share.register()
	fail := func(err error) error {
		b.closeStorage()
		return err
	}
	if b.cfg.ControllerVoters == "" {
		// Alone: the bound address, in case raft_addr asked for port 0.
		voters = []config.Voter{{ID: b.cfg.NodeID, RaftAddr: string(b.mux.Addr())}}
	}
	b.voters = voters
	b.stable, err = replication.OpenStableDB(filepath.Join(b.cfg.DataDir, "raft.db"))
	if err != nil {
		return fail(err)
	}
	cv := make([]controller.Voter, len(voters))
	for i, v := range voters {
		cv[i] = controller.Voter{ID: v.ID, RaftAddr: v.RaftAddr}
	}
	b.ctrl, err = controller.Open(controller.Config{
		NodeID: b.cfg.NodeID, RaftAddr: string(b.mux.Addr()), Dir: filepath.Join(b.cfg.DataDir, "controller"),
		Voters: cv, Transport: b.mux.Group("controller"), RPC: b.mux, Stable: b.stable.Group("controller"),
		Tune: b.tuneRaft, Logger: b.lg,
	})
	if err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", b.cfg.KafkaAddr)
	if err != nil {
		return fail(fmt.Errorf("broker: listen %s: %w", b.cfg.KafkaAddr, err))
	}
	b.ln = ln
	adv := b.cfg.AdvertisedKafkaAddr
	if adv == "" {
		adv = ln.Addr().String()
	}
	host, port, err := net.SplitHostPort(adv)
	if err != nil {
		ln.Close()
		return fail(fmt.Errorf("broker: advertised address %q: %w", adv, err))
	}
	p, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		ln.Close()
		return fail(fmt.Errorf("broker: advertised port %q: %w", port, err))
	}
	b.advHost, b.advPort = host, int32(p)
	b.http = metrics.NewServer(b.cfg.HTTPAddr, b.metrics, b.readyErr, b.lg)
	b.registerAdminRoutes()
	if err := b.http.Start(); err != nil {
		ln.Close()
		return fail(err)
	}
	b.groups = group.New(group.Config{
		MinSessionTimeout: b.cfg.GroupMinSessionTimeout, MaxSessionTimeout: b.cfg.GroupMaxSessionTimeout,
		InitialRebalanceDelay: initialDelay(b.cfg.GroupInitialRebalanceDelay), MaxGroupSize: b.cfg.GroupMaxSize,
		OffsetsRetention: b.cfg.OffsetsRetention,
		Logger:           b.lg.With().Str("component", "groups").Logger(),
	}, groupHost{b})
	b.bgWG.Add(5)
	go b.acceptLoop()
	go b.retentionLoop()
	go b.reg.reconcileLoop()
	go b.registerLoop()
	go b.ops.runMoves()
	if b.cfg.AutoLeaderRebalance {
		b.bgWG.Add(1)
		go b.ops.balanceLoop()
	}
	b.startLagLoop()
	b.bgWG.Add(1)
	go b.share.loop()
	b.lg.Info().Str("kafka_addr", ln.Addr().String()).Str("advertised", adv).Str("http_addr", b.http.Addr()).
		Str("raft_addr", string(b.mux.Addr())).Int("controller_voters", len(voters)).
		Str("data_dir", b.cfg.DataDir).Int32("node_id", b.cfg.NodeID).Msg("sluiced serving")
	return nil
}

// tuneRaft applies the broker's raft timing to a group's configuration.
func (b *Broker) tuneRaft(c *raft.Config) {
	c.HeartbeatTimeout = b.cfg.RaftHeartbeatTimeout
	c.ElectionTimeout = b.cfg.RaftHeartbeatTimeout
	c.LeaderLeaseTimeout = min(c.LeaderLeaseTimeout, b.cfg.RaftHeartbeatTimeout/2)
}

// registerLoop joins the controller group (a non-voter asks to be added),
// registers this broker's addresses, settles the cluster id, and then
// marks the broker ready. It retries until it succeeds or the broker stops.
func (b *Broker) registerLoop() {
	defer b.bgWG.Done()
	ctx := b.stopCtx
	if err := b.ctrl.Join(ctx); err != nil {
		return
	}
	// The cluster id first: a broker whose data directory belongs to
	// another cluster must not register (it would become a placement
	// target) nor open replicas (reconcile waits for idChecked).
	cid := b.reg.clusterID()
	if cid == "" {
		cid = b.cfg.ClusterID
	}
	if cid == "" {
		cid = newClusterID()
	}
	if b.ctrl.State().ClusterID == "" {
		if _, err := b.ctrl.Propose(ctx, controller.Command{Op: controller.OpInit, ClusterID: cid}); err != nil {
			return
		}
	}
	got := b.ctrl.State().ClusterID
	b.reg.idMu.Lock()
	mine := b.reg.ident.ClusterID
	if mine == "" {
		b.reg.ident.ClusterID = got
		if err := writeIdentity(b.cfg.DataDir, b.reg.ident); err != nil {
			b.lg.Error().Err(err).Msg("cannot record the cluster id in node.json")
		}
	}
	b.reg.idMu.Unlock()
	if mine != "" && mine != got {
		b.lg.Error().Str("data_dir_cluster_id", mine).Str("cluster_id", got).
			Msg("this data directory belongs to another cluster; refusing to serve (readyz stays failing)")
		return
	}
	close(b.idChecked)
	info := &controller.BrokerInfo{ID: b.cfg.NodeID, Host: b.advHost, Port: b.advPort, RaftAddr: string(b.mux.Addr()), HTTPAddr: b.http.Addr()}
	for _, v := range b.voters {
		info.Voter = info.Voter || v.ID == b.cfg.NodeID
	}
	if _, err := b.ctrl.Propose(ctx, controller.Command{Op: controller.OpRegisterBroker, Broker: info}); err != nil {
		return
	}
	// Ready only once handlers see the metadata as of the registration:
	// after a restart the controller replays its log quickly, but the
	// registry's view is published separately, and until it catches up
	// existing topics would be answered as unknown.
	applied := b.ctrl.State().Index
	for b.reg.view() == nil || b.reg.view().state.Index < applied {
		select {
		case <-b.closing:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
	b.reg.removeLeftovers()
	b.ready.Store(true)
	close(b.readyCh)
	b.lg.Info().Str("cluster_id", got).Int32("controller_leader", b.ctrl.Leader()).Msg("registered with the controller")
}

// Ready reports whether the broker is registered with the controller and
// serving (what /readyz answers).
func (b *Broker) Ready() bool { return b.ready.Load() }

// reportLeader tells the controller that this broker leads a partition
// from term on, so brokers without a replica of it name the right leader
// in metadata. It runs in the background; a lost report is corrected by
// the next leader change (and replicas answer from raft directly).
func (b *Broker) reportLeader(id controller.TopicID, p int32, term uint64) {
	select {
	case <-b.closing:
		return
	default:
	}
	// reportWG, not bgWG: replicas call this until they are closed, which
	// is after bgWG has been waited for.
	b.reportWG.Add(1)
	go func() {
		defer b.reportWG.Done()
		ctx, cancel := context.WithTimeout(b.stopCtx, 30*time.Second)
		defer cancel()
		if _, err := b.ctrl.Propose(ctx, controller.Command{Op: controller.OpSetLeader, TopicID: id, Partition: p, Leader: b.cfg.NodeID, Term: term}); err != nil {
			b.lg.Debug().Err(err).Str("topic_id", id.String()).Int32("partition", p).Msg("leader report not applied")
		}
	}()
}

// KafkaAddr is the bound Kafka listener address.
func (b *Broker) KafkaAddr() string { return b.ln.Addr().String() }

// HTTPAddr is the bound HTTP address.
func (b *Broker) HTTPAddr() string { return b.http.Addr() }

func (b *Broker) readyErr() error {
	if !b.ready.Load() {
		return errors.New("not serving")
	}
	return nil
}

func (b *Broker) acceptLoop() {
	defer b.bgWG.Done()
	// Until the broker has registered and its metadata is current, it
	// would call existing topics unknown (and producers would fail records
	// for it). Connections wait in the listen backlog instead: clients see
	// a slow first response, or time out and try another broker.
	select {
	case <-b.readyCh:
	case <-b.closing:
		return
	}
	for {
		nc, err := b.ln.Accept()
		if err != nil {
			select {
			case <-b.closing:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			b.lg.Error().Err(err).Msg("accept")
			time.Sleep(50 * time.Millisecond)
			continue
		}
		c := newConn(b, nc)
		b.connMu.Lock()
		select {
		case <-b.closing:
			b.connMu.Unlock()
			nc.Close()
			return
		default:
		}
		b.conns[c] = struct{}{}
		b.connWG.Add(1)
		b.connMu.Unlock()
		go func() {
			defer b.connWG.Done()
			c.serve()
			b.connMu.Lock()
			delete(b.conns, c)
			b.connMu.Unlock()
		}()
	}
}

// retentionLoop applies retention to every local replica periodically, as
// Kafka's log.retention.check.interval.ms; only partition leaders act, by
// proposing the new log start to their group. Replicas of topics whose
// cleanup.policy includes compact also run a cleaner pass each time.
func (b *Broker) retentionLoop() {
	defer b.bgWG.Done()
	t := time.NewTicker(b.cfg.RetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-b.closing:
			return
		case <-t.C:
			for _, tp := range b.reg.list() {
				for i, p := range tp.parts {
					if p == nil {
						continue
					}
					if err := p.ApplyRetention(); err != nil {
						b.lg.Error().Err(err).Str("topic", tp.name).Int("partition", i).Msg("retention")
					}
					// Compaction is per replica, not replicated: every
					// replica cleans its own log (partition.Compact).
					c, ok := p.(compacter)
					if !ok || !p.Partition().Config().CleanupPolicy.Compacts() {
						continue
					}
					st, err := c.Compact()
					switch {
					case err != nil && !logClosed(err):
						b.lg.Error().Err(err).Str("topic", tp.name).Int("partition", i).Msg("compaction")
					case err == nil && st.SegmentsRewritten > 0:
						b.lg.Info().Str("topic", tp.name).Int("partition", i).Int("segments", st.SegmentsRewritten).
							Int64("records_removed", st.RecordsRemoved).Int64("bytes_before", st.BytesBefore).
							Int64("bytes_after", st.BytesAfter).Float64("dirty_ratio", st.DirtyRatio).
							Int64("cleaned_through", st.CleanedThrough).Msg("compacted")
					}
				}
			}
		}
	}
}

func (b *Broker) partitionStats() []metrics.PartitionStat {
	var out []metrics.PartitionStat
	for _, t := range b.reg.list() {
		for _, r := range t.parts {
			if r == nil {
				continue
			}
			p := r.Partition()
			out = append(out, metrics.PartitionStat{
				Topic: t.name, Partition: p.Index(), LogStart: p.LogStartOffset(),
				HighWatermark: p.HighWatermark(), LogEnd: p.Log().EndOffset(), SizeBytes: p.Log().Size(),
			})
		}
	}
	return out
}

// Shutdown stops accepting connections, lets in-flight requests finish
// (bounded by ctx), closes connections, then closes every replica, the
// controller replica and the internal listener.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.stopOnce.Do(func() {
		b.ready.Store(false)
		b.stop()
		// Waiting JoinGroup and SyncGroup requests answer now.
		if b.groups != nil {
			b.groups.Stop()
		}
		if b.ln != nil {
			b.ln.Close()
		}
		b.connMu.Lock()
		for c := range b.conns {
			c.stopReading()
		}
		b.connMu.Unlock()
		done := make(chan struct{})
		go func() { b.connWG.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			b.lg.Warn().Msg("shutdown timeout: closing connections with requests in flight")
			b.connMu.Lock()
			for c := range b.conns {
				c.nc.Close()
			}
			b.connMu.Unlock()
			<-done
		}
		b.bgWG.Wait()
		if b.http != nil {
			b.http.Shutdown(ctx)
		}
		b.closeStorage()
		b.lg.Info().Msg("sluiced stopped")
	})
	return nil
}

// closeStorage closes what Start opened, in reverse order.
func (b *Broker) closeStorage() {
	b.reg.close()
	if b.groups != nil {
		b.groups.Close()
	}
	b.reportWG.Wait()
	if b.ctrl != nil {
		if err := b.ctrl.Close(); err != nil {
			b.lg.Error().Err(err).Msg("close controller")
		}
	}
	if b.mux != nil {
		b.mux.Close()
	}
	if b.stable != nil {
		b.stable.Close()
	}
}
