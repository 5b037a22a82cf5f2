package group

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/log/batch"
)

// FuzzGroupRecord feeds arbitrary __consumer_offsets records (key, value,
// and whether the value is null) to decodeRecord and to the loader's
// replay. Neither may panic; decoding may allocate no more than kmsg's
// per-element struct size times the input (kbin caps array counts at the
// bytes left); a key that decodes re-encodes to the same bytes, but for
// trailing bytes, which kmsg (as Kafka's readers) ignores; a value that
// decodes re-encodes to a value that decodes alike.
func FuzzGroupRecord(f *testing.F) {
	tp := topicPartition{"orders", 3}
	f.Add(offsetKey("g", tp), offsetValue(committed{offset: 42, leaderEpoch: 5, metadata: "m", timestamp: 1_700_000_000_000}), false)
	f.Add(offsetKey("g", tp), []byte(nil), true)
	g := newGroup("g", time.UnixMilli(1_700_000_000_000))
	g.protocolType, g.protocol, g.generation, g.leader = "consumer", "range", 3, "m1"
	g.members["m1"] = &member{id: "m1", clientID: "c", clientHost: "/127.0.0.1", instanceID: "i1",
		sessionTimeout: 10 * time.Second, rebalanceTimeout: time.Minute,
		protocols: []protocol{{name: "range", metadata: []byte{0, 1, 2}}}, assignment: []byte{9, 9}}
	f.Add(groupKey("g"), groupValue(g), false)
	f.Add(groupKey("g"), []byte(nil), true)
	old := kmsg.OffsetCommitKey{Version: 0, Group: "g", Topic: "t", Partition: 1}
	f.Add(old.AppendTo(nil), (&kmsg.OffsetCommitValue{Version: 1, Offset: 7}).AppendTo(nil), false)
	f.Add([]byte{0, 9}, []byte{0}, false)
	s := &shard{c: &Coordinator{lg: zerolog.Nop()}}
	f.Fuzz(func(t *testing.T, key, value []byte, null bool) {
		if null {
			value = nil
		} else if value == nil {
			value = []byte{}
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r, err := decodeRecord(key, value)
		runtime.ReadMemStats(&after)
		// A group member is the largest element kmsg allocates per byte.
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(1<<20+256*(len(key)+len(value))) {
			t.Fatalf("decode allocated %d bytes for %d", alloc, len(key)+len(value))
		}
		groups := map[string]*group{}
		s.replay(groups, batch.Record{Key: key, Value: value}, 0)
		if err != nil {
			return
		}
		if !r.isGroup {
			k := kmsg.OffsetCommitKey{Version: int16(key[0])<<8 | int16(key[1]), Group: r.group, Topic: r.tp.topic, Partition: r.tp.partition}
			if re := k.AppendTo(nil); !bytes.HasPrefix(key, re) {
				t.Fatalf("offset key re-encoded as %x, was %x", re, key)
			}
			if r.offset != nil {
				var v kmsg.OffsetCommitValue
				if err := v.ReadFrom(r.offset.AppendTo(nil)); err != nil {
					t.Fatalf("offset value re-encoded does not decode: %v", err)
				}
			}
			return
		}
		if re := (&kmsg.GroupMetadataKey{Version: 2, Group: r.group}).AppendTo(nil); !bytes.HasPrefix(key, re) {
			t.Fatalf("group key re-encoded as %x, was %x", re, key)
		}
		if r.meta != nil {
			var v kmsg.GroupMetadataValue
			if err := v.ReadFrom(r.meta.AppendTo(nil)); err != nil || len(v.Members) != len(r.meta.Members) {
				t.Fatalf("group value re-encoded does not decode alike: %v", err)
			}
		}
	})
}
