package share

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestAckTransitions: each acknowledgement type from Acquired, with and
// without dead-lettering, and where SPSO ends up.
func TestAckTransitions(t *testing.T) {
	cases := []struct {
		name      string
		typ       AckType
		dl        bool
		state     State
		present   bool // still in the window (SPSO did not pass it)
		start     int64
		dead      []DeadLetter
		acquirers int // how many records a second Acquire gets
	}{
		{"accept", AckAccept, true, Acknowledged, false, 1, nil, 0},
		{"gap", AckGap, true, Archived, false, 1, nil, 0},
		{"reject", AckReject, false, Archived, false, 1, nil, 0},
		{"reject dead letter", AckReject, true, Archived, true, 0, []DeadLetter{{0, 1, ReasonRejected}}, 0},
		{"release", AckRelease, true, Available, true, 0, nil, 1},
		{"renew", AckRenew, true, Acquired, true, 0, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.DeadLetter = c.dl
			s := newPair(t, cfg, 0)
			s.l.Admit(plain(0), 1)
			got := s.l.Acquire("m", 10, t0)
			if want := []Range{{0, 0, 1}}; !slices.Equal(got, want) {
				t.Fatalf("acquire %v, want %v", got, want)
			}
			s.sync()
			if err := s.l.Ack("m", []AckBatch{{0, 0, c.typ}}, t0); err != nil {
				t.Fatal(err)
			}
			s.sync()
			st, _, ok := stateOf(s.l, 0)
			if ok != c.present || ok && st != c.state {
				t.Fatalf("state %v present %v, want %v %v", st, ok, c.state, c.present)
			}
			if s.l.Start() != c.start {
				t.Fatalf("SPSO %d, want %d", s.l.Start(), c.start)
			}
			if got := s.l.DeadLetters(); !slices.Equal(got, c.dead) {
				t.Fatalf("dead letters %v, want %v", got, c.dead)
			}
			if got := offsetsOf(s.l.Acquire("n", 10, t0)); len(got) != c.acquirers {
				t.Fatalf("re-acquired %v, want %d records", got, c.acquirers)
			}
			s.sync()
		})
	}
}

// TestAckValidation: every malformed or stale acknowledgement is refused
// with the right error, and nothing of a refused call is applied.
func TestAckValidation(t *testing.T) {
	// Records 10..19 with a gap at 15 (compaction); m holds 10..14, n holds
	// 16..17; 18..19 are available. Then 10 is accepted so SPSO is 11.
	setup := func(t *testing.T) *Partition {
		p := New(testConfig(), 10)
		p.Admit(append(span(10, 14), span(16, 19)...), 20)
		if got := offsetsOf(p.Acquire("m", 5, t0)); !slices.Equal(got, []int64{10, 11, 12, 13, 14}) {
			t.Fatalf("m acquired %v", got)
		}
		if got := offsetsOf(p.Acquire("n", 2, t0)); !slices.Equal(got, []int64{16, 17}) {
			t.Fatalf("n acquired %v", got)
		}
		if err := p.Ack("m", []AckBatch{{10, 10, AckAccept}}, t0); err != nil {
			t.Fatal(err)
		}
		if p.Start() != 11 {
			t.Fatalf("SPSO %d", p.Start())
		}
		return p
	}
	cases := []struct {
		name    string
		batches []AckBatch
		want    error
	}{
		{"empty", nil, nil},
		{"ok", []AckBatch{{11, 12, AckAccept}, {13, 13, AckRelease}}, nil},
		{"below SPSO skipped", []AckBatch{{5, 11, AckAccept}}, nil},
		{"gap offset skipped", []AckBatch{{14, 15, AckAccept}}, nil},
		{"renew", []AckBatch{{11, 14, AckRenew}}, nil},
		{"first after last", []AckBatch{{12, 11, AckAccept}}, ErrInvalidRequest},
		{"negative", []AckBatch{{-1, 11, AckAccept}}, ErrInvalidRequest},
		{"unknown type", []AckBatch{{11, 11, 5}}, ErrInvalidRequest},
		{"negative type", []AckBatch{{11, 11, -1}}, ErrInvalidRequest},
		{"unsorted", []AckBatch{{13, 13, AckAccept}, {11, 11, AckAccept}}, ErrInvalidRequest},
		{"overlapping", []AckBatch{{11, 12, AckAccept}, {12, 13, AckAccept}}, ErrInvalidRequest},
		{"past NextRead", []AckBatch{{11, 20, AckAccept}}, ErrInvalidRequest},
		{"past NextRead after a state error", []AckBatch{{16, 16, AckAccept}, {20, 20, AckAccept}}, ErrInvalidRequest},
		{"foreign member", []AckBatch{{16, 16, AckAccept}}, ErrInvalidRecordState},
		{"available record", []AckBatch{{18, 18, AckAccept}}, ErrInvalidRecordState},
		{"good then foreign", []AckBatch{{11, 12, AckAccept}, {17, 17, AckAccept}}, ErrInvalidRecordState},
		{"good then available", []AckBatch{{11, 11, AckReject}, {18, 19, AckRelease}}, ErrInvalidRecordState},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := setup(t)
			before := p.Snapshot()
			err := p.Ack("m", c.batches, t0)
			if !errors.Is(err, c.want) || (err == nil) != (c.want == nil) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
			if err != nil && string(before) != string(p.Snapshot()) {
				t.Fatal("a refused Ack changed the state")
			}
			checkInvariants(t, p)
		})
	}
	t.Run("already acknowledged", func(t *testing.T) {
		p := setup(t)
		if err := p.Ack("m", []AckBatch{{12, 12, AckAccept}}, t0); err != nil {
			t.Fatal(err)
		}
		if err := p.Ack("m", []AckBatch{{12, 12, AckAccept}}, t0); !errors.Is(err, ErrInvalidRecordState) {
			t.Fatalf("second ack: %v", err)
		}
	})
	t.Run("after lock expiry", func(t *testing.T) {
		p := setup(t)
		p.Expire(ms(1000))
		if err := p.Ack("m", []AckBatch{{11, 11, AckAccept}}, ms(1000)); !errors.Is(err, ErrInvalidRecordState) {
			t.Fatalf("stale ack: %v", err)
		}
	})
}

