package share

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// t0 is the test clock's origin; every test moves time by hand.
var t0 = time.UnixMilli(1_700_000_000_000)

func ms(d int64) time.Time { return t0.Add(time.Duration(d) * time.Millisecond) }

func plain(offs ...int64) []Record {
	out := make([]Record, len(offs))
	for i, o := range offs {
		out[i] = Record{Offset: o}
	}
	return out
}

// span is offsets first..last, keyless.
func span(first, last int64) []Record {
	var out []Record
	for o := first; o <= last; o++ {
		out = append(out, Record{Offset: o})
	}
	return out
}

func testConfig() Config {
	c := DefaultConfig()
	c.LockDuration = time.Second
	c.DeliveryLimit = 3
	c.MaxInFlight = 100
	return c
}

// checkInvariants checks what every Partition must satisfy after every
// public call.
func checkInvariants(t testing.TB, p *Partition) {
	t.Helper()
	if p.spso > p.nextRead {
		t.Fatalf("SPSO %d past NextRead %d", p.spso, p.nextRead)
	}
	if err := checkHead(p.recs, p.spso, p.nextRead); err != nil {
		t.Fatalf("head: %v", err)
	}
	dirty := map[int64]bool{}
	for _, o := range p.dirty {
		dirty[o] = true
	}
	for i := range p.recs {
		e := &p.recs[i]
		if e.off < p.spso || e.off >= p.nextRead {
			t.Fatalf("record %d outside window %d..%d", e.off, p.spso, p.nextRead)
		}
		if i > 0 && e.off <= p.recs[i-1].off {
			t.Fatalf("records not ascending at %d", e.off)
		}
		if !e.state.valid() {
			t.Fatalf("record %d state %d", e.off, e.state)
		}
		if e.at != 0 && e.state != Available {
			t.Fatalf("record %d: delay on %v", e.off, e.state)
		}
		if e.flags&flagDL != 0 && e.state != Archived {
			t.Fatalf("record %d: dead letter on %v", e.off, e.state)
		}
		if e.state != Acquired && (e.owner != "" || e.lock != 0) {
			t.Fatalf("record %d: owner %q lock %d while %v", e.off, e.owner, e.lock, e.state)
		}
		if e.flags&flagDirty != 0 && !dirty[e.off] {
			t.Fatalf("record %d dirty but not listed", e.off)
		}
		if e.count < 0 || e.state == Acquired && e.count == 0 {
			t.Fatalf("record %d count %d", e.off, e.count)
		}
	}
}

// pair is a leader and a follower that applies every delta.
type pair struct {
	t testing.TB
	l *Partition
	f *Partition
}

func newPair(t testing.TB, cfg Config, start int64) *pair {
	// The follower starts anywhere; the first delta sets its window.
	return &pair{t: t, l: New(cfg, start), f: New(cfg, 0)}
}

// sync replicates the leader's delta to the follower, checks the leader
// ignores its own delta, and compares the two.
func (s *pair) sync() {
	s.t.Helper()
	checkInvariants(s.t, s.l)
	d := s.l.TakeDelta()
	if d == nil {
		if again := s.l.TakeDelta(); again != nil {
			s.t.Fatalf("second TakeDelta not nil")
		}
	} else {
		before := s.l.Snapshot()
		if err := Apply(s.l, d); err != nil {
			s.t.Fatalf("leader applying its own delta: %v", err)
		}
		if !bytes.Equal(before, s.l.Snapshot()) {
			s.t.Fatalf("leader changed by its own delta")
		}
		if err := Apply(s.f, d); err != nil {
			s.t.Fatalf("follower Apply: %v", err)
		}
		if err := Apply(s.f, d); err != nil {
			s.t.Fatalf("follower Apply again: %v", err)
		}
	}
	checkInvariants(s.t, s.f)
	if s.l.seq != 0 || s.f.seq != 0 {
		if ls, fs := s.l.Snapshot(), s.f.Snapshot(); !bytes.Equal(ls, fs) {
			s.t.Fatalf("follower differs:\nleader   %x\nfollower %x", ls, fs)
		}
		ls, fs := s.l.Stats(), s.f.Stats()
		ls.Delayed, fs.Delayed = 0, 0 // depends on the clock each has seen
		if ls != fs {
			s.t.Fatalf("stats differ: leader %+v follower %+v", ls, fs)
		}
		if !slices.Equal(s.l.DeadLetters(), s.f.DeadLetters()) {
			s.t.Fatalf("dead letters differ")
		}
	}
}

func offsetsOf(rs []Range) []int64 {
	var out []int64
	for _, r := range rs {
		for o := r.First; o <= r.Last; o++ {
			out = append(out, o)
		}
	}
	return out
}

func states(p *Partition) map[int64]State {
	m := map[int64]State{}
	for _, e := range p.recs {
		m[e.off] = e.state
	}
	return m
}

func stateOf(p *Partition, off int64) (State, int16, bool) {
	i := p.find(off)
	if i < len(p.recs) && p.recs[i].off == off {
		return p.recs[i].state, p.recs[i].count, true
	}
	return 0, 0, false
}
