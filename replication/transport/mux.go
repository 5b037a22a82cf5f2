package transport

//lint:file-ignore SA1019 raft still fills and reads the deprecated Leader and Candidate fields, so the wire carries them.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"
)

// dialBackoff is how long a failed dial is remembered: calls in that window
// fail with the same error instead of each waiting for a dial of their own
// (hundreds of groups heartbeat the same dead peer).
const dialBackoff = 100 * time.Millisecond

// Handler serves an application RPC. req aliases a buffer nobody else uses.
// ctx is cancelled when the Mux closes and carries the caller's deadline.
type Handler func(ctx context.Context, req []byte) ([]byte, error)

// Mux is one broker's end of the transport: one TCP listener, and per peer
// one control and one bulk connection in each direction, shared by every
// raft group (Group) and by application RPCs (Handle, Call).
type Mux struct {
	opts Options
	log  zerolog.Logger
	ln   net.Listener
	addr raft.ServerAddress

	mu      sync.Mutex
	closed  bool
	peers   map[raft.ServerAddress]*peer
	inbound map[*conn]struct{}
	snaps   map[net.Conn]struct{} // snapshot connections, both directions

	gmu    sync.RWMutex
	groups map[string]*Transport

	hmu      sync.RWMutex
	handlers map[string]Handler

	fault   atomic.Pointer[func(to raft.ServerAddress) Fault]
	callSem chan struct{}

	closing chan struct{}
	ctx     context.Context // handlers' parent; cancelled by Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup // accept loop, conn readers, snapshot receivers, handlers
}

// peer holds the outbound connections to one remote Mux.
type peer struct {
	addr  raft.ServerAddress
	lanes [2]lane // connCtrl-1, connBulk-1
}

type lane struct {
	mu      sync.Mutex // held while dialing
	c       *conn
	dialErr error
	dialAt  time.Time
}

// Listen binds addr and starts accepting peers.
func Listen(addr string, opts Options) (*Mux, error) {
	opts.setDefaults()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen: %w", err)
	}
	m := &Mux{
		opts:     opts,
		log:      opts.Logger,
		ln:       ln,
		addr:     opts.Advertise,
		peers:    make(map[raft.ServerAddress]*peer),
		inbound:  make(map[*conn]struct{}),
		snaps:    make(map[net.Conn]struct{}),
		groups:   make(map[string]*Transport),
		handlers: make(map[string]Handler),
		callSem:  make(chan struct{}, opts.MaxCalls),
		closing:  make(chan struct{}),
	}
	if m.addr == "" {
		m.addr = raft.ServerAddress(ln.Addr().String())
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.wg.Add(1)
	go m.acceptLoop()
	m.log.Debug().Str("listen_addr", ln.Addr().String()).Str("advertise", string(m.addr)).Msg("transport listening")
	return m, nil
}

// Addr is the address peers dial to reach this Mux.
func (m *Mux) Addr() raft.ServerAddress { return m.addr }

// Group returns the transport of raft group id, creating it (or replacing a
// closed one) when needed. Requests for a group that does not exist here are
// answered with ErrUnknownGroup at once.
func (m *Mux) Group(id string) *Transport {
	if len(id) > maxNameLen {
		panic(fmt.Sprintf("transport: group id of %d bytes, limit %d", len(id), maxNameLen))
	}
	m.gmu.Lock()
	defer m.gmu.Unlock()
	if t := m.groups[id]; t != nil && !t.isClosed() {
		return t
	}
	t := newTransport(m, id)
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		_ = t.Close() // a transport of a closed Mux fails every call
	}
	m.groups[id] = t
	return t
}

// RemoveGroup closes and forgets group id, after its raft has shut down.
func (m *Mux) RemoveGroup(id string) {
	m.gmu.Lock()
	t := m.groups[id]
	delete(m.groups, id)
	m.gmu.Unlock()
	if t != nil {
		_ = t.Close()
	}
}

func (m *Mux) group(id []byte) *Transport {
	m.gmu.RLock()
	t := m.groups[string(id)]
	m.gmu.RUnlock()
	if t == nil || t.isClosed() {
		return nil
	}
	return t
}

