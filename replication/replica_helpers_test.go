package replication

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/log/batch"
	"github.com/sluicemq/sluice/partition"
)

// replicaNode is one broker's replica of the test partition: its directory
// and stable store survive Close, so it can be reopened as after a restart.
type replicaNode struct {
	id     raft.ServerID
	dir    string
	logBuf *syncBuffer
	stable *raft.InmemStore
	trans  *raft.InmemTransport
	r      *Replica // nil while down
}

func (n *replicaNode) addr() raft.ServerAddress { return raft.ServerAddress(n.id) }

type replicaCluster struct {
	mu      sync.Mutex // held by tests that stop and start replicas under load
	t       testing.TB
	nodes   []*replicaNode
	servers []raft.Server
	pcfg    partition.Config
	tune    func(*raft.Config)
}

func testPartitionConfig() partition.Config {
	return partition.Config{MaxMessageBytes: 1 << 20, SegmentBytes: 64 << 10}
}

// newReplicaCluster opens n replicas of one partition over InmemTransport,
// each with its segment log in its own temporary directory, bootstrapped
// as one group of voters.
func newReplicaCluster(t testing.TB, n int, pcfg partition.Config, tune func(*raft.Config)) *replicaCluster {
	t.Helper()
	c := &replicaCluster{t: t, pcfg: pcfg, tune: tune}
	for i := range n {
		nd := &replicaNode{
			id:     raft.ServerID(fmt.Sprintf("r%d", i)),
			dir:    t.TempDir(),
			logBuf: &syncBuffer{},
			stable: raft.NewInmemStore(),
		}
		c.nodes = append(c.nodes, nd)
		c.servers = append(c.servers, raft.Server{ID: nd.id, Address: nd.addr()})
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			c.stop(nd)
		}
		if t.Failed() {
			for _, nd := range c.nodes {
				t.Logf("--- log of %s ---\n%s", nd.id, nd.logBuf.String())
			}
		}
	})
	for _, nd := range c.nodes {
		c.start(nd)
	}
	return c
}

// start opens nd's replica with a fresh transport (a restarted process
// gets a new one at the same address) connected to the running replicas.
func (c *replicaCluster) start(nd *replicaNode) {
	c.t.Helper()
	_, nd.trans = raft.NewInmemTransportWithTimeout(nd.addr(), 5*time.Second)
	for _, o := range c.nodes {
		if o != nd && o.r != nil {
			nd.trans.Connect(o.addr(), o.trans)
			o.trans.Connect(nd.addr(), nd.trans)
		}
	}
	lg := zerolog.New(nd.logBuf).Level(zerolog.InfoLevel).With().Str("node", string(nd.id)).Logger()
	r, err := OpenReplica(ReplicaConfig{
		Dir: nd.dir, Topic: "t", Partition: 0, Config: c.pcfg,
		Options: partition.Options{Now: fixedNow},
		ID:      nd.id, Transport: nd.trans, Stable: nd.stable,
		Bootstrap: c.servers, Tune: c.tune, Logger: lg,
	})
	if err != nil {
		c.t.Fatalf("%s: open replica: %v", nd.id, err)
	}
	nd.r = r
}

// stop closes nd's replica (raft shut down, log closed). It is cut off
// from the others first, as a dead process's connections are: otherwise
// their RPCs to it would wait for InmemTransport's timeout.
func (c *replicaCluster) stop(nd *replicaNode) {
	if nd.r == nil {
		return
	}
	c.isolate(nd)
	if err := nd.r.Close(); err != nil {
		c.t.Errorf("%s: close: %v", nd.id, err)
	}
	if err := nd.r.Close(); err != nil { // idempotent
		c.t.Errorf("%s: second close: %v", nd.id, err)
	}
	nd.r = nil
}

// restartFromSnapshots has every replica take a raft snapshot, stops them
// all, then starts them all: each restores from its snapshot.
func (c *replicaCluster) restartFromSnapshots() {
	c.t.Helper()
	for _, nd := range c.nodes {
		if err := nd.r.Raft().Snapshot().Error(); err != nil {
			c.t.Fatal(err)
		}
		c.stop(nd)
	}
	for _, nd := range c.nodes {
		c.start(nd)
	}
}

// nodesSnapshot returns the running replicas, for goroutines that run
// while the test stops and starts them (under c.mu).
func (c *replicaCluster) nodesSnapshot() []*Replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Replica
	for _, nd := range c.nodes {
		if nd.r != nil {
			out = append(out, nd.r)
		}
	}
	return out
}

