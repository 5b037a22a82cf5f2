package replication

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/log"
)

func openStore(t *testing.T, dir string) (*LogStore, *syncBuffer) {
	t.Helper()
	l, err := log.Open(dir, log.Options{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	buf := &syncBuffer{}
	return NewLogStore(l, WithLogger(zerolog.New(buf).Level(zerolog.DebugLevel))), buf
}

// mixedLogs returns entries of every kind raft stores, from index first.
func mixedLogs(t *testing.T, first, term uint64) []*raft.Log {
	t.Helper()
	conf := raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{{ID: "a", Address: "a"}}})
	logs := []*raft.Log{
		{Type: raft.LogConfiguration, Data: conf},
		{Type: raft.LogNoop},
		{Type: raft.LogCommand, Data: produce(t, "one", 3, 10)},
		{Type: raft.LogCommand, Data: []byte{7, 'o', 't', 'h', 'e', 'r'}},
		{Type: raft.LogBarrier},
		{Type: raft.LogCommand, Data: produce(t, "two", 5, 10)},
		{Type: raft.LogCommand, Data: []byte{}},
		{Type: raft.LogCommand, Data: produce(t, "three", 2, 10)},
	}
	for i, l := range logs {
		l.Index, l.Term = first+uint64(i), term
		l.AppendedAt = time.Now()
	}
	return logs
}

func mustGet(t *testing.T, s *LogStore, i uint64) raft.Log {
	t.Helper()
	var l raft.Log
	if err := s.GetLog(i, &l); err != nil {
		t.Fatalf("get %d: %v", i, err)
	}
	return l
}

func baseOffsetOf(cmd []byte) int64 { return int64(binary.BigEndian.Uint64(cmd[1:])) }

func TestGetLogMissingIsErrLogNotFound(t *testing.T) {
	s, _ := openStore(t, t.TempDir())
	var l raft.Log
	// raft compares with ==, so the error must be the sentinel itself.
	for _, i := range []uint64{0, 1, 2} {
		if err := s.GetLog(i, &l); err != raft.ErrLogNotFound {
			t.Fatalf("empty log: get %d = %v, want raft.ErrLogNotFound itself", i, err)
		}
	}
	if err := s.StoreLogs(mixedLogs(t, 1, 1)); err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{0, 9, math.MaxUint64} {
		if err := s.GetLog(i, &l); err != raft.ErrLogNotFound {
			t.Fatalf("get %d = %v, want raft.ErrLogNotFound itself", i, err)
		}
	}
}

func TestStoreLogsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStore(t, dir)
	in := mixedLogs(t, 1, 3)
	if err := s.StoreLog(in[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(in[1:]); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.FirstIndex(); f != 1 {
		t.Fatalf("first index %d", f)
	}
	if l, _ := s.LastIndex(); l != uint64(len(in)) {
		t.Fatalf("last index %d, want %d", l, len(in))
	}
	// Offsets: produce batches take consecutive offsets, stamped into the
	// proposer's buffer; nothing else takes any.
	if a, b, c := baseOffsetOf(in[2].Data), baseOffsetOf(in[5].Data), baseOffsetOf(in[7].Data); a != 0 || b != 3 || c != 8 {
		t.Fatalf("base offsets %d %d %d, want 0 3 8", a, b, c)
	}
	if end := s.Log().EndOffset(); end != 10 {
		t.Fatalf("end offset %d, want 10", end)
	}
	check := func(s *LogStore) {
		t.Helper()
		for _, want := range in {
			got := mustGet(t, s, want.Index)
			if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type || !bytes.Equal(got.Data, want.Data) {
				t.Fatalf("index %d: got %+v, want %+v", want.Index, got, want)
			}
			if !got.AppendedAt.IsZero() || got.Extensions != nil {
				t.Fatalf("index %d: AppendedAt %v Extensions %v, want both dropped", want.Index, got.AppendedAt, got.Extensions)
			}
		}
	}
	check(s)
	// Produce entries are batch frames: Kafka reads see the batch alone.
	res, err := s.Log().Read(0, 1<<20, -1)
	if err != nil || len(res.Batches) != 3 || !bytes.Equal(res.Batches[1], in[5].Data[1:]) {
		t.Fatalf("kafka read: %v, %d batches", err, len(res.Batches))
	}
	// And all of it survives a reopen.
	s.Log().Close()
	s2, _ := openStore(t, dir)
	check(s2)
	// Data read from the log is the caller's: changing it changes nothing
	// stored. (Entries still in the tail cache share the stored Data, as
	// raft's LogCache does.)
	got := mustGet(t, s2, 3)
	clear(got.Data)
	if again := mustGet(t, s2, 3); !bytes.Equal(again.Data, in[2].Data) {
		t.Fatal("GetLog data aliases the log's memory")
	}
}

// TestTailCache: entries just stored are served from memory, equal to
// what the log returns; a suffix DeleteRange or a log Reset (a snapshot
// install) drops them, so GetLog never serves an entry the log lost.
func TestTailCache(t *testing.T) {
	s, _ := openStore(t, t.TempDir())
	in := mixedLogs(t, 1, 2)
	if err := s.StoreLogs(in); err != nil {
		t.Fatal(err)
	}
	for _, want := range in {
		var got raft.Log
		if !s.tail.get(s.log.Generation(), want.Index, &got) {
			t.Fatalf("index %d not cached", want.Index)
		}
		e, err := s.log.Entry(want.Index)
		if err != nil {
			t.Fatal(err)
		}
		fromLog := e.Data
		if e.Batch {
			fromLog = append([]byte{CmdProduce}, e.Data...)
		}
		if got.Term != e.Term || uint8(got.Type) != e.Type || !bytes.Equal(got.Data, fromLog) || !got.AppendedAt.IsZero() {
			t.Fatalf("index %d: cached %+v, log %+v", want.Index, got, e)
		}
	}
	if err := s.DeleteRange(6, 8); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := s.GetLog(6, &l); err != raft.ErrLogNotFound {
		t.Fatalf("after truncation: get 6 = %v, %+v", err, l)
	}
	again := mixedLogs(t, 6, 3)[:2]
	if err := s.StoreLogs(again); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, 6); got.Term != 3 {
		t.Fatalf("index 6 term %d, want 3", got.Term)
	}
	if got := mustGet(t, s, 5); got.Term != 2 {
		t.Fatalf("index 5 term %d, want 2", got.Term)
	}
	// A reset behind the store's back (FSM.Restore installs snapshots on
	// the log directly) moves the generation: nothing stale is served.
	if err := s.log.Reset(100, 50); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(6, &l); err != raft.ErrLogNotFound {
		t.Fatalf("after reset: get 6 = %v", err)
	}
	// The byte bound holds.
	big := make([]*raft.Log, 0, 40)
	for i := range 40 {
		big = append(big, &raft.Log{Index: 100 + uint64(i), Term: 4, Type: raft.LogCommand, Data: make([]byte, 1<<20)})
	}
	for _, b := range big {
		if err := s.StoreLogs([]*raft.Log{b}); err != nil {
			t.Fatal(err)
		}
	}
	if s.tail.bytes > tailCacheBytes || s.tail.n == 0 {
		t.Fatalf("cache holds %d entries, %d bytes", s.tail.n, s.tail.bytes)
	}
	if got := mustGet(t, s, 100); len(got.Data) != 1<<20 {
		t.Fatalf("evicted entry read back with %d bytes", len(got.Data))
	}
}

func TestStoreLogsRefusesExtensions(t *testing.T) {
	s, _ := openStore(t, t.TempDir())
	in := mixedLogs(t, 1, 1)
	in[4].Extensions = []byte("chunking")
	err := s.StoreLogs(in)
	if !errors.Is(err, ErrExtensions) {
		t.Fatalf("got %v, want ErrExtensions", err)
	}
	if l, _ := s.LastIndex(); l != 0 {
		t.Fatalf("stored up to %d after a refused batch", l)
	}
}

