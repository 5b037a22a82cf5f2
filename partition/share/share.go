package share

import (
	"fmt"
	"hash/fnv"
	"slices"
	"time"
)

// AckType is an acknowledgement type, with kmsg's values.
type AckType int8

// Acknowledgement types (KIP-932, KIP-1222 for RENEW).
const (
	AckGap     AckType = 0 // no record at the offset: archive, no dead letter
	AckAccept  AckType = 1 // processed: acknowledged
	AckRelease AckType = 2 // give back: available again (after backoff) or archived at the limit
	AckReject  AckType = 3 // unprocessable: archived, dead-lettered
	AckRenew   AckType = 4 // extend the acquisition lock
)

func (t AckType) valid() bool { return t >= AckGap && t <= AckRenew }

// String names the type as Kafka does.
func (t AckType) String() string {
	switch t {
	case AckGap:
		return "GAP"
	case AckAccept:
		return "ACCEPT"
	case AckRelease:
		return "RELEASE"
	case AckReject:
		return "REJECT"
	case AckRenew:
		return "RENEW"
	}
	return fmt.Sprintf("AckType(%d)", int8(t))
}

// State is a record's state, with KIP-932's values.
type State int8

// Record states. Acknowledged and Archived are terminal.
const (
	Available    State = 0
	Acquired     State = 1
	Acknowledged State = 2
	Archived     State = 4
)

func (s State) valid() bool {
	return s == Available || s == Acquired || s == Acknowledged || s == Archived
}

// Terminal reports whether s is Acknowledged or Archived.
func (s State) Terminal() bool { return s == Acknowledged || s == Archived }

// String names the state as Kafka does.
func (s State) String() string {
	switch s {
	case Available:
		return "AVAILABLE"
	case Acquired:
		return "ACQUIRED"
	case Acknowledged:
		return "ACKNOWLEDGED"
	case Archived:
		return "ARCHIVED"
	}
	return fmt.Sprintf("State(%d)", int8(s))
}

// Dead-letter reasons.
const (
	ReasonRejected      = "rejected"
	ReasonDeliveryLimit = "delivery limit"
)

// Record describes one record of the log the caller read, as the state
// machine needs it.
type Record struct {
	Offset int64
	// Key: nil for keyless. Only a 64-bit FNV-1a hash is kept; two keys
	// with the same hash are ordered together, which costs parallelism,
	// never order.
	Key []byte
	// NotBefore (unix ms) delays the first delivery; 0 = deliverable now.
	NotBefore int64
}

// Range is a run of consecutive acquired offsets with one delivery count,
// inclusive: ShareFetch's AcquiredRecords.
type Range struct {
	First, Last   int64
	DeliveryCount int16
}

// AckBatch acknowledges the offsets First..Last (inclusive) with Type.
type AckBatch struct {
	First, Last int64
	Type        AckType
}

// DeadLetter is a record archived by REJECT or the delivery limit that the
// caller has still to write to the dead-letter topic.
type DeadLetter struct {
	Offset        int64
	DeliveryCount int16
	Reason        string // ReasonRejected or ReasonDeliveryLimit
}

// Stats is a point-in-time summary for metrics and describe.
type Stats struct {
	Start    int64 // SPSO
	NextRead int64 // SPEO+1
	InFlight int   // records tracked in [Start, NextRead), any state
	// Records per state inside the window (records below Start are done
	// and not counted).
	Available, Acquired, Acknowledged, Archived int
	// Delayed: Available records not deliverable yet (NotBefore or backoff)
	// at the latest clock reading the partition has seen.
	Delayed     int
	DeadLetters int    // pending dead letters
	Seq         uint64 // sequence number of the last delta taken or applied
}

// entry flags. flagKey, flagDL and flagDLLimit are replicated; flagDirty is
// local to the leader.
const (
	flagKey     uint8 = 1 << 0 // key is a key hash (the record has a key)
	flagDL      uint8 = 1 << 1 // dead letter pending
	flagDLLimit uint8 = 1 << 2 // pending dead letter's reason: delivery limit (else rejected)
	flagDirty   uint8 = 1 << 7 // changed since the last TakeDelta
)

