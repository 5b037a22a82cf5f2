package share

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"time"
)

// busyPartition returns a leader with every state and flag in its window,
// and the deltas it took on the way.
func busyPartition(t testing.TB) (*Partition, [][]byte) {
	cfg := testConfig()
	cfg.DeadLetter = true
	cfg.KeyOrdering = true
	cfg.BackoffBase = time.Second
	p := New(cfg, 1000)
	var deltas [][]byte
	take := func() {
		if d := p.TakeDelta(); d != nil {
			deltas = append(deltas, d)
		}
	}
	take()
	p.Admit([]Record{
		keyed(1000, "k"), {Offset: 1001}, {Offset: 1003}, keyed(1004, "k"), {Offset: 1005},
		{Offset: 1006, NotBefore: t0.Add(time.Hour).UnixMilli()}, {Offset: 1007}, {Offset: 1008},
	}, 1010)
	take()
	p.Acquire("m", 10, t0) // 1000, 1001, 1003, 1005, 1007, 1008
	take()
	if err := p.Ack("m", []AckBatch{{1001, 1001, AckAccept}, {1003, 1003, AckReject}, {1005, 1005, AckRelease}, {1007, 1007, AckGap}}, t0); err != nil {
		t.Fatal(err)
	}
	take()
	return p, deltas
}

// TestDeltaReplay: a follower fed the deltas in order ends byte-identical
// to the leader; replays and duplicates are ignored; a skipped delta is
// refused.
func TestDeltaReplay(t *testing.T) {
	l, deltas := busyPartition(t)
	if len(deltas) != 4 {
		t.Fatalf("%d deltas", len(deltas))
	}
	f := New(Config{}, 5) // any start: the first delta sets it
	for i, d := range deltas {
		if err := Apply(f, d); err != nil {
			t.Fatalf("delta %d: %v", i+1, err)
		}
		for j := range i + 1 { // every earlier one again: ignored
			if err := Apply(f, deltas[j]); err != nil {
				t.Fatalf("replaying %d after %d: %v", j+1, i+1, err)
			}
		}
		checkInvariants(t, f)
	}
	if !bytes.Equal(l.Snapshot(), f.Snapshot()) {
		t.Fatalf("follower differs")
	}
	g := New(Config{}, 0)
	if err := Apply(g, deltas[1]); !errors.Is(err, ErrDeltaGap) {
		t.Fatalf("skipped first delta: %v", err)
	}
	Apply(g, deltas[0])
	if err := Apply(g, deltas[2]); !errors.Is(err, ErrDeltaGap) {
		t.Fatalf("skipped delta: %v", err)
	}
	if err := Apply(g, l.Snapshot()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("snapshot as a delta: %v", err)
	}
	if _, err := Restore(Config{}, deltas[0]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("delta as a snapshot: %v", err)
	}
}

// TestSnapshotRestore: Restore(Snapshot) gives the same state (owners and
// locks aside), the same bytes again, and acquired records with an expired
// lock; a restored partition continues the delta sequence.
func TestSnapshotRestore(t *testing.T) {
	l, _ := busyPartition(t)
	b := l.Snapshot()
	r, err := Restore(l.Config(), b)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, r)
	if !bytes.Equal(b, r.Snapshot()) {
		t.Fatal("snapshot round trip differs")
	}
	if r.Stats() != l.Stats() {
		t.Fatalf("stats %+v, want %+v", r.Stats(), l.Stats())
	}
	if !slices.Equal(r.DeadLetters(), l.DeadLetters()) {
		t.Fatalf("dead letters %v", r.DeadLetters())
	}
	if r.TakeDelta() != nil {
		t.Fatal("a restored partition has a delta to send")
	}
	// The inherited acquisitions are nobody's: nobody can ack them, and
	// the first sweep releases them.
	if err := r.Ack("m", []AckBatch{{1000, 1000, AckAccept}}, t0); !errors.Is(err, ErrInvalidRecordState) {
		t.Fatalf("ack of an inherited acquisition: %v", err)
	}
	if dl, ok := r.NextDeadline(); !ok || dl.UnixMilli() != 0 {
		t.Fatalf("next deadline %v %v", dl, ok)
	}
	f, _ := Restore(Config{}, b)
	r.Expire(t0)
	if got := states(r); got[1000] != Available || got[1008] != Available {
		t.Fatalf("states after expiry %v", got)
	}
	if err := Apply(f, r.TakeDelta()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Snapshot(), f.Snapshot()) {
		t.Fatal("follower of the restored leader differs")
	}
	// Delivery counts survive: 1000 was delivered once.
	if got := r.Acquire("n", 1, t0.Add(time.Hour)); !slices.Equal(got, []Range{{1000, 1000, 2}}) {
		t.Fatalf("re-acquired %v", got)
	}
}

