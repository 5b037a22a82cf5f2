package transport

import "errors"

var (
	// ErrClosed is returned by every operation on a Mux or Transport that
	// has been closed, and fails the calls that were pending at Close.
	ErrClosed = errors.New("transport: closed")
	// ErrConnLost fails the calls that were waiting on a connection when it
	// broke; the next call dials again.
	ErrConnLost = errors.New("transport: connection lost")
	// ErrTimeout is returned by a raft RPC whose response did not arrive
	// within Options.RPCTimeout.
	ErrTimeout = errors.New("transport: rpc timed out")
	// ErrFrameTooLarge is returned for a frame whose length exceeds the cap
	// for its connection, on either side: the receiver closes the connection
	// without allocating, the sender refuses to send.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrMalformed is returned for a frame or message that does not decode.
	ErrMalformed = errors.New("transport: malformed message")
	// ErrBadPreamble closes an inbound connection that does not start with
	// the transport's magic, version and a known connection kind.
	ErrBadPreamble = errors.New("transport: bad connection preamble")
	// ErrUnknownGroup is returned when the receiver hosts no (open) raft
	// group with the request's id. Raft retries; a group created later
	// answers.
	ErrUnknownGroup = errors.New("transport: unknown group")
	// ErrUnknownMethod is returned by Call when the receiver has no handler
	// for the method.
	ErrUnknownMethod = errors.New("transport: unknown method")
	// ErrBusy is returned when the receiver refused a request because too
	// many were queued for the group or running for Handle.
	ErrBusy = errors.New("transport: receiver busy")
	// ErrRemoteClosed is returned when the receiving group or Mux shut down
	// before it answered.
	ErrRemoteClosed = errors.New("transport: receiver shut down")
	// ErrDropped is returned at once for a request the Fault function told
	// the sender to drop (as if the peer refused the connection).
	ErrDropped = errors.New("transport: dropped by fault injection")
	// ErrSnapshotSize is returned by InstallSnapshot when the data reader
	// ends before the request's Size bytes.
	ErrSnapshotSize = errors.New("transport: snapshot shorter than its size")
)

// RemoteError is the error a handler (or a remote raft) returned, carried
// back to the caller. Error returns the remote text unchanged.
type RemoteError struct {
	Text string
}

func (e *RemoteError) Error() string { return e.Text }