func TestStoreLogsRefusesGaps(t *testing.T) {
	s, _ := openStore(t, t.TempDir())
	if err := s.StoreLogs(mixedLogs(t, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(mixedLogs(t, 10, 1)); !errors.Is(err, log.ErrOutOfOrder) {
		t.Fatalf("gap: got %v, want log.ErrOutOfOrder", err)
	}
}

func TestDeleteRangeHeadIsNoop(t *testing.T) {
	s, buf := openStore(t, t.TempDir())
	in := mixedLogs(t, 1, 1)
	if err := s.StoreLogs(in); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]uint64{{1, 3}, {1, 7}, {0, 1}} {
		if err := s.DeleteRange(r[0], r[1]); err != nil {
			t.Fatalf("delete %v: %v", r, err)
		}
	}
	if f, l := s.Log().FirstIndex(), s.Log().LastIndex(); f != 1 || l != 8 {
		t.Fatalf("after head deletes the log holds [%d, %d], want [1, 8]", f, l)
	}
	if got := mustGet(t, s, 3); !bytes.Equal(got.Data, in[2].Data) {
		t.Fatal("entry 3 changed")
	}
	if s.Log().StartOffset() != 0 || s.Log().EndOffset() != 10 {
		t.Fatalf("offsets [%d, %d) changed", s.Log().StartOffset(), s.Log().EndOffset())
	}
	if !strings.Contains(buf.String(), "ignored head delete") {
		t.Fatal("no debug line for the ignored head delete")
	}
}

func TestDeleteRangeSuffixTruncates(t *testing.T) {
	s, _ := openStore(t, t.TempDir())
	if err := s.StoreLogs(mixedLogs(t, 1, 1)); err != nil {
		t.Fatal(err)
	}
	// Entries 6..8 hold batches "two" (offsets 3..7) and "three" (8..9).
	if err := s.DeleteRange(6, 8); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.LastIndex(); l != 5 {
		t.Fatalf("last index %d, want 5", l)
	}
	if end := s.Log().EndOffset(); end != 3 {
		t.Fatalf("end offset %d after truncation, want 3 (rolled back)", end)
	}
	var l raft.Log
	if err := s.GetLog(6, &l); err != raft.ErrLogNotFound {
		t.Fatalf("get truncated 6: %v", err)
	}
	// The replacement takes the rolled-back offsets, as it did on the leader.
	repl := []*raft.Log{{Index: 6, Term: 2, Type: raft.LogCommand, Data: produce(t, "four", 4, 10)}}
	if err := s.StoreLogs(repl); err != nil {
		t.Fatal(err)
	}
	if got := baseOffsetOf(repl[0].Data); got != 3 {
		t.Fatalf("replacement at offset %d, want 3", got)
	}
	// A range past the end, or reaching past it, is fine too.
	if err := s.DeleteRange(7, 100); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(5, math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.LastIndex(); l != 4 {
		t.Fatalf("last index %d, want 4", l)
	}
}

func TestDeleteRangeWholeLogAndHoles(t *testing.T) {
	s, _ := openStore(t, t.TempDir())
	if err := s.StoreLogs(mixedLogs(t, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(3, 5); !errors.Is(err, ErrDeleteRange) {
		t.Fatalf("hole: got %v, want ErrDeleteRange", err)
	}
	if err := s.DeleteRange(5, 3); !errors.Is(err, ErrDeleteRange) {
		t.Fatalf("empty range: got %v, want ErrDeleteRange", err)
	}
	// Every entry conflicting: all go, and the log continues at index 1.
	if err := s.DeleteRange(1, 8); err != nil {
		t.Fatal(err)
	}
	if f, l := s.Log().FirstIndex(), s.Log().LastIndex(); f != 0 || l != 0 || s.Log().EndOffset() != 0 {
		t.Fatalf("after truncating everything: [%d, %d], end offset %d", f, l, s.Log().EndOffset())
	}
	if err := s.StoreLogs(mixedLogs(t, 1, 2)); err != nil {
		t.Fatalf("store after truncating everything: %v", err)
	}
	if err := s.DeleteRange(50, 60); err != nil {
		t.Fatal(err)
	}
}

func TestFSMApplyIdempotentAndManifest(t *testing.T) {
	s, _ := openStore(t, t.TempDir())
	in := mixedLogs(t, 1, 4)
	if err := s.StoreLogs(in); err != nil {
		t.Fatal(err)
	}
	f := NewFSM(s)
	resp := f.ApplyBatch(in)
	if resp[2] != int64(0) || resp[5] != int64(3) || resp[7] != int64(8) || resp[3] != nil {
		t.Fatalf("responses %v", resp)
	}
	if idx, hw := f.Applied(); idx != 8 || hw != 10 {
		t.Fatalf("applied %d hw %d, want 8 and 10", idx, hw)
	}
	// Replay (raft does it at every start): nothing moves, same answers.
	for _, l := range in {
		f.Apply(l)
	}
	if r := f.Apply(in[5]); r != int64(3) {
		t.Fatalf("replayed response %v", r)
	}
	if idx, hw := f.Applied(); idx != 8 || hw != 10 {
		t.Fatalf("after replay: applied %d hw %d", idx, hw)
	}

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	store := raft.NewInmemSnapshotStore()
	sink, err := store.Create(raft.SnapshotVersionMax, 8, 4, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	_, rc, err := store.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	g := NewFSM(s)
	if err := g.Restore(rc); err != nil {
		t.Fatal(err)
	}
	if idx, hw := g.Applied(); idx != 8 || hw != 10 {
		t.Fatalf("restored applied %d hw %d", idx, hw)
	}

	// A manifest the local log does not cover needs segments: refused.
	other, _ := openStore(t, t.TempDir())
	_, rc, _ = store.Open(sink.ID())
	if err := NewFSM(other).Restore(rc); !errors.Is(err, ErrSnapshotNeedsSegments) {
		t.Fatalf("restore over an empty log: %v", err)
	}
	bad := manifest{index: 1, term: 1, hw: 3}.encode()
	bad[20] ^= 1
	if _, err := decodeManifest(bad); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("damaged manifest: %v", err)
	}
}

func TestRaftConfig(t *testing.T) {
	c := RaftConfig("x")
	if err := raft.ValidateConfig(c); err != nil {
		t.Fatal(err)
	}
	if err := CheckConfig(c); err != nil {
		t.Fatal(err)
	}
	c.TrailingLogs = 10240
	if err := CheckConfig(c); !errors.Is(err, ErrConfig) {
		t.Fatalf("default TrailingLogs accepted: %v", err)
	}
}

func TestHCLogger(t *testing.T) {
	buf := &syncBuffer{}
	h := HCLogger(zerolog.New(buf).Level(zerolog.InfoLevel)).Named("raft").With("peer-id", "n1")
	h.Debug("hidden")
	h.Warn("failed to get log", "previous-index", 7, "error", errors.New("boom"), "odd")
	out := buf.String()
	for _, want := range []string{`"level":"warn"`, `"raft_logger":"raft"`, `"peer_id":"n1"`, `"previous_index":7`, `"error":"boom"`, `"extra_value_at_end":"odd"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("missing %s in %s", want, out)
		}
	}
	if strings.Contains(out, "hidden") || h.IsDebug() || !h.IsWarn() {
		t.Fatalf("level filtering: %s", out)
	}
	h.SetLevel(hclog.Error)
	if h.IsWarn() {
		t.Fatal("SetLevel(Error) still logs warnings")
	}
}

// Open LogStores share the process's cache budget: with many open, each
// keeps less, and closing them gives the share back.
func TestTailCacheShare(t *testing.T) {
	var stores []*LogStore
	for range 64 {
		s, _ := openStore(t, t.TempDir())
		stores = append(stores, s)
	}
	if got, want := tailLimit(), processTailBytes/int(openStores.Load()); got > want || got < minTailBytes {
		t.Fatalf("limit %d with %d open stores; want at most %d and at least %d", got, openStores.Load(), want, minTailBytes)
	}
	// A store keeps no more than its share.
	s := stores[0]
	for i := range 8 {
		data := produce(t, string(rune('a'+i)), 500, 4000)
		l := &raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: data}
		if err := s.StoreLogs([]*raft.Log{l}); err != nil {
			t.Fatal(err)
		}
	}
	if s.tail.bytes > tailLimit() && s.tail.n > 1 {
		t.Fatalf("cache holds %d bytes, over the share %d", s.tail.bytes, tailLimit())
	}
	before := tailLimit()
	for _, s := range stores {
		s.Close()
		s.Close() // idempotent
	}
	if tailLimit() <= before && before < tailCacheBytes {
		t.Fatalf("closing 64 stores did not raise the share: %d -> %d", before, tailLimit())
	}
	if s.tail.n != 0 {
		t.Fatal("Close kept the cache")
	}
}