// TestDeliveryLimit: a record released, expired or dropped by its member
// at the limit is archived and dead-lettered with its count; without
// DeadLetter it is only archived.
func TestDeliveryLimit(t *testing.T) {
	ways := map[string]func(p *Partition, now time.Time){
		"release": func(p *Partition, now time.Time) {
			if err := p.Ack("m", []AckBatch{{0, 0, AckRelease}}, now); err != nil {
				panic(err)
			}
		},
		"expire":         func(p *Partition, now time.Time) { p.Expire(now.Add(time.Second)) },
		"release member": func(p *Partition, now time.Time) { p.ReleaseMember("m", now) },
		"release all":    func(p *Partition, now time.Time) { p.ReleaseAll(now) },
	}
	for name, give := range ways {
		for _, dl := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s dead letter %v", name, dl), func(t *testing.T) {
				cfg := testConfig()
				cfg.DeliveryLimit = 4
				cfg.DeadLetter = dl
				s := newPair(t, cfg, 0)
				s.l.Admit(plain(0, 1), 2)
				s.sync()
				now := t0
				for n := int16(1); n <= 4; n++ {
					got := s.l.Acquire("m", 1, now)
					if want := []Range{{0, 0, n}}; !slices.Equal(got, want) {
						t.Fatalf("delivery %d: %v, want %v", n, got, want)
					}
					s.sync()
					give(s.l, now)
					s.sync()
					now = now.Add(2 * time.Second)
				}
				st, _, present := stateOf(s.l, 0)
				if dl {
					if !present || st != Archived {
						t.Fatalf("state %v present %v", st, present)
					}
					want := []DeadLetter{{0, 4, ReasonDeliveryLimit}}
					if got := s.l.DeadLetters(); !slices.Equal(got, want) {
						t.Fatalf("dead letters %v, want %v", got, want)
					}
					if s.l.Start() != 0 {
						t.Fatalf("SPSO %d passed a pending dead letter", s.l.Start())
					}
					s.l.DeadLettered(0)
					s.sync()
				}
				if len(s.l.DeadLetters()) != 0 || s.l.Start() != 1 {
					t.Fatalf("dead letters %v, SPSO %d", s.l.DeadLetters(), s.l.Start())
				}
				if got := s.l.Acquire("m", 5, now); !slices.Equal(got, []Range{{1, 1, 1}}) {
					t.Fatalf("next acquire %v", got)
				}
			})
		}
	}
}

// TestLoweredDeliveryLimit: an Available record already at a lowered limit
// is archived (dead letter "delivery limit") when Acquire reaches it.
func TestLoweredDeliveryLimit(t *testing.T) {
	cfg := testConfig()
	cfg.DeliveryLimit = 5
	cfg.DeadLetter = true
	s := newPair(t, cfg, 0)
	s.l.Admit(plain(0, 1), 2)
	for range 2 {
		s.l.Acquire("m", 1, t0)
		s.l.ReleaseMember("m", t0)
	}
	s.sync()
	cfg.DeliveryLimit = 2
	s.l.SetConfig(cfg)
	if got := s.l.Acquire("m", 1, t0); !slices.Equal(got, []Range{{1, 1, 1}}) {
		t.Fatalf("acquired %v", got)
	}
	s.sync()
	if got, want := s.l.DeadLetters(), []DeadLetter{{0, 2, ReasonDeliveryLimit}}; !slices.Equal(got, want) {
		t.Fatalf("dead letters %v, want %v", got, want)
	}
}

