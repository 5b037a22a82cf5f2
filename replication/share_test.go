package replication

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/partition/share"
)

func TestShareStateCommand(t *testing.T) {
	cmd := appendShareState(nil, "workers", []byte("delta"))
	g, d, ok := parseShareState(cmd)
	if !ok || g != "workers" || string(d) != "delta" {
		t.Fatalf("round trip: %q %q %v", g, d, ok)
	}
	for _, bad := range [][]byte{nil, {CmdShareState}, {CmdShareState, 0xff}, {CmdShareState, 9, 'a'}, {CmdProduce, 1, 'a'}} {
		if _, _, ok := parseShareState(bad); ok {
			t.Errorf("parsed % x", bad)
		}
	}
}

func TestShareResetCommand(t *testing.T) {
	for _, delta := range [][]byte{[]byte("delta"), nil} {
		cmd := appendShareReset(nil, "workers", delta)
		g, d, ok := parseShareReset(cmd)
		if !ok || g != "workers" || string(d) != string(delta) {
			t.Fatalf("round trip: %q %q %v", g, d, ok)
		}
		if _, _, ok := parseShareState(cmd); ok {
			t.Fatal("a reset parsed as a delta")
		}
	}
	for _, bad := range [][]byte{nil, {CmdShareReset}, {CmdShareReset, 0x80, 0x00}, {CmdShareReset, 9, 'a'}, appendShareState(nil, "w", nil)} {
		if _, _, ok := parseShareReset(bad); ok {
			t.Errorf("parsed % x", bad)
		}
	}
}

func TestManifestCarriesShareStates(t *testing.T) {
	m := manifest{index: 9, term: 2, hw: 10, logStart: 1, next: 10, producers: []byte("SLPS..."),
		shares: map[string][]byte{"a": []byte("one"), "bb": {}, "c": []byte("three")}}
	got, err := decodeManifest(m.encode())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.shares) != 3 || string(got.shares["a"]) != "one" || string(got.shares["c"]) != "three" || len(got.shares["bb"]) != 0 {
		t.Fatalf("shares %q", got.shares)
	}
	if string(got.producers) != "SLPS..." || got.index != 9 {
		t.Fatalf("other fields: %+v", got)
	}
	// A version 2 manifest (no share states) still reads.
	v2 := manifest{index: 9, term: 2, hw: 10, next: 10, producers: []byte("p")}.encode()
	v2 = v2[:len(v2)-4-4] // drop the share count and the CRC
	v2[4] = 2
	v2 = appendCRC(v2)
	if got, err := decodeManifest(v2); err != nil || string(got.producers) != "p" || got.shares != nil {
		t.Fatalf("version 2: %+v %v", got, err)
	}
	// Lengths that run past the bytes are refused, whatever the CRC says.
	enc := m.encode()
	body := enc[:len(enc)-4]
	for _, cut := range []int{1, 3, 6, 9} {
		b := appendCRC(bytes.Clone(body[:len(body)-cut]))
		if _, err := decodeManifest(b); !errors.Is(err, ErrSnapshot) {
			t.Errorf("share states cut by %d bytes: %v", cut, err)
		}
	}
	empty := manifest{index: 1, term: 1, hw: 1, next: 1}.encode()
	huge := appendCRC(append(bytes.Clone(empty[:manifestFixed]), 0xff, 0xff, 0xff, 0x7f))
	if _, err := decodeManifest(huge); !errors.Is(err, ErrSnapshot) {
		t.Errorf("a count of 2^31 states: %v", err)
	}
}

