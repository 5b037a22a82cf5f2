package log

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/log/vfs"
)

// testBatch builds a valid uncompressed RecordBatch v2 of n records, each
// with a value of valueSize bytes, record i stamped ts+i. It uses franz-go's
// kmsg for the batch header so the log is tested against an independent encoder.
func testBatch(n int, ts int64, valueSize int) []byte {
	var recs []byte
	for i := 0; i < n; i++ {
		var r []byte
		r = append(r, 0)                     // attributes
		r = binary.AppendVarint(r, int64(i)) // timestamp delta
		r = binary.AppendVarint(r, int64(i)) // offset delta
		r = binary.AppendVarint(r, -1)       // null key
		r = binary.AppendVarint(r, int64(valueSize))
		r = append(r, bytes.Repeat([]byte{byte('a' + i%26)}, valueSize)...)
		r = binary.AppendVarint(r, 0) // no headers
		recs = binary.AppendVarint(recs, int64(len(r)))
		recs = append(recs, r...)
	}
	b := kmsg.RecordBatch{
		Magic: 2, LastOffsetDelta: int32(n - 1), FirstTimestamp: ts, MaxTimestamp: ts + int64(n-1),
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(n), Records: recs,
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// memOpts returns options over a fresh in-memory filesystem.
func memOpts() (Options, *vfs.Mem) {
	m := vfs.NewMem()
	return Options{FS: m}, m
}

func mustOpen(t testing.TB, dir string, o Options) *Log {
	t.Helper()
	l, err := Open(dir, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

func mustAppend(t testing.TB, l *Log, b []byte) int64 {
	t.Helper()
	off, err := l.Append(b)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return off
}

// readAllBatches reads the whole log from offset from, in small steps.
func readAllBatches(t testing.TB, l *Log, from int64) [][]byte {
	t.Helper()
	var out [][]byte
	for from < l.EndOffset() {
		res, err := l.Read(from, 1, -1)
		if err != nil {
			t.Fatalf("read at %d: %v", from, err)
		}
		if len(res.Batches) == 0 {
			t.Fatalf("read at %d returned nothing before the end %d", from, l.EndOffset())
		}
		out = append(out, res.Batches...)
		from = res.Next
	}
	return out
}
