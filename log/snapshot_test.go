package log

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/sluicemq/sluice/log/vfs"
)

// snapState is everything a log says about its entries, for comparing two
// logs or one log before and after a crash.
type snapState struct {
	First, Last, NextIndex uint64
	Start, End             int64
	Entries                []Entry
}

func logState(t testing.TB, l *Log) snapState {
	t.Helper()
	s := snapState{First: l.FirstIndex(), Last: l.LastIndex(), NextIndex: l.NextIndex(), Start: l.StartOffset(), End: l.EndOffset()}
	if s.First == 0 {
		return s
	}
	for i := s.First; i <= s.Last; i++ {
		e, err := l.Entry(i)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		s.Entries = append(s.Entries, e)
	}
	if err := l.Verify(); err != nil {
		t.Fatalf("verify: %v", err)
	}
	return s
}

// fillLog stores n entries with indexes from first on, every fifth a
// non-batch entry, terms rising every 7 entries from term.
func fillLog(t testing.TB, l *Log, first uint64, n int, term uint64, seed int64) {
	t.Helper()
	for i := 0; i < n; i++ {
		idx := first + uint64(i)
		e := Entry{Index: idx, Term: term + uint64(i/7), Type: 1}
		if i%5 == 4 {
			e.Data = []byte(fmt.Sprintf("config %d/%d", seed, idx))
		} else {
			e.Batch, e.Type = true, 0
			e.Data = testBatch(1+i%3, seed*1000+int64(i), 30+i%50)
		}
		if err := l.StoreEntries([]Entry{e}); err != nil {
			t.Fatalf("store %d: %v", idx, err)
		}
	}
}

// stageStream copies a stream into a new staging area of dst, file by file.
func stageStream(t testing.TB, st *SnapshotStream, dst *Log, name string) *Staging {
	t.Helper()
	sg, err := dst.NewStaging(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range st.Files() {
		sf, err := sg.Create(f.Name, f.Size)
		if err != nil {
			t.Fatal(err)
		}
		// Small, odd-sized writes, as a network delivers them.
		if _, err := io.CopyBuffer(struct{ io.Writer }{sf}, io.LimitReader(st, f.Size), make([]byte, 777)); err != nil {
			t.Fatal(err)
		}
		if err := sf.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := st.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("stream past its files: %d, %v", n, err)
	}
	if err := sg.Finish(); err != nil {
		t.Fatal(err)
	}
	return sg
}

// wantInstalled checks that dst holds exactly src's entries through p.LastIndex
// from src's first index on, and starts at p.StartOffset.
func wantInstalled(t testing.TB, dst *Log, src snapState, p SnapshotPoint) {
	t.Helper()
	got := logState(t, dst)
	var want []Entry
	for _, e := range src.Entries {
		if e.Index <= p.LastIndex {
			want = append(want, e)
		}
	}
	if !reflect.DeepEqual(got.Entries, want) {
		t.Fatalf("installed %d entries (%d-%d), want %d", len(got.Entries), got.First, got.Last, len(want))
	}
	if got.Last != p.LastIndex || got.End != p.NextOffset || got.Start != p.StartOffset || got.NextIndex != p.LastIndex+1 {
		t.Fatalf("installed log last %d end %d start %d next index %d, want %+v", got.Last, got.End, got.Start, got.NextIndex, p)
	}
}

func TestSnapshotStreamAndInstall(t *testing.T) {
	for _, tc := range []struct {
		name    string
		through func(l *Log) uint64
	}{
		{"active segment cut", func(l *Log) uint64 { return l.LastIndex() - 3 }},
		{"whole log", func(l *Log) uint64 { return l.LastIndex() }},
		{"sealed segment cut", func(l *Log) uint64 { return l.Segments()[1].BaseIndex + 2 }},
		{"last of a sealed segment", func(l *Log) uint64 { return l.Segments()[1].LastIndex }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, _ := memOpts()
			o.SegmentBytes, o.IndexIntervalBytes = 2048, 256
			src := mustOpen(t, "/src", o)
			defer src.Close()
			fillLog(t, src, 1, 120, 1, 1)
			if err := src.DeleteBefore(src.Segments()[1].BaseOffset + 1); err != nil {
				t.Fatal(err)
			}
			dst := mustOpen(t, "/dst", o)
			defer dst.Close()
			fillLog(t, dst, 1, 30, 100, 2) // conflicting entries to be replaced

			srcState := logState(t, src)
			st, err := src.SnapshotReader(tc.through(src))
			if err != nil {
				t.Fatal(err)
			}
			var total int64
			for _, f := range st.Files() {
				total += f.Size
			}
			if total != st.Size() || len(st.Files()) == 0 {
				t.Fatalf("size %d, files add up to %d", st.Size(), total)
			}
			p := st.Point()
			sg := stageStream(t, st, dst, "a")
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			if err := dst.InstallSnapshot(sg, p); err != nil {
				t.Fatal(err)
			}
			wantInstalled(t, dst, srcState, p)
			if names, _ := dst.StagingNames(); len(names) != 0 {
				t.Fatalf("staging left behind: %v", names)
			}
			// The log continues after the snapshot, and all of it survives a reopen.
			fillLog(t, dst, p.LastIndex+1, 10, 500, 3)
			before := logState(t, dst)
			dst.Close()
			dst = mustOpen(t, "/dst", o)
			if after := logState(t, dst); !reflect.DeepEqual(before, after) {
				t.Fatalf("reopen changed the installed log")
			}
		})
	}
}

