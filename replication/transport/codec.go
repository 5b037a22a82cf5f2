package transport

//lint:file-ignore SA1019 raft still fills and reads the deprecated Leader and Candidate fields, so the wire carries them.

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/hashicorp/raft"
)

// Wire constants. The format is described in doc.go.
const (
	preambleLen = 8 // magic(4) version(1) kind(1) address length(2), then the address
	protoVer    = 1
	maxAddrLen  = 1024

	// frameHeaderLen is length(4) + type(1) + id(8) + name length(2).
	frameHeaderLen = 15
	// frameMinLen is the smallest value of the length field: the rest of
	// the header with an empty name and body.
	frameMinLen = frameHeaderLen - 4

	// maxNameLen bounds group ids and method names.
	maxNameLen = 4096

	// refMin is the size from which a byte slice (log entry Data) is
	// written from the caller's memory by writev instead of being copied
	// into the frame buffer.
	refMin = 2048

	// eagerAlloc is how much of a frame is allocated before its bytes
	// arrive; a larger frame's buffer is allocated at its full (capped)
	// size only once that much has been read, so a garbage length costs
	// little until the peer has actually sent that much.
	eagerAlloc = 64 << 10
)

// Connection kinds, the sixth byte of the preamble.
const (
	connCtrl     byte = 1 // heartbeats, votes, TimeoutNow, empty AppendEntries, small Calls
	connBulk     byte = 2 // AppendEntries with entries, pipelines, large Calls
	connSnapshot byte = 3 // one InstallSnapshot, then closed
)

// Message types. A response has the request's type with respBit set.
const (
	msgAppendEntries   byte = 1
	msgRequestVote     byte = 2
	msgRequestPreVote  byte = 3
	msgTimeoutNow      byte = 4
	msgInstallSnapshot byte = 5
	msgCall            byte = 6
	respBit            byte = 0x80
)

// Response status codes, the first byte of a response body.
const (
	statusOK            byte = 0
	statusRemoteError   byte = 1
	statusUnknownGroup  byte = 2
	statusUnknownMethod byte = 3
	statusBusy          byte = 4
	statusShutdown      byte = 5
	statusMalformed     byte = 6
)

var magic = [4]byte{'S', 'L', 'R', 'T'}

// preamble is the first bytes a dialer sends: which kind of connection this
// is and the address the dialer advertises (the receiver's fault function
// and log lines name peers by it).
func preamble(kind byte, advertise raft.ServerAddress) []byte {
	b := []byte{magic[0], magic[1], magic[2], magic[3], protoVer, kind, 0, 0}
	binary.BigEndian.PutUint16(b[6:], uint16(len(advertise)))
	return append(b, advertise...)
}

// readPreamble reads and checks the first bytes of an inbound connection.
func readPreamble(r io.Reader) (kind byte, from raft.ServerAddress, err error) {
	var p [preambleLen]byte
	if _, err := io.ReadFull(r, p[:]); err != nil {
		return 0, "", err
	}
	if [4]byte(p[:4]) != magic {
		return 0, "", fmt.Errorf("%w: magic %q", ErrBadPreamble, p[:4])
	}
	if p[4] != protoVer {
		return 0, "", fmt.Errorf("%w: version %d", ErrBadPreamble, p[4])
	}
	switch kind = p[5]; kind {
	case connCtrl, connBulk, connSnapshot:
	default:
		return 0, "", fmt.Errorf("%w: connection kind %d", ErrBadPreamble, kind)
	}
	n := int(binary.BigEndian.Uint16(p[6:]))
	if n > maxAddrLen {
		return 0, "", fmt.Errorf("%w: address of %d bytes", ErrBadPreamble, n)
	}
	a := make([]byte, n)
	if _, err := io.ReadFull(r, a); err != nil {
		return 0, "", noEOF(err)
	}
	return kind, raft.ServerAddress(a), nil
}

// ---- encoding ----

// encoder builds one frame as a list of buffers: its own bytes, and the
// caller's large byte slices referenced in place (written by writev), so log
// entry Data is never copied on the sending side.
type encoder struct {
	bufs [][]byte
	cur  []byte
	mark int // start of the unfinished segment in cur
}

func newFrame(typ byte, id uint64, name string, sizeHint int) *encoder {
	e := &encoder{cur: make([]byte, frameHeaderLen, frameHeaderLen+len(name)+sizeHint)}
	e.cur[4] = typ
	binary.BigEndian.PutUint64(e.cur[5:13], id)
	binary.BigEndian.PutUint16(e.cur[13:15], uint16(len(name)))
	e.cur = append(e.cur, name...)
	return e
}