// TestDeadLetters: REJECT and the limit queue dead letters in offset order;
// they hold SPSO until confirmed, and DeadLettered ignores unknown offsets.
func TestDeadLetters(t *testing.T) {
	cfg := testConfig()
	cfg.DeliveryLimit = 1
	cfg.DeadLetter = true
	s := newPair(t, cfg, 0)
	s.l.Admit(span(0, 4), 5)
	s.l.Acquire("m", 5, t0)
	s.sync()
	err := s.l.Ack("m", []AckBatch{{0, 0, AckAccept}, {1, 1, AckReject}, {2, 2, AckRelease}, {3, 3, AckGap}, {4, 4, AckAccept}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	s.sync()
	want := []DeadLetter{{1, 1, ReasonRejected}, {2, 1, ReasonDeliveryLimit}}
	if got := s.l.DeadLetters(); !slices.Equal(got, want) {
		t.Fatalf("dead letters %v, want %v", got, want)
	}
	if s.l.Start() != 1 {
		t.Fatalf("SPSO %d, want 1", s.l.Start())
	}
	if st := s.l.Stats(); st.DeadLetters != 2 || st.Archived != 3 || st.Acknowledged != 1 {
		t.Fatalf("stats %+v", st)
	}
	if _, ok := s.l.OldestUnacked(); ok {
		t.Fatal("a pending dead letter counted as unacknowledged")
	}
	s.l.DeadLettered(2, 99)
	s.sync()
	if s.l.Start() != 1 || len(s.l.DeadLetters()) != 1 {
		t.Fatalf("SPSO %d dead letters %v", s.l.Start(), s.l.DeadLetters())
	}
	s.l.DeadLettered(1)
	s.sync()
	if s.l.Start() != 5 || s.l.Stats().InFlight != 0 {
		t.Fatalf("SPSO %d stats %+v", s.l.Start(), s.l.Stats())
	}
	// Turning dead-lettering off leaves pending ones pending; new archives
	// queue none.
	s.l.Admit(span(5, 6), 7)
	s.l.Acquire("m", 2, t0)
	if err := s.l.Ack("m", []AckBatch{{5, 5, AckReject}}, t0); err != nil {
		t.Fatal(err)
	}
	cfg.DeadLetter = false
	s.l.SetConfig(cfg)
	if err := s.l.Ack("m", []AckBatch{{6, 6, AckReject}}, t0); err != nil {
		t.Fatal(err)
	}
	s.sync()
	if got, want := s.l.DeadLetters(), []DeadLetter{{5, 1, ReasonRejected}}; !slices.Equal(got, want) {
		t.Fatalf("dead letters %v, want %v", got, want)
	}
}

func TestBackoffSchedule(t *testing.T) {
	cfg := Config{BackoffBase: 100 * time.Millisecond, BackoffFactor: 3, BackoffMax: 2 * time.Second}
	want := []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 900 * time.Millisecond, 2 * time.Second, 2 * time.Second}
	for i, w := range want {
		if got := cfg.Backoff(i + 1); got != w {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	cases := []struct {
		cfg  Config
		n    int
		want time.Duration
	}{
		{Config{}, 3, 0},
		{Config{BackoffBase: time.Second}, 3, 4 * time.Second}, // default factor 2
		{Config{BackoffBase: time.Second, BackoffFactor: 1}, 9, time.Second},
		{Config{BackoffBase: time.Second, BackoffFactor: 0.5}, 3, time.Second}, // clamped to 1
		{Config{BackoffBase: time.Hour, BackoffFactor: 10}, 30000, 1<<63 - 1},  // no cap, no overflow
		{Config{BackoffBase: time.Second}, 0, time.Second},
	}
	for _, c := range cases {
		if got := c.cfg.Backoff(c.n); got != c.want {
			t.Errorf("%+v Backoff(%d) = %v, want %v", c.cfg, c.n, got, c.want)
		}
	}
}

// TestBackoff: a released or expired record comes back only after a delay
// that grows per delivery and is capped; NextDeadline names the time.
func TestBackoff(t *testing.T) {
	cfg := testConfig()
	cfg.DeliveryLimit = 10
	cfg.BackoffBase = 100 * time.Millisecond
	cfg.BackoffFactor = 2
	cfg.BackoffMax = 500 * time.Millisecond
	s := newPair(t, cfg, 0)
	s.l.Admit(plain(0), 1)
	now := int64(0)
	for n, delay := range []int64{100, 200, 400, 500, 500} {
		if got := s.l.Acquire("m", 1, ms(now)); !slices.Equal(got, []Range{{0, 0, int16(n + 1)}}) {
			t.Fatalf("delivery %d at %d: %v", n+1, now, got)
		}
		s.sync()
		if n%2 == 0 {
			if err := s.l.Ack("m", []AckBatch{{0, 0, AckRelease}}, ms(now)); err != nil {
				t.Fatal(err)
			}
		} else {
			now += 1000 // the lock runs out
			s.l.Expire(ms(now))
		}
		s.sync()
		if dl, ok := s.l.NextDeadline(); !ok || !dl.Equal(ms(now+delay)) {
			t.Fatalf("delivery %d: next deadline %v %v, want %v", n+1, dl, ok, ms(now+delay))
		}
		if st := s.l.Stats(); st.Delayed != 1 {
			t.Fatalf("stats %+v", st)
		}
		if got := s.l.Acquire("m", 1, ms(now+delay-1)); got != nil {
			t.Fatalf("delivery %d acquired %v before its backoff", n+1, got)
		}
		now += delay
	}
}

// TestNotBefore: a delayed record is not acquired before its time, records
// after it are, and it is acquired once its time comes.
func TestNotBefore(t *testing.T) {
	s := newPair(t, testConfig(), 0)
	due := t0.Add(time.Hour).UnixMilli()
	s.l.Admit([]Record{{Offset: 0}, {Offset: 1, NotBefore: due}, {Offset: 2}}, 3)
	s.sync()
	if got := s.l.Acquire("m", 10, t0); !slices.Equal(got, []Range{{0, 0, 1}, {2, 2, 1}}) {
		t.Fatalf("acquired %v", got)
	}
	s.sync()
	if err := s.l.Ack("m", []AckBatch{{0, 0, AckAccept}, {2, 2, AckAccept}}, t0); err != nil {
		t.Fatal(err)
	}
	s.sync()
	if s.l.Start() != 1 {
		t.Fatalf("SPSO %d", s.l.Start())
	}
	if off, ok := s.l.OldestUnacked(); !ok || off != 1 {
		t.Fatalf("oldest unacked %d %v", off, ok)
	}
	if dl, ok := s.l.NextDeadline(); !ok || dl.UnixMilli() != due {
		t.Fatalf("next deadline %v %v", dl, ok)
	}
	if got := s.l.Acquire("m", 10, time.UnixMilli(due-1)); got != nil {
		t.Fatalf("acquired %v a millisecond early", got)
	}
	if got := s.l.Acquire("m", 10, time.UnixMilli(due)); !slices.Equal(got, []Range{{1, 1, 1}}) {
		t.Fatalf("acquired %v at its time", got)
	}
	s.sync()
	// A NotBefore in the past is no delay.
	s.l.Admit([]Record{{Offset: 3, NotBefore: 5}}, 4)
	if got := s.l.Acquire("m", 10, time.UnixMilli(due)); !slices.Equal(got, []Range{{3, 3, 1}}) {
		t.Fatalf("acquired %v", got)
	}
	s.sync()
}

func keyed(off int64, key string) Record { return Record{Offset: off, Key: []byte(key)} }

// TestKeyOrdering: one acquired record per key, in offset order; a waiting
// (delayed or backed-off) record blocks later records of its key; keyless
// records and other keys are not held up.
func TestKeyOrdering(t *testing.T) {
	cfg := testConfig()
	cfg.KeyOrdering = true
	cfg.BackoffBase = time.Second
	s := newPair(t, cfg, 0)
	s.l.Admit([]Record{
		keyed(0, "a"), keyed(1, "b"), keyed(2, "a"), {Offset: 3}, keyed(4, "a"), keyed(5, "b"), {Offset: 6},
		{Offset: 7, Key: []byte("c"), NotBefore: t0.Add(time.Minute).UnixMilli()}, keyed(8, "c"), keyed(9, ""),
	}, 10)
	s.sync()
	got := offsetsOf(s.l.Acquire("m", 100, t0))
	if want := []int64{0, 1, 3, 6, 9}; !slices.Equal(got, want) {
		t.Fatalf("first acquire %v, want %v", got, want)
	}
	s.sync()
	if got := s.l.Acquire("n", 100, t0); got != nil {
		t.Fatalf("n acquired %v while every key is busy", got)
	}
	// a's first done: a's second goes out, to anyone.
	if err := s.l.Ack("m", []AckBatch{{0, 0, AckAccept}}, t0); err != nil {
		t.Fatal(err)
	}
	if got := offsetsOf(s.l.Acquire("n", 100, t0)); !slices.Equal(got, []int64{2}) {
		t.Fatalf("after a0: %v", got)
	}
	s.sync()
	// a's second released with backoff: a's third still waits for it.
	if err := s.l.Ack("n", []AckBatch{{2, 2, AckRelease}}, t0); err != nil {
		t.Fatal(err)
	}
	if got := s.l.Acquire("n", 100, t0.Add(999*time.Millisecond)); got != nil {
		t.Fatalf("acquired %v while a's earlier record backs off", got)
	}
	if got := offsetsOf(s.l.Acquire("n", 100, t0.Add(time.Second))); !slices.Equal(got, []int64{2}) {
		t.Fatalf("after backoff: %v", got)
	}
	s.sync()
	// c's first is delayed a minute: c's second waits too.
	if err := s.l.Ack("n", []AckBatch{{2, 2, AckAccept}}, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := offsetsOf(s.l.Acquire("n", 100, t0.Add(time.Second))); !slices.Equal(got, []int64{4}) {
		t.Fatalf("a's third: %v", got)
	}
	if got := offsetsOf(s.l.Acquire("n", 100, t0.Add(time.Minute))); !slices.Equal(got, []int64{7}) {
		t.Fatalf("c's first: %v", got)
	}
	s.sync()
	// A member leaving releases its records; order within b holds.
	s.l.ReleaseMember("m", t0.Add(time.Minute))
	if got := offsetsOf(s.l.Acquire("n", 100, t0.Add(time.Minute))); len(got) != 0 {
		t.Fatalf("acquired %v during b's backoff", got)
	}
	if got := offsetsOf(s.l.Acquire("n", 100, t0.Add(2*time.Minute))); !slices.Equal(got, []int64{1, 3, 6, 9}) {
		t.Fatalf("after release: %v", got)
	}
	s.sync()
	// Without key ordering every ready record goes.
	cfg.KeyOrdering = false
	s.l.SetConfig(cfg)
	if got := offsetsOf(s.l.Acquire("o", 100, t0.Add(2*time.Minute))); !slices.Equal(got, []int64{5, 8}) {
		t.Fatalf("no key ordering: %v", got)
	}
}

// TestMaxInFlight: Admit takes only Room records, NextRead stops at the
// first it did not take, Full reports a stuck window, and the window slides
// as SPSO moves.
func TestMaxInFlight(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInFlight = 4
	s := newPair(t, cfg, 100)
	if s.l.Room() != 4 || s.l.Full() {
		t.Fatalf("room %d full %v", s.l.Room(), s.l.Full())
	}
	s.l.Admit(plain(100, 101, 103, 105, 106, 107), 110)
	s.sync()
	if s.l.Room() != 0 || s.l.NextRead() != 106 || s.l.Stats().InFlight != 4 {
		t.Fatalf("room %d next %d stats %+v", s.l.Room(), s.l.NextRead(), s.l.Stats())
	}
	// Nothing more fits, not even what the caller re-reads.
	s.l.Admit(plain(106, 107), 110)
	if s.l.NextRead() != 106 {
		t.Fatalf("next %d", s.l.NextRead())
	}
	if s.l.Full() {
		t.Fatal("full while records are available")
	}
	if got := offsetsOf(s.l.Acquire("m", 10, t0)); !slices.Equal(got, []int64{100, 101, 103, 105}) {
		t.Fatalf("acquired %v", got)
	}
	s.sync()
	if !s.l.Full() {
		t.Fatal("not full with every record acquired")
	}
	// Acknowledging a record in the middle frees nothing.
	if err := s.l.Ack("m", []AckBatch{{101, 101, AckAccept}}, t0); err != nil {
		t.Fatal(err)
	}
	if s.l.Room() != 0 || s.l.Start() != 100 {
		t.Fatalf("room %d start %d", s.l.Room(), s.l.Start())
	}
	// Acknowledging the head slides the window over 101 and the gap at 102.
	if err := s.l.Ack("m", []AckBatch{{100, 100, AckAccept}}, t0); err != nil {
		t.Fatal(err)
	}
	s.sync()
	if s.l.Start() != 103 || s.l.Room() != 2 || s.l.Full() {
		t.Fatalf("start %d room %d full %v", s.l.Start(), s.l.Room(), s.l.Full())
	}
	s.l.Admit(plain(106, 107, 108), 110)
	s.sync()
	if s.l.NextRead() != 108 {
		t.Fatalf("next %d", s.l.NextRead())
	}
	// A released record inside a full window can always be re-acquired.
	s.l.ReleaseMember("m", t0)
	if s.l.Full() {
		t.Fatal("full with released records")
	}
	if got := offsetsOf(s.l.Acquire("n", 10, t0)); !slices.Equal(got, []int64{103, 105, 106, 107}) {
		t.Fatalf("acquired %v", got)
	}
	s.sync()
	// A smaller limit evicts nothing.
	cfg.MaxInFlight = 2
	s.l.SetConfig(cfg)
	if s.l.Room() != 0 || s.l.Stats().InFlight != 4 {
		t.Fatalf("room %d stats %+v", s.l.Room(), s.l.Stats())
	}
}

// TestCompactionGaps: offsets with no record are never tracked nor
// acquired; ranges do not span them; SPSO jumps them; a read that found
// only gaps moves NextRead.
func TestCompactionGaps(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInFlight = 3
	s := newPair(t, cfg, 0)
	s.l.Admit(nil, 50) // a fully compacted stretch
	s.sync()
	if s.l.Start() != 50 || s.l.NextRead() != 50 {
		t.Fatalf("start %d next %d", s.l.Start(), s.l.NextRead())
	}
	s.l.Admit(plain(50, 51, 1_000_000), 2_000_000)
	s.sync()
	if s.l.NextRead() != 2_000_000 || s.l.Room() != 0 {
		t.Fatalf("next %d room %d", s.l.NextRead(), s.l.Room())
	}
	got := s.l.Acquire("m", 10, t0)
	if want := []Range{{50, 51, 1}, {1_000_000, 1_000_000, 1}}; !slices.Equal(got, want) {
		t.Fatalf("ranges %v, want %v", got, want)
	}
	s.sync()
	// A client GAP-acking, or acking across, offsets with no record is fine.
	if err := s.l.Ack("m", []AckBatch{{50, 999_999, AckAccept}}, t0); err != nil {
		t.Fatal(err)
	}
	s.sync()
	if s.l.Start() != 1_000_000 {
		t.Fatalf("start %d", s.l.Start())
	}
	if err := s.l.Ack("m", []AckBatch{{1_000_000, 1_000_000, AckGap}}, t0); err != nil {
		t.Fatal(err)
	}
	s.sync()
	if s.l.Start() != 2_000_000 || s.l.Stats().InFlight != 0 {
		t.Fatalf("start %d stats %+v", s.l.Start(), s.l.Stats())
	}
	// Records below NextRead are skipped as already admitted; a smaller end
	// does not move NextRead back.
	s.l.Admit(plain(7, 1_999_999), 10)
	if s.l.NextRead() != 2_000_000 || s.l.Stats().InFlight != 0 {
		t.Fatalf("next %d stats %+v", s.l.NextRead(), s.l.Stats())
	}
	// Unsorted input: a record behind one already taken is skipped.
	s.l.Admit(plain(2_000_005, 2_000_001, 2_000_006), 2_000_007)
	s.sync()
	if st := states(s.l); len(st) != 2 {
		t.Fatalf("records %v", st)
	}
	if s.l.Start() != 2_000_005 {
		t.Fatalf("start %d", s.l.Start())
	}
}

// TestReleaseMemberAndExpire: a member's records go back on release; locks
// run out at their deadline, RENEW moves it, and another member's locks
// are untouched.
func TestReleaseMemberAndExpire(t *testing.T) {
	cfg := testConfig()
	cfg.LockDuration = 30 * time.Second
	s := newPair(t, cfg, 0)
	s.l.Admit(span(0, 5), 6)
	s.l.Acquire("a", 2, t0)                         // 0, 1
	s.l.Acquire("b", 2, t0.Add(10*time.Second))     // 2, 3
	s.l.Acquire("c", 2, t0.Add(20*time.Second+500)) // 4, 5; lock rounds up to the millisecond
	s.sync()
	if dl, _ := s.l.NextDeadline(); !dl.Equal(t0.Add(30 * time.Second)) {
		t.Fatalf("next deadline %v", dl)
	}
	s.l.ReleaseMember("b", t0.Add(11*time.Second))
	s.sync()
	if got := states(s.l); got[2] != Available || got[3] != Available || got[0] != Acquired {
		t.Fatalf("states %v", got)
	}
	if err := s.l.Ack("a", []AckBatch{{1, 1, AckRenew}}, t0.Add(29*time.Second)); err != nil {
		t.Fatal(err)
	}
	if s.l.TakeDelta() != nil {
		t.Fatal("a RENEW produced a delta")
	}
	s.l.Expire(t0.Add(30*time.Second - time.Millisecond))
	if got := states(s.l); got[0] != Acquired {
		t.Fatalf("expired early: %v", got)
	}
	s.l.Expire(t0.Add(30 * time.Second))
	s.sync()
	if got := states(s.l); got[0] != Available || got[1] != Acquired || got[4] != Acquired {
		t.Fatalf("after expiry %v", got)
	}
	if dl, _ := s.l.NextDeadline(); !dl.Equal(t0.Add(50*time.Second + time.Millisecond)) {
		t.Fatalf("next deadline %v", dl)
	}
	if err := s.l.Ack("a", []AckBatch{{0, 0, AckAccept}}, t0.Add(30*time.Second)); !errors.Is(err, ErrInvalidRecordState) {
		t.Fatalf("ack after expiry: %v", err)
	}
	s.l.Expire(t0.Add(59 * time.Second))
	s.sync()
	if got := states(s.l); got[1] != Available || got[4] != Available {
		t.Fatalf("after second expiry %v", got)
	}
	if _, ok := s.l.NextDeadline(); ok {
		t.Fatal("a deadline with nothing acquired or delayed")
	}
	if got := s.l.Acquire("d", 10, t0.Add(time.Minute)); !slices.Equal(got, []Range{{0, 5, 2}}) {
		t.Fatalf("re-acquired %v", got)
	}
}

// TestAcquireRanges: ranges are consecutive offsets with one delivery
// count; max bounds the records; max <= 0 acquires nothing.
func TestAcquireRanges(t *testing.T) {
	s := newPair(t, testConfig(), 0)
	s.l.Admit(span(0, 9), 10)
	s.l.Acquire("m", 3, t0) // 0..2
	s.l.Ack("m", []AckBatch{{1, 1, AckRelease}}, t0)
	s.l.ReleaseMember("m", t0) // 0, 2 back with count 1
	s.sync()
	if got := s.l.Acquire("m", 0, t0); got != nil {
		t.Fatalf("max 0 acquired %v", got)
	}
	if got := s.l.Acquire("m", -1, t0); got != nil {
		t.Fatalf("max -1 acquired %v", got)
	}
	got := s.l.Acquire("m", 6, t0)
	if want := []Range{{0, 2, 2}, {3, 5, 1}}; !slices.Equal(got, want) {
		t.Fatalf("ranges %v, want %v", got, want)
	}
	s.sync()
}

// TestSkipTo: records below the new start go whatever their state; SPSO
// and NextRead move to it.
func TestSkipTo(t *testing.T) {
	cfg := testConfig()
	cfg.DeadLetter = true
	s := newPair(t, cfg, 0)
	s.l.Admit(span(0, 9), 10)
	s.l.Acquire("m", 4, t0)
	s.l.Ack("m", []AckBatch{{0, 0, AckReject}}, t0)
	s.sync()
	s.l.SkipTo(3)
	s.sync()
	if s.l.Start() != 3 || len(s.l.DeadLetters()) != 0 {
		t.Fatalf("start %d dead letters %v", s.l.Start(), s.l.DeadLetters())
	}
	if err := s.l.Ack("m", []AckBatch{{1, 3, AckAccept}}, t0); err != nil {
		t.Fatal(err)
	}
	s.sync()
	if s.l.Start() != 4 {
		t.Fatalf("start %d", s.l.Start())
	}
	s.l.SkipTo(2) // backwards: nothing
	s.l.SkipTo(20)
	s.sync()
	if s.l.Start() != 20 || s.l.NextRead() != 20 || s.l.Stats().InFlight != 0 {
		t.Fatalf("stats %+v", s.l.Stats())
	}
}

func TestConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []Config{
		{LockDuration: -1}, {DeliveryLimit: -1}, {DeliveryLimit: MaxDeliveryLimit + 1}, {MaxInFlight: -1},
		{MaxInFlight: MaxMaxInFlight + 1}, {BackoffBase: -1}, {BackoffMax: -1}, {BackoffFactor: 0.5},
		{BackoffFactor: -2},
	}
	for _, c := range bad {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
	n := New(Config{}, -5)
	if n.Start() != 0 || n.Config() != DefaultConfig() {
		t.Fatalf("start %d config %+v", n.Start(), n.Config())
	}
	if New(Config{DeliveryLimit: 1 << 20}, 0).Config().DeliveryLimit != MaxDeliveryLimit {
		t.Fatal("delivery limit not clamped")
	}
}

func TestStrings(t *testing.T) {
	for s, want := range map[State]string{Available: "AVAILABLE", Acquired: "ACQUIRED", Acknowledged: "ACKNOWLEDGED", Archived: "ARCHIVED", 3: "State(3)"} {
		if s.String() != want {
			t.Errorf("%d: %s", s, s)
		}
	}
	for a, want := range map[AckType]string{AckGap: "GAP", AckAccept: "ACCEPT", AckRelease: "RELEASE", AckReject: "REJECT", AckRenew: "RENEW", 9: "AckType(9)"} {
		if a.String() != want {
			t.Errorf("%d: %s", a, a)
		}
	}
	if KeyHash([]byte("a")) != 0xaf63dc4c8601ec8c { // FNV-1a 64 of "a"
		t.Fatalf("key hash %#x", KeyHash([]byte("a")))
	}
}

// TestKeyOrderingManyMembers: sixteen members fetch, accept, release, reject
// and vanish at random over eight keys; never are two records of one key
// acquired at once, and each key's records finish in offset order, release
// after release.
func TestKeyOrderingManyMembers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cfg := testConfig()
	cfg.KeyOrdering = true
	cfg.DeliveryLimit = 1000
	cfg.MaxInFlight = 64
	cfg.BackoffBase = 10 * time.Millisecond
	cfg.BackoffMax = 100 * time.Millisecond
	s := newPair(t, cfg, 0)
	const total = 2000
	keyOf := func(off int64) string { return fmt.Sprint("key-", off*7%8) }
	var log []Record
	for o := int64(0); o < total; o++ {
		log = append(log, keyed(o, keyOf(o)))
	}
	finished := map[string]int64{} // per key, the last offset accepted
	held := map[string][]int64{}   // per member
	now := int64(0)
	for step := 0; s.l.Start() < total; step++ {
		if step > 200_000 {
			t.Fatalf("stuck at %+v", s.l.Stats())
		}
		now += int64(rng.IntN(5))
		if room := s.l.Room(); room > 0 && s.l.NextRead() < total {
			from := s.l.NextRead()
			s.l.Admit(log[from:min(from+int64(room), total)], min(from+int64(room), total))
		}
		mem := fmt.Sprint("m", rng.IntN(16))
		switch rng.IntN(10) {
		case 0:
			s.l.ReleaseMember(mem, ms(now))
			held[mem] = nil
		case 1:
			now += 1000
			s.l.Expire(ms(now))
			for m := range held {
				held[m] = slices.DeleteFunc(held[m], func(o int64) bool { st, _, ok := stateOf(s.l, o); return !ok || st != Acquired })
			}
		case 2, 3, 4:
			held[mem] = append(held[mem], offsetsOf(s.l.Acquire(mem, 1+rng.IntN(8), ms(now)))...)
		default:
			var b []AckBatch
			var keep []int64
			for _, o := range held[mem] {
				switch rng.IntN(4) {
				case 0:
					keep = append(keep, o)
					continue
				case 1:
					b = append(b, AckBatch{o, o, AckRelease})
				default:
					b = append(b, AckBatch{o, o, AckAccept})
					k := keyOf(o)
					if last, ok := finished[k]; ok && o <= last {
						t.Fatalf("key %s: offset %d finished after %d", k, o, last)
					}
					finished[k] = o
				}
			}
			slices.SortFunc(b, func(x, y AckBatch) int { return int(x.First - y.First) })
			if err := s.l.Ack(mem, b, ms(now)); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			held[mem] = keep
		}
		busy := map[uint64]int64{}
		for _, e := range s.l.recs {
			if e.state == Acquired {
				if o, ok := busy[e.key]; ok {
					t.Fatalf("step %d: offsets %d and %d of one key acquired together", step, o, e.off)
				}
				busy[e.key] = e.off
			}
		}
		if step%50 == 0 {
			s.sync()
		}
	}
	s.sync()
	if len(finished) != 8 {
		t.Fatalf("keys finished: %v", finished)
	}
}

// TestStatus follows one record through Status: untracked before it is
// admitted, Available, Acquired by its member with its delivery count,
// Archived with a pending dead letter, then gone once it is written; a
// replica sees no owner.
func TestStatus(t *testing.T) {
	cfg := testConfig()
	cfg.DeadLetter = true
	s := newPair(t, cfg, 10)
	if _, ok := s.l.Status(10); ok {
		t.Fatal("status of an offset not read yet")
	}
	s.l.Admit(plain(10, 12), 13) // 11 is a compaction gap
	if st, ok := s.l.Status(10); !ok || st != (RecordStatus{State: Available}) || st.Done() {
		t.Fatalf("admitted: %+v %v", st, ok)
	}
	if _, ok := s.l.Status(11); ok {
		t.Fatal("status of a compaction gap")
	}
	s.l.Acquire("m", 2, t0)
	s.sync()
	if st, ok := s.l.Status(12); !ok || st != (RecordStatus{State: Acquired, DeliveryCount: 1, Owner: "m"}) {
		t.Fatalf("acquired: %+v %v", st, ok)
	}
	if st, ok := s.f.Status(12); !ok || st.Owner != "" || st.State != Acquired || st.DeliveryCount != 1 {
		t.Fatalf("replica: %+v %v", st, ok)
	}
	if err := s.l.Ack("m", []AckBatch{{10, 10, AckAccept}, {12, 12, AckReject}}, t0); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.l.Status(10); ok {
		t.Fatal("status of a record below SPSO")
	}
	if st, ok := s.l.Status(12); !ok || st != (RecordStatus{State: Archived, DeliveryCount: 1, DeadLetter: true}) || st.Done() {
		t.Fatalf("rejected: %+v %v", st, ok)
	}
	s.l.DeadLettered(12)
	if _, ok := s.l.Status(12); ok || s.l.Start() != 13 {
		t.Fatalf("written dead letter still tracked (SPSO %d)", s.l.Start())
	}
	if !(RecordStatus{State: Acknowledged}).Done() || (RecordStatus{State: Acquired}).Done() {
		t.Error("Done")
	}
}
