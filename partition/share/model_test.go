package share

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// model is a deliberately naive reference: a map from offset to record
// state, walked offset by offset. Partition must answer every call exactly
// as it does.
type model struct {
	cfg         Config
	start, next int64
	recs        map[int64]*mrec // every admitted record still in the window
	now         int64
}

type mrec struct {
	state  State
	count  int16
	at     int64
	key    string
	hasKey bool
	owner  string
	lock   int64
	dl     string // pending dead letter reason
}

func newModel(cfg Config, start int64) *model {
	return &model{cfg: cfg.normalized(), start: start, next: start, recs: map[int64]*mrec{}}
}

func (m *model) tick(now int64) { m.now = max(m.now, now) }

func (m *model) inFlight() int { return len(m.recs) }

func (m *model) advance() {
	for m.start < m.next {
		r := m.recs[m.start]
		if r != nil && (!r.state.Terminal() || r.dl != "") {
			return
		}
		delete(m.recs, m.start)
		m.start++
	}
}

func (m *model) admit(recs []Record, end int64) {
	for _, r := range recs {
		if r.Offset < m.next {
			continue
		}
		if m.inFlight() >= m.cfg.MaxInFlight {
			m.next = r.Offset
			m.advance()
			return
		}
		m.recs[r.Offset] = &mrec{at: max(r.NotBefore, 0), key: string(r.Key), hasKey: r.Key != nil}
		m.next = r.Offset + 1
	}
	m.next = max(m.next, end)
	m.advance()
}

func (m *model) archive(r *mrec, reason string) {
	r.state, r.at, r.owner, r.lock = Archived, 0, "", 0
	if m.cfg.DeadLetter {
		r.dl = reason
	}
}

func (m *model) release(r *mrec, now int64) {
	if int(r.count) >= m.cfg.DeliveryLimit {
		m.archive(r, ReasonDeliveryLimit)
		return
	}
	r.state, r.owner, r.lock = Available, "", 0
	r.at = 0
	if d := m.cfg.Backoff(int(r.count)); d > 0 {
		r.at = now + int64((d+time.Millisecond-1)/time.Millisecond)
	}
}

func (m *model) acquire(member string, n int, now int64) []Range {
	m.tick(now)
	var out []Range
	busy := map[string]bool{}
	for off := m.start; off < m.next && n > 0; off++ {
		r := m.recs[off]
		if r == nil {
			continue
		}
		ordered := m.cfg.KeyOrdering && r.hasKey
		if r.state == Acquired && ordered {
			busy[r.key] = true
		}
		if r.state != Available {
			continue
		}
		if int(r.count) >= m.cfg.DeliveryLimit {
			m.archive(r, ReasonDeliveryLimit)
			continue
		}
		if ordered {
			if busy[r.key] {
				continue
			}
			busy[r.key] = true
		}
		if r.at > now {
			continue
		}
		r.state, r.count, r.at, r.owner, r.lock = Acquired, r.count+1, 0, member, now+m.cfg.LockDuration.Milliseconds()
		n--
		if k := len(out); k > 0 && out[k-1].Last == off-1 && out[k-1].DeliveryCount == r.count {
			out[k-1].Last = off
		} else {
			out = append(out, Range{off, off, r.count})
		}
	}
	m.advance()
	return out
}

func (m *model) ack(member string, batches []AckBatch, now int64) error {
	m.tick(now)
	for i, b := range batches {
		if b.First < 0 || b.First > b.Last || b.Type < 0 || b.Type > 4 || i > 0 && b.First <= batches[i-1].Last || b.Last >= m.next {
			return ErrInvalidRequest
		}
	}
	for _, b := range batches {
		for off := max(b.First, m.start); off <= b.Last; off++ {
			if r := m.recs[off]; r != nil && (r.state != Acquired || r.owner != member) {
				return ErrInvalidRecordState
			}
		}
	}
	for _, b := range batches {
		for off := max(b.First, m.start); off <= b.Last; off++ {
			r := m.recs[off]
			if r == nil {
				continue
			}
			switch b.Type {
			case AckAccept:
				r.state, r.owner, r.lock = Acknowledged, "", 0
			case AckReject:
				m.archive(r, ReasonRejected)
			case AckGap:
				m.archive(r, "")
				r.dl = ""
			case AckRelease:
				m.release(r, now)
			case AckRenew:
				r.lock = now + m.cfg.LockDuration.Milliseconds()
			}
		}
	}
	m.advance()
	return nil
}

