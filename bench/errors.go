package bench

import "errors"

var (
	// ErrConfig is a configuration that cannot run; nothing was sent.
	ErrConfig = errors.New("bench: invalid configuration")
	// ErrUnreachable is a cluster that did not answer in time.
	ErrUnreachable = errors.New("bench: brokers unreachable")
	// ErrTopic is a topic that could not be created, found or used.
	ErrTopic = errors.New("bench: topic")
	// ErrIncomplete is a run that finished but lost messages on the way:
	// failed sends, or consumers that did not read everything. Run returns
	// its Result with this error.
	ErrIncomplete = errors.New("bench: run incomplete")
	// ErrSchema is a results file of another schema or version.
	ErrSchema = errors.New("bench: results schema")
)
