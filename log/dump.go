package log

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluicemq/sluice/log/batch"
	"github.com/sluicemq/sluice/log/vfs"
)

// DumpOptions control Dump.
type DumpOptions struct {
	Records bool // decode each batch's records (decompressing)
	JSON    bool // one JSON object per line instead of text
}

// DumpFrame is one frame as Dump reports it.
type DumpFrame struct {
	Pos           int64         `json:"pos"`
	Index         uint64        `json:"index"`
	Term          uint64        `json:"term"`
	Type          uint8         `json:"type"`
	Batch         bool          `json:"batch"`
	BaseOffset    int64         `json:"base_offset"`
	OffsetCount   uint32        `json:"offset_count"`
	Length        uint32        `json:"length"`
	SyncedThrough uint32        `json:"synced_through"`
	CRCOK         bool          `json:"crc_ok"`
	Kafka         *batch.Header `json:"kafka,omitempty"`
	Records       []DumpRecord  `json:"records,omitempty"`
}

// DumpRecord is one decoded record.
type DumpRecord struct {
	Offset    int64  `json:"offset"`
	Timestamp int64  `json:"timestamp"`
	Key       []byte `json:"key"`
	Value     []byte `json:"value"`
	Headers   int    `json:"headers"`
}

// Dump prints a segment (.seg), index (.idx) or start checkpoint file in
// human-readable text or JSON lines, like raft-wal's waldump. It reads the
// file only; damage is printed and returned as a *CorruptError after
// everything before it has been shown.
func Dump(w io.Writer, fsys vfs.FS, path string, opts DumpOptions) error {
	if fsys == nil {
		fsys = vfs.OS{}
	}
	switch {
	case strings.HasSuffix(path, segmentExt):
		return dumpSegment(w, fsys, path, opts)
	case strings.HasSuffix(path, indexExt):
		return dumpIndex(w, fsys, path, opts)
	case filepath.Base(path) == checkpointName:
		b, err := vfs.ReadFile(fsys, path, maxFrameBytes)
		if err != nil {
			return err
		}
		off, err := decodeCheckpoint(b)
		if err != nil {
			return corrupt(path, 0, "%v", err)
		}
		return emit(w, opts, map[string]any{"file": path, "start_offset": off}, "start offset %d\n", off)
	}
	return fmt.Errorf("log: %s: not a segment (%s), index (%s) or %s", path, segmentExt, indexExt, checkpointName)
}

func emit(w io.Writer, opts DumpOptions, v any, format string, args ...any) error {
	if opts.JSON {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintf(w, format, args...)
	return err
}

func dumpSegment(w io.Writer, fsys vfs.FS, path string, opts DumpOptions) error {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return err
	}
	raw := make([]byte, min(size, segmentHeaderSize))
	if _, err := f.ReadAt(raw, 0); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	hdr, err := decodeSegmentHeader(raw)
	if err != nil {
		return corrupt(path, 0, "%v", err)
	}
	if err := emit(w, opts, map[string]any{"file": path, "base_index": hdr.baseIndex, "base_offset": hdr.baseOffset, "created_ms": hdr.createdMs, "size": size},
		"segment %s\n  base index %d, base offset %d, created %d ms, %d bytes\n", path, hdr.baseIndex, hdr.baseOffset, hdr.createdMs, size); err != nil {
		return err
	}
	r := &frameReader{f: f, name: path, pos: segmentHeaderSize, end: size, chunk: 1 << 20}
	frames := 0
	for {
		fr, err := r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			emit(w, opts, map[string]any{"error": err.Error()}, "  %v\n", err)
			return err
		}
		d := DumpFrame{
			Pos: fr.pos, Index: fr.hdr.index, Term: fr.hdr.term, Type: fr.hdr.entryType, Batch: fr.hdr.isBatch(),
			BaseOffset: fr.hdr.baseOffset, OffsetCount: fr.hdr.offsetCount, Length: fr.hdr.length,
			SyncedThrough: fr.hdr.syncedThrough, CRCOK: fr.hdr.verify(fr.raw, fr.payload),
		}
		if d.Batch {
			if h, err := batch.ParseHeader(fr.payload); err == nil {
				d.Kafka = &h
				if opts.Records {
					batch.Records(fr.payload, batch.DefaultLimits, func(rec batch.Record) error {
						d.Records = append(d.Records, DumpRecord{
							Offset: h.RecordOffset(rec), Timestamp: h.RecordTimestamp(rec),
							Key: rec.Key, Value: rec.Value, Headers: len(rec.Headers),
						})
						return nil
					})
				}
			}
		}
		if err := emitFrame(w, opts, &d); err != nil {
			return err
		}
		frames++
		if !d.CRCOK {
			err := corrupt(path, fr.pos, "frame checksum mismatch (index %d)", fr.hdr.index)
			emit(w, opts, map[string]any{"error": err.Error()}, "  %v\n", err)
			return err
		}
	}
	return emit(w, opts, map[string]any{"frames": frames}, "%d frames\n", frames)
}

