package replication

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/log/batch"
)

// installableSnapshot mirrors replication.InstallableSnapshot (fsm.go,
// another change): the FSM's Restore type-asserts its reader to it.
type installableSnapshot interface {
	Install() error
	Manifest() []byte
}

var _ installableSnapshot = (*ReceivedSnapshot)(nil)

func ssLogOptions() log.Options {
	return log.Options{SegmentBytes: 8 << 10, IndexIntervalBytes: 512}
}

func ssOpenLog(t testing.TB, dir string) *log.Log {
	t.Helper()
	l, err := log.Open(dir, ssLogOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func ssBatch(t testing.TB, tag string, n, valueSize int) []byte {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		v := bytes.Repeat([]byte{'.'}, valueSize)
		copy(v, fmt.Sprintf("%s/%d;", tag, i))
		recs[i] = batch.Record{Key: []byte(tag), Value: v, TimestampDelta: int64(i)}
	}
	b, err := batch.Build(recs, batch.BuildOptions{BaseTimestamp: 1_700_000_000_000})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ssFill stores n entries from index first on with term, every fourth a
// non-batch entry.
func ssFill(t testing.TB, l *log.Log, first uint64, n int, term uint64, tag string) {
	t.Helper()
	for i := range n {
		e := log.Entry{Index: first + uint64(i), Term: term, Type: uint8(raft.LogCommand)}
		if i%4 == 3 {
			e.Type, e.Data = uint8(raft.LogNoop), []byte(tag)
		} else {
			e.Batch, e.Data = true, ssBatch(t, fmt.Sprintf("%s%d", tag, i), 1+i%3, 100+i%200)
		}
		if err := l.StoreEntries([]log.Entry{e}); err != nil {
			t.Fatal(err)
		}
	}
}

// ssEntries reads entries from..through of l.
func ssEntries(t testing.TB, l *log.Log, from, through uint64) []log.Entry {
	t.Helper()
	var out []log.Entry
	for i := from; i <= through; i++ {
		e, err := l.Entry(i)
		if err != nil {
			t.Fatalf("%s: entry %d: %v", l.Dir(), i, err)
		}
		out = append(out, e)
	}
	return out
}

func ssStore(t testing.TB, l *log.Log) (*SnapshotStore, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "snaps")
	s, err := NewSnapshotStore(dir, l, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

var ssConfig = raft.Configuration{Servers: []raft.Server{{ID: "a", Address: "a"}, {ID: "b", Address: "b"}}}

// ssTake takes a local snapshot at index (the log's term there) with manifest.
func ssTake(t testing.TB, s *SnapshotStore, l *log.Log, index uint64, manifest []byte) string {
	t.Helper()
	e, err := l.Entry(index)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := s.Create(1, index, e.Term, ssConfig, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write(manifest); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return sink.ID()
}

// ssSend opens id on from and copies its stream into a new sink of to in
// chunk-byte writes (raft's io.Copy), stopping after limit bytes when
// limit >= 0. It returns the sink and the error of the copy or of Close.
func ssSend(t testing.TB, from, to *SnapshotStore, id string, chunk int, limit int64, damage func([]byte)) (raft.SnapshotSink, *raft.SnapshotMeta, error) {
	t.Helper()
	meta, rc, err := from.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sink, err := to.Create(1, meta.Index, meta.Term, meta.Configuration, meta.ConfigurationIndex, nil)
	if err != nil {
		t.Fatal(err)
	}
	var src io.Reader = rc
	if limit >= 0 {
		src = io.LimitReader(rc, limit)
	}
	buf := make([]byte, chunk)
	var n int64
	for {
		k, rerr := src.Read(buf)
		if k > 0 {
			if damage != nil {
				damage(buf[:k])
			}
			if _, err := sink.Write(buf[:k]); err != nil {
				sink.Cancel()
				return sink, meta, err
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			t.Fatal(rerr)
		}
	}
	if limit < 0 && n != meta.Size {
		t.Fatalf("streamed %d bytes, meta.Size %d", n, meta.Size)
	}
	return sink, meta, sink.Close()
}

func TestSnapshotStoreLocalListRetain(t *testing.T) {
	l := ssOpenLog(t, filepath.Join(t.TempDir(), "log"))
	ssFill(t, l, 1, 60, 3, "a")
	s, dir := ssStore(t, l)
	ids := []string{ssTake(t, s, l, 10, []byte("m10")), ssTake(t, s, l, 30, []byte("m30")), ssTake(t, s, l, 20, []byte("m20"))}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != ids[1] || list[1].ID != ids[2] {
		t.Fatalf("list %v, want the two newest by index (%s, %s)", list, ids[1], ids[2])
	}
	if list[0].Index != 30 || list[0].Term != 3 || !reflect.DeepEqual(list[0].Configuration, ssConfig) {
		t.Fatalf("meta %+v", list[0])
	}
	if _, _, err := s.Open(ids[0]); err == nil {
		t.Fatal("reaped snapshot opened")
	}
	// A reopened store lists the same; a damaged file is skipped.
	if err := os.WriteFile(filepath.Join(dir, "9-9-9.snap"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := NewSnapshotStore(dir, l, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	list2, err := s2.List()
	if err != nil || !reflect.DeepEqual(list, list2) {
		t.Fatalf("reopened list %v, %v", list2, err)
	}

	// Open: exact size, then header, manifest and the segments through 30.
	meta, rc, err := s.Open(ids[1])
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if int64(len(b)) != meta.Size {
		t.Fatalf("read %d bytes, meta.Size %d", len(b), meta.Size)
	}
	if !bytes.HasPrefix(b, streamPrefix) || binary.LittleEndian.Uint64(b[8:]) != 30 || binary.LittleEndian.Uint32(b[40:]) != 3 {
		t.Fatalf("stream header % x", b[:56])
	}
}

// TestSnapshotStoreStreamAndReceive: a snapshot streamed from one store over
// one log and received by another store over another log, which held
// conflicting entries, leaves that log with the same entries and offsets.
func TestSnapshotStoreStreamAndReceive(t *testing.T) {
	for _, chunk := range []int{1, 7, 4096, 1 << 20} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			tmp := t.TempDir()
			src := ssOpenLog(t, filepath.Join(tmp, "src"))
			ssFill(t, src, 1, 80, 2, "s")
			if chunk != 1 {
				ssFill(t, src, 81, 100, 4, "t")
			}
			if err := src.DeleteBefore(src.Segments()[2].BaseOffset + 1); err != nil {
				t.Fatal(err)
			}
			dst := ssOpenLog(t, filepath.Join(tmp, "dst"))
			ssFill(t, dst, 1, 120, 1, "x")
			from, _ := ssStore(t, src)
			to, _ := ssStore(t, dst)
			through := src.LastIndex() - 5
			manifest := bytes.Repeat([]byte("producer-state;"), 300)
			id := ssTake(t, from, src, through, manifest)

			sink, _, err := ssSend(t, from, to, id, chunk, -1, nil)
			if err != nil {
				t.Fatal(err)
			}
			if l, _ := to.List(); len(l) != 0 {
				t.Fatalf("received snapshot listed before install: %v", l)
			}
			meta, rc, err := to.Open(sink.ID())
			if err != nil {
				t.Fatal(err)
			}
			is, ok := rc.(installableSnapshot)
			if !ok {
				t.Fatalf("received snapshot reader %T is not installable", rc)
			}
			if got, _ := io.ReadAll(rc); !bytes.Equal(got, manifest) || !bytes.Equal(is.Manifest(), manifest) || meta.Size != int64(len(manifest)) {
				t.Fatalf("manifest read back wrong (%d bytes, meta.Size %d)", len(got), meta.Size)
			}
			if err := is.Install(); err != nil {
				t.Fatal(err)
			}
			if err := rc.Close(); err != nil {
				t.Fatal(err)
			}
			first := src.FirstIndex()
			if dst.FirstIndex() != first || dst.LastIndex() != through || dst.StartOffset() != src.StartOffset() {
				t.Fatalf("installed [%d, %d] start %d, want [%d, %d] start %d", dst.FirstIndex(), dst.LastIndex(), dst.StartOffset(), first, through, src.StartOffset())
			}
			if !reflect.DeepEqual(ssEntries(t, dst, first, through), ssEntries(t, src, first, through)) {
				t.Fatal("installed entries differ")
			}
			if names, _ := dst.StagingNames(); len(names) != 0 {
				t.Fatalf("staging left: %v", names)
			}
			// Installed, it is a snapshot like a local one: listed, and
			// streamable onwards with an exact size.
			list, _ := to.List()
			if len(list) != 1 || list[0].ID != sink.ID() || list[0].Index != through {
				t.Fatalf("list after install: %v", list)
			}
			third := ssOpenLog(t, filepath.Join(tmp, "third"))
			onward, _ := ssStore(t, third)
			sink3, _, err := ssSend(t, to, onward, sink.ID(), 64<<10, -1, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, rc3, err := onward.Open(sink3.ID())
			if err != nil {
				t.Fatal(err)
			}
			if err := rc3.(installableSnapshot).Install(); err != nil {
				t.Fatal(err)
			}
			rc3.Close()
			if !reflect.DeepEqual(ssEntries(t, third, first, through), ssEntries(t, src, first, through)) {
				t.Fatal("onward install differs")
			}
		})
	}
}

// TestSnapshotStoreRefusesBadStreams: truncated, damaged, mismatched and
// hostile streams are refused, leave no staging area and are not listed,
// and the receiving log is unchanged.
func TestSnapshotStoreRefusesBadStreams(t *testing.T) {
	tmp := t.TempDir()
	src := ssOpenLog(t, filepath.Join(tmp, "src"))
	ssFill(t, src, 1, 80, 2, "s")
	dst := ssOpenLog(t, filepath.Join(tmp, "dst"))
	ssFill(t, dst, 1, 10, 1, "x")
	before := ssEntries(t, dst, 1, 10)
	from, _ := ssStore(t, src)
	to, _ := ssStore(t, dst)
	id := ssTake(t, from, src, 70, []byte("manifest"))
	meta, rc, err := from.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()

	clean := func(t *testing.T) {
		t.Helper()
		if names, _ := dst.StagingNames(); len(names) != 0 {
			t.Fatalf("staging left: %v", names)
		}
		if l, _ := to.List(); len(l) != 0 {
			t.Fatalf("refused snapshot listed: %v", l)
		}
		if !reflect.DeepEqual(ssEntries(t, dst, 1, 10), before) || dst.LastIndex() != 10 {
			t.Fatal("receiving log changed")
		}
	}
	for _, cut := range []int64{3, 20, 60, 100, 500, meta.Size - 1} {
		t.Run(fmt.Sprintf("truncated at %d", cut), func(t *testing.T) {
			_, _, err := ssSend(t, from, to, id, 1000, cut, nil)
			if !errors.Is(err, ErrSnapshotStream) {
				t.Fatalf("truncated stream: %v", err)
			}
			clean(t)
		})
	}
	for _, pos := range []int{10, 50, 70} {
		t.Run(fmt.Sprintf("header byte %d", pos), func(t *testing.T) {
			seen := 0
			_, _, err := ssSend(t, from, to, id, 1000, -1, func(b []byte) {
				if pos >= seen && pos < seen+len(b) {
					b[pos-seen] ^= 0x20
				}
				seen += len(b)
			})
			if !errors.Is(err, ErrSnapshotStream) {
				t.Fatalf("damaged header: %v", err)
			}
			clean(t)
		})
	}
	t.Run("segment byte", func(t *testing.T) {
		seen := int64(0)
		sink, _, err := ssSend(t, from, to, id, 1000, -1, func(b []byte) {
			if p := meta.Size - 300; p >= seen && p < seen+int64(len(b)) {
				b[p-seen] ^= 0x01
			}
			seen += int64(len(b))
		})
		if err != nil {
			t.Fatalf("sink refused what only a CRC walk can find: %v", err)
		}
		_, rc, err := to.Open(sink.ID())
		if err != nil {
			t.Fatal(err)
		}
		err = rc.(installableSnapshot).Install()
		if !errors.Is(err, log.ErrSnapshot) {
			t.Fatalf("install of a damaged segment: %v", err)
		}
		t.Log(err)
		if err := rc.Close(); err != nil {
			t.Fatal(err)
		}
		clean(t)
	})
	t.Run("other index than raft sent", func(t *testing.T) {
		_, rc, err := from.Open(id)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		sink, _ := to.Create(1, 71, 2, ssConfig, 1, nil)
		if _, err := io.Copy(sink, rc); !errors.Is(err, ErrSnapshotStream) {
			t.Fatalf("stream of another index: %v", err)
		}
		sink.Cancel()
		clean(t)
	})
	t.Run("cancel", func(t *testing.T) {
		sink, _, err := ssSend(t, from, to, id, 1000, meta.Size/2, nil)
		if !errors.Is(err, ErrSnapshotStream) {
			t.Fatal(err)
		}
		_ = sink
		_, rc, _ := from.Open(id)
		defer rc.Close()
		sink, _ = to.Create(1, meta.Index, meta.Term, ssConfig, 1, nil)
		if _, err := io.CopyN(sink, rc, meta.Size/2); err != nil {
			t.Fatal(err)
		}
		if names, _ := dst.StagingNames(); len(names) != 1 {
			t.Fatalf("staging while receiving: %v", names)
		}
		if err := sink.Cancel(); err != nil {
			t.Fatal(err)
		}
		clean(t)
	})
	t.Run("huge claims", func(t *testing.T) {
		hdr := func(manifestLen, files uint32, fileSize uint64) []byte {
			b := append([]byte(nil), streamPrefix...)
			b = binary.LittleEndian.AppendUint64(b, 70)
			b = binary.LittleEndian.AppendUint64(b, 2)
			b = binary.LittleEndian.AppendUint64(b, 0)
			b = binary.LittleEndian.AppendUint64(b, 5)
			b = binary.LittleEndian.AppendUint32(b, manifestLen)
			b = binary.LittleEndian.AppendUint32(b, files)
			b = binary.LittleEndian.AppendUint64(b, 0)
			for range min(files, 1) {
				b = binary.LittleEndian.AppendUint64(b, fileSize)
				b = binary.LittleEndian.AppendUint16(b, 45)
				b = append(b, "00000000000000000000-00000000000000000001.seg"...)
			}
			return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, streamCRC))
		}
		for _, tc := range []struct {
			name string
			b    []byte
		}{
			{"manifest 4 GiB", hdr(1<<32-1, 0, 0)},
			{"a billion files", hdr(0, 1<<30, 100)},
			{"file of a petabyte", hdr(0, 1, 1<<50)},
		} {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			alloc := ms.TotalAlloc
			sink, _ := to.Create(1, 70, 2, ssConfig, 1, nil)
			_, werr := sink.Write(tc.b)
			cerr := sink.Close()
			runtime.ReadMemStats(&ms)
			if !errors.Is(werr, ErrSnapshotStream) || !errors.Is(cerr, ErrSnapshotStream) {
				t.Fatalf("%s: write %v, close %v", tc.name, werr, cerr)
			}
			if d := ms.TotalAlloc - alloc; d > 4<<20 {
				t.Fatalf("%s: %d bytes allocated", tc.name, d)
			}
		}
		// A claim under the limits but never sent allocates only as bytes come.
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		alloc := ms.TotalAlloc
		sink, _ := to.Create(1, 70, 2, ssConfig, 1, nil)
		if _, err := sink.Write(append(hdr(60<<20, 0, 0), "abc"...)); err != nil {
			t.Fatal(err)
		}
		if err := sink.Close(); !errors.Is(err, ErrSnapshotStream) {
			t.Fatalf("manifest cut short: %v", err)
		}
		runtime.ReadMemStats(&ms)
		if d := ms.TotalAlloc - alloc; d > 4<<20 {
			t.Fatalf("claimed 60 MiB manifest: %d bytes allocated", d)
		}
		clean(t)
	})
}

// TestSnapshotStoreSettlesAtOpen: a received snapshot left uninstalled by a
// crash is discarded at open, with its staging area; one whose install
// reached the log but not the store is kept as installed.
func TestSnapshotStoreSettlesAtOpen(t *testing.T) {
	tmp := t.TempDir()
	src := ssOpenLog(t, filepath.Join(tmp, "src"))
	ssFill(t, src, 1, 50, 2, "s")
	dst := ssOpenLog(t, filepath.Join(tmp, "dst"))
	from, _ := ssStore(t, src)
	to, toDir := ssStore(t, dst)
	id := ssTake(t, from, src, 40, []byte("m"))

	sink, _, err := ssSend(t, from, to, id, 4096, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	// "Crash" before Restore: reopen the store.
	to2, err := NewSnapshotStore(toDir, dst, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := to2.List(); len(l) != 0 {
		t.Fatalf("uninstalled snapshot listed after restart: %v", l)
	}
	if names, _ := dst.StagingNames(); len(names) != 0 {
		t.Fatalf("staging left: %v", names)
	}
	if _, _, err := to2.Open(sink.ID()); err == nil {
		t.Fatal("discarded snapshot opened")
	}

	// Installed in the log, but the crash came before the store noted it.
	sink, _, err = ssSend(t, from, to2, id, 4096, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, rc, err := to2.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	rs := rc.(*ReceivedSnapshot)
	if err := rs.Install(); err != nil {
		t.Fatal(err)
	}
	sn := *rs.sn
	sn.state = stateReceived
	if err := to2.write(&sn); err != nil {
		t.Fatal(err)
	}
	to3, err := NewSnapshotStore(toDir, dst, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := to3.List(); len(l) != 1 || l[0].ID != sink.ID() {
		t.Fatalf("installed snapshot not listed after restart: %v", l)
	}
}