// TestSnapshotStreamConcurrentAppends: appends, rolls and retention while a
// stream is read change nothing it yields, and its segments stay pinned.
func TestSnapshotStreamConcurrentAppends(t *testing.T) {
	o, _ := memOpts()
	o.SegmentBytes, o.IndexIntervalBytes = 2048, 256
	src := mustOpen(t, "/src", o)
	defer src.Close()
	fillLog(t, src, 1, 100, 1, 1)
	srcState := logState(t, src)
	through := src.LastIndex()
	st, err := src.SnapshotReader(through)
	if err != nil {
		t.Fatal(err)
	}
	nsegs := len(st.Files())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 100; i++ {
			if _, err := src.Append(testBatch(2, int64(i), 60)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	// Retention past everything streamed: the pinned segments must stay.
	if err := src.DeleteBefore(srcState.End); err != nil {
		t.Fatal(err)
	}
	if got := src.Segments()[0].BaseIndex; got != 1 {
		t.Fatalf("pinned head segment removed: the log now starts at index %d", got)
	}
	dst := mustOpen(t, "/dst", o)
	defer dst.Close()
	p := st.Point()
	sg := stageStream(t, st, dst, "x")
	wg.Wait()
	if err := dst.InstallSnapshot(sg, p); err != nil {
		t.Fatal(err)
	}
	wantInstalled(t, dst, srcState, SnapshotPoint{LastIndex: through, LastTerm: p.LastTerm, NextOffset: srcState.End, StartOffset: srcState.Start})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// Unpinned, the segments below the start offset are gone.
	for _, s := range src.Segments()[:len(src.Segments())-1] {
		if s.NextOffset <= src.StartOffset() {
			t.Fatalf("segment %s below the start offset %d kept after the stream closed (%d streamed)", s.Path, src.StartOffset(), nsegs)
		}
	}
}

// TestSnapshotEmptyStream: a log reset at S+1 streams no files, and
// installing that empties the receiver at S+1 with the next offset.
func TestSnapshotEmptyStream(t *testing.T) {
	o, _ := memOpts()
	src := mustOpen(t, "/src", o)
	defer src.Close()
	if err := src.Reset(51, 700); err != nil {
		t.Fatal(err)
	}
	st, err := src.SnapshotReader(50)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Files()) != 0 || st.Size() != 0 || st.Point() != (SnapshotPoint{LastIndex: 50, NextOffset: 700, StartOffset: 700}) {
		t.Fatalf("empty stream: %v %d %+v", st.Files(), st.Size(), st.Point())
	}
	if _, err := src.SnapshotReader(49); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("stream through a deleted index: %v", err)
	}
	if _, err := src.SnapshotReader(51); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("stream through a missing index: %v", err)
	}
	dst := mustOpen(t, "/dst", o)
	defer dst.Close()
	fillLog(t, dst, 1, 60, 1, 1)
	sg := stageStream(t, st, dst, "e")
	if err := dst.InstallSnapshot(sg, SnapshotPoint{LastIndex: 50, LastTerm: 9, NextOffset: 700, StartOffset: 3}); err != nil {
		t.Fatal(err)
	}
	if got := logState(t, dst); got.First != 0 || got.NextIndex != 51 || got.Start != 700 || got.End != 700 {
		t.Fatalf("after an empty install: %+v", got)
	}
	fillLog(t, dst, 51, 3, 9, 4)
	if e, err := dst.Entry(51); err != nil || e.BaseOffset != 700 {
		t.Fatalf("first entry after an empty install: %+v, %v", e, err)
	}
}

