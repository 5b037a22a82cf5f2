// Package transport carries every raft group of a broker, and the brokers'
// application RPCs, over one TCP listener and a fixed handful of
// connections per broker pair.
//
// raft.NetworkTransport gives each group its own listener and its own pool
// of connections with 256 KiB of bufio each; a broker with hundreds of
// partition replicas pays hundreds of listeners, thousands of connections
// and hundreds of MiB of buffers. Here a Mux owns the listener and the
// connections, and Mux.Group(id) returns the raft.Transport of one group,
// whose messages carry the group id.
//
// # Connections
//
// Each Mux dials, per peer, two long-lived connections that carry its own
// requests and the peer's responses (the peer dials its own two for the
// other direction):
//
//   - control: heartbeats, RequestVote, RequestPreVote, TimeoutNow,
//     AppendEntries without entries, Calls of up to 64 KiB;
//   - bulk: AppendEntries with entries (and every pipelined one, so a
//     pipeline's requests stay in order) and larger Calls.
//
// Heartbeats therefore never queue behind a large AppendEntries: the bulk
// connection may be busy writing megabytes while the control connection
// stays idle and prompt. Within the bulk connection, Options.MaxAppendBytes
// (8 MiB) bounds one request by trimming its Entries (raft reads them back
// and sends the rest next), so one group's batch delays the others' by
// at most that much.
//
// InstallSnapshot dials a third, short-lived connection per snapshot and
// streams it (below). A connection that breaks fails its pending calls at
// once with ErrConnLost; the next call dials again. A raft RPC whose answer
// does not come within Options.RPCTimeout fails with ErrTimeout, and if
// nothing at all arrived on its connection since the request was sent,
// that connection is dropped too (a silent peer).
//
// # Wire format
//
// All integers in headers are big-endian. A connection starts with a
// preamble from the dialer:
//
//	magic   4 bytes  "SLRT"
//	version 1 byte   1
//	kind    1 byte   1 control, 2 bulk, 3 snapshot
//	alen    2 bytes  length of the dialer's advertised address (<= 1024)
//	addr    alen bytes
//
// Then frames, each:
//
//	length  4 bytes  bytes after this field; <= MaxFrame (64 MiB + 64 KiB),
//	                 checked before anything is allocated
//	type    1 byte   1 AppendEntries, 2 RequestVote, 3 RequestPreVote,
//	                 4 TimeoutNow, 5 InstallSnapshot, 6 Call;
//	                 0x80 set on a response
//	id      8 bytes  request id chosen by the requester, echoed
//	nlen    2 bytes  name length (<= 4096)
//	name    nlen     group id (raft requests) or method (Call); empty in
//	                 responses
//	body
//
// Request bodies are a compact custom encoding of raft's structs: unsigned
// integers as uvarints, byte strings as uvarint(len+1) then the bytes (0
// for nil, so nil and empty survive), booleans as one byte. A raft.Log is
// index, term, type (1 byte), Data, Extensions, then AppendedAt as a flag
// byte and a varint of Unix nanoseconds. A Call body is a uvarint of the
// caller's remaining deadline in milliseconds (0: none) and the request
// bytes. A response body is
//
//	status  1 byte   0 ok, 1 remote error, 2 unknown group, 3 unknown
//	                 method, 4 busy, 5 shut down, 6 malformed request
//	error   byte string (nil when none; raft may answer an error and a
//	        response together)
//	has     1 byte   whether a payload follows
//	payload the encoded raft response, or a Call's answer bytes
//
// Entry Data is not copied on either side: the sender writes slices of
// 2 KiB or more straight from raft's entries with writev (net.Buffers), and
// the receiver reads each frame into a fresh buffer (beyond 64 KiB, the full
// buffer is allocated only once the first 64 KiB have arrived) that the decoded
// entries point into.
//
// # Receiving
//
// One goroutine reads each connection. A heartbeat is answered on it
// directly through raft's heartbeat handler (SetHeartbeatHandler), as
// NetworkTransport does. Other raft requests are queued to their group
// (Options.MaxGroupQueue, then ErrBusy) and handed to raft in arrival order
// by a worker goroutine that runs only while the group's queue is not
// empty; so a group whose raft is stuck in an fsync does not hold up the
// reader, or any other group. Requests for a group this Mux does not host
// (yet) are answered at once with ErrUnknownGroup; raft retries, and a
// group created later answers. Calls run on a goroutine each, at most
// Options.MaxCalls at once, with a context cancelled by Close.
//
// # Snapshots
//
// InstallSnapshot opens a connection of kind 3, sends the request frame and
// then exactly Size bytes from raft's snapshot reader through a 64 KiB
// buffer; the receiver hands raft a reader over the rest of the socket,
// limited to Size, and writes raft's answer back before closing. Neither
// side holds more than its copy buffer: a snapshot of gigabytes streams in
// constant memory. Each read and write must progress within RPCTimeout;
// the answer may then take RPCTimeout plus one second per MiB (the FSM's
// restore).
//
// # Faults
//
// Mux.SetFault installs a function asked for each message the Mux sends
// (requests, responses, snapshots). Drop fails a request at once with
// ErrDropped (like a refused connection) and silently discards a response
// (the caller times out); Delay holds the message in the sending goroutine.
//
// # Goroutines
//
// Every goroutine has one owner and one stop path: the accept loop, the
// connection readers, snapshot receivers and Call handlers belong to the
// Mux (Close closes the listener and every connection, cancels handlers and
// waits); a group's worker and pipeline collectors belong to its Transport
// (Close, which raft calls at the end of Shutdown, or Mux.Close). Writing
// needs no goroutine: the sender that finds a connection idle writes
// everything queued on it, so frames queued together share one writev.
package transport