func (m *model) releaseIf(now int64, f func(r *mrec) bool) {
	m.tick(now)
	for _, r := range m.recs {
		if r.state == Acquired && f(r) {
			m.release(r, now)
		}
	}
	m.advance()
}

func (m *model) deadLetters() []DeadLetter {
	var out []DeadLetter
	for off := m.start; off < m.next; off++ {
		if r := m.recs[off]; r != nil && r.dl != "" {
			out = append(out, DeadLetter{off, r.count, r.dl})
		}
	}
	return out
}

func (m *model) deadLettered(offs ...int64) {
	for _, o := range offs {
		if r := m.recs[o]; r != nil {
			r.dl = ""
		}
	}
	m.advance()
}

func (m *model) skipTo(off int64) {
	if off <= m.start {
		return
	}
	for o := range m.recs {
		if o < off {
			delete(m.recs, o)
		}
	}
	m.next = max(m.next, off)
	m.start = off
	m.advance()
}

func (m *model) stats() Stats {
	s := Stats{Start: m.start, NextRead: m.next, InFlight: len(m.recs)}
	for _, r := range m.recs {
		switch r.state {
		case Available:
			s.Available++
			if r.at > m.now {
				s.Delayed++
			}
		case Acquired:
			s.Acquired++
		case Acknowledged:
			s.Acknowledged++
		case Archived:
			s.Archived++
		}
		if r.dl != "" {
			s.DeadLetters++
		}
	}
	return s
}

func (m *model) nextDeadline() (int64, bool) {
	best, ok := int64(0), false
	for _, r := range m.recs {
		t := int64(-1)
		if r.state == Acquired {
			t = r.lock
		} else if r.state == Available && r.at > m.now {
			t = r.at
		}
		if t >= 0 && (!ok || t < best) {
			best, ok = t, true
		}
	}
	return best, ok
}

func (m *model) full() bool {
	if m.inFlight() < m.cfg.MaxInFlight {
		return false
	}
	busy := map[string]bool{}
	for off := m.start; off < m.next; off++ {
		r := m.recs[off]
		if r == nil || r.state.Terminal() || r.state == Available && int(r.count) >= m.cfg.DeliveryLimit {
			continue
		}
		ordered := m.cfg.KeyOrdering && r.hasKey
		if ordered && busy[r.key] {
			continue
		}
		if ordered {
			busy[r.key] = true
		}
		if r.state == Available && r.at <= m.now {
			return false
		}
	}
	return true
}

func (m *model) oldestUnacked() (int64, bool) {
	for off := m.start; off < m.next; off++ {
		if r := m.recs[off]; r != nil && !r.state.Terminal() {
			return off, true
		}
	}
	return 0, false
}

// TestModel runs random operations against Partition and the model and
// compares every answer, replicates every delta to a follower and compares
// it, and checks the invariants: SPSO never goes back, delivery counts
// never go down, a done record never comes back, a key never has two
// records acquired, records of a key are acquired in offset order, and
// once everything is acknowledged the window is empty.
func TestModel(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, uint64(seed)) })
	}
}

func runModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	cfg := Config{
		LockDuration:  time.Duration(1+rng.IntN(3)) * time.Second,
		DeliveryLimit: 1 + rng.IntN(4),
		MaxInFlight:   1 + rng.IntN(24),
		KeyOrdering:   rng.IntN(2) == 0,
		DeadLetter:    rng.IntN(2) == 0,
	}
	if rng.IntN(2) == 0 {
		cfg.BackoffBase = time.Duration(1+rng.IntN(500)) * time.Millisecond
		cfg.BackoffFactor = 1 + rng.Float64()*2
		cfg.BackoffMax = time.Duration(rng.IntN(3000)) * time.Millisecond
	}
	start := int64(rng.IntN(100))
	s := newPair(t, cfg, start)
	m := newModel(cfg, start)
	members := []string{"a", "b", "c", "d"}
	keys := []string{"k1", "k2", "k3"}
	now := int64(1_700_000_000_000)
	written := start // the log's end

	prevStart := s.l.Start()
	counts := map[int64]int16{}
	done := map[int64]bool{}
	lastAcquired := map[string]int64{} // per key, the offset last acquired

	check := func(op string) {
		t.Helper()
		s.sync()
		if got, want := s.l.Stats(), m.stats(); got.Start != want.Start || got.NextRead != want.NextRead || got.InFlight != want.InFlight ||
			got.Available != want.Available || got.Acquired != want.Acquired || got.Acknowledged != want.Acknowledged ||
			got.Archived != want.Archived || got.Delayed != want.Delayed || got.DeadLetters != want.DeadLetters {
			t.Fatalf("%s: stats %+v, model %+v", op, got, want)
		}
		if got, want := s.l.DeadLetters(), m.deadLetters(); !slices.Equal(got, want) {
			t.Fatalf("%s: dead letters %v, model %v", op, got, want)
		}
		gd, gok := s.l.NextDeadline()
		wd, wok := m.nextDeadline()
		if gok != wok || gok && gd.UnixMilli() != wd {
			t.Fatalf("%s: next deadline %v %v, model %v %v", op, gd.UnixMilli(), gok, wd, wok)
		}
		if s.l.Full() != m.full() || s.l.Room() != max(m.cfg.MaxInFlight-m.inFlight(), 0) {
			t.Fatalf("%s: full %v room %d, model %v", op, s.l.Full(), s.l.Room(), m.full())
		}
		go1, gok1 := s.l.OldestUnacked()
		mo, mok := m.oldestUnacked()
		if go1 != mo || gok1 != mok {
			t.Fatalf("%s: oldest %d %v, model %d %v", op, go1, gok1, mo, mok)
		}
		if s.l.Start() < prevStart {
			t.Fatalf("%s: SPSO went back from %d to %d", op, prevStart, s.l.Start())
		}
		prevStart = s.l.Start()
		acquiredKeys := map[uint64]int64{}
		for _, e := range s.l.recs {
			if e.count < counts[e.off] {
				t.Fatalf("%s: offset %d count went down", op, e.off)
			}
			counts[e.off] = e.count
			if done[e.off] && !e.state.Terminal() {
				t.Fatalf("%s: offset %d left a terminal state", op, e.off)
			}
			if e.state.Terminal() {
				done[e.off] = true
			}
			if cfg.KeyOrdering && e.state == Acquired && e.flags&flagKey != 0 {
				if o, ok := acquiredKeys[e.key]; ok {
					t.Fatalf("%s: offsets %d and %d of one key acquired together", op, o, e.off)
				}
				acquiredKeys[e.key] = e.off
			}
		}
	}

	gotRanges := func(got, want []Range, op string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s: acquired %v, model %v", op, got, want)
		}
		if !cfg.KeyOrdering {
			return
		}
		for _, o := range offsetsOf(got) {
			i := s.l.find(o)
			e := &s.l.recs[i]
			if e.flags&flagKey == 0 {
				continue
			}
			k := m.recs[o].key
			if last, ok := lastAcquired[k]; ok && o < last {
				t.Fatalf("%s: key %q offset %d acquired after %d", op, k, o, last)
			}
			lastAcquired[k] = o
		}
	}

	randomBatches := func(member string) []AckBatch {
		var held []int64
		for off := m.start; off < m.next; off++ {
			if r := m.recs[off]; r != nil && r.state == Acquired && (r.owner == member || rng.IntN(20) == 0) {
				held = append(held, off)
			}
		}
		if rng.IntN(10) == 0 { // junk ranges, mostly wrong
			var out []AckBatch
			for range 1 + rng.IntN(3) {
				f := m.start - 3 + int64(rng.IntN(int(m.next-m.start)+6))
				out = append(out, AckBatch{f, f + int64(rng.IntN(3)) - 1, AckType(rng.IntN(6))})
			}
			return out
		}
		var out []AckBatch
		for _, o := range held {
			if rng.IntN(3) == 0 {
				continue
			}
			typ := []AckType{AckAccept, AckAccept, AckAccept, AckRelease, AckRelease, AckReject, AckGap, AckRenew}[rng.IntN(8)]
			if n := len(out); n > 0 && out[n-1].Last == o-1 && out[n-1].Type == typ {
				out[n-1].Last = o
			} else {
				out = append(out, AckBatch{o, o, typ})
			}
		}
		return out
	}

	for step := range 400 {
		op := ""
		switch x := rng.IntN(100); {
		case x < 20: // the log grows; the caller reads and admits
			for range rng.IntN(5) {
				written += 1 + int64(rng.IntN(3))
			}
			var recs []Record
			for o := s.l.NextRead(); o < written; o++ {
				if rng.IntN(4) == 0 {
					continue // a gap
				}
				r := Record{Offset: o}
				if rng.IntN(3) > 0 {
					r.Key = []byte(keys[rng.IntN(len(keys))])
				}
				if rng.IntN(8) == 0 {
					r.NotBefore = now + int64(rng.IntN(3000))
				}
				recs = append(recs, r)
			}
			op = fmt.Sprintf("admit %d records to %d", len(recs), written)
			s.l.Admit(recs, written)
			m.admit(recs, written)
		case x < 45:
			mem, n := members[rng.IntN(len(members))], rng.IntN(6)
			op = fmt.Sprintf("acquire %s %d", mem, n)
			gotRanges(s.l.Acquire(mem, n, time.UnixMilli(now)), m.acquire(mem, n, now), op)
		case x < 70:
			mem := members[rng.IntN(len(members))]
			b := randomBatches(mem)
			op = fmt.Sprintf("ack %s %v", mem, b)
			err, want := s.l.Ack(mem, b, time.UnixMilli(now)), m.ack(mem, b, now)
			if !errors.Is(err, want) || (err == nil) != (want == nil) {
				t.Fatalf("step %d %s: %v, model %v", step, op, err, want)
			}
		case x < 78:
			now += int64(rng.IntN(1500))
			op = "expire"
			s.l.Expire(time.UnixMilli(now))
			m.releaseIf(now, func(r *mrec) bool { return r.lock <= now })
		case x < 82:
			mem := members[rng.IntN(len(members))]
			op = "release " + mem
			s.l.ReleaseMember(mem, time.UnixMilli(now))
			m.releaseIf(now, func(r *mrec) bool { return r.owner == mem })
		case x < 88:
			var offs []int64
			for _, d := range m.deadLetters() {
				if rng.IntN(2) == 0 {
					offs = append(offs, d.Offset)
				}
			}
			op = fmt.Sprint("dead-lettered ", offs)
			s.l.DeadLettered(offs...)
			m.deadLettered(offs...)
		case x < 90: // failover: the follower's committed state becomes the leader
			op = "failover"
			s.sync()
			nl, err := Restore(s.l.Config(), s.f.Snapshot())
			if err != nil {
				t.Fatal(err)
			}
			s.l = nl
			for _, r := range m.recs {
				r.owner, r.lock = "", 0
			}
			m.now = 0 // the new leader has seen no clock yet
			if rng.IntN(2) == 0 {
				s.l.ReleaseAll(time.UnixMilli(now))
				m.releaseIf(now, func(*mrec) bool { return true })
			}
		case x < 91:
			off := s.l.Start() + int64(rng.IntN(4))
			op = fmt.Sprint("skip to ", off)
			s.l.SkipTo(off)
			m.skipTo(off)
			written = max(written, off)
		case x < 93:
			c := cfg
			c.DeliveryLimit = 1 + rng.IntN(4)
			c.DeadLetter = rng.IntN(2) == 0
			op = fmt.Sprintf("config %+v", c)
			s.l.SetConfig(c)
			m.cfg = c.normalized()
		default:
			now += int64(rng.IntN(200))
			op = "tick"
			// Time passes unseen until the next call.
			continue
		}
		check(fmt.Sprintf("step %d %s", step, op))
	}

	// Drain: keep acquiring and accepting until nothing is left.
	s.l.SetConfig(cfg)
	m.cfg = cfg.normalized()
	for i := 0; s.l.Start() < s.l.NextRead(); i++ {
		if i > 1000 {
			t.Fatalf("not drained: %+v", s.l.Stats())
		}
		now += 10_000
		s.l.Expire(time.UnixMilli(now))
		m.releaseIf(now, func(r *mrec) bool { return r.lock <= now })
		var offs []int64
		for _, d := range m.deadLetters() {
			offs = append(offs, d.Offset)
		}
		s.l.DeadLettered(offs...)
		m.deadLettered(offs...)
		got := s.l.Acquire("z", 1000, time.UnixMilli(now))
		gotRanges(got, m.acquire("z", 1000, now), "drain acquire")
		var b []AckBatch
		for _, r := range got {
			b = append(b, AckBatch{r.First, r.Last, AckAccept})
		}
		if err := s.l.Ack("z", b, time.UnixMilli(now)); err != nil {
			t.Fatal(err)
		}
		m.ack("z", b, now)
		check("drain")
	}
	if st := s.l.Stats(); st.InFlight != 0 || st.Start != st.NextRead {
		t.Fatalf("drained to %+v", st)
	}
	if !bytes.Equal(s.l.Snapshot(), s.f.Snapshot()) {
		t.Fatal("follower differs after drain")
	}
}
