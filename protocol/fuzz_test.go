package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/protocol/sluiceapi"
)

// decodeOverhead bounds what Decode allocates besides kmsg's ReadFrom: the
// Request, the kmsg request struct, the client id, error values, plus room
// for the runtime's own allocations during the measurement.
const decodeOverhead = 8 << 10

// estimateNoise is the slack allowed between the walker's allocation
// estimate and a single measurement of kmsg's ReadFrom.
const estimateNoise = 512

// bodyOf returns the body of a frame whose header Decode accepted.
func bodyOf(t *testing.T, frame []byte, h Header) []byte {
	_, pos, err := clientID(frame)
	if err != nil {
		t.Fatal(err)
	}
	if lookup(h.Key).schema.flexible(h.Version) {
		if pos, err = skipHeaderTags(frame, pos); err != nil {
			t.Fatal(err)
		}
	}
	return frame[pos:]
}

// checkDecode runs Decode on frame and checks the invariants every input
// must satisfy: no panic, errors wrapping exactly one sentinel, the header
// returned whenever it parsed, the message consistent with the header, and
// memory bounded: whatever is accepted, kmsg allocates no more than the
// walker estimated (which the budgets are applied to), and large frames
// stay within the budgets whatever the outcome. Measuring needs a
// stop-the-world ReadMemStats, so small rejected frames, which cannot reach
// the budget's fixed slack, are not measured.
func checkDecode(t *testing.T, frame []byte) {
	var req *Request
	var err error
	req, err = Decode(frame)
	if len(frame) >= 1<<10 && !raceEnabled {
		factor := int64(controlAllocFactor)
		if binary.BigEndian.Uint16(frame) == produceKey {
			factor = produceAllocFactor
		}
		limit := allocLimit(len(frame), factor) + decodeOverhead
		if ok, n := allocatedAtMost(limit, func() { _, _ = Decode(frame) }); !ok {
			t.Fatalf("Decode allocated %d bytes for a %d-byte frame (limit %d), err %v", n, len(frame), limit, err)
		}
	}

	if (req != nil) != (len(frame) >= minFrameSize) {
		t.Fatalf("request %v for a %d-byte frame (err %v)", req != nil, len(frame), err)
	}
	if req != nil {
		h := req.Header
		if h.Key != int16(binary.BigEndian.Uint16(frame)) || h.Version != int16(binary.BigEndian.Uint16(frame[2:])) ||
			h.CorrelationID != int32(binary.BigEndian.Uint32(frame[4:])) {
			t.Fatalf("header %+v does not match the frame", h)
		}
	}
	if err != nil {
		if !wrapsOneSentinel(err) {
			t.Fatalf("error wraps no single sentinel: %v", err)
		}
		if req != nil && req.Msg != nil {
			t.Fatalf("Msg set together with %v", err)
		}
		return
	}
	h := req.Header
	r, ok := Lookup(h.Key)
	if !ok || !r.Contains(h.Version) {
		t.Fatalf("decoded unsupported %+v", h)
	}
	if req.Msg.Key() != h.Key || req.Msg.GetVersion() != h.Version {
		t.Fatalf("msg key %d v%d, header %+v", req.Msg.Key(), req.Msg.GetVersion(), h)
	}
	// What Decode accepted re-encodes and decodes again (kmsg's encoding
	// may differ in form: non-minimal varints, tag order, bool values).
	again := NewRequest(h.Key)
	again.SetVersion(h.Version)
	if err := again.ReadFrom(req.Msg.AppendTo(nil)); err != nil {
		t.Fatalf("re-encoded request does not decode: %v", err)
	}
	if raceEnabled {
		return
	}
	body := bodyOf(t, frame, h)
	est, werr := walkBody(lookup(h.Key).schema, h.Version, body)
	if werr != nil {
		t.Fatal(werr)
	}
	fresh := NewRequest(h.Key)
	fresh.SetVersion(h.Version)
	if ok, n := allocatedAtMost(est+estimateNoise, func() { _ = fresh.ReadFrom(body) }); !ok {
		t.Fatalf("kmsg allocated %d bytes, the walker estimated %d (body %d)", n, est, len(body))
	}
}

