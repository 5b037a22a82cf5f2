package partition

import (
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/log/batch"
	"github.com/sluicemq/sluice/log/vfs"
)

func defaultConfig() Config {
	return Config{MaxMessageBytes: 1 << 20, SegmentBytes: 1 << 30}
}

// fixture is a partition opened the way replication.Replica opens it, with
// replication's produce path done in-line and without raft:
//
//   - propose is the leader's half (Replica.ProduceCommand): Prepare, then
//     for an idempotent batch Sequence, which answers a duplicate or
//     remembers the batch as in flight;
//   - store is the LogStore's (StoreLogs): the batch becomes a batch frame
//     of the next raft index, and the log stamps its base offset into it;
//   - apply is the FSM's (ApplyBatch): ApplyProduce with the stored batch's
//     header, then SetHighWatermark with the end of the batch;
//   - snapshot and restart are the FSM's Snapshot and, after a reopen,
//     Init (RestoreProducerState) plus raft replaying the later entries.
//
// Raft's ordering is the caller's: entries are stored and applied in the
// order they were proposed (produce does all three under proposeMu).
type fixture struct {
	t   *testing.T
	m   *vfs.Mem
	now time.Time
	p   *Partition
	cfg Config

	proposeMu sync.Mutex // Replica.proposeMu

	applyMu sync.Mutex // FSM.mu: the applied state below
	index   uint64     // last raft index applied
	hw      int64
}

const fixtureDir = "/data/t-0"

func newFixture(t *testing.T, cfg Config) *fixture {
	f := &fixture{t: t, m: vfs.NewMem(), now: time.UnixMilli(1_700_000_000_000), cfg: cfg}
	f.p = f.openAt(fixtureDir)
	return f
}

// openAt opens the partition in dir as replication.OpenReplica does; the
// test closes it.
func (f *fixture) openAt(dir string) *Partition {
	f.t.Helper()
	p, err := OpenReplicated(dir, "t", 0, f.cfg, Options{FS: f.m, Now: func() time.Time { return f.now }})
	if err != nil {
		f.t.Fatalf("open %s: %v", dir, err)
	}
	return p
}

// build makes a batch of n keyed records; pid < 0 means not idempotent.
func build(t *testing.T, n int, pid int64, epoch int16, seq int32, ts int64) []byte {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{Key: []byte{byte(i)}, Value: []byte("value"), TimestampDelta: int64(i)}
	}
	opts := batch.BuildOptions{BaseTimestamp: ts}
	if pid >= 0 {
		opts.Producer = &batch.ProducerInfo{ID: pid, Epoch: epoch, BaseSequence: seq}
	}
	b, err := batch.Build(recs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// proposal is a proposed batch and, as replication's proposal is, the
// Pending of its offset: resolved when the batch is applied.
type proposal struct {
	pr   Prepared
	done chan struct{}
	off  int64
}

func (p *proposal) Done() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proposal) Wait() (int64, error) { <-p.done; return p.off, nil }

// propose is the leader's half: validate records and check their producer
// sequence. prop is the prepared batch (nil when refused); a duplicate
// also returns the original's Pending, and prop must then not be
// committed. A refusal is the *kerr.Error the producer gets.
func (f *fixture) propose(records []byte) (prop *proposal, dup Pending, err error) {
	pr, err := f.p.Prepare(records)
	if err != nil {
		return nil, nil, err
	}
	prop = &proposal{pr: pr, done: make(chan struct{})}
	if h := pr.Header; h.ProducerID >= 0 {
		dup, err := f.p.Sequence(h, prop)
		if err != nil {
			return nil, nil, err
		}
		return prop, dup, nil
	}
	return prop, nil, nil
}

// store appends the proposed batch to the log as the next raft entry, as
// LogStore.StoreLogs does, without applying it. It returns the entry's
// index.
func (f *fixture) store(prop *proposal) uint64 {
	f.t.Helper()
	l := f.p.Log()
	e := []log.Entry{{Index: l.LastIndex() + 1, Term: 1, Type: 0 /* raft.LogCommand */, Batch: true, Data: prop.pr.Batch}}
	if err := l.StoreEntries(e); err != nil {
		f.t.Fatalf("store: %v", err)
	}
	return e[0].Index
}

// apply applies the stored entry at index, as the FSM does for a committed
// produce entry: the producer table from the header the log stamped, then
// the high watermark. A proposal waiting for it learns its offset.
func (f *fixture) apply(index uint64, prop *proposal) {
	f.t.Helper()
	e, err := f.p.Log().Entry(index)
	if err != nil || !e.Batch {
		f.t.Fatalf("entry %d: %+v, %v", index, e, err)
	}
	h, err := batch.ParseHeader(e.Data)
	if err != nil {
		f.t.Fatalf("entry %d: %v", index, err)
	}
	f.applyMu.Lock()
	f.index = index
	f.hw = max(f.hw, h.BaseOffset+int64(h.LastOffsetDelta)+1)
	f.p.ApplyProduce(h)
	hw := f.hw
	f.applyMu.Unlock()
	f.p.SetHighWatermark(hw)
	if prop != nil {
		prop.off = h.BaseOffset
		close(prop.done)
	}
}

// commit stores and applies a proposed batch.
func (f *fixture) commit(prop *proposal) { f.apply(f.store(prop), prop) }

// produce is one produce with acks=-1: proposed, committed and answered as
// Replica.Produce answers it.
func (f *fixture) produce(records []byte) (ProduceResult, error) {
	f.proposeMu.Lock()
	prop, dup, err := f.propose(records)
	if err == nil && dup == nil {
		f.commit(prop)
	}
	f.proposeMu.Unlock()
	if err != nil {
		return ProduceResult{}, err
	}
	if dup == nil {
		dup = prop
	}
	off, err := dup.Wait()
	if err != nil {
		return ProduceResult{}, err
	}
	return ProduceResult{BaseOffset: off, LogAppendTime: prop.pr.LogAppendTime, LogStartOffset: f.p.LogStartOffset()}, nil
}

// fsmSnapshot is what the FSM's snapshot manifest records of the state.
type fsmSnapshot struct {
	index     uint64
	hw        int64
	producers []byte
}

// snapshot captures the applied state, as FSM.Snapshot does.
func (f *fixture) snapshot() fsmSnapshot {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	return fsmSnapshot{index: f.index, hw: f.hw, producers: f.p.ProducerState()}
}

// restart closes the partition (or, with crash, loses what was not
// fsynced) and reopens it as a replica restarts: the FSM's state from the
// snapshot s, then every entry after it replayed from the log.
func (f *fixture) restart(crash bool, s fsmSnapshot) {
	f.t.Helper()
	if crash {
		f.m.Crash(vfs.CrashOptions{})
	}
	f.p.Close()
	f.p = f.openAt(fixtureDir)
	if err := f.p.RestoreProducerState(s.producers); err != nil {
		f.t.Fatalf("restore producer state: %v", err)
	}
	f.p.ClearInflight()
	f.index, f.hw = s.index, s.hw
	f.p.SetHighWatermark(s.hw)
	for i := s.index + 1; i <= f.p.Log().LastIndex(); i++ {
		f.apply(i, nil)
	}
}
