package transport

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

var (
	_ raft.Transport   = (*Transport)(nil)
	_ raft.WithClose   = (*Transport)(nil)
	_ raft.WithPreVote = (*Transport)(nil)
)

// Transport is one raft group's view of its Mux: a raft.Transport (with
// WithClose, WithPreVote and AppendEntries pipelining) whose messages carry
// the group id over the Mux's shared connections.
//
// Inbound requests are queued per group and handed to raft, in arrival
// order, by a worker goroutine that exists only while the queue is not
// empty. A group whose raft is busy (say, in an fsync) therefore never holds
// up the connection reader, and so never delays another group.
type Transport struct {
	m  *Mux
	id string

	consumeCh chan raft.RPC
	hb        atomic.Pointer[func(raft.RPC)]

	qmu      sync.Mutex
	queue    []inbound
	running  bool // a worker is draining queue
	closed   bool
	shutdown chan struct{}
	pipes    map[*pipeline]struct{}
	wg       sync.WaitGroup // the worker and pipeline goroutines
}

// inbound is a decoded raft request waiting for its group's raft.
type inbound struct {
	c   *conn
	typ byte
	id  uint64
	cmd any
}

func newTransport(m *Mux, id string) *Transport {
	return &Transport{
		m:         m,
		id:        id,
		consumeCh: make(chan raft.RPC),
		shutdown:  make(chan struct{}),
		pipes:     make(map[*pipeline]struct{}),
	}
}

// ID is the group id.
func (t *Transport) ID() string { return t.id }

// Consumer implements raft.Transport.
func (t *Transport) Consumer() <-chan raft.RPC { return t.consumeCh }

// LocalAddr implements raft.Transport: the Mux's advertised address.
func (t *Transport) LocalAddr() raft.ServerAddress { return t.m.addr }

// EncodePeer implements raft.Transport.
func (t *Transport) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte {
	return []byte(addr)
}

// DecodePeer implements raft.Transport.
func (t *Transport) DecodePeer(b []byte) raft.ServerAddress { return raft.ServerAddress(b) }

// SetHeartbeatHandler implements raft.Transport: heartbeats are answered on
// the connection reader by cb, without queueing behind the group's other
// requests.
func (t *Transport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		t.hb.Store(nil)
		return
	}
	t.hb.Store(&cb)
}

func (t *Transport) heartbeatFn() func(raft.RPC) {
	if p := t.hb.Load(); p != nil {
		return *p
	}
	return nil
}

func (t *Transport) isClosed() bool {
	select {
	case <-t.shutdown:
		return true
	default:
		return false
	}
}

// Close implements raft.WithClose (raft calls it at the end of Shutdown):
// it stops the group's pipelines and worker, answers queued requests with
// ErrRemoteClosed and makes later requests for the group ErrUnknownGroup
// until Mux.Group creates it again.
func (t *Transport) Close() error {
	t.qmu.Lock()
	if t.closed {
		t.qmu.Unlock()
		return nil
	}
	t.closed = true
	close(t.shutdown)
	pipes := make([]*pipeline, 0, len(t.pipes))
	for p := range t.pipes {
		pipes = append(pipes, p)
	}
	t.qmu.Unlock()
	for _, p := range pipes {
		_ = p.Close()
	}
	t.wg.Wait()
	t.qmu.Lock()
	queue := t.queue
	t.queue = nil
	t.qmu.Unlock()
	for _, r := range queue {
		t.m.reply(r.c, r.typ, r.id, statusShutdown, "group "+t.id+" closed", nil)
	}
	return nil
}

// enqueue hands a request to the group's worker, starting one if none runs.
func (t *Transport) enqueue(r inbound) {
	t.qmu.Lock()
	if t.closed {
		t.qmu.Unlock()
		t.m.reply(r.c, r.typ, r.id, statusUnknownGroup, fmt.Sprintf("group %q closed on %s", t.id, t.m.addr), nil)
		return
	}
	if len(t.queue) >= t.m.opts.MaxGroupQueue {
		t.qmu.Unlock()
		t.m.reply(r.c, r.typ, r.id, statusBusy, fmt.Sprintf("group %q has %d queued requests", t.id, len(t.queue)), nil)
		return
	}
	t.queue = append(t.queue, r)
	if !t.running {
		t.running = true
		t.wg.Add(1)
		go t.work()
	}
	t.qmu.Unlock()
}

