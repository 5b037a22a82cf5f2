package client

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Offset is a position to start consuming from or to reset a group to.
type Offset struct {
	kind offsetKind
	at   int64 // the offset, or the time in Unix milliseconds
}

type offsetKind uint8

const (
	offsetStart offsetKind = iota
	offsetEnd
	offsetExact
	offsetTime
)

// Beginning is the oldest record still in the log.
func Beginning() Offset { return Offset{kind: offsetStart} }

// End is the next record to be written: only new records.
func End() Offset { return Offset{kind: offsetEnd} }

// AtOffset is an exact offset. Resets clamp it to the log's bounds; a
// new consumer whose offset is outside the log starts at the nearest end.
func AtOffset(n int64) Offset { return Offset{kind: offsetExact, at: max(n, 0)} }

// AtTime is the first record with a timestamp at or after t, or the end
// when there is none.
func AtTime(t time.Time) Offset { return Offset{kind: offsetTime, at: t.UnixMilli()} }

func (o Offset) String() string {
	switch o.kind {
	case offsetEnd:
		return "end"
	case offsetExact:
		return fmt.Sprintf("offset %d", o.at)
	case offsetTime:
		return "time " + time.UnixMilli(o.at).UTC().Format(time.RFC3339Nano)
	}
	return "beginning"
}

func (o Offset) kgo() kgo.Offset {
	switch o.kind {
	case offsetEnd:
		return kgo.NewOffset().AtEnd()
	case offsetExact:
		return kgo.NewOffset().At(o.at)
	case offsetTime:
		return kgo.NewOffset().AfterMilli(o.at)
	}
	return kgo.NewOffset().AtStart()
}
