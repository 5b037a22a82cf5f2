package metrics

import "errors"

var (
	// ErrStarted is returned by Start on a Server already started.
	ErrStarted = errors.New("metrics: server already started")
	// ErrShutdown is returned by Start after Shutdown.
	ErrShutdown = errors.New("metrics: server shut down")
)
