package partition

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/log/batch"
)

// dedupWindow is how many recent batches per producer are remembered, as
// Kafka's max.in.flight.requests.per.connection=5 requires (a retry of any
// of the last five in-flight batches must be recognised).
const dedupWindow = 5

// Pending is the base offset of a batch that has been queued to the log or
// proposed to the replicas but is not stored yet. *log.Pending is one.
type Pending interface {
	// Done reports, without blocking, whether Wait would return at once.
	Done() bool
	// Wait blocks until the batch is stored (or failed) and returns its
	// base offset.
	Wait() (int64, error)
}

// settled is the Pending of a batch whose offset is known.
type settled int64

func (s settled) Done() bool           { return true }
func (s settled) Wait() (int64, error) { return int64(s), nil }

// producerBatch is one remembered batch of an idempotent producer.
type producerBatch struct {
	firstSeq, lastSeq int32
	baseOffset        int64   // valid when pending is nil
	pending           Pending // set while the append is in flight
}

func (b *producerBatch) offset() (int64, error) {
	if b.pending == nil {
		return b.baseOffset, nil
	}
	return b.pending.Wait()
}

// handle returns a Pending for the batch's offset.
func (b *producerBatch) handle() Pending {
	if b.pending == nil {
		return settled(b.baseOffset)
	}
	return b.pending
}

type producerState struct {
	epoch    int16
	batches  []producerBatch // oldest first, at most dedupWindow
	lastUsed uint64          // for eviction
}

// producers is a partition's idempotent-producer table. The partition's
// produce lock guards it.
type producers struct {
	m     map[int64]*producerState
	max   int
	clock uint64
}

func newProducers(max int) *producers {
	return &producers{m: map[int64]*producerState{}, max: max}
}

// nextSeq is the sequence after s, wrapping as Kafka's does.
func nextSeq(s int32) int32 {
	if s == math.MaxInt32 {
		return 0
	}
	return s + 1
}

// check applies Kafka's sequence rules to a batch from producer h.ProducerID.
// It returns the remembered batch when h is a duplicate (answer with its
// offset), or a *kerr.Error when the batch must be refused.
func (t *producers) check(h batch.Header) (*producerBatch, error) {
	return checkState(t.m[h.ProducerID], h)
}

// checkWith is check against the table as it will be once the in-flight
// batches flying (of h's producer, oldest first) are stored: a replicated
// leader checks a new batch against the committed table and against what
// it has proposed but not yet applied. The table is not changed.
func (t *producers) checkWith(h batch.Header, flying []inflightBatch) (*producerBatch, error) {
	st := t.m[h.ProducerID]
	if len(flying) > 0 {
		view := &producerState{}
		if st != nil {
			view.epoch, view.batches = st.epoch, append(view.batches, st.batches...)
		}
		for _, f := range flying {
			view.add(f.epoch, producerBatch{firstSeq: f.firstSeq, lastSeq: f.lastSeq, pending: f.pending})
		}
		st = view
	}
	return checkState(st, h)
}

func checkState(st *producerState, h batch.Header) (*producerBatch, error) {
	switch {
	case st == nil:
		if h.BaseSequence != 0 {
			// Forgotten (evicted or never seen): the client resets its sequence.
			return nil, kerr.UnknownProducerID
		}
		return nil, nil
	case h.ProducerEpoch < st.epoch:
		return nil, kerr.InvalidProducerEpoch
	case h.ProducerEpoch > st.epoch:
		if h.BaseSequence != 0 {
			return nil, kerr.OutOfOrderSequenceNumber
		}
		return nil, nil
	}
	last := h.LastSequence()
	for i := range st.batches {
		if b := &st.batches[i]; b.firstSeq == h.BaseSequence && b.lastSeq == last {
			return b, nil
		}
	}
	if n := len(st.batches); n > 0 && h.BaseSequence != nextSeq(st.batches[n-1].lastSeq) {
		return nil, kerr.OutOfOrderSequenceNumber
	}
	return nil, nil
}

// record remembers an accepted batch (pending, or stored at baseOffset).
func (t *producers) record(h batch.Header, pending Pending, baseOffset int64) {
	st := t.m[h.ProducerID]
	if st == nil {
		t.evictIfFull()
		st = &producerState{epoch: h.ProducerEpoch}
		t.m[h.ProducerID] = st
	}
	st.add(h.ProducerEpoch, producerBatch{
		firstSeq: h.BaseSequence, lastSeq: h.LastSequence(), baseOffset: baseOffset, pending: pending,
	})
	t.clock++
	st.lastUsed = t.clock
}

// add remembers b, a batch of epoch: a new epoch forgets the old one's
// batches, and only the last dedupWindow batches are kept.
func (st *producerState) add(epoch int16, b producerBatch) {
	if epoch != st.epoch {
		st.epoch, st.batches = epoch, st.batches[:0]
	}
	if len(st.batches) == dedupWindow {
		st.batches = append(st.batches[:0], st.batches[1:]...)
	}
	st.batches = append(st.batches, b)
}

