package transport

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

const readBufSize = 16 << 10

// conn is one multiplexed TCP connection (control or bulk). An outbound conn
// carries this Mux's requests and their responses; an inbound conn carries a
// peer's requests and this Mux's responses.
//
// Writing: whoever sends a frame while nobody is writing becomes the writer
// and writes everything queued, including what others queue meanwhile, with
// one writev per round; the others only queue. So small frames that arrive
// together share a syscall, and no goroutine is kept for writing.
//
// Reading: one goroutine per conn, owned by the Mux, stopped by fail (which
// closes the socket) and counted in Mux.wg.
type conn struct {
	m        *Mux
	nc       net.Conn
	br       *bufio.Reader
	kind     byte
	peer     raft.ServerAddress // the remote Mux's advertised address
	outbound bool
	maxFrame int

	wmu     sync.Mutex
	pending [][]byte
	spare   [][]byte
	writing bool
	werr    error

	cmu    sync.Mutex
	calls  map[uint64]*call
	nextID uint64
	err    error // why the conn failed; set once

	lastRecv atomic.Int64 // unix nanos of the last frame read
	dead     chan struct{}
}

// call is a request waiting for its response on an outbound conn.
type call struct {
	ch   chan result // buffered 1: written once, by the reader or fail
	sent int64
}

type result struct {
	body []byte
	err  error
}

func newConn(m *Mux, nc net.Conn, br *bufio.Reader, kind byte, peer raft.ServerAddress, outbound bool) *conn {
	c := &conn{
		m: m, nc: nc, br: br, kind: kind, peer: peer, outbound: outbound,
		maxFrame: MaxFrame,
		dead:     make(chan struct{}),
	}
	if outbound {
		c.calls = make(map[uint64]*call)
	}
	if c.br == nil {
		c.br = bufio.NewReaderSize(nc, readBufSize)
	}
	return c
}

func (c *conn) alive() bool {
	select {
	case <-c.dead:
		return false
	default:
		return true
	}
}

// send queues a frame and, when nobody is writing, writes until the queue is
// empty. An error means the frame was not written; a nil error that the
// frame was written or is queued behind a writer (whose failure fails the
// conn, and with it every pending call).
func (c *conn) send(bufs [][]byte) error {
	c.wmu.Lock()
	if c.werr != nil {
		err := c.werr
		c.wmu.Unlock()
		return err
	}
	c.pending = append(c.pending, bufs...)
	if c.writing {
		c.wmu.Unlock()
		return nil
	}
	c.writing = true
	for len(c.pending) > 0 {
		batch := c.pending
		c.pending = c.spare[:0]
		c.wmu.Unlock()

		_ = c.nc.SetWriteDeadline(time.Now().Add(c.m.opts.RPCTimeout))
		nb := net.Buffers(batch)
		_, err := nb.WriteTo(c.nc)
		clear(batch) // drop references to the callers' data

		c.wmu.Lock()
		c.spare = batch[:0]
		if err != nil {
			c.writing = false
			c.werr = err
			clear(c.pending)
			c.pending = nil
			c.wmu.Unlock()
			c.fail(fmt.Errorf("write: %w", err))
			return err
		}
	}
	c.writing = false
	c.wmu.Unlock()
	return nil
}

// register adds a call and returns its request id.
func (c *conn) register() (uint64, *call, error) {
	cl := &call{ch: make(chan result, 1), sent: time.Now().UnixNano()}
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if c.err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrConnLost, c.err)
	}
	c.nextID++
	c.calls[c.nextID] = cl
	return c.nextID, cl, nil
}

// cancel removes a call; true means the caller owns it (no result will
// come), false that a result is in, or about to be in, its channel.
func (c *conn) cancel(id uint64) bool {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if _, ok := c.calls[id]; ok {
		delete(c.calls, id)
		return true
	}
	return false
}

// wait waits for a call's response body. timeout may be nil; stop and
// cancelled are optional extra stop signals (a closing group, a context),
// cancelErr what to return for cancelled.
func (c *conn) wait(id uint64, cl *call, timeout <-chan time.Time, stop <-chan struct{}, cancelled <-chan struct{}, cancelErr func() error) ([]byte, error) {
	var err error
	select {
	case r := <-cl.ch:
		return r.body, r.err
	case <-timeout:
		err = ErrTimeout
	case <-stop:
		err = ErrClosed
	case <-cancelled:
		err = cancelErr()
	case <-c.m.closing:
		err = ErrClosed
	}
	if !c.cancel(id) {
		r := <-cl.ch // the answer won the race
		return r.body, r.err
	}
	if err == ErrTimeout && c.lastRecv.Load() < cl.sent {
		// Nothing at all was read since the request went out: the peer
		// or the path is gone without a reset. Drop the conn so the next
		// call dials again instead of queueing behind a dead socket.
		c.fail(ErrTimeout)
	}
	return nil, err
}

// fail closes the conn once: the socket, then every pending call with
// ErrConnLost. The next use of the lane dials a new conn.
func (c *conn) fail(cause error) {
	c.cmu.Lock()
	if c.err != nil {
		c.cmu.Unlock()
		return
	}
	if cause == nil {
		cause = io.EOF
	}
	c.err = cause
	calls := c.calls
	c.calls = nil
	c.cmu.Unlock()

	close(c.dead)
	_ = c.nc.Close()
	c.wmu.Lock()
	if c.werr == nil {
		c.werr = fmt.Errorf("%w: %v", ErrConnLost, cause)
	}
	c.wmu.Unlock()
	err := fmt.Errorf("%w: %v", ErrConnLost, cause)
	if errors.Is(cause, ErrClosed) {
		err = ErrClosed
	}
	for _, cl := range calls {
		cl.ch <- result{err: err}
	}
	if !c.outbound {
		c.m.dropInbound(c)
	}
	lg := c.m.log.Debug()
	if !errors.Is(cause, io.EOF) && !errors.Is(cause, ErrClosed) && !errors.Is(cause, net.ErrClosed) {
		lg = c.m.log.Warn()
	}
	lg.Str("peer", string(c.peer)).Str("conn_kind", kindName(c.kind)).Bool("outbound", c.outbound).
		AnErr("cause", cause).Msg("transport connection closed")
}

func kindName(k byte) string {
	switch k {
	case connCtrl:
		return "ctrl"
	case connBulk:
		return "bulk"
	case connSnapshot:
		return "snapshot"
	}
	return "unknown"
}

// readLoop reads frames until the conn fails: responses are handed to their
// calls, requests (inbound) to the Mux.
func (c *conn) readLoop() {
	defer c.m.wg.Done()
	for {
		f, err := readFrame(c.br, c.maxFrame)
		if err != nil {
			c.fail(err)
			return
		}
		c.lastRecv.Store(time.Now().UnixNano())
		isResp := f.typ&respBit != 0
		if isResp != c.outbound {
			c.fail(fmt.Errorf("%w: %s on a connection for %s", ErrMalformed, dir(isResp), dir(c.outbound)))
			return
		}
		if !isResp {
			c.m.serve(c, f)
			continue
		}
		c.cmu.Lock()
		cl := c.calls[f.id]
		delete(c.calls, f.id)
		c.cmu.Unlock()
		if cl != nil {
			cl.ch <- result{body: f.body}
		}
	}
}

func dir(resp bool) string {
	if resp {
		return "response"
	}
	return "request"
}
