package log

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned after Close, or after an I/O error failed the log
	// closed; in the latter case it wraps the first error.
	ErrClosed = errors.New("log: closed")
	// ErrCorrupt reports damage to data that had been fsynced. It is always
	// wrapped in a *CorruptError naming the file and byte offset.
	ErrCorrupt = errors.New("log: corrupt")
	// ErrNotFound is returned by Entry for an index outside the log. Raft
	// adapters must translate it to raft.ErrLogNotFound unwrapped.
	ErrNotFound = errors.New("log: entry not found")
	// ErrOffsetOutOfRange is returned by Read for an offset outside
	// [StartOffset, EndOffset].
	ErrOffsetOutOfRange = errors.New("log: offset out of range")
	// ErrOutOfOrder is returned when appended entries do not continue the log's indexes.
	ErrOutOfOrder = errors.New("log: entry index out of order")
	// ErrInvalidBatch is returned when a batch entry is not a RecordBatch v2.
	ErrInvalidBatch = errors.New("log: invalid record batch")
	// ErrTooLarge is returned for an entry larger than Options.MaxEntryBytes.
	ErrTooLarge = errors.New("log: entry too large")
	// ErrSnapshot is returned for a snapshot that cannot be streamed or
	// installed: entries already deleted, or staged files that are not a
	// valid log ending where the snapshot says.
	ErrSnapshot = errors.New("log: invalid snapshot")
)

// CorruptError names where damaged data was found.
type CorruptError struct {
	File   string
	Offset int64 // byte offset within File
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("log: corrupt data in %s at byte %d: %s", e.File, e.Offset, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

func corrupt(file string, off int64, format string, args ...any) error {
	return &CorruptError{File: file, Offset: off, Reason: fmt.Sprintf(format, args...)}
}