// TestSnapshotInstallRefusesGarbage: damaged, incomplete or mislabelled
// staged files are refused with ErrSnapshot and the log is untouched.
func TestSnapshotInstallRefusesGarbage(t *testing.T) {
	o, m := memOpts()
	o.SegmentBytes = 2048
	src := mustOpen(t, "/src", o)
	defer src.Close()
	fillLog(t, src, 1, 60, 1, 1)
	dst := mustOpen(t, "/dst", o)
	defer dst.Close()
	fillLog(t, dst, 1, 20, 1, 9)
	old := logState(t, dst)

	stage := func(name string) (*Staging, SnapshotPoint) {
		st, err := src.SnapshotReader(55)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		return stageStream(t, st, dst, name), st.Point()
	}
	for _, tc := range []struct {
		name   string
		damage func(sg *Staging, p *SnapshotPoint)
	}{
		{"flipped byte", func(sg *Staging, p *SnapshotPoint) {
			f := sg.Files()[1]
			if err := m.CorruptAt(filepath.Join(sg.Dir(), f.Name), f.Size/2, 0x40); err != nil {
				t.Fatal(err)
			}
		}},
		{"wrong term", func(sg *Staging, p *SnapshotPoint) { p.LastTerm++ }},
		{"wrong next offset", func(sg *Staging, p *SnapshotPoint) { p.NextOffset-- }},
		{"start before the files", func(sg *Staging, p *SnapshotPoint) {
			sg.files = sg.files[1:]
			p.StartOffset = 0
		}},
		{"gap between files", func(sg *Staging, p *SnapshotPoint) { sg.files = append(sg.files[:1], sg.files[2:]...) }},
		{"truncated file", func(sg *Staging, p *SnapshotPoint) {
			f := sg.Files()[0]
			if err := m.TruncateFile(filepath.Join(sg.Dir(), f.Name), f.Size-1); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sg, p := stage("g")
			tc.damage(sg, &p)
			err := dst.InstallSnapshot(sg, p)
			if !errors.Is(err, ErrSnapshot) {
				t.Fatalf("install: %v, want ErrSnapshot", err)
			}
			t.Log(err)
			if got := logState(t, dst); !reflect.DeepEqual(got, old) {
				t.Fatal("refused install changed the log")
			}
			if err := sg.Remove(); err != nil {
				t.Fatal(err)
			}
		})
	}

	// The staging writer refuses a header that disagrees with the name,
	// more bytes than declared, and a short file.
	sg, err := dst.NewStaging("w")
	if err != nil {
		t.Fatal(err)
	}
	defer sg.Remove()
	name := segmentName(0, 1) + segmentExt
	sf, err := sg.Create(name, 200)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sf.Write(segmentHeader{baseIndex: 2, baseOffset: 0}.encode()); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("mislabelled header: %v", err)
	}
	if err := sf.Close(); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("close after a refused write: %v", err)
	}
	sf, err = sg.Create(name, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sf.Write(make([]byte, 101)); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("too many bytes: %v", err)
	}
	sf.Close()
	sf, err = sg.Create(name, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sf.Write(segmentHeader{baseIndex: 1}.encode()); err != nil {
		t.Fatal(err)
	}
	if err := sf.Close(); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("short file: %v", err)
	}
	if _, err := sg.Create("../x.seg", 100); err == nil {
		t.Fatal("path in a staged name accepted")
	}
	if _, err := sg.Create(name, 1<<40); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("huge size: %v", err)
	}
	if err := dst.InstallSnapshot(sg, SnapshotPoint{LastIndex: 1}); err == nil {
		t.Fatal("unfinished staging installed")
	}
}

