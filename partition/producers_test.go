package partition

import (
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"testing"

	"github.com/sluicemq/sluice/log/batch"
)

// goldenTable is a producer table's encoding as replication's snapshot
// manifests embed it, written by an earlier build (the one that also had
// the standalone mode): producer 3 with one batch at offset 13, producer 7
// (epoch 2) with batches at 10 and 14, least recently used first.
const goldenTable = "534c5053" + "01000000" + "ffffffffffffff7f" + "02000000" + // magic, version, covered, count
	"0300000000000000" + "0000" + "01" + "00000000" + "00000000" + "0d00000000000000" + // pid 3
	"0700000000000000" + "0200" + "02" + "00000000" + "02000000" + "0a00000000000000" + // pid 7
	"03000000" + "04000000" + "0e00000000000000" +
	"6d7f23c4" // CRC-32C

// TestProducerTableEncoding: the encoding stays byte for byte what
// manifests already on disk hold, and decodes back to the same table.
func TestProducerTableEncoding(t *testing.T) {
	tb := newProducers(10)
	for _, h := range []batch.Header{
		{ProducerID: 7, ProducerEpoch: 2, BaseSequence: 0, LastOffsetDelta: 2, BaseOffset: 10},
		{ProducerID: 3, ProducerEpoch: 0, BaseSequence: 0, LastOffsetDelta: 0, BaseOffset: 13},
		{ProducerID: 7, ProducerEpoch: 2, BaseSequence: 3, LastOffsetDelta: 1, BaseOffset: 14},
	} {
		tb.record(h)
	}
	if got := hex.EncodeToString(tb.encode()); got != goldenTable {
		t.Fatalf("encoding changed:\n got %s\nwant %s", got, goldenTable)
	}
	golden, _ := hex.DecodeString(goldenTable)
	back := newProducers(10)
	if err := back.decode(golden); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(back.encode()); got != goldenTable {
		t.Fatalf("decode then encode:\n got %s\nwant %s", got, goldenTable)
	}

	for name, mutate := range map[string]func(b []byte){
		"crc":              func(b []byte) { b[len(b)-1] ^= 1 },
		"magic":            func(b []byte) { b[0] = 'X' },
		"version":          func(b []byte) { b[4] = 2 },
		"negative covered": func(b []byte) { b[15] = 0xff },
	} {
		b := append([]byte(nil), golden...)
		mutate(b)
		if name != "crc" {
			fixTableCRC(b) // so that the check named is the one refusing
		}
		if err := newProducers(10).decode(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func fixTableCRC(b []byte) {
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], crcTable))
}