// Handle registers h for method; a later call replaces it, nil removes it.
func (m *Mux) Handle(method string, h func(ctx context.Context, req []byte) ([]byte, error)) {
	if len(method) > maxNameLen {
		panic(fmt.Sprintf("transport: method name of %d bytes, limit %d", len(method), maxNameLen))
	}
	m.hmu.Lock()
	defer m.hmu.Unlock()
	if h == nil {
		delete(m.handlers, method)
		return
	}
	m.handlers[method] = h
}

// SetFault installs f, asked for every message this Mux sends (requests and
// responses, raft and application, snapshot streams) with the advertised
// address of the receiver; nil removes it.
func (m *Mux) SetFault(f func(to raft.ServerAddress) Fault) {
	if f == nil {
		m.fault.Store(nil)
		return
	}
	m.fault.Store(&f)
}

// applyFault reports whether a message to `to` is to be dropped, after
// waiting out any delay (false and ErrClosed if the Mux closes meanwhile).
func (m *Mux) applyFault(to raft.ServerAddress) (drop bool, err error) {
	fp := m.fault.Load()
	if fp == nil {
		return false, nil
	}
	f := (*fp)(to)
	if f.Drop {
		return true, nil
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-m.closing:
			return false, ErrClosed
		}
	}
	return false, nil
}

// Call sends req to the handler of method on the Mux at to and returns its
// answer. A handler's error comes back as a *RemoteError with the same text.
// ctx bounds the whole call, and its deadline is passed to the handler.
func (m *Mux) Call(ctx context.Context, to raft.ServerAddress, method string, req []byte) ([]byte, error) {
	if len(method) > maxNameLen {
		return nil, fmt.Errorf("%w: method name of %d bytes", ErrMalformed, len(method))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if drop, err := m.applyFault(to); err != nil {
		return nil, err
	} else if drop {
		return nil, fmt.Errorf("%w: call %s to %s", ErrDropped, method, to)
	}
	kind := connCtrl
	if len(req) > smallCall {
		kind = connBulk
	}
	c, err := m.conn(ctx, to, kind)
	if err != nil {
		return nil, err
	}
	id, cl, err := c.register()
	if err != nil {
		return nil, err
	}
	e := newFrame(msgCall, id, method, 16+min(len(req), refMin))
	var ms uint64
	if dl, ok := ctx.Deadline(); ok {
		ms = uint64(max(time.Until(dl).Milliseconds(), 1))
	}
	e.uvarint(ms)
	e.tail(req)
	bufs, err := e.finish(c.maxFrame)
	if err != nil {
		c.cancel(id)
		return nil, err
	}
	if err := c.send(bufs); err != nil {
		c.cancel(id)
		return nil, fmt.Errorf("%w: %v", ErrConnLost, err)
	}
	body, err := c.wait(id, cl, nil, nil, ctx.Done(), ctx.Err)
	if err != nil {
		return nil, err
	}
	resp, err := decodeResponse(body)
	if err != nil {
		return nil, err
	}
	if err := resp.error(); err != nil {
		return nil, err
	}
	if resp.payload == nil {
		return nil, fmt.Errorf("%w: call response without payload", ErrMalformed)
	}
	return resp.payload, nil
}

// Close stops accepting, closes every connection and group transport, fails
// pending calls with ErrClosed and waits for every goroutine of the Mux.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.closing)
	peers := make([]*peer, 0, len(m.peers))
	for _, p := range m.peers {
		peers = append(peers, p)
	}
	inbound := make([]*conn, 0, len(m.inbound))
	for c := range m.inbound {
		inbound = append(inbound, c)
	}
	snaps := make([]net.Conn, 0, len(m.snaps))
	for nc := range m.snaps {
		snaps = append(snaps, nc)
	}
	m.mu.Unlock()

	m.cancel()
	err := m.ln.Close()
	m.gmu.RLock()
	groups := make([]*Transport, 0, len(m.groups))
	for _, t := range m.groups {
		groups = append(groups, t)
	}
	m.gmu.RUnlock()
	for _, t := range groups {
		_ = t.Close()
	}
	for _, p := range peers {
		for i := range p.lanes {
			l := &p.lanes[i]
			l.mu.Lock()
			c := l.c
			l.mu.Unlock()
			if c != nil {
				c.fail(ErrClosed)
			}
		}
	}
	for _, c := range inbound {
		c.fail(ErrClosed)
	}
	for _, nc := range snaps {
		_ = nc.Close()
	}
	m.wg.Wait()
	m.log.Debug().Str("advertise", string(m.addr)).Msg("transport closed")
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// goTracked starts f as a goroutine counted in wg, unless the Mux is closed.
func (m *Mux) goTracked(f func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
	return true
}

// conn returns the live outbound conn of the kind to `to`, dialing one.
func (m *Mux) conn(ctx context.Context, to raft.ServerAddress, kind byte) (*conn, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	p := m.peers[to]
	if p == nil {
		p = &peer{addr: to}
		m.peers[to] = p
	}
	m.mu.Unlock()

	l := &p.lanes[kind-1]
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c != nil && l.c.alive() {
		return l.c, nil
	}
	l.c = nil
	if l.dialErr != nil && time.Since(l.dialAt) < dialBackoff {
		return nil, l.dialErr
	}
	nc, err := m.dial(ctx, to, kind)
	if err != nil {
		l.dialErr, l.dialAt = err, time.Now()
		return nil, err
	}
	l.dialErr = nil
	c := newConn(m, nc, nil, kind, to, true)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		_ = nc.Close()
		return nil, ErrClosed
	}
	m.wg.Add(1)
	m.mu.Unlock()
	l.c = c
	go c.readLoop()
	m.log.Debug().Str("peer", string(to)).Str("conn_kind", kindName(kind)).Msg("transport connected")
	return c, nil
}