// entry is one record in the window.
type entry struct {
	off   int64
	at    int64  // Available: unix ms before which it is not deliverable; 0 otherwise
	lock  int64  // Acquired: lock deadline, unix ms (local; 0 = expired)
	key   uint64 // FNV-1a of the key, if flagKey
	owner string // Acquired: member (local)
	count int16  // deliveries
	state State
	flags uint8
}

func (e *entry) done() bool { return e.state.Terminal() && e.flags&flagDL == 0 }

// Partition is the state of one share-partition (share group, topic,
// partition): the window of records from SPSO to SPEO with their states,
// delivery counts, delay times and acquisition locks. It does no I/O, starts
// no goroutines and reads no clock; it is not safe for concurrent use.
type Partition struct {
	cfg      Config
	spso     int64
	nextRead int64
	recs     []entry // ascending offsets in [spso, nextRead); recs[0] not done

	seq       uint64  // last delta taken or applied
	dirty     []int64 // offsets of entries with flagDirty
	taken     bool    // a delta was taken or applied, or the state restored
	sentStart int64   // spso and nextRead as of the last delta
	sentNext  int64
	now       int64 // latest clock reading seen, unix ms (local)

	seen map[uint64]struct{} // scratch for key ordering
}

// New returns an empty share-partition starting at start (SPSO), which the
// caller resolved from share.auto.offset.reset. The config is normalized
// (see Config).
func New(cfg Config, start int64) *Partition {
	start = max(start, 0)
	return &Partition{cfg: cfg.normalized(), spso: start, nextRead: start}
}

// SetConfig changes the configuration. New values apply from the next
// transition: locks already granted keep their deadline, and an Available
// record already at a lowered delivery limit is archived when Acquire
// reaches it. Pending dead letters stay pending when DeadLetter is turned
// off.
func (p *Partition) SetConfig(cfg Config) { p.cfg = cfg.normalized() }

// Config returns the normalized configuration.
func (p *Partition) Config() Config { return p.cfg }

// Start is the share-partition start offset (SPSO): every offset below it
// is done.
func (p *Partition) Start() int64 { return p.spso }

// NextRead is the first offset not yet admitted (SPEO+1): where the caller
// reads new records from.
func (p *Partition) NextRead() int64 { return p.nextRead }

// Seq is the sequence number of the last delta taken or applied.
func (p *Partition) Seq() uint64 { return p.seq }

// Room is how many more records Admit takes (MaxInFlight minus the records
// tracked).
func (p *Partition) Room() int { return max(p.cfg.MaxInFlight-len(p.recs), 0) }

// KeyHash is the hash Sluice keeps for a record key for key ordering:
// 64-bit FNV-1a, the same in every process.
func KeyHash(key []byte) uint64 {
	h := fnv.New64a()
	h.Write(key)
	return h.Sum64()
}

// observe records a clock reading and returns it in unix ms.
func (p *Partition) observe(now time.Time) int64 {
	ms := now.UnixMilli()
	p.now = max(p.now, ms)
	return ms
}

// ceilMs is t in unix ms, rounded up.
func ceilMs(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Sub(time.UnixMilli(ms)) > 0 {
		ms++
	}
	return ms
}

// find returns the index of the first entry at or after off.
func (p *Partition) find(off int64) int {
	i, _ := slices.BinarySearchFunc(p.recs, off, func(e entry, off int64) int {
		switch {
		case e.off < off:
			return -1
		case e.off > off:
			return 1
		}
		return 0
	})
	return i
}

// touch marks entry i as changed since the last delta.
func (p *Partition) touch(i int) {
	e := &p.recs[i]
	if e.flags&flagDirty == 0 {
		e.flags |= flagDirty
		p.dirty = append(p.dirty, e.off)
	}
}

// advance moves SPSO over leading done records and compaction gaps.
func (p *Partition) advance() {
	i := 0
	for i < len(p.recs) && p.recs[i].done() {
		p.recs[i].owner = ""
		i++
	}
	if i == len(p.recs) {
		p.recs = p.recs[:0] // reuse the array from its start
		p.spso = p.nextRead
		return
	}
	p.recs = p.recs[i:]
	p.spso = p.recs[0].off
}

