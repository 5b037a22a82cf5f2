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

// Pending is the base offset of a batch that has been proposed to the
// replicas but is not applied yet (replication.Replica's proposal is one).
type Pending interface {
	// Done reports, without blocking, whether Wait would return at once.
	Done() bool
	// Wait blocks until the batch is applied (or failed) and returns its
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
	pending           Pending // an in-flight proposal (only in checkWith's view)
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

// producers is a partition's committed idempotent-producer table: every
// batch in it is applied, at a known offset. Partition.mu guards it.
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

// checkWith applies Kafka's sequence rules to a batch from producer
// h.ProducerID, against the table as it will be once the in-flight batches
// flying (of h's producer, oldest first) are applied: the leader checks a
// new batch against the committed table and against what it has proposed
// but not yet applied. It returns the remembered batch when h is a
// duplicate (answer with its offset), or a *kerr.Error when the batch must
// be refused. The table is not changed.
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

// record remembers an applied batch, stored at h.BaseOffset.
func (t *producers) record(h batch.Header) {
	st := t.m[h.ProducerID]
	if st == nil {
		t.evictIfFull()
		st = &producerState{epoch: h.ProducerEpoch}
		t.m[h.ProducerID] = st
	}
	st.add(h.ProducerEpoch, producerBatch{
		firstSeq: h.BaseSequence, lastSeq: h.LastSequence(), baseOffset: h.BaseOffset,
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

// Encoding of the producer table, embedded in replication's snapshot
// manifests: magic "SLPS", version 1, 3 reserved, covered i64, count u32,
// entries {pid i64, epoch i16, n u8, n x {first i32, last i32, offset
// i64}}, least recently used producer first, CRC-32C u32 of everything
// before it. Little-endian. covered is always math.MaxInt64 (every batch
// in the table is committed); it is the offset a standalone partition's
// producers.snapshot file covered in earlier builds, which used the same
// encoding. decode refuses a negative one and otherwise ignores it.
const snapshotMagic = "SLPS"

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var errBadSnapshot = errors.New("partition: bad producer snapshot")

// encode serialises the table.
func (t *producers) encode() []byte {
	b := make([]byte, 0, 24+len(t.m)*64)
	b = append(b, snapshotMagic...)
	b = append(b, 1, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, math.MaxInt64)
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
		b = append(b, byte(len(st.batches)))
		for _, pb := range st.batches {
			b = binary.LittleEndian.AppendUint32(b, uint32(pb.firstSeq))
			b = binary.LittleEndian.AppendUint32(b, uint32(pb.lastSeq))
			b = binary.LittleEndian.AppendUint64(b, uint64(pb.baseOffset))
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// decode parses an encoded table into t.
func (t *producers) decode(b []byte) error {
	if len(b) < 24 || string(b[:4]) != snapshotMagic || b[4] != 1 {
		return errBadSnapshot
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return errBadSnapshot
	}
	covered := int64(binary.LittleEndian.Uint64(body[8:]))
	n := binary.LittleEndian.Uint32(body[16:])
	p := body[20:]
	// Each entry takes at least 11 bytes: bound the count by what is there.
	if covered < 0 || uint64(n)*11 > uint64(len(p)) {
		return errBadSnapshot
	}
	for i := uint32(0); i < n; i++ {
		if len(p) < 11 {
			return errBadSnapshot
		}
		pid := int64(binary.LittleEndian.Uint64(p))
		st := &producerState{epoch: int16(binary.LittleEndian.Uint16(p[8:]))}
		k := int(p[10])
		p = p[11:]
		if k > dedupWindow || len(p) < k*16 {
			return errBadSnapshot
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
		return errBadSnapshot
	}
	return nil
}
