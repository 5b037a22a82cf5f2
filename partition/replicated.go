package partition

import "github.com/sluicemq/sluice/log/batch"

// The state machine side. A replica's state machine (replication.FSM) owns
// the committed state: it calls ApplyProduce for every committed batch in
// log order on every replica, SetHighWatermark once per group of applied
// entries, SetLogStart for retention and DeleteRecords commands, and
// ProducerState/RestoreProducerState for its snapshot manifests. The
// leader's proposer checks sequences with Sequence, which also remembers
// its proposals until they are applied (in flight), and drops them with
// ClearInflight when it loses leadership.

// inflightBatch is a batch the leader has proposed but not yet
// applied.
type inflightBatch struct {
	epoch             int16
	firstSeq, lastSeq int32
	pending           Pending
}

// Sequence checks an idempotent batch (h.ProducerID >= 0) against the
// committed producer table and the batches proposed before it that are
// still in flight. A duplicate returns the original's Pending (its offset
// once stored; a settled one for a committed batch) and changes nothing. A
// new batch is remembered as in flight with pending, whose Wait must give
// the batch's base offset once it is applied (or fail). A refusal is a
// *kerr.Error. The caller orders its proposals with its own lock held
// across Sequence and the proposal, so that proposal order is sequence
// order.
func (p *Partition) Sequence(h batch.Header, pending Pending) (dup Pending, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := p.producers.checkWith(h, p.inflight[h.ProducerID])
	if err != nil {
		return nil, err
	}
	if b != nil {
		return b.handle(), nil
	}
	p.inflight[h.ProducerID] = append(p.inflight[h.ProducerID], inflightBatch{
		epoch: h.ProducerEpoch, firstSeq: h.BaseSequence, lastSeq: h.LastSequence(), pending: pending,
	})
	return nil, nil
}

// ClearInflight forgets every in-flight proposal. The replica calls it
// when it loses leadership (their outcome is unknown: they may still
// commit under the next leader and are then applied like any entry) and
// before it takes proposals in a new term.
func (p *Partition) ClearInflight() {
	p.mu.Lock()
	clear(p.inflight)
	p.mu.Unlock()
}

// ApplyProduce applies one committed batch, whose header carries the base
// offset the log stamped: an idempotent producer's batch enters the
// committed producer table (and leaves the in-flight ones). Every replica
// applies the same batches in the same order, so their tables agree. The
// high watermark is published separately (SetHighWatermark), once per
// group of applied entries.
func (p *Partition) ApplyProduce(h batch.Header) {
	if h.ProducerID < 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.producers.record(h)
	fl := p.inflight[h.ProducerID]
	for i, f := range fl {
		if f.epoch == h.ProducerEpoch && f.firstSeq == h.BaseSequence && f.lastSeq == h.LastSequence() {
			fl = append(fl[:i:i], fl[i+1:]...)
			break
		}
	}
	if len(fl) == 0 {
		delete(p.inflight, h.ProducerID)
	} else {
		p.inflight[h.ProducerID] = fl
	}
}

// SetHighWatermark publishes the committed high watermark and wakes the
// waiters of Changed when it moved.
func (p *Partition) SetHighWatermark(hw int64) {
	if p.hw.Swap(hw) != hw {
		p.notify()
	}
}

// SetLogStart sets the replicated log start offset (retention or
// DeleteRecords applied). Reads below it are out of range on every
// replica at once; the segment files below it are removed later, when the
// replica's snapshots allow (replication trims the log).
func (p *Partition) SetLogStart(offset int64) {
	p.start.Store(offset)
}

// ProducerState encodes the committed producer table (for a snapshot
// manifest). In-flight proposals are not part of it.
func (p *Partition) ProducerState() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.producers.encode()
}

// RestoreProducerState replaces the committed producer table with one
// encoded by ProducerState; nil means an empty table.
func (p *Partition) RestoreProducerState(b []byte) error {
	t := newProducers(p.producers.max)
	if b != nil {
		if err := t.decode(b); err != nil {
			return err
		}
	}
	p.mu.Lock()
	p.producers = t
	p.mu.Unlock()
	return nil
}