// Admit adds records the caller read from the log at NextRead: ascending
// offsets, each at or past NextRead (others are skipped as already
// admitted), gaps allowed (compaction; they are never tracked). It takes at
// most Room records; if some do not fit, NextRead stops at the first of
// them, otherwise it moves to end (the offset after the last one read), so
// a read that found only gaps still moves it. Admitted records are
// Available, from rec.NotBefore on.
func (p *Partition) Admit(recs []Record, end int64) {
	for _, r := range recs {
		if r.Offset < p.nextRead {
			continue
		}
		if len(p.recs) >= p.cfg.MaxInFlight {
			p.nextRead = r.Offset
			p.advance()
			return
		}
		e := entry{off: r.Offset, at: max(r.NotBefore, 0)}
		if r.Key != nil {
			e.key = KeyHash(r.Key)
			e.flags |= flagKey
		}
		p.recs = append(p.recs, e)
		p.touch(len(p.recs) - 1)
		p.nextRead = r.Offset + 1
	}
	p.nextRead = max(p.nextRead, end)
	p.advance()
}

// blocked reports, with key ordering, whether entry e must wait for an
// earlier record of its key (seen holds the keys of the earlier records not
// done), and adds its key.
func (p *Partition) blocked(e *entry) bool {
	if !p.cfg.KeyOrdering || e.flags&flagKey == 0 {
		return false
	}
	if _, ok := p.seen[e.key]; ok {
		return true
	}
	p.seen[e.key] = struct{}{}
	return false
}

func (p *Partition) resetSeen() {
	if !p.cfg.KeyOrdering {
		return
	}
	if p.seen == nil {
		p.seen = make(map[uint64]struct{})
	}
	clear(p.seen)
}

// Acquire acquires for member up to max Available records whose NotBefore
// and backoff time has passed, lowest offsets first, so released records
// go out again before newer ones. With KeyOrdering a record is acquired
// only when no earlier record of its key is still Available or Acquired.
// Each acquisition increments the delivery count and locks the record until
// now+LockDuration. An Available record already at the delivery limit (the
// limit was lowered) is archived instead. The result is runs of consecutive
// offsets with equal delivery counts.
func (p *Partition) Acquire(member string, max int, now time.Time) []Range {
	ms := p.observe(now)
	if max <= 0 {
		return nil
	}
	lock := ceilMs(now.Add(p.cfg.LockDuration))
	p.resetSeen()
	var out []Range
	archived := false
	for i := range p.recs {
		e := &p.recs[i]
		if e.state == Acquired {
			p.blocked(e)
			continue
		}
		if e.state != Available {
			continue
		}
		if int(e.count) >= p.cfg.DeliveryLimit {
			p.archive(i, flagDLLimit)
			archived = true
			continue
		}
		if p.blocked(e) || e.at > ms {
			continue
		}
		e.state, e.count, e.at, e.lock, e.owner = Acquired, e.count+1, 0, lock, member
		p.touch(i)
		if n := len(out); n > 0 && out[n-1].Last+1 == e.off && out[n-1].DeliveryCount == e.count {
			out[n-1].Last = e.off
		} else {
			out = append(out, Range{First: e.off, Last: e.off, DeliveryCount: e.count})
		}
		if max--; max == 0 {
			break
		}
	}
	if archived {
		p.advance()
	}
	return out
}

// archive archives entry i; reason is flagDLLimit, flagDL (rejected) or 0
// (no dead letter).
func (p *Partition) archive(i int, reason uint8) {
	e := &p.recs[i]
	e.state, e.at, e.lock, e.owner = Archived, 0, 0, ""
	if reason != 0 && p.cfg.DeadLetter {
		e.flags |= flagDL | reason&flagDLLimit
	}
	p.touch(i)
}

