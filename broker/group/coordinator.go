package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/log/batch"
)

// Store is one __consumer_offsets partition led by this broker.
type Store interface {
	// Append replicates one batch (acks=all); the returned function
	// waits until it is committed and returns its base offset.
	Append(batch []byte) func() (int64, error)
	// Read returns committed whole batches from offset (at least one if
	// any are there), and the high watermark; release hands the buffers
	// back.
	Read(offset int64, maxBytes int) (batches [][]byte, release func(), hw int64, err error)
	// LogStart is the first offset still in the log.
	LogStart() int64
}

// Host is what the coordinator needs from its broker.
type Host interface {
	// OffsetsPartitions is the partition count of __consumer_offsets, 0
	// while it does not exist.
	OffsetsPartitions() int32
	// OffsetsPartition returns __consumer_offsets partition p when this
	// broker leads it and may write in term; ok is false otherwise.
	OffsetsPartition(p int32) (s Store, term uint64, ok bool)
	// PartitionExists reports whether topic has partition p; known is
	// false while this broker's metadata cannot tell.
	PartitionExists(topic string, p int32) (exists, known bool)
	// Topic returns a topic's id and partition count, for share-group
	// assignments.
	Topic(name string) (TopicInfo, bool)
}

// Config sets the coordinator's limits and timings. Zero values take
// Kafka's defaults.
type Config struct {
	// MinSessionTimeout and MaxSessionTimeout bound what members ask for
	// (group.min/max.session.timeout.ms: 6 s, 30 min).
	MinSessionTimeout, MaxSessionTimeout time.Duration
	// InitialRebalanceDelay is how long an empty group waits for more
	// members before its first rebalance completes
	// (group.initial.rebalance.delay.ms: 3 s); negative means none.
	InitialRebalanceDelay time.Duration
	// MaxGroupSize caps members per group (group.max.size), so a client
	// cannot grow a group without bound.
	MaxGroupSize int
	// OffsetsRetention is how long an empty group's offsets are kept after
	// its last commit (offsets.retention.minutes: 7 days).
	OffsetsRetention time.Duration
	// OffsetMetadataMaxBytes caps a commit's metadata string (4096).
	OffsetMetadataMaxBytes int
	// Tick is how often sessions, rebalance deadlines and leadership are
	// checked (100 ms).
	Tick time.Duration
	// CleanupInterval is how often expired offsets and offsets of deleted
	// topics are removed (offsets.retention.check.interval.ms: 10 min).
	CleanupInterval time.Duration
	// Share sets share-group membership timings.
	Share  ShareConfig
	Logger zerolog.Logger
}

func (c *Config) defaults() {
	if c.MinSessionTimeout == 0 {
		c.MinSessionTimeout = 6 * time.Second
	}
	if c.MaxSessionTimeout == 0 {
		c.MaxSessionTimeout = 30 * time.Minute
	}
	if c.InitialRebalanceDelay == 0 {
		c.InitialRebalanceDelay = 3 * time.Second
	}
	if c.MaxGroupSize == 0 {
		c.MaxGroupSize = 1000
	}
	if c.OffsetsRetention == 0 {
		c.OffsetsRetention = 7 * 24 * time.Hour
	}
	if c.OffsetMetadataMaxBytes == 0 {
		c.OffsetMetadataMaxBytes = 4096
	}
	if c.Tick == 0 {
		c.Tick = 100 * time.Millisecond
	}
	if c.CleanupInterval == 0 {
		c.CleanupInterval = 10 * time.Minute
	}
	c.Share.defaults()
}

// Coordinator is the group coordinator of one broker: it serves the groups
// whose __consumer_offsets partition this broker leads, one shard per
// partition, each rebuilt from its partition's log when leadership comes.
type Coordinator struct {
	cfg    Config
	host   Host
	lg     zerolog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	seq    atomic.Uint64
	kick   chan struct{}

	mu     sync.Mutex
	shards map[int32]*shard
}

// shard is the groups of one __consumer_offsets partition while this
// broker leads it in one raft term.
type shard struct {
	c      *Coordinator
	p      int32
	term   uint64
	store  Store
	loaded atomic.Bool

	mu     sync.Mutex
	closed bool
	groups map[string]*group
	shares map[string]*shareGroup // share groups (KIP-932), in memory only
}

