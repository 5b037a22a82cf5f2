package log

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluicemq/sluice/log/vfs"
)

// recover implements the numbered steps of FORMAT.md "Recovery on open".
func (l *Log) recover() error {
	// Step 0: finish a snapshot install whose marker is durable.
	if err := l.finishInstall(); err != nil {
		return err
	}
	// Step 1: list, clean temporaries and cleaner leftovers, parse names,
	// load the checkpoint.
	names, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("log: list %s: %w", l.dir, err)
	}
	var segNames []string
	indexes := map[string]bool{}
	for _, name := range names {
		path := filepath.Join(l.dir, name)
		switch {
		case strings.HasSuffix(name, tmpExt), strings.HasSuffix(name, cleanedExt):
			// A checkpoint or index being written, or a cleaner's copy
			// that was never renamed over its segment.
			if err := l.fs.Remove(path); err != nil {
				return fmt.Errorf("log: remove %s: %w", path, err)
			}
			l.recovery.RemovedFiles = append(l.recovery.RemovedFiles, path)
		case strings.HasSuffix(name, segmentExt):
			if _, _, ok := parseSegmentName(name); !ok {
				return corrupt(path, 0, "segment file name does not parse")
			}
			segNames = append(segNames, name)
		case strings.HasSuffix(name, indexExt):
			indexes[strings.TrimSuffix(name, indexExt)] = true
		}
	}
	ckpt := int64(-1)
	if b, err := vfs.ReadFile(l.fs, filepath.Join(l.dir, checkpointName), maxFrameBytes); err == nil {
		if ckpt, err = decodeCheckpoint(b); err != nil {
			return corrupt(filepath.Join(l.dir, checkpointName), 0, "%v", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("log: read checkpoint: %w", err)
	}

	for i, name := range segNames {
		stem := strings.TrimSuffix(name, segmentExt)
		delete(indexes, stem)
		s, err := l.openSegment(name, i == len(segNames)-1)
		if err != nil {
			return err
		}
		if s == nil {
			// A torn, just-created active segment was removed: the segment
			// before it is the active one again, and step 4 applies to it.
			if n := len(l.segs); n > 0 {
				p := l.segs[n-1]
				if err := l.fs.Remove(p.indexPath()); err == nil {
					l.recovery.RemovedFiles = append(l.recovery.RemovedFiles, p.indexPath())
				} else if !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("log: remove %s: %w", p.indexPath(), err)
				}
				p.sealed = false
			}
			continue
		}
		// Step 3: continuity with the previous segment.
		if n := len(l.segs); n > 0 {
			p := l.segs[n-1]
			if s.hdr.baseIndex != p.last+1 || s.hdr.baseOffset != p.next {
				s.file.Close()
				return corrupt(s.path, 0, "segment starts at index %d offset %d, previous ends at index %d offset %d",
					s.hdr.baseIndex, s.hdr.baseOffset, p.last, p.next)
			}
		}
		l.segs = append(l.segs, s)
	}
	// Index files whose segment is gone (a crash during deletion) are litter.
	for stem := range indexes {
		path := filepath.Join(l.dir, stem+indexExt)
		if err := l.fs.Remove(path); err != nil {
			return fmt.Errorf("log: remove %s: %w", path, err)
		}
		l.recovery.RemovedFiles = append(l.recovery.RemovedFiles, path)
	}
	if len(l.recovery.RemovedFiles) > 0 {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("log: fsync dir: %w", err)
		}
	}

	// Step 7: the start offset. A log begins at offset 0 and its head only
	// moves through DeleteBefore or Reset, which write the checkpoint
	// first; a first segment past it means head segments were lost.
	if len(l.segs) > 0 {
		first := l.segs[0]
		switch {
		case ckpt < 0 && first.hdr.baseOffset > 0:
			return corrupt(first.path, 0, "the log starts at offset %d with no %s: the segments before it are missing", first.hdr.baseOffset, checkpointName)
		case ckpt >= 0 && ckpt < first.hdr.baseOffset:
			return corrupt(first.path, 0, "%s says the log starts at %d but the first segment starts at %d: segments are missing", checkpointName, ckpt, first.hdr.baseOffset)
		}
		l.start = max(ckpt, first.hdr.baseOffset)
		l.start = min(l.start, l.active().next)
	} else if ckpt > 0 {
		l.start = ckpt
	}
	if r := l.recovery; r.TruncatedBytes > 0 || len(r.RebuiltIndexes) > 0 || len(r.RemovedFiles) > 0 {
		l.log.Warn().Str("truncated_file", r.TruncatedFile).Int64("truncated_at", r.TruncatedAt).
			Int64("truncated_bytes", r.TruncatedBytes).Strs("rebuilt_indexes", r.RebuiltIndexes).
			Strs("removed_files", r.RemovedFiles).Msg("log recovered")
	}
	return nil
}

// openSegment opens one segment (steps 2, 4, 5 and 6). It returns nil, nil
// when the active segment was a torn creation and has been removed.
func (l *Log) openSegment(name string, active bool) (_ *segment, err error) {
	path := filepath.Join(l.dir, name)
	f, err := l.fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("log: open %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("log: stat %s: %w", path, err)
	}
	raw := make([]byte, min(size, segmentHeaderSize))
	if _, err := f.ReadAt(raw, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("log: read %s: %w", path, err)
	}
	hdr, herr := decodeSegmentHeader(raw)
	if herr != nil {
		// Step 4: a header torn while the segment was being created.
		if active && size <= segmentHeaderSize {
			f.Close()
			if err := l.fs.Remove(path); err != nil {
				return nil, fmt.Errorf("log: remove %s: %w", path, err)
			}
			l.recovery.RemovedFiles = append(l.recovery.RemovedFiles, path)
			return nil, nil
		}
		return nil, corrupt(path, 0, "%v", herr)
	}
	if o, i, _ := parseSegmentName(name); o != hdr.baseOffset || i != hdr.baseIndex {
		return nil, corrupt(path, 0, "header says offset %d index %d, name disagrees", hdr.baseOffset, hdr.baseIndex)
	}
	s := &segment{path: path, file: f, hdr: hdr}
	if active {
		return s, l.recoverActive(s, size)
	}
	return s, l.loadSealed(s, size)
}