// settle replaces finished pending appends by their offsets so the table
// does not pin completed requests; with block it waits for unfinished ones.
func (t *producers) settle(pid int64, block bool) {
	st := t.m[pid]
	if st == nil {
		return
	}
	for i := range st.batches {
		b := &st.batches[i]
		if b.pending != nil && (block || b.pending.Done()) {
			if off, err := b.pending.Wait(); err == nil {
				b.baseOffset, b.pending = off, nil
			}
		}
	}
}

// evictIfFull forgets the least recently used tenth of the producers when
// the table is full, so producer ids cannot grow memory without bound.
func (t *producers) evictIfFull() {
	if len(t.m) < t.max {
		return
	}
	type aged struct {
		pid  int64
		used uint64
	}
	all := make([]aged, 0, len(t.m))
	for pid, st := range t.m {
		all = append(all, aged{pid, st.lastUsed})
	}
	sort.Slice(all, func(i, j int) bool {
		return all[i].used < all[j].used || (all[i].used == all[j].used && all[i].pid < all[j].pid)
	})
	for _, a := range all[:max(len(all)/10, 1)] {
		delete(t.m, a.pid)
	}
}

// Snapshot file: magic "SLPS", version 1, 3 reserved, covered offset i64,
// count u32, entries {pid i64, epoch i16, n u8, n x {first i32, last i32,
// offset i64}}, least recently used producer first, CRC-32C u32 of
// everything before it. Little-endian. A replica's snapshot manifest embeds
// the same encoding.
const (
	snapshotMagic = "SLPS"
	snapshotName  = "producers.snapshot"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var errBadSnapshot = errors.New("partition: bad producer snapshot")

// encode serialises the state as of offset covered: settled batches below
// it. Batches at or past it (and pending ones, which are past it) are left
// to the scan from covered that follows loading the snapshot.
func (t *producers) encode(covered int64) []byte {
	b := make([]byte, 0, 24+len(t.m)*64)
	b = append(b, snapshotMagic...)
	b = append(b, 1, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(covered))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(t.m)))
	pids := make([]int64, 0, len(t.m))
	for pid := range t.m {
		pids = append(pids, pid)
	}
	// Least recently used first, so that decode restores the order
	// eviction goes by: replicas restoring the same snapshot evict alike.
	sort.Slice(pids, func(i, j int) bool {
		a, b := t.m[pids[i]], t.m[pids[j]]
		return a.lastUsed < b.lastUsed || (a.lastUsed == b.lastUsed && pids[i] < pids[j])
	})
	for _, pid := range pids {
		st := t.m[pid]
		b = binary.LittleEndian.AppendUint64(b, uint64(pid))
		b = binary.LittleEndian.AppendUint16(b, uint16(st.epoch))
		n := 0
		for _, pb := range st.batches {
			if pb.pending == nil && pb.baseOffset < covered {
				n++
			}
		}
		b = append(b, byte(n))
		for _, pb := range st.batches {
			if pb.pending != nil || pb.baseOffset >= covered {
				continue
			}
			b = binary.LittleEndian.AppendUint32(b, uint32(pb.firstSeq))
			b = binary.LittleEndian.AppendUint32(b, uint32(pb.lastSeq))
			b = binary.LittleEndian.AppendUint64(b, uint64(pb.baseOffset))
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// decodeSnapshot parses a snapshot into t and returns the offset it covers.
func (t *producers) decode(b []byte) (int64, error) {
	if len(b) < 24 || string(b[:4]) != snapshotMagic || b[4] != 1 {
		return 0, errBadSnapshot
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return 0, errBadSnapshot
	}
	covered := int64(binary.LittleEndian.Uint64(body[8:]))
	n := binary.LittleEndian.Uint32(body[16:])
	p := body[20:]
	// Each entry takes at least 11 bytes: bound the count by what is there.
	if covered < 0 || uint64(n)*11 > uint64(len(p)) {
		return 0, errBadSnapshot
	}
	for i := uint32(0); i < n; i++ {
		if len(p) < 11 {
			return 0, errBadSnapshot
		}
		pid := int64(binary.LittleEndian.Uint64(p))
		st := &producerState{epoch: int16(binary.LittleEndian.Uint16(p[8:]))}
		k := int(p[10])
		p = p[11:]
		if k > dedupWindow || len(p) < k*16 {
			return 0, errBadSnapshot
		}
		for j := 0; j < k; j++ {
			st.batches = append(st.batches, producerBatch{
				firstSeq:   int32(binary.LittleEndian.Uint32(p)),
				lastSeq:    int32(binary.LittleEndian.Uint32(p[4:])),
				baseOffset: int64(binary.LittleEndian.Uint64(p[8:])),
			})
			p = p[16:]
		}
		t.clock++
		st.lastUsed = t.clock
		t.m[pid] = st
	}
	if len(p) != 0 {
		return 0, errBadSnapshot
	}
	return covered, nil
}