// New starts a coordinator; Close stops it.
func New(cfg Config, host Host) *Coordinator {
	cfg.defaults()
	c := &Coordinator{cfg: cfg, host: host, lg: cfg.Logger, shards: map[int32]*shard{}, kick: make(chan struct{}, 1)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go c.run()
	return c
}

// Stop makes every waiting request answer at once; Close finishes.
func (c *Coordinator) Stop() { c.cancel() }

// Close stops the coordinator and waits for its work: call it after the
// offsets partitions are closed, so no append waits forever.
func (c *Coordinator) Close() {
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, s := range c.shards {
		s.close()
		delete(c.shards, p)
	}
}

// PartitionFor is the __consumer_offsets partition of a group, -1 while
// that topic does not exist.
func (c *Coordinator) PartitionFor(group string) int32 {
	n := c.host.OffsetsPartitions()
	if n <= 0 {
		return -1
	}
	return PartitionOf(group, n)
}

// PartitionOf is Kafka's abs(groupId.hashCode) % partitions, so a Sluice
// cluster places groups as Kafka would.
func PartitionOf(group string, partitions int32) int32 {
	var h int32
	for _, r := range group {
		if r >= 0x10000 { // a surrogate pair in Java's UTF-16
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % partitions
}

// run loads and unloads shards as leadership moves and drives timers.
func (c *Coordinator) run() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	lastCleanup := time.Now()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
		}
		c.refresh()
		now := time.Now()
		cleanup := now.Sub(lastCleanup) >= c.cfg.CleanupInterval
		if cleanup {
			lastCleanup = now
		}
		for _, s := range c.loadedShards() {
			s.tick(now)
			if cleanup {
				s.cleanup(now)
			}
		}
	}
}

// Kick makes the coordinator check leadership now (a partition's leader
// changed).
func (c *Coordinator) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Coordinator) loadedShards() []*shard {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*shard, 0, len(c.shards))
	for _, s := range c.shards {
		if s.loaded.Load() {
			out = append(out, s)
		}
	}
	return out
}

func (c *Coordinator) refresh() {
	n := c.host.OffsetsPartitions()
	c.mu.Lock()
	for p, s := range c.shards {
		if p >= n {
			delete(c.shards, p)
			s.close()
		}
	}
	c.mu.Unlock()
	for p := range n {
		st, term, ok := c.host.OffsetsPartition(p)
		c.mu.Lock()
		old := c.shards[p]
		switch {
		case !ok && old != nil:
			delete(c.shards, p)
			old.close()
			c.lg.Info().Int32("offsets_partition", p).Msg("group coordinator: no longer leading")
		case ok && (old == nil || old.term != term):
			if old != nil {
				old.close()
			}
			s := &shard{c: c, p: p, term: term, store: st, groups: map[string]*group{}, shares: map[string]*shareGroup{}}
			c.shards[p] = s
			c.wg.Add(1)
			go s.load()
		}
		c.mu.Unlock()
	}
}

// MaxGroupIDLen bounds group ids: __consumer_offsets keys store them as
// Kafka strings (int16 length) and snapshot manifests as uint16-length
// names, and flexible request versions could carry longer ones.
const MaxGroupIDLen = 32767

// lookup is shardFor for a group id from a request: an empty or too long
// one is INVALID_GROUP_ID.
func (c *Coordinator) lookup(group string) (*shard, int16) {
	if group == "" || len(group) > MaxGroupIDLen {
		return nil, kerr.InvalidGroupID.Code
	}
	return c.shardFor(group)
}

// shardFor returns the loaded shard serving group, or the error code
// that sends the client elsewhere or makes it retry.
func (c *Coordinator) shardFor(group string) (*shard, int16) {
	p := c.PartitionFor(group)
	if p < 0 {
		return nil, kerr.CoordinatorNotAvailable.Code
	}
	_, term, ok := c.host.OffsetsPartition(p)
	if !ok {
		return nil, kerr.NotCoordinator.Code
	}
	c.mu.Lock()
	s := c.shards[p]
	c.mu.Unlock()
	switch {
	case s == nil || s.term != term:
		c.Kick()
		return nil, kerr.CoordinatorLoadInProgress.Code
	case !s.loaded.Load():
		return nil, kerr.CoordinatorLoadInProgress.Code
	}
	return s, 0
}