// release makes acquired entry i Available after its backoff, or archives
// it at the delivery limit.
func (p *Partition) release(i int, ms int64) {
	e := &p.recs[i]
	if int(e.count) >= p.cfg.DeliveryLimit {
		p.archive(i, flagDLLimit)
		return
	}
	e.state, e.lock, e.owner, e.at = Available, 0, "", 0
	if d := p.cfg.Backoff(int(e.count)); d > 0 {
		e.at = ms + (d.Milliseconds() + boolInt(d%time.Millisecond != 0))
	}
	p.touch(i)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Ack applies a member's acknowledgements, all or none. It first validates
// every batch: first <= last, first >= 0, a known type, ascending and not
// overlapping, last below NextRead (else ErrInvalidRequest); then that every
// record at or past SPSO in the batches is Acquired by member (else
// ErrInvalidRecordState). Offsets below SPSO are skipped as done, and so
// are offsets with no record (compaction gaps). Then ACCEPT acknowledges,
// REJECT archives (dead letter "rejected"), GAP archives, RELEASE makes the
// record Available after its backoff or archives it at the delivery limit
// (dead letter "delivery limit"), and RENEW extends the lock to
// now+LockDuration. SPSO then moves over the leading done records.
func (p *Partition) Ack(member string, batches []AckBatch, now time.Time) error {
	ms := p.observe(now)
	for i, b := range batches {
		switch {
		case b.First < 0 || b.First > b.Last:
			return fmt.Errorf("%w: batch %d..%d", ErrInvalidRequest, b.First, b.Last)
		case !b.Type.valid():
			return fmt.Errorf("%w: acknowledge type %d", ErrInvalidRequest, b.Type)
		case i > 0 && b.First <= batches[i-1].Last:
			return fmt.Errorf("%w: batch %d..%d not after %d", ErrInvalidRequest, b.First, b.Last, batches[i-1].Last)
		case b.Last >= p.nextRead:
			return fmt.Errorf("%w: offset %d past the in-flight records (next %d)", ErrInvalidRequest, b.Last, p.nextRead)
		}
	}
	for _, b := range batches {
		for i := p.find(b.First); i < len(p.recs) && p.recs[i].off <= b.Last; i++ {
			if e := &p.recs[i]; e.state != Acquired || e.owner != member {
				return fmt.Errorf("%w: offset %d is %v", ErrInvalidRecordState, e.off, e.state)
			}
		}
	}
	lock := ceilMs(now.Add(p.cfg.LockDuration))
	for _, b := range batches {
		for i := p.find(b.First); i < len(p.recs) && p.recs[i].off <= b.Last; i++ {
			e := &p.recs[i]
			switch b.Type {
			case AckAccept:
				e.state, e.lock, e.owner = Acknowledged, 0, ""
				p.touch(i)
			case AckReject:
				p.archive(i, flagDL)
			case AckGap:
				p.archive(i, 0)
			case AckRelease:
				p.release(i, ms)
			case AckRenew:
				e.lock = lock // local: nothing to replicate
			}
		}
	}
	p.advance()
	return nil
}

// ReleaseMember releases every record member holds, as RELEASE: for a
// session close, leave, fencing or disconnect.
func (p *Partition) ReleaseMember(member string, now time.Time) {
	ms := p.observe(now)
	for i := range p.recs {
		if e := &p.recs[i]; e.state == Acquired && e.owner == member {
			p.release(i, ms)
		}
	}
	p.advance()
}

// ReleaseAll releases every acquired record, as RELEASE. A new leader calls
// it: owners and locks are not replicated, so acquired records it inherited
// have none (Expire would release them too, their locks count as expired).
func (p *Partition) ReleaseAll(now time.Time) {
	ms := p.observe(now)
	for i := range p.recs {
		if p.recs[i].state == Acquired {
			p.release(i, ms)
		}
	}
	p.advance()
}

// Expire releases, as RELEASE, every record whose lock deadline is at or
// before now.
func (p *Partition) Expire(now time.Time) {
	ms := p.observe(now)
	for i := range p.recs {
		if e := &p.recs[i]; e.state == Acquired && e.lock <= ms {
			p.release(i, ms)
		}
	}
	p.advance()
}

// NextDeadline is the earliest lock deadline, or time at which a delayed
// record (NotBefore or backoff) becomes deliverable, after the latest clock
// reading the partition has seen; false if there is none. A caller sleeps
// until then to run Expire or wake a long-poll. Inherited acquired records
// (after Restore or Apply) have an expired lock, so it returns the Unix
// epoch for them.
func (p *Partition) NextDeadline() (time.Time, bool) {
	var best int64
	ok := false
	for i := range p.recs {
		e := &p.recs[i]
		var t int64
		switch {
		case e.state == Acquired:
			t = e.lock
		case e.state == Available && e.at > p.now:
			t = e.at
		default:
			continue
		}
		if !ok || t < best {
			best, ok = t, true
		}
	}
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(best), true
}

// acquirable reports whether Acquire at the latest clock reading would
// hand out a record.
func (p *Partition) acquirable() bool {
	p.resetSeen()
	for i := range p.recs {
		e := &p.recs[i]
		switch {
		case e.state == Acquired:
			p.blocked(e)
		case e.state == Available && int(e.count) < p.cfg.DeliveryLimit:
			if !p.blocked(e) && e.at <= p.now {
				return true
			}
		}
	}
	return false
}

// Full reports whether the in-flight window is full and nothing in it can
// be acquired (at the latest clock reading): fetches get nothing until an
// acknowledgement, a release or time moves things. For a metric.
func (p *Partition) Full() bool { return p.Room() == 0 && !p.acquirable() }

// OldestUnacked is the first record that is neither acknowledged nor
// archived, for time lag; false if there is none.
func (p *Partition) OldestUnacked() (int64, bool) {
	for i := range p.recs {
		if !p.recs[i].state.Terminal() {
			return p.recs[i].off, true
		}
	}
	return 0, false
}

// RecordStatus is one record's state as the leader sees it.
type RecordStatus struct {
	State         State
	DeliveryCount int16
	// Owner is the member holding an Acquired record; empty otherwise,
	// and on a replica (owners are not replicated).
	Owner string
	// DeadLetter: a dead letter is pending (DeadLetters lists it).
	DeadLetter bool
}

// Done reports whether the record is finished with: terminal, with no
// dead letter pending.
func (s RecordStatus) Done() bool { return s.State.Terminal() && !s.DeadLetter }

// Status reports the record at off; false when the window does not track
// it: below SPSO (done), at or past NextRead (not read yet), or a
// compaction gap. An Acquired record whose lock has run out is still
// Acquired until the next Expire, as for Ack.
func (p *Partition) Status(off int64) (RecordStatus, bool) {
	i := p.find(off)
	if i == len(p.recs) || p.recs[i].off != off {
		return RecordStatus{}, false
	}
	e := &p.recs[i]
	return RecordStatus{State: e.state, DeliveryCount: e.count, Owner: e.owner, DeadLetter: e.flags&flagDL != 0}, true
}

// Stats counts the window's records per state.
func (p *Partition) Stats() Stats {
	s := Stats{Start: p.spso, NextRead: p.nextRead, InFlight: len(p.recs), Seq: p.seq}
	for i := range p.recs {
		e := &p.recs[i]
		switch e.state {
		case Available:
			s.Available++
			if e.at > p.now {
				s.Delayed++
			}
		case Acquired:
			s.Acquired++
		case Acknowledged:
			s.Acknowledged++
		case Archived:
			s.Archived++
		}
		if e.flags&flagDL != 0 {
			s.DeadLetters++
		}
	}
	return s
}

// DeadLetters lists the pending dead letters, ascending. They stay pending,
// and hold SPSO, until DeadLettered confirms them.
func (p *Partition) DeadLetters() []DeadLetter {
	var out []DeadLetter
	for i := range p.recs {
		e := &p.recs[i]
		if e.flags&flagDL == 0 {
			continue
		}
		reason := ReasonRejected
		if e.flags&flagDLLimit != 0 {
			reason = ReasonDeliveryLimit
		}
		out = append(out, DeadLetter{Offset: e.off, DeliveryCount: e.count, Reason: reason})
	}
	return out
}

// DeadLettered confirms that the caller wrote these dead letters; unknown
// offsets are ignored. SPSO may then move past them.
func (p *Partition) DeadLettered(offsets ...int64) {
	for _, off := range offsets {
		i := p.find(off)
		if i < len(p.recs) && p.recs[i].off == off && p.recs[i].flags&flagDL != 0 {
			p.recs[i].flags &^= flagDL | flagDLLimit
			p.touch(i)
		}
	}
	p.advance()
}

// SkipTo drops every record below off, whatever its state (no dead
// letter), and moves SPSO and NextRead to at least off: the log no longer
// holds those offsets (retention, DeleteRecords) or an operator reset the
// share-partition's start.
func (p *Partition) SkipTo(off int64) {
	if off <= p.spso {
		return
	}
	i := p.find(off)
	for j := range i {
		p.recs[j].owner = ""
	}
	p.recs = p.recs[i:]
	p.nextRead = max(p.nextRead, off)
	p.spso = off
	p.advance()
}
