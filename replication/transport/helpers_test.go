package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"
)

// ---- FSM with optionally huge, streamed snapshots ----

// pattern is the padding written after a snapshot's header: a fixed block
// repeated, so both ends can produce and check any amount without holding it.
var pattern = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}()

const snapHeaderLen = 16 // applied count, padding length

// testFSM counts applied commands. Its snapshots carry the count and pad
// bytes of pattern (pad set per group).
type testFSM struct {
	mu       sync.Mutex
	applied  uint64
	last     uint64
	pad      int64
	restored int64 // padding bytes checked by the last Restore
	restores int
}

func (f *testFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied++
	f.last = l.Index
	return f.applied
}

func (f *testFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &testSnapshot{applied: f.applied, pad: f.pad}, nil
}

func (f *testFSM) Restore(rc io.ReadCloser) error {
	defer func() { _ = rc.Close() }()
	var h [snapHeaderLen]byte
	if _, err := io.ReadFull(rc, h[:]); err != nil {
		return err
	}
	applied, pad := binary.BigEndian.Uint64(h[:8]), int64(binary.BigEndian.Uint64(h[8:]))
	n, err := checkPattern(rc, pad)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied, f.restored = applied, n
	f.restores++
	return nil
}

func (f *testFSM) state() (applied uint64, restored int64, restores int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied, f.restored, f.restores
}

// matchPattern reports whether b is pattern's content at offset off.
func matchPattern(off int64, b []byte) bool {
	for len(b) > 0 {
		i := off % int64(len(pattern))
		c := min(len(b), len(pattern)-int(i))
		if !bytes.Equal(b[:c], pattern[i:i+int64(c)]) {
			return false
		}
		b, off = b[c:], off+int64(c)
	}
	return true
}

// checkPattern reads exactly n bytes of pattern from r in small pieces.
func checkPattern(r io.Reader, n int64) (int64, error) {
	buf := make([]byte, 32<<10)
	var off int64
	for off < n {
		k, err := r.Read(buf[:min(int64(len(buf)), n-off)])
		if !matchPattern(off, buf[:k]) {
			return off, fmt.Errorf("snapshot bytes %d-%d differ", off, off+int64(k))
		}
		off += int64(k)
		if err == io.EOF && off < n {
			return off, io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return off, err
		}
	}
	return off, nil
}

type testSnapshot struct {
	applied uint64
	pad     int64
}

func (s *testSnapshot) Persist(sink raft.SnapshotSink) error {
	var h [snapHeaderLen]byte
	binary.BigEndian.PutUint64(h[:8], s.applied)
	binary.BigEndian.PutUint64(h[8:], uint64(s.pad))
	if _, err := sink.Write(h[:]); err != nil {
		_ = sink.Cancel()
		return err
	}
	if _, err := io.Copy(sink, &patternReader{n: s.pad}); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *testSnapshot) Release() {}

// patternReader produces n bytes of pattern.
type patternReader struct {
	off, n int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	k := 0
	for k < len(b) && p.off < p.n {
		i := p.off % int64(len(pattern))
		c := copy(b[k:], pattern[i:min(int64(len(pattern)), i+p.n-p.off)])
		k += c
		p.off += int64(c)
	}
	return k, nil
}

// streamStore is a raft.SnapshotStore that keeps only a snapshot's header:
// the padding is checked as it is written and produced again on Open. So a
// 64 MiB snapshot costs no memory at either end, and the heap measured
// during InstallSnapshot is the transport's.
type streamStore struct {
	mu    sync.Mutex
	snaps []*streamSnap // newest last
}

type streamSnap struct {
	meta   raft.SnapshotMeta
	header []byte
}

func (s *streamStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	return &streamSink{store: s, snap: &streamSnap{meta: raft.SnapshotMeta{
		Version: version, ID: fmt.Sprintf("%d-%d-%d", term, index, time.Now().UnixNano()),
		Index: index, Term: term, Configuration: configuration, ConfigurationIndex: configurationIndex,
	}}}, nil
}

func (s *streamStore) List() ([]*raft.SnapshotMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*raft.SnapshotMeta
	for i := len(s.snaps) - 1; i >= 0; i-- {
		m := s.snaps[i].meta
		out = append(out, &m)
	}
	return out, nil
}

func (s *streamStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sn := range s.snaps {
		if sn.meta.ID == id {
			m := sn.meta
			r := io.MultiReader(bytes.NewReader(sn.header), &patternReader{n: m.Size - snapHeaderLen})
			return &m, io.NopCloser(r), nil
		}
	}
	return nil, nil, fmt.Errorf("snapshot %s not found", id)
}

type streamSink struct {
	store *streamStore
	snap  *streamSnap
	size  int64
	err   error
}

func (k *streamSink) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && len(k.snap.header) < snapHeaderLen {
		c := min(len(p), snapHeaderLen-len(k.snap.header))
		k.snap.header = append(k.snap.header, p[:c]...)
		p, k.size = p[c:], k.size+int64(c)
	}
	if !matchPattern(k.size-snapHeaderLen, p) && k.err == nil {
		k.err = errors.New("snapshot padding differs")
	}
	k.size += int64(len(p))
	return n, k.err
}

func (k *streamSink) Close() error {
	if k.err != nil {
		return k.err
	}
	k.snap.meta.Size = k.size
	k.store.mu.Lock()
	k.store.snaps = append(k.store.snaps, k.snap)
	k.store.mu.Unlock()
	return nil
}

func (k *streamSink) ID() string    { return k.snap.meta.ID }
func (k *streamSink) Cancel() error { return nil }

