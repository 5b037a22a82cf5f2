package partition

import (
	"fmt"
	"maps"
	"slices"

	"github.com/sluicemq/sluice/partition/share"
)

// The committed share-partition states of this partition, one per share
// group that consumed it: the state machine applies each group's deltas
// as raft commits them, and snapshots carry them. A leader's working copy
// (package broker) starts from these and runs ahead by the deltas in
// flight.

// ApplyShare applies a committed delta of a share group's state.
func (p *Partition) ApplyShare(group string, delta []byte) error {
	p.sharesMu.Lock()
	defer p.sharesMu.Unlock()
	sp := p.shares[group]
	if sp == nil {
		sp = share.New(share.DefaultConfig(), 0) // the first delta sets the window
	}
	if err := share.Apply(sp, delta); err != nil {
		return fmt.Errorf("partition: share group %q: %w", group, err)
	}
	if p.shares == nil {
		p.shares = map[string]*share.Partition{}
	}
	p.shares[group] = sp
	return nil
}

// ResetShare replaces a share group's committed state, as an operator
// asked (AlterShareGroupOffsets, DeleteShareGroupOffsets): an empty delta
// deletes it, so the group's next consumer starts by
// share.auto.offset.reset; otherwise delta must be the first delta of a
// new state (share.New at the new start, then TakeDelta), which Apply on
// an empty Partition checks. On error nothing changes.
func (p *Partition) ResetShare(group string, delta []byte) error {
	var sp *share.Partition
	if len(delta) > 0 {
		sp = share.New(share.DefaultConfig(), 0)
		if err := share.Apply(sp, delta); err != nil {
			return fmt.Errorf("partition: share group %q reset: %w", group, err)
		}
	}
	p.sharesMu.Lock()
	defer p.sharesMu.Unlock()
	if sp == nil {
		delete(p.shares, group)
		return nil
	}
	if p.shares == nil {
		p.shares = map[string]*share.Partition{}
	}
	p.shares[group] = sp
	return nil
}

// ShareStats summarizes the committed state of a share group on this
// partition; false when the group has none.
func (p *Partition) ShareStats(group string) (share.Stats, bool) {
	p.sharesMu.Lock()
	defer p.sharesMu.Unlock()
	if sp := p.shares[group]; sp != nil {
		return sp.Stats(), true
	}
	return share.Stats{}, false
}

// ShareState is the committed state of a share group on this partition
// (share.Partition.Snapshot), nil when the group never consumed it.
func (p *Partition) ShareState(group string) []byte {
	p.sharesMu.Lock()
	defer p.sharesMu.Unlock()
	if sp := p.shares[group]; sp != nil {
		return sp.Snapshot()
	}
	return nil
}

// ShareGroups lists the share groups with state on this partition.
func (p *Partition) ShareGroups() []string {
	p.sharesMu.Lock()
	defer p.sharesMu.Unlock()
	return slices.Sorted(maps.Keys(p.shares))
}

// ShareStates returns every committed share state, for a snapshot.
func (p *Partition) ShareStates() map[string][]byte {
	p.sharesMu.Lock()
	defer p.sharesMu.Unlock()
	out := make(map[string][]byte, len(p.shares))
	for g, sp := range p.shares {
		out[g] = sp.Snapshot()
	}
	return out
}

// RestoreShareStates replaces the committed share states (from a
// snapshot); nil clears them.
func (p *Partition) RestoreShareStates(states map[string][]byte) error {
	next := make(map[string]*share.Partition, len(states))
	for g, b := range states {
		sp, err := share.Restore(share.DefaultConfig(), b)
		if err != nil {
			return fmt.Errorf("partition: share group %q: %w", g, err)
		}
		next[g] = sp
	}
	p.sharesMu.Lock()
	p.shares = next
	p.sharesMu.Unlock()
	return nil
}