// TestSnapshotInstallPowerLoss loses power at every filesystem call of an
// install (and of the recovery that finishes one), with torn writes and
// garbage: reopening must show the old log or the new one, never a mix,
// and the new one once the install has returned.
func TestSnapshotInstallPowerLoss(t *testing.T) {
	for _, empty := range []bool{false, true} {
		t.Run(fmt.Sprintf("empty=%v", empty), func(t *testing.T) {
			sawOld, sawNew := 0, 0
			for crashAt := 1; ; crashAt++ {
				r := rand.New(rand.NewPCG(uint64(crashAt), 7))
				m := vfs.NewMem()
				o := Options{FS: m, SegmentBytes: 2048, IndexIntervalBytes: 256}
				src := mustOpen(t, "/p/src", o)
				if empty {
					if err := src.Reset(41, 333); err != nil {
						t.Fatal(err)
					}
				} else {
					fillLog(t, src, 1, 80, 5, 1)
					if err := src.DeleteBefore(src.Segments()[1].BaseOffset); err != nil {
						t.Fatal(err)
					}
				}
				through := uint64(40)
				if !empty {
					through = src.LastIndex() - 2
				}
				srcState := logState(t, src)

				dst := mustOpen(t, "/p/dst", o)
				fillLog(t, dst, 1, 70, 1, 2) // the old log: same names as the new segments
				oldState := logState(t, dst)
				dst.Close()

				cfs := newCrashFS(m, r, 0)
				dst = mustOpen(t, "/p/dst", Options{FS: cfs, SegmentBytes: 2048, IndexIntervalBytes: 256})
				st, err := src.SnapshotReader(through)
				if err != nil {
					t.Fatal(err)
				}
				p := st.Point()
				if empty {
					p.LastTerm = 3
				}
				sg := stageStream(t, st, dst, "s")
				st.Close()
				src.Close()
				cfs.mu.Lock()
				cfs.crashAt = cfs.ops + crashAt
				cfs.mu.Unlock()
				err = dst.InstallSnapshot(sg, p)
				dst.Close()
				done := !cfs.dead.Load()
				if done && err != nil {
					t.Fatalf("crashAt %d: install without a crash: %v", crashAt, err)
				}
				if !done {
					// Sometimes lose power again while recovery finishes it.
					cfs2 := newCrashFS(m, r, 1+r.IntN(12))
					if l, err := Open("/p/dst", Options{FS: cfs2}); err == nil {
						l.Close()
					} else if !cfs2.dead.Load() {
						t.Fatalf("crashAt %d: recovery: %v", crashAt, err)
					}
				}
				dst, err = Open("/p/dst", Options{FS: m, SegmentBytes: 2048, IndexIntervalBytes: 256})
				if err != nil {
					t.Fatalf("crashAt %d: open after power loss: %v", crashAt, err)
				}
				got := logState(t, dst)
				switch {
				case reflect.DeepEqual(got, oldState) && !done:
					sawOld++
				case !empty && got.Last == p.LastIndex:
					wantInstalled(t, dst, srcState, p)
					sawNew++
				case empty && got.First == 0 && got.NextIndex == 41 && got.Start == 333 && got.End == 333:
					sawNew++
				default:
					t.Fatalf("crashAt %d (done %v): log is neither the old nor the new one: first %d last %d next %d [%d, %d)",
						crashAt, done, got.First, got.Last, got.NextIndex, got.Start, got.End)
				}
				// Whatever it shows, it takes appends.
				fillLog(t, dst, got.NextIndex, 2, 50, 3)
				if got.First == 0 {
					if e, err := dst.Entry(got.NextIndex); err != nil || e.BaseOffset != got.End {
						t.Fatalf("crashAt %d: append after recovery: %+v %v", crashAt, e, err)
					}
				}
				dst.Close()
				if done {
					break
				}
			}
			if sawOld == 0 || sawNew < 2 {
				t.Fatalf("crash points showed the old log %d times and the new one %d times", sawOld, sawNew)
			}
			t.Logf("old %d, new %d", sawOld, sawNew)
		})
	}
}

// TestSnapshotRecoveryRefusesLostStagedFile: a committed install whose staged
// file vanished is refused, not opened as a log with a hole.
func TestSnapshotRecoveryRefusesLostStagedFile(t *testing.T) {
	o, m := memOpts()
	o.SegmentBytes = 2048
	src := mustOpen(t, "/src", o)
	defer src.Close()
	fillLog(t, src, 1, 60, 1, 1)
	dst := mustOpen(t, "/dst", o)
	st, err := src.SnapshotReader(50)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sg := stageStream(t, st, dst, "lost")
	dst.Close()
	// A marker as the install writes it, then one staged file gone.
	if err := m.WriteFile("/dst/"+installName, encodeInstall("lost", st.Point(), st.Files()), true); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(filepath.Join(sg.Dir(), st.Files()[1].Name)); err != nil {
		t.Fatal(err)
	}
	_, err = Open("/dst", o)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open: %v, want ErrCorrupt", err)
	}
	if b, _ := m.ReadFile("/dst/" + installName); !bytes.Equal(b[:4], []byte(installMagic)) {
		t.Fatal("marker removed by a failed recovery")
	}
	if _, err := m.Stat("/dst/" + installName); errors.Is(err, os.ErrNotExist) {
		t.Fatal("marker gone")
	}
}