// work delivers queued requests to raft one at a time, waiting for each
// answer (raft's main loop answers one before it takes the next anyway),
// and exits when the queue is empty or the group closes.
func (t *Transport) work() {
	defer t.wg.Done()
	for {
		t.qmu.Lock()
		if len(t.queue) == 0 || t.closed {
			t.running = false
			t.qmu.Unlock()
			return
		}
		r := t.queue[0]
		t.queue[0] = inbound{}
		t.queue = t.queue[1:]
		t.qmu.Unlock()

		respCh := make(chan raft.RPCResponse, 1)
		select {
		case t.consumeCh <- raft.RPC{Command: r.cmd, RespChan: respCh}:
		case <-t.shutdown:
			t.m.reply(r.c, r.typ, r.id, statusShutdown, "group "+t.id+" closed", nil)
			continue
		}
		select {
		case resp := <-respCh:
			t.m.replyRaft(r.c, r.typ, r.id, resp)
		case <-t.shutdown:
			t.m.reply(r.c, r.typ, r.id, statusShutdown, "group "+t.id+" closed", nil)
		}
	}
}

// roundTrip sends one raft request of the group and returns the decoded
// response envelope.
func (t *Transport) roundTrip(target raft.ServerAddress, typ, kind byte, sizeHint int, body func(*encoder)) (response, error) {
	if t.isClosed() {
		return response{}, ErrClosed
	}
	if drop, err := t.m.applyFault(target); err != nil {
		return response{}, err
	} else if drop {
		return response{}, fmt.Errorf("%w: to %s", ErrDropped, target)
	}
	c, err := t.m.conn(context.Background(), target, kind)
	if err != nil {
		return response{}, err
	}
	id, cl, err := c.register()
	if err != nil {
		return response{}, err
	}
	e := newFrame(typ, id, t.id, sizeHint)
	body(e)
	bufs, err := e.finish(c.maxFrame)
	if err != nil {
		c.cancel(id)
		return response{}, err
	}
	if err := c.send(bufs); err != nil {
		c.cancel(id)
		return response{}, fmt.Errorf("%w: %v", ErrConnLost, err)
	}
	timer := time.NewTimer(t.m.opts.RPCTimeout)
	defer timer.Stop()
	b, err := c.wait(id, cl, timer.C, t.shutdown, nil, nil)
	if err != nil {
		return response{}, err
	}
	return decodeResponse(b)
}

// raftResult decodes a raft response payload with dec and returns the remote
// error, if any (raft may send both).
func raftResult(r response, dec func([]byte) error) error {
	rerr := r.error()
	if r.payload == nil {
		if rerr == nil {
			rerr = fmt.Errorf("%w: response without payload", ErrMalformed)
		}
		return rerr
	}
	if err := dec(r.payload); err != nil {
		return err
	}
	return rerr
}

// trim shortens req.Entries to MaxAppendBytes (at least one entry). Raft
// reads req.Entries after the call (replicateTo, pipelineSend,
// updateLastAppended) and continues from the last entry sent, as when
// MaxAppendEntries cuts a batch.
func (t *Transport) trim(req *raft.AppendEntriesRequest) {
	budget := t.m.opts.MaxAppendBytes
	total := 0
	for i, l := range req.Entries {
		total += len(l.Data) + len(l.Extensions) + 48
		if i > 0 && total > budget {
			req.Entries = req.Entries[:i]
			return
		}
	}
}

func appendSizeHint(req *raft.AppendEntriesRequest) int {
	return 96 + 40*len(req.Entries)
}

// AppendEntries implements raft.Transport. Requests with entries use the
// bulk connection, empty ones (heartbeats, commit updates) the control one.
func (t *Transport) AppendEntries(_ raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	kind := connCtrl
	if len(args.Entries) > 0 {
		kind = connBulk
		t.trim(args)
	}
	r, err := t.roundTrip(target, msgAppendEntries, kind, appendSizeHint(args), func(e *encoder) { encodeAppendEntriesRequest(e, args) })
	if err != nil {
		return err
	}
	return raftResult(r, func(b []byte) error { return decodeAppendEntriesResponse(b, resp) })
}

// RequestVote implements raft.Transport.
func (t *Transport) RequestVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	r, err := t.roundTrip(target, msgRequestVote, connCtrl, 96, func(e *encoder) { encodeRequestVoteRequest(e, args) })
	if err != nil {
		return err
	}
	return raftResult(r, func(b []byte) error { return decodeRequestVoteResponse(b, resp) })
}

// RequestPreVote implements raft.WithPreVote.
func (t *Transport) RequestPreVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	r, err := t.roundTrip(target, msgRequestPreVote, connCtrl, 96, func(e *encoder) { encodeRequestPreVoteRequest(e, args) })
	if err != nil {
		return err
	}
	return raftResult(r, func(b []byte) error { return decodeRequestPreVoteResponse(b, resp) })
}

// TimeoutNow implements raft.Transport.
func (t *Transport) TimeoutNow(_ raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	r, err := t.roundTrip(target, msgTimeoutNow, connCtrl, 64, func(e *encoder) { encodeTimeoutNowRequest(e, args) })
	if err != nil {
		return err
	}
	return raftResult(r, func(b []byte) error { return decodeTimeoutNowResponse(b, resp) })
}

// InstallSnapshot implements raft.Transport; see snapshot.go.
func (t *Transport) InstallSnapshot(_ raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	return t.sendSnapshot(target, args, resp, data)
}
