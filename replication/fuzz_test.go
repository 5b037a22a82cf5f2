package replication

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sluicemq/sluice/log/batch"
	"github.com/sluicemq/sluice/log/vfs"
	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/partition/share"
)

// fuzzFSM is a partition FSM over an in-memory log that has applied a few
// real commands: plain and idempotent produce, a share-group delta and a
// DeleteRecords. It returns the FSM and the commands, as seeds.
func fuzzFSM(t testing.TB) (*FSM, *LogStore, [][]byte) {
	t.Helper()
	p, err := partition.OpenReplicated("/p", "t", 0, testPartitionConfig(), partition.Options{FS: vfs.NewMem(), Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Log().Close() })
	store := NewLogStore(p.Log())
	f := NewPartitionFSM(store, p)
	sp := share.New(share.DefaultConfig(), 0)
	sp.Admit([]share.Record{{Offset: 0}, {Offset: 1}, {Offset: 2}}, 3)
	sp.Acquire("m1", 2, time.Unix(1000, 0))
	cmds := [][]byte{
		produce(t, "plain", 2, 10),
		AppendProduce(nil, idem(t, "idem", 7, 0, 0, 1, 10)),
		appendShareState(nil, "workers", sp.TakeDelta()),
		appendShareReset(nil, "workers", share.New(share.DefaultConfig(), 1).TakeDelta()),
		appendShareReset(nil, "others", nil),
		appendDeleteBefore(nil, CmdDeleteRecords, 1),
		appendDeleteBefore(nil, CmdRetention, 2),
	}
	for i, c := range cmds {
		if _, err := fuzzApply(f, store, uint64(i+1), c); err != nil {
			t.Fatal(err)
		}
	}
	return f, store, cmds
}

// fuzzApply stores cmd at index as raft would (leader or follower: the
// log refuses what it cannot store, which then never commits) and applies
// the entry as read back, the way a restarted replica replays it.
func fuzzApply(f *FSM, store *LogStore, index uint64, cmd []byte) (any, error) {
	if err := store.StoreLogs([]*raft.Log{{Index: index, Term: 1, Type: raft.LogCommand, Data: bytes.Clone(cmd)}}); err != nil {
		return nil, err
	}
	var l raft.Log
	if err := store.GetLog(index, &l); err != nil {
		return nil, err
	}
	return f.ApplyBatch([]*raft.Log{&l})[0], nil
}

// FuzzCommand: the raft command parsers never panic, what they accept
// re-encodes to the same bytes, and a partition FSM applying any command
// a leader could propose and its log stored never panics, keeps log start <= high watermark,
// never moves either backwards, and can still be snapshotted into a
// manifest that decodes.
func FuzzCommand(f *testing.F) {
	_, _, cmds := fuzzFSM(f)
	for _, c := range cmds {
		f.Add(c)
	}
	f.Add([]byte{CmdShareState, 0x80, 0x00})                   // overlong uvarint
	f.Add([]byte{CmdShareReset, 0x80, 0x00})                   // overlong uvarint
	f.Add([]byte{CmdDeleteRecords, 0x80, 0, 0, 0, 0, 0, 0, 0}) // negative offset
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if off, ok := parseDeleteBefore(data); ok {
			if re := appendDeleteBefore(nil, data[0], off); !bytes.Equal(re, data) {
				t.Fatalf("delete-before %d re-encoded as % x, was % x", off, re, data)
			}
		}
		if g, d, ok := parseShareState(data); ok {
			if re := appendShareState(nil, g, d); !bytes.Equal(re, data) {
				t.Fatalf("share state re-encoded as % x, was % x", re, data)
			}
		}
		if g, d, ok := parseShareReset(data); ok {
			if re := appendShareReset(nil, g, d); !bytes.Equal(re, data) {
				t.Fatalf("share reset re-encoded as % x, was % x", re, data)
			}
		}
		if isProduce(data) {
			// The leader validates a batch before proposing it (Replica.Produce).
			if _, err := batch.Validate(data[1:], batch.ValidateOptions{}); err != nil {
				return
			}
		}
		fsm, store, cmds := fuzzFSM(t)
		idx0, hw0 := fsm.Applied()
		start0 := fsm.part.LogStartOffset()
		if _, err := fuzzApply(fsm, store, idx0+1, data); err != nil {
			return // never committed
		}
		idx, hw := fsm.Applied()
		start := fsm.part.LogStartOffset()
		if idx != idx0+1 || hw < hw0 || start < start0 || start > hw {
			t.Fatalf("applied %d hw %d start %d, before %d %d %d", idx, hw, start, idx0, hw0, start0)
		}
		snap, err := fsm.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeManifest(snap.(*manifestSnapshot).m.encode()); err != nil {
			t.Fatalf("the state after the command does not snapshot: %v", err)
		}
		// The replica goes on applying.
		if _, err := fuzzApply(fsm, store, idx+1, cmds[0]); err != nil {
			t.Fatalf("produce after the command: %v", err)
		}
	})
}