func emitFrame(w io.Writer, opts DumpOptions, d *DumpFrame) error {
	if opts.JSON {
		return emit(w, opts, d, "")
	}
	kind := fmt.Sprintf("entry type %d", d.Type)
	if d.Batch {
		kind = fmt.Sprintf("batch offsets %d..%d", d.BaseOffset, d.BaseOffset+int64(d.OffsetCount)-1)
	}
	crc := "ok"
	if !d.CRCOK {
		crc = "BAD"
	}
	if _, err := fmt.Fprintf(w, "  @%d index %d term %d %s, %d bytes, synced-through %d, crc %s\n",
		d.Pos, d.Index, d.Term, kind, d.Length, d.SyncedThrough, crc); err != nil {
		return err
	}
	if k := d.Kafka; k != nil {
		if _, err := fmt.Fprintf(w, "    records %d, codec %s, timestamps %d..%d, producer %d epoch %d seq %d\n",
			k.RecordCount, k.Codec(), k.BaseTimestamp, k.MaxTimestamp, k.ProducerID, k.ProducerEpoch, k.BaseSequence); err != nil {
			return err
		}
	}
	for _, r := range d.Records {
		if _, err := fmt.Fprintf(w, "    offset %d ts %d key %q value %q headers %d\n", r.Offset, r.Timestamp, r.Key, r.Value, r.Headers); err != nil {
			return err
		}
	}
	return nil
}

func dumpIndex(w io.Writer, fsys vfs.FS, path string, opts DumpOptions) error {
	b, err := vfs.ReadFile(fsys, path, maxFrameBytes)
	if err != nil {
		return err
	}
	seg := strings.TrimSuffix(path, indexExt) + segmentExt
	o, i, ok := parseSegmentName(seg)
	if !ok {
		return fmt.Errorf("log: %s: index name does not parse", path)
	}
	var size int64
	if len(b) >= 32 {
		size = int64(le.Uint64(b[24:]))
	}
	last, next, maxTs, entries, err := decodeIndex(b, segmentHeader{baseIndex: i, baseOffset: o}, size)
	if err != nil {
		return corrupt(path, 0, "%v", err)
	}
	if err := emit(w, opts, map[string]any{"file": path, "segment_size": size, "last_index": last, "next_offset": next, "max_timestamp": maxTs, "entries": len(entries)},
		"index %s\n  covers %d bytes, last index %d, next offset %d, max timestamp %d, %d entries\n", path, size, last, next, maxTs, len(entries)); err != nil {
		return err
	}
	for _, e := range entries {
		if err := emit(w, opts, map[string]any{"pos": e.pos, "index": i + uint64(e.relIndex), "offset": o + int64(e.relOffset), "max_timestamp": e.maxTimestamp},
			"  @%d index %d offset %d max timestamp %d\n", e.pos, i+uint64(e.relIndex), o+int64(e.relOffset), e.maxTimestamp); err != nil {
			return err
		}
	}
	return nil
}