// TestFailover: a new leader built from the follower's committed state
// releases what the old leader had handed out, keeps delivery counts, and
// its deltas carry on the sequence for the other followers.
func TestFailover(t *testing.T) {
	cfg := testConfig()
	a := New(cfg, 0)
	b, c := New(cfg, 0), New(cfg, 0)
	send := func(from *Partition, to ...*Partition) {
		d := from.TakeDelta()
		for _, p := range to {
			if err := Apply(p, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	a.Admit(span(0, 9), 10)
	send(a, b, c)
	a.Acquire("m", 4, t0)
	send(a, b, c)
	a.Acquire("n", 2, t0) // 4, 5: taken but never replicated (a dies)
	// b becomes leader from its committed state.
	nb, err := Restore(cfg, b.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	nb.ReleaseAll(t0.Add(time.Second))
	send(nb, b, c)
	if !bytes.Equal(nb.Snapshot(), c.Snapshot()) {
		t.Fatal("followers of the new leader differ")
	}
	got := nb.Acquire("n", 10, t0.Add(time.Second))
	if want := []Range{{0, 3, 2}, {4, 9, 1}}; !slices.Equal(got, want) {
		t.Fatalf("new leader acquired %v, want %v", got, want)
	}
	send(nb, b, c)
	if !bytes.Equal(nb.Snapshot(), c.Snapshot()) {
		t.Fatal("followers of the new leader differ")
	}
}

// TestApplyRefusesInconsistent: deltas that do not fit the state are
// refused with ErrCorrupt and change nothing.
func TestApplyRefusesInconsistent(t *testing.T) {
	base := func() *Partition {
		p, _ := busyPartition(t)
		q, err := Restore(p.Config(), p.Snapshot())
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	ref := base()
	// 1000 acquired (k, count 1), 1003 archived + DL rejected, 1004
	// available (k), 1005 available count 1 backoff, 1006 delayed, 1007
	// archived, 1008 acquired. Window 1000..1010.
	rec := func(off int64, st State, count int16, at int64, key bool, dl uint8) entry {
		e := entry{off: off, state: st, count: count, at: at, flags: dl}
		if key {
			e.flags |= flagKey
			e.key = KeyHash([]byte("k"))
		}
		return e
	}
	delta := func(start, next int64, recs ...entry) []byte {
		b := appendHeader(nil, kindDelta, ref.seq+1, start, next, len(recs))
		prev := start
		for i := range recs {
			b = appendRecord(b, &recs[i], prev)
			prev = recs[i].off + 1
		}
		return b
	}
	good := [][]byte{
		delta(1000, 1010),
		delta(1000, 1012, rec(1011, Available, 0, 0, false, 0)),
		delta(1000, 1010, rec(1003, Archived, 1, 0, false, 0)), // dead letter confirmed
		delta(1003, 1010, rec(1004, Acquired, 1, 0, true, 0)),  // 1000 acknowledged: SPSO to the dead letter
		delta(1004, 1010, rec(1004, Available, 0, 0, true, 0)),
	}
	for i, d := range good {
		p := base()
		if err := Apply(p, d); err != nil {
			t.Errorf("good delta %d: %v", i, err)
		}
		checkInvariants(t, p)
	}
	bad := map[string][]byte{
		"start back":              delta(999, 1010),
		"next back":               delta(1000, 1009),
		"count down":              delta(1000, 1010, rec(1005, Available, 0, 0, false, 0)),
		"unknown record":          delta(1000, 1010, rec(1002, Available, 0, 0, false, 0)),
		"key changed":             delta(1000, 1010, rec(1004, Available, 0, 0, false, 0)),
		"done record revived":     delta(1000, 1010, rec(1007, Available, 1, 0, false, 0)),
		"done count changed":      delta(1000, 1010, rec(1007, Archived, 2, 0, false, 0)),
		"dead letter after":       delta(1000, 1010, rec(1007, Archived, 1, 0, false, flagDL)),
		"dead letter reason":      delta(1000, 1010, rec(1003, Archived, 1, 0, false, flagDL|flagDLLimit)),
		"start not at head":       delta(1001, 1010),
		"start past head":         delta(1000, 1010, rec(1000, Acknowledged, 1, 0, true, 0)),
		"start at a done record":  delta(1007, 1010),
		"empty window not at end": delta(1009, 1010),
	}
	for name, d := range bad {
		p := base()
		before := p.Snapshot()
		if err := Apply(p, d); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
		if !bytes.Equal(before, p.Snapshot()) {
			t.Errorf("%s: a refused delta changed the state", name)
		}
	}
}

// TestDecodeRefuses: truncations of valid encodings, and hand-made
// malformed ones, are refused with ErrCorrupt.
func TestDecodeRefuses(t *testing.T) {
	l, deltas := busyPartition(t)
	snap := l.Snapshot()
	for n := range len(snap) {
		if _, err := Restore(Config{}, snap[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("snapshot cut at %d: %v", n, err)
		}
	}
	for _, d := range deltas {
		for n := range len(d) {
			if err := Apply(New(Config{}, 0), d[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("delta cut at %d: %v", n, err)
			}
		}
	}
	if _, err := Restore(Config{}, append(slices.Clone(snap), 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trailing byte: %v", err)
	}
	hdr := func(kind byte, seq, start, window, n uint64) []byte {
		b := []byte{magic0, magic1, codecVersion, kind}
		for _, v := range []uint64{seq, start, window, n} {
			b = binary.AppendUvarint(b, v)
		}
		return b
	}
	bad := map[string][]byte{
		"magic":           append([]byte{'X'}, snap[1:]...),
		"version":         append([]byte{magic0, magic1, 2}, snap[3:]...),
		"kind":            append([]byte{magic0, magic1, codecVersion, 3}, snap[4:]...),
		"start overflow":  hdr(kindSnapshot, 0, 1<<63, 0, 0),
		"window past":     hdr(kindSnapshot, 0, 1<<62, 1<<62, 0),
		"huge count":      hdr(kindSnapshot, 0, 0, 10, 1<<40),
		"bad varint":      append(hdr(kindSnapshot, 0, 0, 10, 1), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
		"overlong varint": append([]byte{magic0, magic1, codecVersion, kindSnapshot, 0x80, 0x00}, 0, 0, 0),
		"record past":     append(hdr(kindSnapshot, 0, 0, 10, 1), 10, 0, 0, 0),
		"reserved flag":   append(hdr(kindSnapshot, 0, 0, 10, 1), 0, 0x40, 0, 0),
		"state 3":         append(hdr(kindSnapshot, 0, 0, 10, 1), 0, 3, 0, 0),
		"count":           append(hdr(kindSnapshot, 0, 0, 10, 1), 0, 0, 0x80, 0x80, 0x02, 0),
		"delay acquired":  append(hdr(kindSnapshot, 0, 0, 10, 1), 0, 1, 1, 5),
		"dl available":    append(hdr(kindSnapshot, 0, 0, 10, 1), 0, wireDL, 0, 0),
		"reason no dl":    append(hdr(kindSnapshot, 0, 0, 10, 1), 0, 4|wireDLLimit, 0, 0),
		"acquired 0":      append(hdr(kindSnapshot, 0, 0, 10, 1), 0, 1, 0, 0),
		"key cut":         append(hdr(kindSnapshot, 0, 0, 10, 1), 0, wireKey, 0, 0, 1, 2, 3),
		"head gap":        append(hdr(kindSnapshot, 0, 0, 10, 1), 1, 0, 0, 0),
		"head done":       append(hdr(kindSnapshot, 0, 0, 10, 1), 0, 2, 1, 0),
		"empty window":    hdr(kindSnapshot, 0, 0, 10, 0),
		"delta seq 0":     hdr(kindDelta, 0, 0, 0, 0),
	}
	for name, b := range bad {
		_, err := Restore(Config{}, b)
		errA := Apply(New(Config{}, 0), b)
		if !errors.Is(err, ErrCorrupt) || !errors.Is(errA, ErrCorrupt) {
			t.Errorf("%s: Restore %v, Apply %v", name, err, errA)
		}
	}
	ok := append(hdr(kindSnapshot, 7, 5, 10, 2), 0, 1, 1, 0, 3, 4|wireDL|wireDLLimit|wireKey, 5, 0, 1, 2, 3, 4, 5, 6, 7, 8)
	p, err := Restore(Config{}, ok)
	if err != nil {
		t.Fatal(err)
	}
	want := []DeadLetter{{9, 5, ReasonDeliveryLimit}}
	if p.Seq() != 7 || p.Start() != 5 || p.NextRead() != 15 || !slices.Equal(p.DeadLetters(), want) {
		t.Fatalf("restored %+v %v", p.Stats(), p.DeadLetters())
	}
	if !bytes.Equal(p.Snapshot(), ok) {
		t.Fatalf("re-encoded %x", p.Snapshot())
	}
}

// TestEncodingGolden pins the version-1 layout.
func TestEncodingGolden(t *testing.T) {
	p := New(Config{DeadLetter: true}, 300)
	p.Admit([]Record{{Offset: 300, Key: []byte("a")}, {Offset: 302}}, 303)
	want := []byte{
		'S', 'Q', 1, 2, // magic, version, delta
		1,          // seq
		0xac, 0x02, // start 300
		3,          // window
		2,          // records
		0, 8, 0, 0, // 300: gap 0, available|key, count 0, at 0
		0x8c, 0xec, 0x01, 0x86, 0x4c, 0xdc, 0x63, 0xaf, // FNV-1a("a") little-endian
		1, 0, 0, 0, // 302: gap 1, available, count 0, at 0
	}
	if got := p.TakeDelta(); !bytes.Equal(got, want) {
		t.Fatalf("delta\n got %x\nwant %x", got, want)
	}
	p.Acquire("m", 1, time.UnixMilli(0))
	if err := p.Ack("m", []AckBatch{{300, 300, AckReject}}, time.UnixMilli(0)); err != nil {
		t.Fatal(err)
	}
	want = []byte{'S', 'Q', 1, 1, 2, 0xac, 0x02, 3, 2,
		0, 4 | 16 | 8, 1, 0, 0x8c, 0xec, 0x01, 0x86, 0x4c, 0xdc, 0x63, 0xaf,
		1, 0, 0, 0}
	p.TakeDelta()
	if got := p.Snapshot(); !bytes.Equal(got, want) {
		t.Fatalf("snapshot\n got %x\nwant %x", got, want)
	}
}

// FuzzApply: arbitrary bytes never panic Apply or Restore; whatever
// Restore accepts re-encodes to the same bytes and satisfies the
// invariants, and Apply leaves a valid state whether it succeeds or not.
func FuzzApply(f *testing.F) {
	l, deltas := busyPartition(f)
	f.Add(l.Snapshot())
	for _, d := range deltas {
		f.Add(d)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := Restore(Config{KeyOrdering: true}, b); err == nil {
			checkInvariants(t, p)
			if !bytes.Equal(p.Snapshot(), b) {
				t.Fatalf("re-encoded differently:\n in %x\nout %x", b, p.Snapshot())
			}
			p.Expire(t0)
			p.Acquire("m", 100, t0.Add(time.Hour))
			checkInvariants(t, p)
		}
		targets := []*Partition{New(Config{}, 0)}
		if len(deltas) > 0 {
			q := New(Config{}, 0)
			for _, d := range deltas[:len(deltas)-1] { // next expected: the last delta's seq
				if err := Apply(q, d); err != nil {
					t.Fatal(err)
				}
			}
			targets = append(targets, q)
		}
		for _, p := range targets {
			before := p.Snapshot()
			if err := Apply(p, b); err != nil {
				if !bytes.Equal(before, p.Snapshot()) {
					t.Fatalf("a refused delta changed the state: %v", err)
				}
			}
			checkInvariants(t, p)
			if _, err := Restore(Config{}, p.Snapshot()); err != nil {
				t.Fatalf("state after Apply does not restore: %v", err)
			}
		}
	})
}
