package replication

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

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
	if err := ld.r.ProposeShare("workers", sp.TakeDelta()); err != nil {
		t.Fatal(err)
	}
	if err := sp.Ack("m1", []share.AckBatch{{First: 0, Last: 1, Type: share.AckAccept}}, now); err != nil {
		t.Fatal(err)
	}
	if err := ld.r.ProposeShare("workers", sp.TakeDelta()); err != nil {
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
	for _, nd := range c.nodes {
		if err := nd.r.Raft().Snapshot().Error(); err != nil {
			t.Fatal(err)
		}
		c.stop(nd)
	}
	for _, nd := range c.nodes {
		c.start(nd)
	}
	check("after a restart from snapshots")
}
