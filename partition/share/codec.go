package share

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Encoding (version 1) of a snapshot (the whole state) and of a delta (the
// records changed since the previous delta). Both are one header and a
// list of records; integers are unsigned varints unless noted.
//
//	magic     2 bytes "SQ"
//	version   1 byte  1
//	kind      1 byte  1 = snapshot, 2 = delta
//	seq       varint  delta sequence number (a snapshot: the last one taken
//	                  or applied); deltas count from 1
//	start     varint  SPSO
//	window    varint  NextRead - SPSO
//	count     varint  number of records that follow
//	records   count times, ascending offsets, each in [SPSO, NextRead):
//	  gap     varint  offset - SPSO for the first, offset - previous - 1 after
//	  flags   1 byte  bits 0-2 state (0 available, 1 acquired, 2 acknowledged,
//	                  4 archived); bit 3 the record has a key; bit 4 a dead
//	                  letter is pending; bit 5 its reason is the delivery
//	                  limit (else rejected); bits 6-7 zero
//	  count   varint  deliveries, at most 32767
//	  at      varint  available records: unix ms before which the record is
//	                  not deliverable, 0 = now; 0 for every other state
//	  key     8 bytes little-endian FNV-1a of the key, only with bit 3
//
// A snapshot lists every record in the window; a delta lists the records
// that changed and are still in the window after it (a record SPSO passed
// is done, whatever the delta last said of it). Offsets in the window that
// no record names are compaction gaps. Acquisition owners and lock
// deadlines are not encoded: an acquired record decoded on another replica
// has no owner and an expired lock. The encoding is canonical: decoding
// refuses anything the encoder would not write (a pending dead letter on a
// record that is not archived, a delay on a record that is not available,
// a window whose first record is done), so Restore(b).Snapshot() == b.
const (
	magic0, magic1 = 'S', 'Q'
	codecVersion   = 1
	kindSnapshot   = 1
	kindDelta      = 2

	wireKey     = 1 << 3
	wireDL      = 1 << 4
	wireDLLimit = 1 << 5
	wireState   = 0x7

	minRecordSize = 4 // gap, flags, count, at
)

func appendRecord(b []byte, e *entry, prev int64) []byte {
	b = binary.AppendUvarint(b, uint64(e.off-prev))
	f := uint8(e.state)
	if e.flags&flagKey != 0 {
		f |= wireKey
	}
	if e.flags&flagDL != 0 {
		f |= wireDL
		if e.flags&flagDLLimit != 0 {
			f |= wireDLLimit
		}
	}
	b = append(b, f)
	b = binary.AppendUvarint(b, uint64(e.count))
	b = binary.AppendUvarint(b, uint64(e.at))
	if e.flags&flagKey != 0 {
		b = binary.LittleEndian.AppendUint64(b, e.key)
	}
	return b
}

func appendHeader(b []byte, kind byte, seq uint64, start, next int64, n int) []byte {
	b = append(b, magic0, magic1, codecVersion, kind)
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendUvarint(b, uint64(start))
	b = binary.AppendUvarint(b, uint64(next-start))
	return binary.AppendUvarint(b, uint64(n))
}

// Snapshot encodes the whole state (see the encoding above). It is
// deterministic: two replicas with the same state encode the same bytes.
func (p *Partition) Snapshot() []byte {
	b := make([]byte, 0, 32+len(p.recs)*16)
	b = appendHeader(b, kindSnapshot, p.seq, p.spso, p.nextRead, len(p.recs))
	prev := p.spso
	for i := range p.recs {
		b = appendRecord(b, &p.recs[i], prev)
		prev = p.recs[i].off + 1
	}
	return b
}

// TakeDelta encodes the changes since the last TakeDelta, nil if there are
// none, and gives them the next sequence number. The first delta of a New
// partition always exists: it carries SPSO. Replicate it before acting on
// what it records (hand out acquired records only once their delta is
// committed) so a delivery count is never below the deliveries made. Call
// it after every mutating call or batch of calls: the changes pile up
// (one offset per record changed) until it is called.
func (p *Partition) TakeDelta() []byte {
	slices.Sort(p.dirty)
	var idx []int
	for _, off := range slices.Compact(p.dirty) {
		i := p.find(off)
		if i < len(p.recs) && p.recs[i].off == off && p.recs[i].flags&flagDirty != 0 {
			p.recs[i].flags &^= flagDirty
			idx = append(idx, i)
		}
	}
	p.dirty = p.dirty[:0]
	if len(idx) == 0 && p.taken && p.spso == p.sentStart && p.nextRead == p.sentNext {
		return nil
	}
	p.seq++
	p.taken, p.sentStart, p.sentNext = true, p.spso, p.nextRead
	b := make([]byte, 0, 32+len(idx)*16)
	b = appendHeader(b, kindDelta, p.seq, p.spso, p.nextRead, len(idx))
	prev := p.spso
	for _, i := range idx {
		b = appendRecord(b, &p.recs[i], prev)
		prev = p.recs[i].off + 1
	}
	return b
}

// decoded is a decoded snapshot or delta.
type decoded struct {
	kind        byte
	seq         uint64
	start, next int64
	recs        []entry
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n > 1 && r.b[n-1] == 0 { // overlong: not canonical
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// offset reads a varint that must fit a non-negative int64.
func (r *reader) offset() int64 {
	v := r.uvarint()
	if v > math.MaxInt64 {
		r.fail("value %d out of range", v)
		return 0
	}
	return int64(v)
}

func (r *reader) uint64() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// decode parses b and checks everything that does not depend on the state
// it is applied to. It allocates at most in proportion to len(b).
func decode(b []byte) (decoded, error) {
	var d decoded
	r := reader{b: b}
	if r.byte() != magic0 || r.byte() != magic1 {
		r.fail("bad magic")
	}
	if v := r.byte(); r.err == nil && v != codecVersion {
		r.fail("unknown version %d", v)
	}
	d.kind = r.byte()
	if r.err == nil && d.kind != kindSnapshot && d.kind != kindDelta {
		r.fail("unknown kind %d", d.kind)
	}
	d.seq = r.uvarint()
	d.start = r.offset()
	window := r.offset()
	if r.err == nil && window > math.MaxInt64-d.start {
		r.fail("window %d past the end of offsets", window)
	}
	d.next = d.start + window
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)/minRecordSize) {
		r.fail("%d records in %d bytes", n, len(r.b))
	}
	if r.err != nil {
		return d, r.err
	}
	d.recs = make([]entry, 0, n) // bounded by len(b) above
	prev := d.start
	for range n {
		gap := r.offset()
		f := r.byte()
		count := r.uvarint()
		at := r.offset()
		if r.err != nil {
			return d, r.err
		}
		if gap >= d.next-prev {
			return d, fmt.Errorf("%w: record past the window end %d", ErrCorrupt, d.next)
		}
		e := entry{off: prev + gap, state: State(f & wireState), at: at}
		switch {
		case f&^(wireState|wireKey|wireDL|wireDLLimit) != 0:
			return d, fmt.Errorf("%w: reserved flags %#x", ErrCorrupt, f)
		case !e.state.valid():
			return d, fmt.Errorf("%w: state %d", ErrCorrupt, f&wireState)
		case count > math.MaxInt16:
			return d, fmt.Errorf("%w: delivery count %d", ErrCorrupt, count)
		case at != 0 && e.state != Available:
			return d, fmt.Errorf("%w: delay on a %v record", ErrCorrupt, e.state)
		case f&wireDL != 0 && e.state != Archived, f&wireDLLimit != 0 && f&wireDL == 0:
			return d, fmt.Errorf("%w: dead letter flags %#x on a %v record", ErrCorrupt, f, e.state)
		case e.state == Acquired && count == 0:
			return d, fmt.Errorf("%w: acquired record with no delivery", ErrCorrupt)
		}
		e.count = int16(count)
		if f&wireKey != 0 {
			e.flags |= flagKey
			e.key = r.uint64()
		}
		if f&wireDL != 0 {
			e.flags |= flagDL
		}
		if f&wireDLLimit != 0 {
			e.flags |= flagDLLimit
		}
		d.recs = append(d.recs, e)
		prev = e.off + 1
	}
	if r.err != nil {
		return d, r.err
	}
	if len(r.b) != 0 {
		return d, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	return d, nil
}

// Restore decodes a Snapshot. Acquired records come back without an owner
// and with an expired lock, so the next Expire (or ReleaseAll) releases
// them.
func Restore(cfg Config, b []byte) (*Partition, error) {
	d, err := decode(b)
	if err != nil {
		return nil, err
	}
	if d.kind != kindSnapshot {
		return nil, fmt.Errorf("%w: a delta, not a snapshot", ErrCorrupt)
	}
	if err := checkHead(d.recs, d.start, d.next); err != nil {
		return nil, err
	}
	p := New(cfg, d.start)
	p.nextRead, p.recs, p.seq = d.next, d.recs, d.seq
	p.taken, p.sentStart, p.sentNext = true, d.start, d.next
	return p, nil
}

// checkHead checks SPSO against the window: it is the first record, which
// is not done, or NextRead if there is none.
func checkHead(recs []entry, start, next int64) error {
	switch {
	case len(recs) == 0 && start != next:
		return fmt.Errorf("%w: empty window %d..%d", ErrCorrupt, start, next)
	case len(recs) > 0 && recs[0].off != start:
		return fmt.Errorf("%w: start %d before the first record %d", ErrCorrupt, start, recs[0].off)
	case len(recs) > 0 && recs[0].done():
		return fmt.Errorf("%w: start %d at a done record", ErrCorrupt, start)
	}
	return nil
}

// Apply applies a delta taken from the leader's Partition with TakeDelta.
// A delta already applied (its sequence number is not above Seq) is
// ignored, so a leader may apply its own deltas and a restart may replay
// deltas older than its snapshot; a delta that skips a number is refused
// with ErrDeltaGap. A Partition that never took nor applied a delta (Seq 0)
// takes its window from the first delta, whatever New was given. Apply
// checks the delta against the state and changes nothing if it does not
// fit (ErrCorrupt): a record the state does not hold inside its window, a
// delivery count going down, a done record changing, SPSO or NextRead
// going back. Records in the delta that are acquired have no owner and an
// expired lock.
func Apply(p *Partition, delta []byte) error {
	d, err := decode(delta)
	if err != nil {
		return err
	}
	if d.kind != kindDelta {
		return fmt.Errorf("%w: a snapshot, not a delta", ErrCorrupt)
	}
	if d.seq == 0 {
		return fmt.Errorf("%w: delta sequence number 0", ErrCorrupt)
	}
	if d.seq <= p.seq {
		return nil
	}
	if d.seq != p.seq+1 {
		return fmt.Errorf("%w: delta %d after %d", ErrDeltaGap, d.seq, p.seq)
	}
	recs, start, next := p.recs, p.spso, p.nextRead
	if p.seq == 0 {
		recs, start, next = nil, d.start, d.start
	}
	if d.start < start || d.next < next {
		return fmt.Errorf("%w: window %d..%d behind %d..%d", ErrCorrupt, d.start, d.next, start, next)
	}
	// Check every record, and find the head the result will have.
	pos := make([]int, len(d.recs)) // index in recs, or -1 for a new record
	for k := range d.recs {
		u := &d.recs[k]
		if u.off >= next {
			pos[k] = -1
			continue
		}
		i, ok := slices.BinarySearchFunc(recs, u.off, func(e entry, off int64) int {
			return cmpInt64(e.off, off)
		})
		if !ok {
			return fmt.Errorf("%w: offset %d is not a record here", ErrCorrupt, u.off)
		}
		if err := checkChange(&recs[i], u); err != nil {
			return err
		}
		pos[k] = i
	}
	if err := checkHead(applyHead(recs, d), d.start, d.next); err != nil {
		return err
	}
	// Apply.
	for k := range d.recs {
		u := d.recs[k]
		if pos[k] < 0 {
			recs = append(recs, u)
			continue
		}
		e := &recs[pos[k]]
		if u.state == Acquired && e.state == Acquired && u.count == e.count {
			u.owner, u.lock = e.owner, e.lock // the same acquisition
		}
		u.flags |= e.flags & flagDirty
		*e = u
	}
	i, _ := slices.BinarySearchFunc(recs, d.start, func(e entry, off int64) int {
		return cmpInt64(e.off, off)
	})
	for j := range i {
		recs[j].owner = ""
	}
	p.recs, p.spso, p.nextRead, p.seq = recs[i:], d.start, d.next, d.seq
	p.taken, p.sentStart, p.sentNext = true, d.start, d.next
	return nil
}

// applyHead returns the records at or past d.start that the window will
// begin with after d: enough for checkHead, which looks at the first.
func applyHead(recs []entry, d decoded) []entry {
	i, _ := slices.BinarySearchFunc(recs, d.start, func(e entry, off int64) int {
		return cmpInt64(e.off, off)
	})
	switch {
	case len(d.recs) > 0 && (i == len(recs) || d.recs[0].off <= recs[i].off):
		return d.recs[:1]
	case i < len(recs):
		return recs[i : i+1]
	}
	return nil
}

// checkChange checks a record's new state against its old one: delivery
// counts never go down, keys never change, done records stay as they are
// except that a pending dead letter may be confirmed.
func checkChange(old, u *entry) error {
	switch {
	case u.count < old.count:
		return fmt.Errorf("%w: offset %d delivery count %d down to %d", ErrCorrupt, u.off, old.count, u.count)
	case old.flags&flagKey != u.flags&flagKey || old.key != u.key:
		return fmt.Errorf("%w: offset %d key changed", ErrCorrupt, u.off)
	case old.state.Terminal() && (u.state != old.state || u.count != old.count):
		return fmt.Errorf("%w: offset %d left %v", ErrCorrupt, u.off, old.state)
	case old.state.Terminal() && old.flags&flagDL == 0 && u.flags&flagDL != 0:
		return fmt.Errorf("%w: offset %d dead-lettered after archiving", ErrCorrupt, u.off)
	case old.flags&flagDL != 0 && u.flags&flagDL != 0 && old.flags&flagDLLimit != u.flags&flagDLLimit:
		return fmt.Errorf("%w: offset %d dead letter reason changed", ErrCorrupt, u.off)
	}
	return nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