// load rebuilds the shard's groups and offsets from its partition.
func (s *shard) load() {
	defer s.c.wg.Done()
	start := time.Now()
	groups := map[string]*group{}
	off := s.store.LogStart()
	records := 0
	for {
		if s.c.ctx.Err() != nil {
			return
		}
		batches, release, hw, err := s.store.Read(off, 1<<20)
		if err != nil {
			s.c.lg.Warn().Err(err).Int32("offsets_partition", s.p).Msg("group coordinator: load failed; retrying")
			s.c.mu.Lock()
			if s.c.shards[s.p] == s {
				delete(s.c.shards, s.p) // the next tick starts over
			}
			s.c.mu.Unlock()
			return
		}
		if off >= hw {
			release()
			break
		}
		for _, b := range batches {
			h, herr := batch.ParseHeader(b)
			if herr != nil { // the log validated it on append: stop rather than guess
				release()
				s.c.lg.Error().Err(herr).Int32("offsets_partition", s.p).Int64("offset", off).Msg("group coordinator: unparsable batch; load stopped")
				s.c.mu.Lock()
				if s.c.shards[s.p] == s {
					delete(s.c.shards, s.p)
				}
				s.c.mu.Unlock()
				return
			}
			err := batch.Records(b, batch.Limits{}, func(r batch.Record) error {
				records++
				s.replay(groups, r, h.RecordOffset(r))
				return nil
			})
			if err != nil {
				s.c.lg.Warn().Err(err).Int32("offsets_partition", s.p).Int64("offset", h.BaseOffset).Msg("group coordinator: unreadable batch skipped")
			}
			off = h.NextOffset()
		}
		release()
		if len(batches) == 0 {
			break
		}
	}
	now := time.Now()
	for _, g := range groups {
		for _, m := range g.members {
			m.deadline = now.Add(m.sessionTimeout)
		}
	}
	n := len(groups)
	s.mu.Lock()
	if !s.closed {
		s.groups = groups
		s.loaded.Store(true)
	}
	s.mu.Unlock()
	s.c.lg.Info().Int32("offsets_partition", s.p).Uint64("term", s.term).Int("groups", n).
		Int("records", records).Dur("took", time.Since(start)).Msg("group coordinator: partition loaded")
}

// replay applies one record of the log to groups being loaded.
func (s *shard) replay(groups map[string]*group, r batch.Record, logOffset int64) {
	rec, err := decodeRecord(r.Key, r.Value)
	if err != nil {
		if !errors.Is(err, errUnknownRecord) {
			s.c.lg.Warn().Err(err).Int64("offset", logOffset).Msg("group coordinator: bad record skipped")
		}
		return
	}
	g := groups[rec.group]
	if !rec.isGroup {
		if rec.offset == nil {
			if g != nil {
				delete(g.offsets, rec.tp)
			}
			return
		}
		if g == nil {
			g = newGroup(rec.group, time.UnixMilli(rec.offset.CommitTimestamp))
			groups[rec.group] = g
		}
		v := rec.offset
		g.offsets[rec.tp] = committed{offset: v.Offset, leaderEpoch: v.LeaderEpoch, metadata: v.Metadata, timestamp: v.CommitTimestamp, logOffset: logOffset}
		return
	}
	if rec.meta == nil {
		delete(groups, rec.group)
		return
	}
	v := rec.meta
	if g == nil {
		g = newGroup(rec.group, time.UnixMilli(v.CurrentStateTimestamp))
		groups[rec.group] = g
	}
	g.protocolType, g.generation = v.ProtocolType, v.Generation
	g.protocol, g.leader = deref(v.Protocol), deref(v.Leader)
	g.members, g.static = map[string]*member{}, map[string]string{}
	for _, vm := range v.Members {
		m := &member{
			id: vm.MemberID, instanceID: deref(vm.InstanceID), clientID: vm.ClientID, clientHost: vm.ClientHost,
			sessionTimeout: time.Duration(vm.SessionTimeoutMillis) * time.Millisecond, rebalanceTimeout: time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond,
			protocols: []protocol{{name: g.protocol, metadata: vm.Subscription}}, assignment: vm.Assignment,
			joinedAt: s.c.seq.Add(1),
		}
		g.members[m.id] = m
		if m.instanceID != "" {
			g.static[m.instanceID] = m.id
		}
	}
	g.state = stateEmpty
	if len(g.members) > 0 {
		g.state = stateStable
	}
	g.stateSince = time.UnixMilli(v.CurrentStateTimestamp)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// close answers every waiting request: this broker no longer coordinates
// these groups.
func (s *shard) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, g := range s.groups {
		for _, m := range g.members {
			s.answerJoin(m, kerr.NotCoordinator.Code)
			s.answerSync(m, kerr.NotCoordinator.Code)
		}
	}
	s.groups = map[string]*group{}
}

// append replicates records in one batch; call it with s.mu held so
// appends keep the order in which the in-memory state was decided. The
// returned function waits for the commit.
func (s *shard) append(recs []kv) func() (int64, error) {
	b, err := buildBatch(recs, time.Now().UnixMilli())
	if err != nil {
		return func() (int64, error) { return 0, err }
	}
	return s.store.Append(b)
}

// appendCode maps an append failure to what Kafka answers for a failed
// write to __consumer_offsets.
func appendCode(err error) int16 {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		switch ke {
		case kerr.NotLeaderForPartition, kerr.UnknownTopicOrPartition:
			return kerr.NotCoordinator.Code
		case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidFetchSize:
			return kerr.InvalidCommitOffsetSize.Code
		}
	}
	return kerr.CoordinatorNotAvailable.Code
}

func newMemberID(clientID string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	if len(clientID) > 64 {
		clientID = clientID[:64]
	}
	return clientID + "-" + hex.EncodeToString(b[:])
}