// FuzzManifest: decodeManifest never panics nor allocates beyond a small
// multiple of its input; a version 3 manifest it accepts re-encodes to the
// same bytes (but for the reserved bytes), a version 2 one to the same
// fields; and a partition FSM adopting an accepted manifest (producer
// table and share states decoded by their packages) never panics, and
// when it succeeds its next snapshot decodes again.
func FuzzManifest(f *testing.F) {
	fsm, _, _ := fuzzFSM(f)
	snap, err := fsm.Snapshot()
	if err != nil {
		f.Fatal(err)
	}
	// Seeds and inputs are manifests without their CRC, which the target
	// appends: the contents are judged, not the checksum.
	noCRC := func(b []byte) []byte { return b[:len(b)-4] }
	f.Add(noCRC(snap.(*manifestSnapshot).m.encode()))
	v2 := manifest{index: 9, term: 2, hw: 10, logStart: 3, next: 10, producers: fsm.part.ProducerState()}.encode()
	v2 = v2[:len(v2)-8] // no share count, no CRC
	v2[4] = 2
	f.Add(v2)
	f.Add(noCRC(manifest{index: 1, term: 1, hw: 1, next: 1}.encode()))
	f.Add(noCRC(manifest{index: 1, term: 1, hw: 1, next: 1, shares: map[string][]byte{"a": {}, "b": []byte("x")}}.encode()))
	f.Fuzz(func(t *testing.T, body []byte) {
		b := appendCRC(bytes.Clone(body))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m, err := decodeManifest(b)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(1<<20+8*len(b)) {
			t.Fatalf("decode allocated %d bytes for %d", alloc, len(b))
		}
		if err != nil {
			return
		}
		re := m.encode()
		switch b[4] {
		case 3:
			want := bytes.Clone(b[:len(b)-4])
			clear(want[5:8])
			if want = appendCRC(want); !bytes.Equal(re, want) {
				t.Fatalf("re-encoded differently:\n in %x\nout %x", b, re)
			}
		case 2:
			m2, err := decodeManifest(re)
			if err != nil || m2.index != m.index || m2.term != m.term || m2.hw != m.hw || m2.logStart != m.logStart ||
				m2.next != m.next || !bytes.Equal(m2.producers, m.producers) || len(m2.shares) != 0 {
				t.Fatalf("version 2 re-encoded as %+v (%v), was %+v", m2, err, m)
			}
		}
		p, err := partition.OpenReplicated("/p", "t", 0, testPartitionConfig(), partition.Options{FS: vfs.NewMem(), Now: fixedNow})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Log().Close()
		g := NewPartitionFSM(NewLogStore(p.Log()), p)
		if err := g.adopt(m); err != nil {
			return
		}
		snap, err := g.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeManifest(snap.(*manifestSnapshot).m.encode()); err != nil {
			t.Fatalf("adopted, but its snapshot does not decode: %v", err)
		}
	})
}