// loadSealed trusts a sealed segment's index when it agrees with the file,
// and otherwise rebuilds it by a full walk that must find no damage.
func (l *Log) loadSealed(s *segment, size int64) error {
	s.size, s.sealed = size, true
	if b, err := vfs.ReadFile(l.fs, s.indexPath(), maxFrameBytes); err == nil {
		last, next, maxTs, entries, derr := decodeIndex(b, s.hdr, size)
		if derr == nil {
			s.last, s.next, s.maxTs, s.index = last, next, maxTs, entries
			if !l.opts.VerifyOnOpen {
				return nil
			}
		} else {
			l.log.Warn().Str("file", s.indexPath()).Err(derr).Msg("rebuilding index")
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("log: read %s: %w", s.indexPath(), err)
	}
	w, err := walk(s.file, s.path, s.hdr, walkStart(s.hdr), size, l.opts.IndexIntervalBytes)
	if err != nil {
		return err
	}
	if w.bad != nil {
		return w.bad // sealed data was fsynced: never truncate it
	}
	if w.last < s.hdr.baseIndex {
		return corrupt(s.path, segmentHeaderSize, "sealed segment holds no entries")
	}
	if s.index != nil { // VerifyOnOpen with a good index: it must agree
		if w.last != s.last || w.next != s.next || w.maxTs != s.maxTs {
			return corrupt(s.indexPath(), 0, "index disagrees with its verified segment")
		}
		return nil
	}
	s.last, s.next, s.maxTs, s.index = w.last, w.next, w.maxTs, w.index
	if err := vfs.WriteFileAtomic(l.fs, s.indexPath(), encodeIndex(s)); err != nil {
		return fmt.Errorf("log: write %s: %w", s.indexPath(), err)
	}
	l.recovery.RebuiltIndexes = append(l.recovery.RebuiltIndexes, s.indexPath())
	return nil
}

// recoverActive walks the active segment and cuts a torn tail, refusing
// damage to bytes that had been fsynced.
func (l *Log) recoverActive(s *segment, size int64) error {
	if err := l.fs.Remove(s.indexPath()); err == nil {
		l.recovery.RemovedFiles = append(l.recovery.RemovedFiles, s.indexPath())
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("log: remove %s: %w", s.indexPath(), err)
	}
	w, err := walk(s.file, s.path, s.hdr, walkStart(s.hdr), size, l.opts.IndexIntervalBytes)
	if err != nil {
		return err
	}
	if w.bad != nil {
		synced, err := syncedPast(s, w.end, size)
		if err != nil {
			return err
		}
		if synced {
			return w.bad
		}
		if err := s.file.Truncate(w.end); err != nil {
			return fmt.Errorf("log: truncate %s: %w", s.path, err)
		}
		if err := s.file.Sync(); err != nil {
			return fmt.Errorf("log: fsync %s: %w", s.path, err)
		}
		l.recovery.TruncatedFile, l.recovery.TruncatedAt, l.recovery.TruncatedBytes = s.path, w.end, size-w.end
		size = w.end
	}
	s.size, s.last, s.next, s.maxTs, s.index = size, w.last, w.next, w.maxTs, w.index
	return nil
}

// syncedPast reports whether the bad bytes at p had been fsynced: true when
// the frame at p is itself intact (so the damage is logical, not a torn
// write), or when a later intact frame says the file was durable past p.
func syncedPast(s *segment, p, size int64) (bool, error) {
	const window = 1 << 20
	magic := []byte(frameMagic)
	buf := make([]byte, window+len(magic)-1)
	for base := p; base < size; base += window {
		n := min(int64(len(buf)), size-base)
		if _, err := s.file.ReadAt(buf[:n], base); err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("log: read %s: %w", s.path, err)
		}
		for i := 0; ; {
			j := bytes.Index(buf[i:n], magic)
			if j < 0 || int64(i+j) >= window {
				break
			}
			c := base + int64(i+j)
			ok, synced, err := intactFrameAt(s, c, size)
			if err != nil {
				return false, err
			}
			if ok && (c == p || int64(synced) > p) {
				return true, nil
			}
			i += j + 1
		}
	}
	return false, nil
}

// intactFrameAt reports whether a whole frame with a good CRC starts at c.
func intactFrameAt(s *segment, c, size int64) (ok bool, syncedThrough uint32, err error) {
	if size-c < frameHeaderSize {
		return false, 0, nil
	}
	raw := make([]byte, frameHeaderSize)
	if _, err := s.file.ReadAt(raw, c); err != nil && !errors.Is(err, io.EOF) {
		return false, 0, fmt.Errorf("log: read %s: %w", s.path, err)
	}
	h, parsed := parseFrameHeader(raw)
	if !parsed || int64(h.length) > size-c-frameHeaderSize || h.length > maxFrameBytes {
		return false, 0, nil
	}
	payload := make([]byte, h.length)
	if _, err := s.file.ReadAt(payload, c+frameHeaderSize); err != nil && !errors.Is(err, io.EOF) {
		return false, 0, fmt.Errorf("log: read %s: %w", s.path, err)
	}
	return h.verify(raw, payload), h.syncedThrough, nil
}
