package log

import (
	"errors"
	"io"
	"sort"

	"github.com/sluicemq/sluice/log/batch"
)

// errFound stops a record walk early.
var errFound = errors.New("found")

// OffsetForTimestamp returns the offset and timestamp of the first record at
// or after the start offset whose timestamp is >= ts, as Kafka's ListOffsets
// by timestamp does; found is false when no record is that recent. The
// sparse index finds the batch; the batch's records (decompressed when
// needed, within batch.DefaultLimits) give the exact record.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, found bool, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.err != nil {
		return 0, 0, false, l.err
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].next > l.start })
	for ; i < len(l.segs); i++ {
		s := l.segs[i]
		if s.maxTs < ts {
			continue
		}
		pos := s.posForTimestamp(ts)
		if s.hdr.baseOffset <= l.start {
			pos = max(pos, s.posForOffset(l.start))
		}
		r := &frameReader{f: s.file, name: s.path, pos: pos, end: s.size, chunk: 64 << 10}
		for {
			fr, err := r.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return 0, 0, false, err
			}
			if !fr.hdr.isBatch() || fr.hdr.nextOffset() <= l.start || batchMaxTimestamp(fr.payload) < ts {
				continue
			}
			if err := r.verify(&fr); err != nil {
				return 0, 0, false, err
			}
			h, err := batch.ParseHeader(fr.payload)
			if err != nil {
				return 0, 0, false, corrupt(s.path, fr.pos, "batch header: %v", err)
			}
			err = batch.Records(fr.payload, batch.DefaultLimits, func(rec batch.Record) error {
				if o := h.RecordOffset(rec); o >= l.start && h.RecordTimestamp(rec) >= ts {
					offset, timestamp, found = o, h.RecordTimestamp(rec), true
					return errFound
				}
				return nil
			})
			if found {
				return offset, timestamp, true, nil
			}
			if err != nil {
				return 0, 0, false, corrupt(s.path, fr.pos, "batch records: %v", err)
			}
		}
	}
	return 0, 0, false, nil
}
