package log

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/log/vfs"
)

// Options configure a Log. The zero value of every field means the default
// documented on it.
type Options struct {
	// FS is the filesystem; default vfs.OS{}.
	FS vfs.FS
	// Logger receives recovery and failure events; default zerolog.Nop().
	Logger *zerolog.Logger
	// SegmentBytes rolls the active segment before it would grow past this
	// many bytes (Kafka segment.bytes); default 1 GiB, at most 2 GiB.
	SegmentBytes int64
	// SegmentAge rolls a non-empty active segment this old (Kafka segment.ms);
	// default 0, never.
	SegmentAge time.Duration
	// IndexIntervalBytes is the spacing of sparse index entries; default 4096.
	IndexIntervalBytes int
	// MaxEntryBytes refuses larger entries with ErrTooLarge; default 100 MiB,
	// at most 1 GiB.
	MaxEntryBytes int
	// MaxGroupBytes caps the bytes written between two fsyncs of one group
	// commit; default 16 MiB.
	MaxGroupBytes int
	// CacheWindow, when positive, keeps only about this many bytes behind
	// the active segment's end in the page cache: older bytes, once
	// fsynced, are dropped (posix_fadvise DONTNEED where the file supports
	// it). Zero leaves the page cache to the kernel.
	CacheWindow int64
	// VerifyOnOpen CRC-walks every sealed segment on open, not only the
	// active one. Slower to open; finds latent damage early.
	VerifyOnOpen bool
	// Now is the clock used for segment ages; default time.Now.
	Now func() time.Time
}

func (o *Options) withDefaults() (Options, error) {
	c := *o
	if c.FS == nil {
		c.FS = vfs.OS{}
	}
	if c.Logger == nil {
		nop := zerolog.Nop()
		c.Logger = &nop
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = 1 << 30
	}
	if c.IndexIntervalBytes == 0 {
		c.IndexIntervalBytes = 4096
	}
	if c.MaxEntryBytes == 0 {
		c.MaxEntryBytes = 100 << 20
	}
	if c.MaxGroupBytes == 0 {
		c.MaxGroupBytes = 16 << 20
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.SegmentBytes < segmentHeaderSize+frameHeaderSize || c.SegmentBytes > 2<<30:
		return c, fmt.Errorf("log: SegmentBytes %d out of range [%d, 2 GiB]", c.SegmentBytes, segmentHeaderSize+frameHeaderSize)
	case c.SegmentAge < 0:
		return c, fmt.Errorf("log: negative SegmentAge %v", c.SegmentAge)
	case c.IndexIntervalBytes < 0:
		return c, fmt.Errorf("log: negative IndexIntervalBytes %d", c.IndexIntervalBytes)
	case c.MaxEntryBytes < 0 || c.MaxEntryBytes > maxFrameBytes-frameHeaderSize:
		return c, fmt.Errorf("log: MaxEntryBytes %d out of range [0, 1 GiB)", c.MaxEntryBytes)
	case c.MaxGroupBytes < 0:
		return c, fmt.Errorf("log: negative MaxGroupBytes %d", c.MaxGroupBytes)
	case c.CacheWindow < 0:
		return c, fmt.Errorf("log: negative CacheWindow %d", c.CacheWindow)
	}
	return c, nil
}
