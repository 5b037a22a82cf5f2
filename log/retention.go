package log

import "time"

// Retention is a topic's deletion policy (Kafka retention.bytes and
// retention.ms). A value <= 0 means no limit.
type Retention struct {
	MaxBytes int64
	MaxAge   time.Duration
}

// RetentionOffset returns the offset below which whole sealed segments may
// be deleted under p at time now: pass it to DeleteBefore. It only computes:
// in a replicated log the deletion itself is a replicated command, so all
// replicas agree on the log start. A segment is too old when its newest
// batch timestamp (or, holding no batch, its creation time) is older than
// MaxAge; the oldest segments go while the rest still exceed MaxBytes. The
// active segment is never eligible, as in Kafka.
func (l *Log) RetentionOffset(p Retention, now time.Time) int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var total int64
	for _, s := range l.segs {
		total += s.size
	}
	cut := l.start
	for _, s := range l.segs[:max(len(l.segs)-1, 0)] {
		newest := s.maxTs
		if newest < 0 {
			newest = s.hdr.createdMs
		}
		tooOld := p.MaxAge > 0 && now.UnixMilli()-newest > p.MaxAge.Milliseconds()
		tooBig := p.MaxBytes > 0 && total-s.size >= p.MaxBytes
		if !tooOld && !tooBig {
			break
		}
		total -= s.size
		cut = max(cut, s.next)
	}
	return cut
}