// FuzzDecode (seeds in testdata/fuzz/FuzzDecode) feeds arbitrary frames,
// without the size prefix, to Decode.
func FuzzDecode(f *testing.F) {
	for _, s := range decodeSeeds(f) {
		f.Add(s.data)
	}
	f.Fuzz(checkDecode)
}

// fuzzLimits keeps frames small so the fuzzer explores the limits.
var fuzzLimits = Limits{MaxRequestBytes: 4096, MaxControlRequestBytes: 512}

type frameResult struct {
	frame []byte
	err   error
}

func readAll(r io.Reader) []frameResult {
	var out []frameResult
	for {
		frame, err := ReadFrame(r, fuzzLimits)
		out = append(out, frameResult{frame, err})
		if err != nil {
			return out
		}
	}
}

// FuzzReadFrame (seeds in testdata/fuzz/FuzzReadFrame) reads frames from an
// arbitrary stream, through an io.ByteReader and through a plain reader
// returning one byte at a time: both must agree, every frame must respect
// the limits, and the frames must be exactly the stream's contents.
func FuzzReadFrame(f *testing.F) {
	for _, s := range readFrameSeeds(f) {
		f.Add(s.data)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		a := readAll(bytes.NewReader(stream))
		b := readAll(iotest.OneByteReader(bytes.NewReader(stream)))
		if len(a) != len(b) {
			t.Fatalf("readers disagree: %d vs %d results", len(a), len(b))
		}
		var consumed []byte
		for i := range a {
			if !bytes.Equal(a[i].frame, b[i].frame) || (a[i].err == nil) != (b[i].err == nil) {
				t.Fatalf("result %d differs: %v / %v", i, a[i].err, b[i].err)
			}
			if err := a[i].err; err != nil {
				if !wrapsOneSentinel(err) {
					t.Fatalf("error wraps no single sentinel: %v", err)
				}
				for _, s := range []error{ErrMalformedFrame, ErrFrameTooLarge, io.EOF, io.ErrUnexpectedEOF} {
					if errors.Is(err, s) != errors.Is(b[i].err, s) {
						t.Fatalf("readers disagree on %v: %v / %v", s, err, b[i].err)
					}
				}
				if err == io.EOF && len(consumed) != len(stream) {
					t.Fatalf("io.EOF with %d of %d bytes consumed", len(consumed), len(stream))
				}
				continue
			}
			fr := a[i].frame
			if len(fr) < minFrameSize || len(fr) != cap(fr) || len(fr) > int(fuzzLimits.MaxRequestBytes) {
				t.Fatalf("frame of len %d cap %d", len(fr), cap(fr))
			}
			if binary.BigEndian.Uint16(fr) != produceKey && len(fr) > int(fuzzLimits.MaxControlRequestBytes) {
				t.Fatalf("non-produce frame of %d bytes", len(fr))
			}
			consumed = append(consumed, sized(fr)...)
			checkDecode(t, fr)
		}
		if !bytes.HasPrefix(stream, consumed) {
			t.Fatal("frames are not the stream's contents")
		}
	})
}

