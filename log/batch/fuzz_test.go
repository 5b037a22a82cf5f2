package batch

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// fuzzLimits keeps decompression small so the fuzzer stays fast.
var fuzzLimits = Limits{MaxSize: 1 << 20, MaxRatio: -1}

// checkValidate runs every validation mode on b and checks the invariants
// that tie them, Records, SplitBatches and kmsg together.
func checkValidate(t *testing.T, b []byte) {
	h, err := Validate(b, ValidateOptions{})
	hc, errC := Validate(b, ValidateOptions{AllowCompacted: true})
	_, errD := Validate(b, ValidateOptions{Deep: true, Limits: fuzzLimits})
	_, errDC := Validate(b, ValidateOptions{Deep: true, AllowCompacted: true, Limits: fuzzLimits})
	for _, e := range []error{err, errC, errD, errDC} {
		if e != nil && !wrapsSentinel(e) {
			t.Fatalf("error wraps no sentinel: %v", e)
		}
	}
	if err == nil && errC != nil {
		t.Fatalf("strict accepted but compacted rejected: %v", errC)
	}
	if errD == nil && err != nil {
		t.Fatalf("deep accepted but shallow rejected: %v", err)
	}
	if errDC == nil && errC != nil {
		t.Fatalf("deep compacted accepted but shallow compacted rejected: %v", errC)
	}
	if errC != nil {
		return
	}
	if err == nil && h != hc {
		t.Fatalf("headers differ between modes: %+v vs %+v", h, hc)
	}
	ph, perr := ParseHeader(b)
	if perr != nil || ph != hc {
		t.Fatalf("ParseHeader disagrees with Validate: %+v, %v", ph, perr)
	}
	split, serr := SplitBatches(b)
	if serr != nil || len(split) != 1 || len(split[0]) != len(b) {
		t.Fatalf("SplitBatches of a valid batch: %d parts, %v", len(split), serr)
	}
	var rb kmsg.RecordBatch
	if kerr := rb.ReadFrom(b); kerr != nil || rb.NumRecords != hc.RecordCount || uint32(rb.CRC) != hc.CRC {
		t.Fatalf("kmsg disagrees on a valid batch: %v", kerr)
	}

	// Records must accept what (deep) validation accepted and yield
	// exactly recordCount records.
	if hc.Codec() == CodecNone || errDC == nil {
		recs, rerr := collect(b, fuzzLimits)
		if rerr != nil {
			t.Fatalf("Validate accepted but Records failed: %v", rerr)
		}
		if len(recs) != int(hc.RecordCount) {
			t.Fatalf("Records yielded %d records, header says %d", len(recs), hc.RecordCount)
		}
		for i, r := range recs {
			strict := errD == nil || (err == nil && hc.Codec() == CodecNone)
			if strict && r.OffsetDelta != int32(i) {
				t.Fatalf("strictly valid batch has record %d at offsetDelta %d", i, r.OffsetDelta)
			}
		}
	} else {
		// Shallow-accepted compressed batch: Records may fail, but only
		// with a sentinel.
		if rerr := Records(b, fuzzLimits, nil); rerr != nil && !wrapsSentinel(rerr) {
			t.Fatalf("Records error wraps no sentinel: %v", rerr)
		}
	}
}

// FuzzValidate (seeds in testdata/fuzz/FuzzValidate) feeds arbitrary bytes to Validate (no panics, consistent
// modes). Each input is also tried with its length and CRC repaired, so
// mutations reach the record walk instead of stopping at the CRC.
func FuzzValidate(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		checkValidate(t, b)
		if len(b) >= HeaderSize {
			c := bytes.Clone(b)
			fixLengthAndCRC(c)
			checkValidate(t, c)
		}
		_ = Records(b, fuzzLimits, func(Record) error { return nil })
		for _, err := range Batches(b) {
			if err != nil && !wrapsSentinel(err) {
				t.Fatalf("Batches error wraps no sentinel: %v", err)
			}
		}
	})
}

// FuzzRecords (seeds in testdata/fuzz/FuzzRecords) feeds arbitrary bytes to Records. Whatever it accepts must
// have the header's record count, survive a rebuild with Build to the same
// records, and, when uncompressed, match kmsg's reading record by record.
func FuzzRecords(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		checkRecords(t, b)
		if len(b) >= HeaderSize {
			c := bytes.Clone(b)
			fixLengthAndCRC(c)
			checkRecords(t, c)
		}
	})
}