// ---- clusters ----

type groupSpec struct {
	id     string
	pad    int64 // snapshot padding bytes
	stream bool  // streamStore instead of raft.InmemSnapshotStore
}

type testNode struct {
	id    raft.ServerID
	mux   *Mux
	mu    sync.Mutex
	rafts map[string]*raft.Raft
	fsms  map[string]*testFSM
}

type cluster struct {
	t      testing.TB
	nodes  []*testNode
	groups []groupSpec
	cfg    func(*raft.Config)
}

func testLogger(t testing.TB) zerolog.Logger {
	if os.Getenv("TRANSPORT_TEST_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.NewTestWriter(t)).With().Timestamp().Logger()
}

func raftLogger() hclog.Logger {
	if os.Getenv("TRANSPORT_TEST_LOG") == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr})
}

// fastRaft is a raft config fast enough for tests yet calm under -race on
// two cores.
func fastRaft(c *raft.Config) {
	c.HeartbeatTimeout = 400 * time.Millisecond
	c.ElectionTimeout = 400 * time.Millisecond
	c.LeaderLeaseTimeout = 300 * time.Millisecond
	c.CommitTimeout = 20 * time.Millisecond
}

// newCluster starts n Muxes and, on each, a bootstrapped raft per group.
func newCluster(t testing.TB, n int, groups []groupSpec, opts Options, cfg func(*raft.Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, groups: groups, cfg: cfg}
	for i := 0; i < n; i++ {
		o := opts
		o.Logger = testLogger(t).With().Int("node", i).Logger()
		m, err := Listen("127.0.0.1:0", o)
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, &testNode{
			id: raft.ServerID(fmt.Sprintf("n%d", i)), mux: m,
			rafts: make(map[string]*raft.Raft), fsms: make(map[string]*testFSM),
		})
	}
	t.Cleanup(c.close)
	for _, g := range groups {
		for _, nd := range c.nodes {
			c.start(nd, g, true)
		}
	}
	return c
}

func (c *cluster) configuration() raft.Configuration {
	var cfg raft.Configuration
	for _, nd := range c.nodes {
		cfg.Servers = append(cfg.Servers, raft.Server{ID: nd.id, Address: nd.mux.Addr()})
	}
	return cfg
}

// start runs group g's raft on nd over fresh in-memory stores.
func (c *cluster) start(nd *testNode, g groupSpec, bootstrap bool) {
	c.t.Helper()
	conf := raft.DefaultConfig()
	conf.LocalID = nd.id
	conf.Logger = raftLogger()
	conf.SnapshotThreshold = 1 << 40
	conf.SnapshotInterval = time.Hour
	conf.TrailingLogs = 16
	if c.cfg != nil {
		c.cfg(conf)
	}
	store := raft.NewInmemStore()
	var snaps raft.SnapshotStore = raft.NewInmemSnapshotStore()
	if g.stream {
		snaps = &streamStore{}
	}
	fsm := &testFSM{pad: g.pad}
	r, err := raft.NewRaft(conf, fsm, store, store, snaps, nd.mux.Group(g.id))
	if err != nil {
		c.t.Fatal(err)
	}
	if bootstrap {
		if err := r.BootstrapCluster(c.configuration()).Error(); err != nil {
			c.t.Fatal(err)
		}
	}
	nd.mu.Lock()
	nd.rafts[g.id], nd.fsms[g.id] = r, fsm
	nd.mu.Unlock()
}

func (nd *testNode) raft(g string) *raft.Raft {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.rafts[g]
}

func (nd *testNode) fsm(g string) *testFSM {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.fsms[g]
}

func (c *cluster) close() {
	var wg sync.WaitGroup
	for _, nd := range c.nodes {
		nd.mu.Lock()
		for _, r := range nd.rafts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = r.Shutdown().Error()
			}()
		}
		nd.mu.Unlock()
	}
	wg.Wait()
	for _, nd := range c.nodes {
		if err := nd.mux.Close(); err != nil {
			c.t.Error(err)
		}
	}
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leader waits for exactly one node (among those not excluded) to lead g
// and returns it.
func (c *cluster) leader(g string, exclude ...*testNode) *testNode {
	c.t.Helper()
	var ld *testNode
	waitFor(c.t, "a leader of "+g, func() bool {
		ld = nil
		for _, nd := range c.nodes {
			skip := false
			for _, x := range exclude {
				skip = skip || x == nd
			}
			if r := nd.raft(g); !skip && r != nil && r.State() == raft.Leader {
				if ld != nil {
					return false
				}
				ld = nd
			}
		}
		return ld != nil
	})
	return ld
}

// apply proposes n commands on the leader of g, pipelined, and waits.
func (c *cluster) apply(ld *testNode, g string, n, size int) {
	c.t.Helper()
	r := ld.raft(g)
	data := make([]byte, size)
	futs := make([]raft.ApplyFuture, 0, n)
	for i := 0; i < n; i++ {
		futs = append(futs, r.Apply(data, 10*time.Second))
	}
	for _, f := range futs {
		if err := f.Error(); err != nil {
			c.t.Fatalf("apply on %s: %v", ld.id, err)
		}
	}
}

// converged waits until every node's FSM of g applied what the leader's did.
func (c *cluster) converged(g string, ld *testNode) {
	c.t.Helper()
	want, _, _ := ld.fsm(g).state()
	waitFor(c.t, "followers of "+g+" to converge", func() bool {
		for _, nd := range c.nodes {
			if got, _, _ := nd.fsm(g).state(); got != want {
				return false
			}
		}
		return true
	})
}