// FuzzCheckProduceArrays (seeds in testdata/fuzz/FuzzCheckProduceArrays)
// checks CheckProduceArrays against kmsg at every version kmsg knows:
// whatever it accepts, kmsg decodes without error, within the budget.
func FuzzCheckProduceArrays(f *testing.F) {
	for _, s := range produceSeeds(f) {
		f.Add(s.version, s.data)
	}
	f.Fuzz(func(t *testing.T, version uint8, body []byte) {
		v := int16(version) % (produceRequest.maxVersion + 1)
		if err := CheckProduceArrays(v, body); err != nil {
			if !errors.Is(err, ErrMalformedRequest) || !wrapsOneSentinel(err) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(v)
		if err := req.ReadFrom(body); err != nil {
			t.Fatalf("accepted, but kmsg fails: %v", err)
		}
		if raceEnabled {
			return
		}
		est, _ := walkBody(produceRequest, v, body)
		if est > allocLimit(len(body), produceAllocFactor) {
			t.Fatalf("accepted although the estimate %d exceeds the budget", est)
		}
		if ok, n := allocatedAtMost(est+estimateNoise, func() { _ = req.ReadFrom(body) }); !ok {
			t.Fatalf("kmsg allocated %d bytes, the walker estimated %d (body %d)", n, est, len(body))
		}
	})
}

type seed struct {
	name    string
	version uint8 // FuzzCheckProduceArrays only
	data    []byte
}

// decodeSeeds returns valid frames of several APIs and versions and a few
// hostile ones. They are deterministic, so -update-corpus is reproducible.
func decodeSeeds(tb testing.TB) []seed {
	tb.Helper()
	r := rand.New(rand.NewPCG(13, 14))
	var seeds []seed
	for _, kv := range [][2]int16{
		{0, 3}, {0, 9}, {0, 11}, {1, 4}, {1, 12}, {1, 16}, {2, 1}, {2, 8}, {3, 0}, {3, 1}, {3, 9}, {3, 12},
		{10, 0}, {10, 5}, {18, 0}, {18, 3}, {18, 4}, {19, 5}, {20, 6}, {21, 2}, {22, 4}, {32, 4}, {37, 3}, {44, 1}, {60, 1},
		{8, 2}, {8, 7}, {8, 8}, {8, 9}, {9, 1}, {9, 2}, {9, 6}, {9, 8}, {9, 9}, {11, 2}, {11, 5}, {11, 6}, {11, 9},
		{12, 0}, {12, 4}, {13, 0}, {13, 3}, {13, 5}, {14, 0}, {14, 5}, {15, 0}, {15, 6}, {16, 0}, {16, 5},
		{42, 0}, {42, 3}, {47, 0},
		{76, 1}, {77, 1}, {78, 1}, {79, 1},
		{sluiceapi.ShareNoteKey, 0},
		{90, 0}, {90, 1}, {91, 0}, {92, 0},
	} {
		req := randomRequest(r, kv[0], kv[1])
		name := fmt.Sprintf("valid_%s_v%d", NameForKey(kv[0]), kv[1])
		seeds = append(seeds, seed{name: name, data: clientFrame(req, 1, kmsg.StringPtr("seed"))[4:]})
	}
	hugeTags := []byte{0xff, 0xff, 0xff, 0xff, 0x0f}
	seeds = append(seeds,
		seed{name: "api_versions_v5_unsupported", data: header(18, 5, 2, 4, "kcat", 0, 4, 'n', 'a', 'm', 'e', 2, '1', 0)},
		seed{name: "unknown_key_leader_and_isr", data: header(4, 5, 3, -1, "")},
		seed{name: "join_group_v5_no_body", data: header(11, 5, 3, -1, "")},
		seed{name: "client_id_minus_two", data: header(3, 1, 4, -2, "")},
		seed{name: "metadata_v12_huge_tag_count", data: cat(header(3, 12, 5, -1, "", 0), []byte{0, 1, 0}, hugeTags)},
		seed{name: "produce_v3_huge_topic_count", data: cat(header(0, 3, 6, -1, ""), i16(-1), i16(1), i32(1000), i32(1<<30))},
		seed{name: "produce_v9_null_records", data: cat(header(0, 9, 7, -1, "", 0), []byte{0}, i16(1), i32(1000), []byte{2, 2, 't', 2}, i32(0), []byte{0, 0, 0, 0})},
		seed{name: "fetch_v15_replica_state_tag", data: cat(header(1, 15, 8, -1, "", 0), i32(0), i32(0), i32(0), []byte{0}, i32(0), i32(0),
			[]byte{1, 1, 1, 1, 1, 13}, i32(1), make([]byte, 8), []byte{0})},
		seed{name: "short", data: []byte{0, 3, 0}},
		seed{name: "join_group_v2_huge_protocol_count", data: cat(header(11, 2, 9, -1, ""), joinGroupV2, i32(1<<30), str("range"))},
		seed{name: "join_group_v6_null_metadata", data: cat(header(11, 6, 10, -1, "", 0), joinGroupV6, []byte{2}, cstr("range"), []byte{0, 0, 0})},
		seed{name: "sync_group_v5_null_assignment", data: cat(header(14, 5, 11, -1, "", 0), syncGroupV5, []byte{2}, cstr("m"), []byte{0, 0, 0})},
		seed{name: "offset_commit_v2_partitions_past_end", data: cat(header(8, 2, 12, -1, ""), offsetCommitV2, i32(1), str("t"), i32(1000), make([]byte, 14))},
		seed{name: "offset_commit_v2_null_topics", data: cat(header(8, 2, 13, -1, ""), offsetCommitV2, i32(-1))},
		seed{name: "offset_fetch_v2_null_topics", data: cat(header(9, 2, 14, -1, ""), str("g"), i32(-1))},
		seed{name: "offset_fetch_v8_null_group_topics", data: cat(header(9, 8, 15, -1, "", 0), []byte{2}, cstr("g"), []byte{0, 0, 0, 0})},
		seed{name: "leave_group_v5_null_instance_and_reason", data: cat(header(13, 5, 16, -1, "", 0), cstr("g"), []byte{2}, cstr("m"), []byte{0, 0, 0, 0})},
		// Share groups (KIP-932): valid edge cases, then hostile bodies.
		seed{name: "share_group_heartbeat_v1_null_rack_and_topics", data: cat(header(76, 1, 17, -1, "", 0), shareHeartbeatV1, []byte{0, 0, 0})},
		seed{name: "share_fetch_v1_ack_only_partition_forgotten", data: cat(header(78, 1, 18, -1, "", 0), shareFetchV1, shareTopicOnePartition,
			[]byte{2}, i64(0), i64(9), []byte{2, 2, 0, 0, 0}, []byte{2}, make([]byte, 16), []byte{2}, i32(0), []byte{0, 0})},
		seed{name: "share_acknowledge_v1_per_offset_types", data: cat(header(79, 1, 19, -1, "", 0), cstr("sg"), cstr("m"), i32(-1), shareTopicOnePartition,
			[]byte{2}, i64(0), i64(3), []byte{5, 1, 0, 2, 3, 0, 0, 0, 0})},
		seed{name: "share_fetch_v1_huge_ack_batch_count", data: cat(header(78, 1, 20, -1, "", 0), shareFetchV1, shareTopicOnePartition, hugeTags[:4], []byte{0x07, 0, 0, 0, 0})},
		seed{name: "share_fetch_v1_ack_types_past_end", data: cat(header(78, 1, 21, -1, "", 0), shareFetchV1, shareTopicOnePartition, []byte{2}, i64(100), i64(109), []byte{101, 1, 2, 3})},
		seed{name: "share_fetch_v1_null_ack_types", data: cat(header(78, 1, 22, -1, "", 0), shareFetchV1, shareTopicOnePartition, []byte{2}, i64(100), i64(109), []byte{0, 0, 0, 0, 1, 0})},
		seed{name: "share_fetch_v1_null_topics", data: cat(header(78, 1, 23, -1, "", 0), shareFetchV1, []byte{0, 1, 0})},
		seed{name: "share_fetch_v0_early_access", data: cat(header(78, 0, 24, -1, "", 0), cstr("sg"), cstr("m"), make([]byte, 16), []byte{1, 1, 0})},
		seed{name: "share_acknowledge_v1_huge_ack_batch_count", data: cat(header(79, 1, 25, -1, "", 0), shareAckV1, shareTopicOnePartition, hugeTags[:4], []byte{0x07, 0, 0, 0})},
		seed{name: "share_group_heartbeat_v1_null_topic_name", data: cat(header(76, 1, 26, -1, "", 0), shareHeartbeatV1, []byte{0, 3}, cstr("t"), []byte{0, 0})},
		seed{name: "share_group_describe_v1_null_group_ids", data: cat(header(77, 1, 27, -1, "", 0), []byte{0, 1, 0})},
		// SluiceShareNote (Sluice's own key): a valid member id and text,
		// then counts and lengths past the bytes.
		seed{name: "sluice_share_note_v0_member_and_text", data: cat(header(sluiceapi.ShareNoteKey, 0, 28, -1, "", 0), cstr("sg"), cstr("m"),
			[]byte{2}, make([]byte, 16), []byte{2}, i32(0), []byte{2}, i64(7), i16(2), cstr("smtp timeout"), []byte{0, 0, 0, 0})},
		seed{name: "sluice_share_note_v0_huge_note_count", data: cat(header(sluiceapi.ShareNoteKey, 0, 29, -1, "", 0), shareNoteV0,
			[]byte{2}, make([]byte, 16), []byte{2}, i32(0), hugeTags[:4], []byte{0x07, 0, 0, 0})},
		seed{name: "sluice_share_note_v0_text_past_end", data: cat(header(sluiceapi.ShareNoteKey, 0, 30, -1, "", 0), shareNoteV0,
			[]byte{2}, make([]byte, 16), []byte{2}, i32(0), []byte{2}, i64(7), i16(2), []byte{0xff, 0x7f}, []byte("abc"))},
		seed{name: "sluice_share_note_v1_unsupported", data: cat(header(sluiceapi.ShareNoteKey, 1, 31, -1, "", 0), shareNoteV0, []byte{1, 0})},
		// The share-group offset APIs: all topics (null), then hostile.
		seed{name: "describe_share_group_offsets_v1_null_topics", data: cat(header(90, 1, 32, -1, "", 0), []byte{2}, cstr("sg"), []byte{0, 0, 0})},
		seed{name: "describe_share_group_offsets_v1_null_partitions", data: cat(header(90, 1, 33, -1, "", 0), []byte{2}, cstr("g"), []byte{2}, cstr("t"), []byte{0, 0, 0, 0})},
		seed{name: "alter_share_group_offsets_v0_huge_partition_count", data: cat(header(91, 0, 34, -1, "", 0), cstr("sg"), []byte{2}, cstr("t"), hugeTags[:4], []byte{0x07}, make([]byte, 13))},
		seed{name: "delete_share_group_offsets_v0_null_topics", data: cat(header(92, 0, 35, -1, "", 0), cstr("sg"), []byte{0, 0})},
	)
	return seeds
}

func readFrameSeeds(tb testing.TB) []seed {
	var two []byte
	for _, s := range decodeSeeds(tb)[:3] {
		if len(s.data) <= int(fuzzLimits.MaxRequestBytes) {
			two = append(two, sized(s.data)...)
		}
	}
	meta := sized(header(3, 1, 1, -1, "", 0, 0, 0, 0))
	return []seed{
		{name: "frames", data: two},
		{name: "metadata_then_truncated", data: append(bytes.Clone(meta), meta[:7]...)},
		{name: "size_zero", data: sizeHeader(0, 3)},
		{name: "size_negative", data: sizeHeader(-5, 3)},
		{name: "control_too_large", data: sizeHeader(fuzzLimits.MaxControlRequestBytes+1, 3)},
		{name: "too_large", data: sizeHeader(fuzzLimits.MaxRequestBytes+1, 0)},
		{name: "empty", data: nil},
	}
}

func produceSeeds(tb testing.TB) []seed {
	r := rand.New(rand.NewPCG(15, 16))
	var seeds []seed
	for _, v := range []int16{0, 3, 8, 9, 11, 13} {
		req := randomRequest(r, produceKey, v)
		seeds = append(seeds, seed{name: fmt.Sprintf("valid_v%d", v), version: uint8(v), data: req.AppendTo(nil)})
	}
	for _, a := range amplifiers()[:8] {
		if a.key != produceKey {
			continue
		}
		name := strings.NewReplacer(" ", "_").Replace(a.name)
		seeds = append(seeds, seed{name: "amplifier_" + name, version: uint8(a.v), data: a.body})
	}
	return seeds
}

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz seed corpora from the seed functions")

// TestFuzzCorpus checks that every seed is in the checked-in corpus (go test
// runs those files through the fuzz targets) and rewrites them with
// -update-corpus.
func TestFuzzCorpus(t *testing.T) {
	targets := map[string][]seed{
		"FuzzDecode":             decodeSeeds(t),
		"FuzzReadFrame":          readFrameSeeds(t),
		"FuzzCheckProduceArrays": produceSeeds(t),
	}
	for target, seeds := range targets {
		dir := filepath.Join("testdata", "fuzz", target)
		for _, s := range seeds {
			if strings.HasPrefix(s.name, "valid_") && target == "FuzzDecode" {
				if _, err := Decode(s.data); err != nil {
					t.Errorf("seed %s does not decode: %v", s.name, err)
				}
			}
			path := filepath.Join(dir, s.name)
			content := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", s.data)
			if target == "FuzzCheckProduceArrays" {
				content = fmt.Appendf(nil, "go test fuzz v1\nuint8(%d)\n[]byte(%q)\n", s.version, s.data)
			}
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
			if !bytes.Equal(got, content) {
				t.Errorf("%s is stale; run go test -run TestFuzzCorpus -update-corpus", path)
			}
		}
	}
}