// checkRecords is the property FuzzRecords checks for one input.
func checkRecords(t *testing.T, b []byte) {
	recs, err := collect(b, fuzzLimits)
	if err != nil {
		if !wrapsSentinel(err) {
			t.Fatalf("Records error wraps no sentinel: %v", err)
		}
		return
	}
	h, herr := ParseHeader(b)
	if herr != nil {
		t.Fatalf("Records accepted a batch whose header does not parse: %v", herr)
	}
	if len(recs) != int(h.RecordCount) {
		t.Fatalf("Records yielded %d records, header says %d", len(recs), h.RecordCount)
	}

	opts := BuildOptions{
		BaseOffset: h.BaseOffset, PartitionLeaderEpoch: h.PartitionLeaderEpoch,
		BaseTimestamp: h.BaseTimestamp, Transactional: h.IsTransactional(), Control: h.IsControl(),
		Producer:         &ProducerInfo{ID: h.ProducerID, Epoch: h.ProducerEpoch, BaseSequence: h.BaseSequence},
		KeepOffsetDeltas: true, LastOffsetDelta: h.LastOffsetDelta,
	}
	rebuilt, err := Build(recs, opts)
	if errors.Is(err, ErrBadTimestamp) {
		return // baseTimestamp + a huge delta overflows the computed maxTimestamp
	}
	if err != nil {
		t.Fatalf("Build of accepted records: %v", err)
	}
	if _, err := Validate(rebuilt, ValidateOptions{AllowCompacted: true}); err != nil {
		t.Fatalf("rebuilt batch does not validate: %v", err)
	}
	again, err := collect(rebuilt, fuzzLimits)
	if err != nil {
		t.Fatalf("Records of rebuilt batch: %v", err)
	}
	requireSameRecords(t, again, recs)

	if h.Codec() != CodecNone {
		return
	}
	data := b[HeaderSize:]
	for i, r := range recs {
		var kr kmsg.Record
		if err := kr.ReadFrom(data); err != nil {
			t.Fatalf("kmsg rejects record %d we accepted: %v", i, err)
		}
		if d := recordDiff(fromKmsgRecord(kr), r); d != "" {
			t.Fatalf("kmsg reads record %d differently: %s", i, d)
		}
		_, n := readVarint(data)
		data = data[n+int(kr.Length):]
	}
}

// seed is one named fuzz seed.
type seed struct {
	name string
	data []byte
}

// seedBatches returns valid batches with each codec plus a few broken
// ones, written to the checked-in seed corpus (testdata/fuzz) by
// TestFuzzCorpus -update-corpus.
func seedBatches(tb testing.TB) []seed {
	tb.Helper()
	recs := []Record{
		{Key: []byte("k0"), Value: []byte("hello"), Headers: []RecordHeader{{Key: "h", Value: []byte("v")}, {Key: "n"}}},
		{Key: nil, Value: []byte("world"), TimestampDelta: 5},
		{Key: []byte{}, Value: nil, TimestampDelta: -3},
	}
	var seeds []seed
	for _, c := range allCodecs {
		seeds = append(seeds, seed{"valid_" + c.String(), mustBuild(tb, recs, BuildOptions{Codec: c, BaseTimestamp: 1_700_000_000_000})})
	}
	txn := mustBuild(tb, recs[:1], BuildOptions{Transactional: true, Producer: &ProducerInfo{ID: 7, Epoch: 1, BaseSequence: 10}})
	empty := mustBuild(tb, nil, BuildOptions{})
	compacted := mustBuild(tb, []Record{{OffsetDelta: 1, Value: []byte("x")}, {OffsetDelta: 4}}, BuildOptions{KeepOffsetDeltas: true, LastOffsetDelta: 6})
	lat := mustBuild(tb, recs, BuildOptions{BaseTimestamp: 10})
	if err := SetLogAppendTime(lat, 5); err != nil {
		tb.Fatal(err)
	}
	badCRC := bytes.Clone(seeds[0].data)
	badCRC[20] ^= 1
	badCount := bytes.Clone(seeds[0].data)
	badCount[60]++
	fixLengthAndCRC(badCount)
	hugeVarint := goodHeader(1).encode([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0})
	badMagic := bytes.Clone(seeds[0].data)
	badMagic[16] = 1
	seeds = append(seeds,
		seed{"valid_transactional", txn},
		seed{"valid_empty", empty},
		seed{"valid_compacted", compacted},
		seed{"valid_log_append_time", lat},
		seed{"bad_crc", badCRC},
		seed{"bad_count", badCount},
		seed{"bad_huge_varint", hugeVarint},
		seed{"bad_magic", badMagic},
		seed{"bad_truncated", seeds[0].data[:len(seeds[0].data)-4]},
		seed{"two_batches", append(bytes.Clone(seeds[0].data), seeds[1].data...)},
		seed{"short", []byte("\x00\x00\x00")},
	)
	return seeds
}

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz seed corpora from seedBatches")

// TestFuzzCorpus checks that every seed is present in the checked-in corpus
// (go test runs those files through the fuzz targets) and rewrites them
// with -update-corpus.
func TestFuzzCorpus(t *testing.T) {
	for _, target := range []string{"FuzzValidate", "FuzzRecords"} {
		dir := filepath.Join("testdata", "fuzz", target)
		for _, s := range seedBatches(t) {
			path := filepath.Join(dir, s.name)
			content := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", s.data)
			if *updateCorpus {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, content, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if errors.Is(err, os.ErrNotExist) {
				t.Errorf("missing seed %s; run go test -run TestFuzzCorpus -update-corpus", path)
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			// Compressed seeds may legitimately differ after a
			// compression library upgrade; only check they still parse.
			if !bytes.HasPrefix(got, []byte("go test fuzz v1\n[]byte(")) {
				t.Errorf("%s is not a fuzz corpus file", path)
			}
		}
	}
}

// FuzzDecompress feeds arbitrary payloads to every codec: no panics, only
// sentinel errors, and never more output than the limits allow.
func FuzzDecompress(f *testing.F) {
	src := testPayload(3000)
	for _, c := range allCodecs {
		z, err := Compress(c, src)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(c), z)
	}
	f.Add(uint8(CodecSnappy), []byte(nil))
	f.Fuzz(func(t *testing.T, codec uint8, data []byte) {
		limits := Limits{MaxSize: 256 << 10, MaxRatio: 64}
		c := Codec(codec % 8)
		out, err := Decompress(c, data, limits)
		if err != nil {
			if !wrapsSentinel(err) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if c != CodecNone && len(out) > limits.Allowed(len(data)) {
			t.Fatalf("%s produced %d bytes, cap %d", c, len(out), limits.Allowed(len(data)))
		}
	})
}