func (c *replicaCluster) running() []*replicaNode {
	var out []*replicaNode
	for _, nd := range c.nodes {
		if nd.r != nil {
			out = append(out, nd)
		}
	}
	return out
}

func (c *replicaCluster) isolate(nd *replicaNode) {
	for _, o := range c.nodes {
		if o != nd {
			nd.trans.Disconnect(o.addr())
			if o.trans != nil {
				o.trans.Disconnect(nd.addr())
			}
		}
	}
}

func (c *replicaCluster) heal(nd *replicaNode) {
	for _, o := range c.running() {
		if o != nd {
			nd.trans.Connect(o.addr(), o.trans)
			o.trans.Connect(nd.addr(), nd.trans)
		}
	}
}

// leader waits until one running replica is a ready leader.
func (c *replicaCluster) leader() *replicaNode {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, nd := range c.running() {
			if nd.r.Ready() {
				return nd
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("no ready leader")
	return nil
}

// waitSame waits until every running replica has the same high watermark
// and log start offset, at least hw, and returns them.
func (c *replicaCluster) waitSame(hw int64) (int64, int64) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var hws, starts []int64
		for _, nd := range c.running() {
			hws = append(hws, nd.r.Partition().HighWatermark())
			starts = append(starts, nd.r.Partition().LogStartOffset())
		}
		if slices.Min(hws) == slices.Max(hws) && slices.Min(starts) == slices.Max(starts) && hws[0] >= hw {
			return hws[0], starts[0]
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("replicas did not converge: high watermarks %v, log starts %v, want >= %d", hws, starts, hw)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// idem builds a batch of n records from producer pid (pid < 0: not
// idempotent) whose values carry tag.
func idem(t testing.TB, tag string, pid int64, epoch int16, seq int32, n, valueSize int) []byte {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		v := make([]byte, valueSize)
		copy(v, fmt.Sprintf("%s/%d;", tag, i))
		recs[i] = batch.Record{Key: []byte(tag), Value: v, TimestampDelta: int64(i)}
	}
	opts := batch.BuildOptions{BaseTimestamp: fixedNow().UnixMilli()}
	if pid >= 0 {
		opts.Producer = &batch.ProducerInfo{ID: pid, Epoch: epoch, BaseSequence: seq}
	}
	b, err := batch.Build(recs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storedBatch is one batch read back from a replica.
type storedBatch struct {
	offset   int64
	pid      int64
	seq      int32
	records  int32
	firstKey string
}

// fetchAll reads every batch of p from its log start up to its high
// watermark through Fetch, as a consumer would.
func fetchAll(t testing.TB, p *partition.Partition) []storedBatch {
	t.Helper()
	var out []storedBatch
	for _, rb := range fetchRaw(t, p) {
		h, _ := batch.ParseHeader(rb.data) // fetchRaw validated it
		out = append(out, storedBatch{offset: h.BaseOffset, pid: h.ProducerID, seq: h.BaseSequence, records: h.RecordCount, firstKey: rb.key})
	}
	return out
}

// rawBatch is one batch read back through Fetch, bytes and all.
type rawBatch struct {
	offset int64
	key    string // the first record's
	data   []byte
}

// fetchRaw reads every batch of p from its log start up to its high
// watermark, keeping each batch's bytes.
func fetchRaw(t testing.TB, p *partition.Partition) []rawBatch {
	t.Helper()
	var out []rawBatch
	off := p.LogStartOffset()
	for {
		res, err := p.Fetch(off, 256<<10)
		if err != nil {
			t.Fatalf("fetch at %d: %v", off, err)
		}
		if len(res.Batches) == 0 {
			res.Release()
			if off < res.HighWatermark {
				t.Fatalf("fetch at %d returned nothing below the high watermark %d", off, res.HighWatermark)
			}
			return out
		}
		for _, b := range res.Batches {
			h, err := batch.Validate(b, batch.ValidateOptions{})
			if err != nil {
				t.Fatalf("fetched batch at %d: %v", off, err)
			}
			rb := rawBatch{offset: h.BaseOffset, data: bytes.Clone(b)}
			if err := batch.Records(b, batch.DefaultLimits, func(r batch.Record) error {
				if rb.key == "" {
					rb.key = string(r.Key)
				}
				return nil
			}); err != nil {
				t.Fatalf("records of batch at %d: %v", h.BaseOffset, err)
			}
			out = append(out, rb)
			off = h.NextOffset()
		}
		res.Release()
	}
}

func isNotLeader(err error) bool { return errors.Is(err, kerr.NotLeaderForPartition) }