// dial connects to `to` and sends the preamble.
func (m *Mux) dial(ctx context.Context, to raft.ServerAddress, kind byte) (net.Conn, error) {
	d := net.Dialer{Timeout: m.opts.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", string(to))
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w", to, err)
	}
	_ = nc.SetWriteDeadline(time.Now().Add(m.opts.RPCTimeout))
	if _, err := nc.Write(preamble(kind, m.addr)); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("transport: dial %s: %w", to, err)
	}
	_ = nc.SetWriteDeadline(time.Time{})
	return nc, nil
}

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	var delay time.Duration
	for {
		nc, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closing:
				return
			default:
			}
			// Out of descriptors and the like: back off, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			m.log.Error().Err(err).Dur("retry_in", delay).Msg("transport accept failed")
			select {
			case <-time.After(delay):
				continue
			case <-m.closing:
				return
			}
		}
		delay = 0
		if !m.goTracked(func() { m.handleInbound(nc) }) {
			_ = nc.Close()
			return
		}
	}
}

// handleInbound reads the preamble and runs the connection.
func (m *Mux) handleInbound(nc net.Conn) {
	br := bufio.NewReaderSize(nc, readBufSize)
	_ = nc.SetReadDeadline(time.Now().Add(m.opts.RPCTimeout))
	kind, from, err := readPreamble(br)
	if err != nil {
		m.log.Warn().Err(err).Str("remote_addr", nc.RemoteAddr().String()).Msg("transport refused connection")
		_ = nc.Close()
		return
	}
	_ = nc.SetReadDeadline(time.Time{})
	if kind == connSnapshot {
		if !m.trackSnap(nc) {
			_ = nc.Close()
			return
		}
		defer m.untrackSnap(nc)
		m.receiveSnapshot(nc, br, from)
		return
	}
	c := newConn(m, nc, br, kind, from, false)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		_ = nc.Close()
		return
	}
	m.inbound[c] = struct{}{}
	m.wg.Add(1) // readLoop's Done
	m.mu.Unlock()
	c.readLoop()
}

func (m *Mux) dropInbound(c *conn) {
	m.mu.Lock()
	delete(m.inbound, c)
	m.mu.Unlock()
}

func (m *Mux) trackSnap(nc net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.snaps[nc] = struct{}{}
	return true
}

func (m *Mux) untrackSnap(nc net.Conn) {
	m.mu.Lock()
	delete(m.snaps, nc)
	m.mu.Unlock()
	_ = nc.Close()
}

