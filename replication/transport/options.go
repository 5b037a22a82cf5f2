package transport

import (
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"
)

// Defaults for the zero values of Options.
const (
	DefaultDialTimeout     = 2 * time.Second
	DefaultRPCTimeout      = 10 * time.Second
	DefaultMaxAppendBytes  = 8 << 20
	DefaultMaxRPCsInFlight = 4
	DefaultMaxCalls        = 256
	DefaultMaxGroupQueue   = 256

	// MaxFrame is the largest frame a receiver accepts on a bulk connection
	// (64 MiB of payload plus room for headers); larger lengths close the
	// connection before anything is allocated. MaxAppendBytes is clamped so
	// that one entry can always be sent; a single entry larger than this
	// cannot be replicated (raft retries it and fails each time).
	MaxFrame = 64<<20 + 64<<10
	// maxSnapshotHeader caps the InstallSnapshot request frame (it carries
	// the raft configuration, not the data).
	maxSnapshotHeader = 4 << 20
	// smallCall is the request size up to which Call uses the control
	// connection.
	smallCall = 64 << 10
)

// Options configure a Mux. The zero value is usable.
type Options struct {
	// Logger receives the transport's log lines; the zero value is
	// disabled. The library never prints.
	Logger zerolog.Logger
	// Advertise is the address peers dial to reach this Mux, and the
	// LocalAddr of its transports; by default the bound listener address.
	Advertise raft.ServerAddress
	// DialTimeout bounds a TCP dial; default 2s.
	DialTimeout time.Duration
	// RPCTimeout bounds how long a raft RPC waits for its response, and
	// each write to a connection; default 10s. InstallSnapshot instead
	// fails when no byte moves for RPCTimeout.
	RPCTimeout time.Duration
	// MaxAppendBytes bounds the entry bytes of one AppendEntries request.
	// The transport trims a longer request's Entries (raft reads them back
	// after the call and sends the rest next), so MaxAppendEntries times
	// the entry size never makes a frame the receiver refuses, and one
	// group's batch holds the bulk connection for a bounded time. Default
	// 8 MiB, at most MaxFrame less 64 KiB; at least one entry is sent.
	MaxAppendBytes int
	// MaxRPCsInFlight is the AppendEntries pipeline depth per group and
	// follower; 1 disables pipelining. Default 4.
	MaxRPCsInFlight int
	// MaxCalls bounds the Handle handlers running at once; more calls are
	// refused with ErrBusy. Default 256.
	MaxCalls int
	// MaxGroupQueue bounds the raft requests queued for one group while its
	// raft is busy; more are refused with ErrBusy. Default 256.
	MaxGroupQueue int
}

func (o *Options) setDefaults() {
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.RPCTimeout <= 0 {
		o.RPCTimeout = DefaultRPCTimeout
	}
	if o.MaxAppendBytes <= 0 {
		o.MaxAppendBytes = DefaultMaxAppendBytes
	}
	if o.MaxAppendBytes > MaxFrame-64<<10 {
		o.MaxAppendBytes = MaxFrame - 64<<10
	}
	if o.MaxRPCsInFlight <= 0 {
		o.MaxRPCsInFlight = DefaultMaxRPCsInFlight
	}
	if o.MaxCalls <= 0 {
		o.MaxCalls = DefaultMaxCalls
	}
	if o.MaxGroupQueue <= 0 {
		o.MaxGroupQueue = DefaultMaxGroupQueue
	}
}

// Fault is what SetFault's function answers for a message about to be sent.
type Fault struct {
	// Drop discards the message. A dropped request fails its call at once
	// with ErrDropped (as a refused connection would); a dropped response
	// is never sent, so the caller times out.
	Drop bool
	// Delay holds the message back before it is queued for writing. The
	// sending goroutine waits, so order is kept and that sender is slowed.
	Delay time.Duration
}
