package replication

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/log/batch"
)

// syncBuffer collects log lines from many goroutines; its contents are
// printed only when a test fails, so nothing logs after a test returns.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixedNow gives every replica the same segment creation time, so segment
// headers are byte-identical too.
func fixedNow() time.Time { return time.Unix(1_700_000_000, 0) }

// testNode is one replica: its own log directory, stores and transport.
type testNode struct {
	id     raft.ServerID
	dir    string
	logBuf *syncBuffer
	log    *log.Log
	store  *LogStore
	fsm    *FSM
	stable *raft.InmemStore
	snaps  *raft.InmemSnapshotStore
	trans  *raft.InmemTransport
	raft   *raft.Raft
}

func (n *testNode) addr() raft.ServerAddress { return raft.ServerAddress(n.id) }

type testCluster struct {
	t     testing.TB
	nodes []*testNode
	lopts log.Options
	tune  func(*raft.Config) // applied to RaftConfig's result; may be nil
}

// fastTimings shortens raft's timeouts so elections take milliseconds.
func fastTimings(c *raft.Config) {
	c.HeartbeatTimeout = 200 * time.Millisecond
	c.ElectionTimeout = 200 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
}

// newCluster starts n replicas over InmemTransport, each with a segment
// log on real disk, and bootstraps them as one group of voters.
func newCluster(t testing.TB, n int, lopts log.Options, tune func(*raft.Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, lopts: lopts, tune: tune}
	var servers []raft.Server
	for i := range n {
		nd := &testNode{
			id:     raft.ServerID(fmt.Sprintf("n%d", i)),
			dir:    t.TempDir(),
			logBuf: &syncBuffer{},
			stable: raft.NewInmemStore(),
			snaps:  raft.NewInmemSnapshotStore(),
		}
		_, nd.trans = raft.NewInmemTransportWithTimeout(nd.addr(), 5*time.Second)
		c.nodes = append(c.nodes, nd)
		servers = append(servers, raft.Server{ID: nd.id, Address: nd.addr()})
	}
	for _, a := range c.nodes {
		for _, b := range c.nodes {
			if a != b {
				a.trans.Connect(b.addr(), b.trans)
			}
		}
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
	if err := c.nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return c
}

func (c *testCluster) logger(nd *testNode) zerolog.Logger {
	return zerolog.New(nd.logBuf).Level(zerolog.DebugLevel).With().Str("node", string(nd.id)).Logger()
}

// start opens nd's log (when closed) and starts its raft.
func (c *testCluster) start(nd *testNode) {
	c.t.Helper()
	lg := c.logger(nd)
	if nd.log == nil {
		o := c.lopts
		o.Logger = &lg
		l, err := log.Open(nd.dir, o)
		if err != nil {
			c.t.Fatalf("%s: open log: %v", nd.id, err)
		}
		nd.log = l
	}
	nd.store = NewLogStore(nd.log, WithLogger(lg))
	nd.fsm = NewFSM(nd.store, WithLogger(lg))
	cfg := RaftConfig(nd.id)
	if c.tune != nil {
		c.tune(cfg)
	}
	// raft's own lines at warn and above; the adapter's debug lines would
	// be a heartbeat's worth of noise.
	cfg.Logger = HCLogger(lg.Level(zerolog.WarnLevel))
	if err := CheckConfig(cfg); err != nil {
		c.t.Fatal(err)
	}
	r, err := raft.NewRaft(cfg, nd.fsm, nd.store, nd.stable, nd.snaps, nd.trans)
	if err != nil {
		c.t.Fatalf("%s: new raft: %v", nd.id, err)
	}
	nd.raft = r
}

// stop shuts nd's raft down and closes its log.
func (c *testCluster) stop(nd *testNode) {
	if nd.raft != nil {
		if err := nd.raft.Shutdown().Error(); err != nil {
			c.t.Errorf("%s: shutdown: %v", nd.id, err)
		}
		nd.raft = nil
	}
	if nd.log != nil {
		nd.log.Close()
		nd.log = nil
	}
}

// isolate cuts nd off from every other replica, both ways.
func (c *testCluster) isolate(nd *testNode) {
	for _, o := range c.nodes {
		if o != nd {
			nd.trans.Disconnect(o.addr())
			o.trans.Disconnect(nd.addr())
		}
	}
}

// heal reconnects nd with every other replica, both ways.
func (c *testCluster) heal(nd *testNode) {
	for _, o := range c.nodes {
		if o != nd {
			nd.trans.Connect(o.addr(), o.trans)
			o.trans.Connect(nd.addr(), nd.trans)
		}
	}
}

// leader waits for one of the candidates (all running nodes when none are
// given) to be leader and returns it.
func (c *testCluster) leader(candidates ...*testNode) *testNode {
	c.t.Helper()
	if len(candidates) == 0 {
		candidates = c.nodes
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, nd := range candidates {
			if nd.raft != nil && nd.raft.State() == raft.Leader {
				return nd
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("no leader elected among %d nodes", len(candidates))
	return nil
}

// waitConverged waits until every node has the same last index and has
// applied the same entries.
func (c *testCluster) waitConverged() {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var last []uint64
		var applied []uint64
		for _, nd := range c.nodes {
			idx, _ := nd.fsm.Applied()
			last, applied = append(last, nd.log.LastIndex()), append(applied, idx)
		}
		if slices.Min(last) == slices.Max(last) && slices.Min(applied) == slices.Max(applied) && applied[0] > 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("replicas did not converge: last indexes %v, applied %v", last, applied)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkIdentical checks that every replica holds the same entries, the same
// Kafka offsets and batches, and the same segment files, byte for byte
// except each frame's syncedThrough and the frame CRC that covers it.
func (c *testCluster) checkIdentical() {
	c.t.Helper()
	ref := c.nodes[0]
	first, last := ref.log.FirstIndex(), ref.log.LastIndex()
	refRead := readAll(c.t, ref.log)
	for _, nd := range c.nodes[1:] {
		if f, l := nd.log.FirstIndex(), nd.log.LastIndex(); f != first || l != last {
			c.t.Fatalf("%s holds [%d, %d], %s holds [%d, %d]", nd.id, f, l, ref.id, first, last)
		}
		for i := first; i <= last; i++ {
			var a, b raft.Log
			if err := ref.store.GetLog(i, &a); err != nil {
				c.t.Fatalf("%s: get %d: %v", ref.id, i, err)
			}
			if err := nd.store.GetLog(i, &b); err != nil {
				c.t.Fatalf("%s: get %d: %v", nd.id, i, err)
			}
			if a.Index != b.Index || a.Term != b.Term || a.Type != b.Type || !bytes.Equal(a.Data, b.Data) {
				c.t.Fatalf("entry %d differs: %s has term %d type %v %d bytes, %s has term %d type %v %d bytes",
					i, ref.id, a.Term, a.Type, len(a.Data), nd.id, b.Term, b.Type, len(b.Data))
			}
		}
		if a, b := ref.log.EndOffset(), nd.log.EndOffset(); a != b {
			c.t.Fatalf("end offsets differ: %s %d, %s %d", ref.id, a, nd.id, b)
		}
		got := readAll(c.t, nd.log)
		if len(got) != len(refRead) {
			c.t.Fatalf("%s reads %d batches, %s %d", nd.id, len(got), ref.id, len(refRead))
		}
		for i := range got {
			if !bytes.Equal(got[i], refRead[i]) {
				c.t.Fatalf("batch %d differs between %s and %s", i, ref.id, nd.id)
			}
		}
		if n := compareDirs(c.t, ref.dir, nd.dir); n > 0 {
			c.t.Logf("%s vs %s: identical but for syncedThrough (and CRC) of %d of %d frames", ref.id, nd.id, n, last-first+1)
		}
	}
}

// readAll returns every batch of l, offsets stamped.
func readAll(t testing.TB, l *log.Log) [][]byte {
	t.Helper()
	var out [][]byte
	for off := l.StartOffset(); off < l.EndOffset(); {
		res, err := l.Read(off, 1<<20, -1)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if len(res.Batches) == 0 {
			t.Fatalf("read at %d returned nothing before the end %d", off, l.EndOffset())
		}
		out = append(out, res.Batches...)
		off = res.Next
	}
	return out
}

// Byte ranges that legitimately differ between replicas (log/FORMAT.md):
// a frame's CRC (bytes 4..8) and syncedThrough (44..48), which records how
// far the writer had fsynced, so it depends on how entries were grouped
// into fsyncs, which differs between a leader and its followers.
const (
	segmentHeaderBytes = 40
	frameHeaderBytes   = 48
)

// compareDirs compares two log directories file by file; see above for
// what is masked in segments. It returns the number of frames whose
// syncedThrough differed.
func compareDirs(t testing.TB, a, b string) int {
	t.Helper()
	names := func(dir string) []string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	na, nb := names(a), names(b)
	if !slices.Equal(na, nb) {
		t.Fatalf("log files differ:\n%v\n%v", na, nb)
	}
	differ := 0
	for _, name := range na {
		ba, err := os.ReadFile(filepath.Join(a, name))
		if err != nil {
			t.Fatal(err)
		}
		bb, err := os.ReadFile(filepath.Join(b, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(ba) != len(bb) {
			t.Fatalf("%s: %d bytes vs %d", name, len(ba), len(bb))
		}
		if strings.HasSuffix(name, ".seg") {
			differ += maskFrames(t, name, ba, bb)
		}
		if i := firstDiff(ba, bb); i >= 0 {
			t.Fatalf("%s differs at byte %d", name, i)
		}
	}
	return differ
}

// maskFrames walks the frames of two equally long segments and blanks the
// fields that may differ; it reports how many frames' syncedThrough did.
func maskFrames(t testing.TB, name string, a, b []byte) int {
	t.Helper()
	differ := 0
	for pos := segmentHeaderBytes; pos < len(a); {
		if pos+frameHeaderBytes > len(a) {
			t.Fatalf("%s: torn frame header at %d", name, pos)
		}
		n := int(binary.LittleEndian.Uint32(a[pos+8:]))
		if m := int(binary.LittleEndian.Uint32(b[pos+8:])); m != n {
			t.Fatalf("%s: frame at %d is %d bytes vs %d", name, pos, n, m)
		}
		if !bytes.Equal(a[pos+44:pos+48], b[pos+44:pos+48]) {
			differ++
		}
		for _, r := range [][2]int{{4, 8}, {44, 48}} {
			clear(a[pos+r[0] : pos+r[1]])
			clear(b[pos+r[0] : pos+r[1]])
		}
		pos += frameHeaderBytes + n
	}
	return differ
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// produce builds a produce command of n records whose values carry tag, so
// a record can be looked for later.
func produce(t testing.TB, tag string, n, valueSize int) []byte {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		v := bytes.Repeat([]byte{'.'}, valueSize)
		copy(v, fmt.Sprintf("%s/%d;", tag, i))
		recs[i] = batch.Record{Key: []byte(tag), Value: v, TimestampDelta: int64(i)}
	}
	b, err := batch.Build(recs, batch.BuildOptions{BaseTimestamp: fixedNow().UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	return AppendProduce(nil, b)
}

// acked is a produce command whose ApplyFuture succeeded.
type acked struct {
	tag    string
	offset int64
	batch  []byte // the batch as proposed, before the log stamped it
}

// applyProduce proposes a produce command through nd and waits for it.
func applyProduce(t testing.TB, nd *testNode, tag string, n, valueSize int) (acked, error) {
	t.Helper()
	cmd := produce(t, tag, n, valueSize)
	a := acked{tag: tag, batch: bytes.Clone(cmd[1:])}
	f := nd.raft.Apply(cmd, 5*time.Second)
	if err := f.Error(); err != nil {
		return a, err
	}
	off, ok := f.Response().(int64)
	if !ok {
		t.Fatalf("apply %s: response %v (%T), want an offset", tag, f.Response(), f.Response())
	}
	a.offset = off
	return a, nil
}

// checkAcked checks that every acknowledged batch is on every replica at
// the offset it was acknowledged with, bytes unchanged but for the offset.
func (c *testCluster) checkAcked(all []acked) {
	c.t.Helper()
	for _, nd := range c.nodes {
		for _, a := range all {
			res, err := nd.log.Read(a.offset, 1, -1)
			if err != nil || len(res.Batches) == 0 {
				c.t.Fatalf("%s: acked %s at %d: %v, %d batches", nd.id, a.tag, a.offset, err, len(res.Batches))
			}
			got := res.Batches[0]
			if int64(binary.BigEndian.Uint64(got)) != a.offset || !bytes.Equal(got[8:], a.batch[8:]) {
				c.t.Fatalf("%s: batch at %d is not %s", nd.id, a.offset, a.tag)
			}
		}
	}
}