func (e *encoder) u8(v byte)        { e.cur = append(e.cur, v) }
func (e *encoder) uvarint(v uint64) { e.cur = binary.AppendUvarint(e.cur, v) }
func (e *encoder) varint(v int64)   { e.cur = binary.AppendVarint(e.cur, v) }
func (e *encoder) boolean(v bool)   { e.u8(b2u(v)) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s)) + 1); e.cur = append(e.cur, s...) }
func (e *encoder) header(h raft.RPCHeader) {
	e.uvarint(uint64(h.ProtocolVersion))
	e.bytes(h.ID)
	e.bytes(h.Addr)
}

// bytes writes length+1 (0 for nil, so nil and empty survive the round
// trip) and the bytes; from refMin on the slice is referenced, not copied.
func (e *encoder) bytes(b []byte) {
	if b == nil {
		e.u8(0)
		return
	}
	e.uvarint(uint64(len(b)) + 1)
	if len(b) < refMin {
		e.cur = append(e.cur, b...)
		return
	}
	e.bufs = append(e.bufs, e.cur[e.mark:len(e.cur):len(e.cur)], b)
	e.mark = len(e.cur)
}

// tail writes b as the rest of the body, referenced from refMin on.
func (e *encoder) tail(b []byte) {
	if len(b) < refMin {
		e.cur = append(e.cur, b...)
		return
	}
	e.bufs = append(e.bufs, e.cur[e.mark:len(e.cur):len(e.cur)], b)
	e.mark = len(e.cur)
}