func appendCRC(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func waitTrue(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReplicaShareState: a leader replicates a share group's deltas; every
// replica holds the same committed state, also after a restart from a
// snapshot.
func TestReplicaShareState(t *testing.T) {
	c := newReplicaCluster(t, 3, testPartitionConfig(), fastTimings)
	ld := c.leader()
	for i := range 10 {
		if _, err := ld.r.Produce(idem(t, fmt.Sprintf("r%d", i), -1, 0, 0, 1, 100), -1)(); err != nil {
			t.Fatal(err)
		}
	}
	sp := share.New(share.DefaultConfig(), 0)
	var recs []share.Record
	for i := range 10 {
		recs = append(recs, share.Record{Offset: int64(i)})
	}
	now := time.Unix(1000, 0)
	sp.Admit(recs, 10)
	sp.Acquire("m1", 4, now)
	_, term := ld.r.Leader()
	if err := ld.r.ProposeShare("workers", term, sp.TakeDelta()); err != nil {
		t.Fatal(err)
	}
	// A working copy of another term is refused: its deltas would commit
	// beside the current copy's.
	if err := ld.r.ProposeShare("workers", term-1, []byte("never decoded")); !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Fatalf("propose in an earlier term: %v, want NOT_LEADER_OR_FOLLOWER", err)
	}
	if err := sp.Ack("m1", []share.AckBatch{{First: 0, Last: 1, Type: share.AckAccept}}, now); err != nil {
		t.Fatal(err)
	}
	if err := ld.r.ProposeShare("workers", term, sp.TakeDelta()); err != nil {
		t.Fatal(err)
	}
	want := sp.Stats()
	check := func(when string) {
		t.Helper()
		for _, nd := range c.nodes {
			b := nd.r.Partition().ShareState("workers")
			if b == nil {
				t.Fatalf("%s %s: no share state", nd.id, when)
			}
			got, err := share.Restore(share.DefaultConfig(), b)
			if err != nil {
				t.Fatal(err)
			}
			st := got.Stats()
			if st.Start != want.Start || st.NextRead != want.NextRead || st.Acknowledged+st.Archived != want.Acknowledged+want.Archived || st.Acquired != want.Acquired {
				t.Fatalf("%s %s: %+v, leader %+v", nd.id, when, st, want)
			}
		}
	}
	waitTrue(t, "every replica applied", func() bool {
		for _, nd := range c.nodes {
			if nd.r.Partition().ShareState("workers") == nil {
				return false
			}
			if _, hw := nd.r.FSM().Applied(); hw != 10 {
				return false
			}
		}
		return true
	})
	// Followers apply asynchronously: wait until they match.
	waitTrue(t, "followers caught up", func() bool {
		for _, nd := range c.nodes {
			got, _ := share.Restore(share.DefaultConfig(), nd.r.Partition().ShareState("workers"))
			if got == nil || got.Seq() != sp.Seq() {
				return false
			}
		}
		return true
	})
	check("after apply")
	c.restartFromSnapshots()
	check("after a restart from snapshots")
}

// TestReplicaShareReset: an operator's reset moves a share group's window
// back on every replica, the leader's deltas go on from it, a delete
// removes the state everywhere, and both survive a restart from
// snapshots.
func TestReplicaShareReset(t *testing.T) {
	c := newReplicaCluster(t, 3, testPartitionConfig(), fastTimings)
	ld := c.leader()
	for i := range 10 {
		if _, err := ld.r.Produce(idem(t, fmt.Sprintf("r%d", i), -1, 0, 0, 1, 100), -1)(); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Unix(1000, 0)
	consume := func(group string, sp *share.Partition) {
		t.Helper()
		var recs []share.Record
		for i := sp.NextRead(); i < 10; i++ {
			recs = append(recs, share.Record{Offset: i})
		}
		sp.Admit(recs, 10)
		rs := sp.Acquire("m1", 100, now)
		if err := sp.Ack("m1", []share.AckBatch{{First: rs[0].First, Last: rs[len(rs)-1].Last, Type: share.AckAccept}}, now); err != nil {
			t.Fatal(err)
		}
		_, term := ld.r.Leader()
		if err := ld.r.ProposeShare(group, term, sp.TakeDelta()); err != nil {
			t.Fatal(err)
		}
	}
	consume("workers", share.New(share.DefaultConfig(), 0))
	consume("others", share.New(share.DefaultConfig(), 0))
	// Back to 4: the leader's next working copy starts from the reset.
	sp := share.New(share.DefaultConfig(), 4)
	if err := ld.r.ProposeShareReset("workers", sp.TakeDelta()); err != nil {
		t.Fatal(err)
	}
	consume("workers", sp)
	if err := ld.r.ProposeShareReset("others", nil); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		waitTrue(t, "every replica "+when, func() bool {
			for _, nd := range c.nodes {
				st, ok := nd.r.Partition().ShareStats("workers")
				if !ok || st.Seq != sp.Seq() || nd.r.Partition().ShareState("others") != nil {
					return false
				}
			}
			return true
		})
		for _, nd := range c.nodes {
			if st, _ := nd.r.Partition().ShareStats("workers"); st.Start != 10 || st.Seq != 2 {
				t.Fatalf("%s %s: %+v", nd.id, when, st)
			}
		}
	}
	check("after apply")
	c.restartFromSnapshots()
	check("after a restart from snapshots")
	for _, nd := range c.nodes {
		if !nd.r.IsLeader() {
			if err := nd.r.ProposeShareReset("workers", nil); !errors.Is(err, kerr.NotLeaderForPartition) {
				t.Fatalf("a follower proposed a reset: %v", err)
			}
		}
	}
}