// serve handles one inbound request frame, on the conn's reader goroutine.
// Nothing here blocks on a group: raft requests are queued to their group
// (or answered inline by the heartbeat handler), calls run on their own
// goroutine.
func (m *Mux) serve(c *conn, f frame) {
	switch f.typ {
	case msgCall:
		m.serveCall(c, f)
		return
	case msgInstallSnapshot:
		m.reply(c, f.typ, f.id, statusMalformed, "InstallSnapshot on a multiplexed connection", nil)
		return
	}
	t := m.group(f.name)
	if t == nil {
		m.reply(c, f.typ, f.id, statusUnknownGroup, fmt.Sprintf("group %q not found on %s", f.name, m.addr), nil)
		return
	}
	cmd, err := decodeRequest(f.typ, f.body)
	if err != nil {
		m.log.Warn().Err(err).Str("peer", string(c.peer)).Str("group", t.id).Msg("transport bad request")
		m.reply(c, f.typ, f.id, statusMalformed, err.Error(), nil)
		return
	}
	if req, ok := cmd.(*raft.AppendEntriesRequest); ok && isHeartbeat(req) {
		if fn := t.heartbeatFn(); fn != nil {
			respCh := make(chan raft.RPCResponse, 1)
			fn(raft.RPC{Command: req, RespChan: respCh})
			select {
			case r := <-respCh:
				m.replyRaft(c, f.typ, f.id, r)
			default: // raft shut down and ignored it
				m.reply(c, f.typ, f.id, statusShutdown, "raft shut down", nil)
			}
			return
		}
	}
	t.enqueue(inbound{c: c, typ: f.typ, id: f.id, cmd: cmd})
}

// isHeartbeat is raft's heartbeat shape (replication.go heartbeat): no
// entries, no previous entry, no commit index.
func isHeartbeat(r *raft.AppendEntriesRequest) bool {
	leader := r.Addr
	if len(leader) == 0 {
		leader = r.Leader
	}
	return r.Term != 0 && leader != nil && r.PrevLogEntry == 0 && r.PrevLogTerm == 0 &&
		len(r.Entries) == 0 && r.LeaderCommitIndex == 0
}

func (m *Mux) serveCall(c *conn, f frame) {
	method := string(f.name)
	m.hmu.RLock()
	h := m.handlers[method]
	m.hmu.RUnlock()
	if h == nil {
		m.reply(c, f.typ, f.id, statusUnknownMethod, fmt.Sprintf("method %q not handled by %s", method, m.addr), nil)
		return
	}
	d := decoder{b: f.body}
	ms := d.uvarint()
	if d.err != nil {
		m.reply(c, f.typ, f.id, statusMalformed, d.err.Error(), nil)
		return
	}
	req := d.b
	select {
	case m.callSem <- struct{}{}:
	default:
		m.reply(c, f.typ, f.id, statusBusy, fmt.Sprintf("%d calls running", cap(m.callSem)), nil)
		return
	}
	started := m.goTracked(func() {
		defer func() { <-m.callSem }()
		ctx := m.ctx
		if ms > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
			defer cancel()
		}
		resp, err := h(ctx, req)
		if err != nil {
			m.reply(c, f.typ, f.id, statusRemoteError, err.Error(), nil)
			return
		}
		if resp == nil {
			resp = []byte{}
		}
		m.reply(c, f.typ, f.id, statusOK, "", func(e *encoder) { e.tail(resp) })
	})
	if !started {
		<-m.callSem
	}
}

// reply sends a response frame for request id on c, subject to the fault
// function. A response too large for the connection turns into an error.
func (m *Mux) reply(c *conn, typ byte, id uint64, status byte, text string, payload func(*encoder)) {
	m.replyFull(c, typ, id, status, text, status != statusOK, payload)
}

func (m *Mux) replyFull(c *conn, typ byte, id uint64, status byte, text string, hasErr bool, payload func(*encoder)) {
	if drop, err := m.applyFault(c.peer); drop || err != nil {
		return
	}
	e := newFrame(typ|respBit, id, "", 64)
	encodeResponse(e, status, text, hasErr, payload)
	bufs, err := e.finish(c.maxFrame)
	if err != nil {
		e = newFrame(typ|respBit, id, "", 64)
		encodeResponse(e, statusRemoteError, err.Error(), true, nil)
		if bufs, err = e.finish(c.maxFrame); err != nil {
			return
		}
	}
	_ = c.send(bufs) // a failed conn fails the caller's call
}

// replyRaft answers a raft request with raft's response and error.
func (m *Mux) replyRaft(c *conn, typ byte, id uint64, r raft.RPCResponse) {
	text, hasErr := "", r.Error != nil
	if hasErr {
		text = r.Error.Error()
	}
	m.replyFull(c, typ, id, statusOK, text, hasErr, encodeRaftResponse(r.Response))
}