// finish patches the length and returns the frame's buffers, refusing a
// frame longer than max (the receiver's cap for the connection).
func (e *encoder) finish(max int) ([][]byte, error) {
	if len(e.cur) > e.mark {
		e.bufs = append(e.bufs, e.cur[e.mark:len(e.cur):len(e.cur)])
	}
	e.mark = len(e.cur)
	total := 0
	for _, b := range e.bufs {
		total += len(b)
	}
	if n := total - 4; n > max {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	binary.BigEndian.PutUint32(e.bufs[0][:4], uint32(total-4))
	return e.bufs, nil
}

func b2u(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func encodeLog(e *encoder, l *raft.Log) {
	e.uvarint(l.Index)
	e.uvarint(l.Term)
	e.u8(byte(l.Type))
	e.bytes(l.Data)
	e.bytes(l.Extensions)
	if l.AppendedAt.IsZero() {
		e.u8(0)
	} else {
		e.u8(1)
		e.varint(l.AppendedAt.UnixNano())
	}
}

// logMinLen is the fewest bytes an encoded raft.Log takes; it bounds the
// entry count a body can claim.
const logMinLen = 6

func encodeAppendEntriesRequest(e *encoder, r *raft.AppendEntriesRequest) {
	e.header(r.RPCHeader)
	e.uvarint(r.Term)
	e.bytes(r.Leader)
	e.uvarint(r.PrevLogEntry)
	e.uvarint(r.PrevLogTerm)
	e.uvarint(r.LeaderCommitIndex)
	e.uvarint(uint64(len(r.Entries)))
	for _, l := range r.Entries {
		encodeLog(e, l)
	}
}

func encodeAppendEntriesResponse(e *encoder, r *raft.AppendEntriesResponse) {
	e.header(r.RPCHeader)
	e.uvarint(r.Term)
	e.uvarint(r.LastLog)
	e.u8(b2u(r.Success) | b2u(r.NoRetryBackoff)<<1)
}

func encodeRequestVoteRequest(e *encoder, r *raft.RequestVoteRequest) {
	e.header(r.RPCHeader)
	e.uvarint(r.Term)
	e.bytes(r.Candidate)
	e.uvarint(r.LastLogIndex)
	e.uvarint(r.LastLogTerm)
	e.boolean(r.LeadershipTransfer)
}

func encodeRequestVoteResponse(e *encoder, r *raft.RequestVoteResponse) {
	e.header(r.RPCHeader)
	e.uvarint(r.Term)
	e.bytes(r.Peers)
	e.boolean(r.Granted)
}

func encodeRequestPreVoteRequest(e *encoder, r *raft.RequestPreVoteRequest) {
	e.header(r.RPCHeader)
	e.uvarint(r.Term)
	e.uvarint(r.LastLogIndex)
	e.uvarint(r.LastLogTerm)
}

func encodeRequestPreVoteResponse(e *encoder, r *raft.RequestPreVoteResponse) {
	e.header(r.RPCHeader)
	e.uvarint(r.Term)
	e.boolean(r.Granted)
}

func encodeTimeoutNowRequest(e *encoder, r *raft.TimeoutNowRequest)   { e.header(r.RPCHeader) }
func encodeTimeoutNowResponse(e *encoder, r *raft.TimeoutNowResponse) { e.header(r.RPCHeader) }

func encodeInstallSnapshotRequest(e *encoder, r *raft.InstallSnapshotRequest) {
	e.header(r.RPCHeader)
	e.varint(int64(r.SnapshotVersion))
	e.uvarint(r.Term)
	e.bytes(r.Leader)
	e.uvarint(r.LastLogIndex)
	e.uvarint(r.LastLogTerm)
	e.bytes(r.Peers)
	e.bytes(r.Configuration)
	e.uvarint(r.ConfigurationIndex)
	e.varint(r.Size)
}

func encodeInstallSnapshotResponse(e *encoder, r *raft.InstallSnapshotResponse) {
	e.header(r.RPCHeader)
	e.uvarint(r.Term)
	e.boolean(r.Success)
}

// encodeResponse writes a response body: status, error text (nil when
// none), whether a payload follows, and the payload.
func encodeResponse(e *encoder, status byte, errText string, hasErr bool, payload func(*encoder)) {
	e.u8(status)
	if hasErr {
		e.str(errText)
	} else {
		e.u8(0)
	}
	if payload == nil {
		e.u8(0)
		return
	}
	e.u8(1)
	payload(e)
}

// ---- decoding ----

// decoder reads a message body. Errors are sticky: after the first one every
// read returns a zero value, and done reports it once (franz-go's kbin).
// Byte slices alias the body, which is a fresh buffer per frame.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
	d.b = nil
}

func (d *decoder) u8() byte {
	if len(d.b) < 1 {
		d.fail("short body")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) boolean() bool {
	switch d.u8() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bad bool")
	return false
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n == 0 || d.err != nil {
		return nil
	}
	n--
	if n > uint64(len(d.b)) {
		d.fail("byte string past end")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) header() raft.RPCHeader {
	pv := d.uvarint()
	if pv > math.MaxInt32 {
		d.fail("protocol version")
	}
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersion(pv), ID: d.bytes(), Addr: d.bytes()}
}

// done reports the sticky error, or trailing bytes.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

func decodeLog(d *decoder, l *raft.Log) {
	l.Index = d.uvarint()
	l.Term = d.uvarint()
	l.Type = raft.LogType(d.u8())
	l.Data = d.bytes()
	l.Extensions = d.bytes()
	switch d.u8() {
	case 0:
	case 1:
		l.AppendedAt = time.Unix(0, d.varint())
	default:
		d.fail("bad time flag")
	}
}

func decodeAppendEntriesRequest(b []byte, r *raft.AppendEntriesRequest) error {
	d := decoder{b: b}
	r.RPCHeader = d.header()
	r.Term = d.uvarint()
	r.Leader = d.bytes()
	r.PrevLogEntry = d.uvarint()
	r.PrevLogTerm = d.uvarint()
	r.LeaderCommitIndex = d.uvarint()
	n := d.uvarint()
	switch {
	case n > uint64(len(d.b)/logMinLen):
		d.fail("entry count past end")
	case n > maxEntriesPerAppend:
		// Each entry decodes into a ~100-byte raft.Log: bounded by the
		// frame alone, a 64 MiB frame of minimal entries would allocate
		// about 1 GiB. raft never sends more than MaxAppendEntries (at
		// most 1024) per RPC.
		d.fail("entry count above the limit")
	}
	r.Entries = nil
	if n > 0 && d.err == nil {
		// One allocation for all the entries, one for the pointers.
		logs := make([]raft.Log, n)
		r.Entries = make([]*raft.Log, n)
		for i := range logs {
			decodeLog(&d, &logs[i])
			r.Entries[i] = &logs[i]
		}
	}
	return d.done()
}

// maxEntriesPerAppend bounds the entries of one AppendEntries request:
// hashicorp/raft caps Config.MaxAppendEntries at 1024.
const maxEntriesPerAppend = 1024

func decodeAppendEntriesResponse(b []byte, r *raft.AppendEntriesResponse) error {
	d := decoder{b: b}
	r.RPCHeader = d.header()
	r.Term = d.uvarint()
	r.LastLog = d.uvarint()
	f := d.u8()
	if f > 3 {
		d.fail("bad flags")
	}
	r.Success, r.NoRetryBackoff = f&1 != 0, f&2 != 0
	return d.done()
}

func decodeRequestVoteRequest(b []byte, r *raft.RequestVoteRequest) error {
	d := decoder{b: b}
	r.RPCHeader = d.header()
	r.Term = d.uvarint()
	r.Candidate = d.bytes()
	r.LastLogIndex = d.uvarint()
	r.LastLogTerm = d.uvarint()
	r.LeadershipTransfer = d.boolean()
	return d.done()
}

func decodeRequestVoteResponse(b []byte, r *raft.RequestVoteResponse) error {
	d := decoder{b: b}
	r.RPCHeader = d.header()
	r.Term = d.uvarint()
	r.Peers = d.bytes()
	r.Granted = d.boolean()
	return d.done()
}

func decodeRequestPreVoteRequest(b []byte, r *raft.RequestPreVoteRequest) error {
	d := decoder{b: b}
	r.RPCHeader = d.header()
	r.Term = d.uvarint()
	r.LastLogIndex = d.uvarint()
	r.LastLogTerm = d.uvarint()
	return d.done()
}

func decodeRequestPreVoteResponse(b []byte, r *raft.RequestPreVoteResponse) error {
	d := decoder{b: b}
	r.RPCHeader = d.header()
	r.Term = d.uvarint()
	r.Granted = d.boolean()
	return d.done()
}

func decodeTimeoutNowRequest(b []byte, r *raft.TimeoutNowRequest) error {
	d := decoder{b: b}
	r.RPCHeader = d.header()
	return d.done()
}

func decodeTimeoutNowResponse(b []byte, r *raft.TimeoutNowResponse) error {
	d := decoder{b: b}
	r.RPCHeader = d.header()
	return d.done()
}

func decodeInstallSnapshotRequest(b []byte, r *raft.InstallSnapshotRequest) error {
	d := decoder{b: b}
	r.RPCHeader = d.header()
	v := d.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail("snapshot version")
	}
	r.SnapshotVersion = raft.SnapshotVersion(v)
	r.Term = d.uvarint()
	r.Leader = d.bytes()
	r.LastLogIndex = d.uvarint()
	r.LastLogTerm = d.uvarint()
	r.Peers = d.bytes()
	r.Configuration = d.bytes()
	r.ConfigurationIndex = d.uvarint()
	r.Size = d.varint()
	if r.Size < 0 {
		d.fail("negative snapshot size")
	}
	return d.done()
}

func decodeInstallSnapshotResponse(b []byte, r *raft.InstallSnapshotResponse) error {
	d := decoder{b: b}
	r.RPCHeader = d.header()
	r.Term = d.uvarint()
	r.Success = d.boolean()
	return d.done()
}

// response is a decoded response body.
type response struct {
	status  byte
	errText string
	hasErr  bool
	payload []byte // nil when none
}

func decodeResponse(b []byte) (response, error) {
	d := decoder{b: b}
	var r response
	r.status = d.u8()
	if t := d.bytes(); t != nil {
		r.errText, r.hasErr = string(t), true
	}
	switch d.u8() {
	case 0:
		if err := d.done(); err != nil {
			return r, err
		}
	case 1:
		if d.err == nil {
			r.payload = d.b
			if r.payload == nil {
				r.payload = []byte{}
			}
		}
	default:
		d.fail("bad payload flag")
	}
	if r.status > statusMalformed {
		d.fail("bad status")
	}
	return r, d.err
}

// err turns a response's status into the caller's error, nil for success
// without an error text.
func (r response) error() error {
	switch r.status {
	case statusOK:
		if r.hasErr {
			return &RemoteError{Text: r.errText}
		}
		return nil
	case statusRemoteError:
		return &RemoteError{Text: r.errText}
	case statusUnknownGroup:
		return fmt.Errorf("%w: %s", ErrUnknownGroup, r.errText)
	case statusUnknownMethod:
		return fmt.Errorf("%w: %s", ErrUnknownMethod, r.errText)
	case statusBusy:
		return fmt.Errorf("%w: %s", ErrBusy, r.errText)
	case statusShutdown:
		return fmt.Errorf("%w: %s", ErrRemoteClosed, r.errText)
	default:
		return fmt.Errorf("%w: remote: %s", ErrMalformed, r.errText)
	}
}

// ---- frames ----

// frame is one received frame. name and body alias buf, a fresh allocation
// that nothing else uses, so decoded log entries may keep pointing into it.
type frame struct {
	typ  byte
	id   uint64
	name []byte
	body []byte
}

// readFrame reads one frame of at most max bytes (after the length field).
// A length over max fails with ErrFrameTooLarge before anything is
// allocated; the caller then closes the connection, as the stream cannot be
// resynchronised.
func readFrame(r *bufio.Reader, max int) (frame, error) {
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return frame{}, err
	}
	n := int64(binary.BigEndian.Uint32(lb[:]))
	if n > int64(max) {
		return frame{}, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	if n < frameMinLen {
		return frame{}, fmt.Errorf("%w: frame of %d bytes", ErrMalformed, n)
	}
	buf, err := readN(r, int(n))
	if err != nil {
		return frame{}, err
	}
	return parseFrame(buf)
}

// readN reads exactly n bytes into a fresh buffer. Up to eagerAlloc is
// allocated at once; for a longer frame the full buffer is allocated only
// after its first eagerAlloc bytes have arrived (copying just those).
func readN(r io.Reader, n int) ([]byte, error) {
	if n <= eagerAlloc {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, noEOF(err)
		}
		return buf, nil
	}
	first := make([]byte, eagerAlloc)
	if _, err := io.ReadFull(r, first); err != nil {
		return nil, noEOF(err)
	}
	buf := make([]byte, n)
	copy(buf, first)
	if _, err := io.ReadFull(r, buf[eagerAlloc:]); err != nil {
		return nil, noEOF(err)
	}
	return buf, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseFrame splits a frame (without its length field).
func parseFrame(buf []byte) (frame, error) {
	if len(buf) < frameMinLen {
		return frame{}, fmt.Errorf("%w: frame of %d bytes", ErrMalformed, len(buf))
	}
	f := frame{typ: buf[0], id: binary.BigEndian.Uint64(buf[1:9])}
	nl := int(binary.BigEndian.Uint16(buf[9:11]))
	if nl > maxNameLen || nl > len(buf)-frameMinLen {
		return frame{}, fmt.Errorf("%w: name of %d bytes", ErrMalformed, nl)
	}
	f.name = buf[11 : 11+nl : 11+nl]
	f.body = buf[11+nl:]
	switch f.typ &^ respBit {
	case msgAppendEntries, msgRequestVote, msgRequestPreVote, msgTimeoutNow, msgInstallSnapshot, msgCall:
	default:
		return frame{}, fmt.Errorf("%w: message type %#x", ErrMalformed, f.typ)
	}
	return f, nil
}

// decodeRequest decodes a raft request body into its command struct.
func decodeRequest(typ byte, body []byte) (any, error) {
	switch typ {
	case msgAppendEntries:
		r := new(raft.AppendEntriesRequest)
		return r, decodeAppendEntriesRequest(body, r)
	case msgRequestVote:
		r := new(raft.RequestVoteRequest)
		return r, decodeRequestVoteRequest(body, r)
	case msgRequestPreVote:
		r := new(raft.RequestPreVoteRequest)
		return r, decodeRequestPreVoteRequest(body, r)
	case msgTimeoutNow:
		r := new(raft.TimeoutNowRequest)
		return r, decodeTimeoutNowRequest(body, r)
	case msgInstallSnapshot:
		r := new(raft.InstallSnapshotRequest)
		return r, decodeInstallSnapshotRequest(body, r)
	}
	return nil, fmt.Errorf("%w: message type %#x", ErrMalformed, typ)
}

// encodeRaftResponse returns the payload writer for a raft response, or nil
// for a nil or unexpected response value.
func encodeRaftResponse(resp any) func(*encoder) {
	switch r := resp.(type) {
	case *raft.AppendEntriesResponse:
		if r != nil {
			return func(e *encoder) { encodeAppendEntriesResponse(e, r) }
		}
	case *raft.RequestVoteResponse:
		if r != nil {
			return func(e *encoder) { encodeRequestVoteResponse(e, r) }
		}
	case *raft.RequestPreVoteResponse:
		if r != nil {
			return func(e *encoder) { encodeRequestPreVoteResponse(e, r) }
		}
	case *raft.TimeoutNowResponse:
		if r != nil {
			return func(e *encoder) { encodeTimeoutNowResponse(e, r) }
		}
	case *raft.InstallSnapshotResponse:
		if r != nil {
			return func(e *encoder) { encodeInstallSnapshotResponse(e, r) }
		}
	}
	return nil
}
