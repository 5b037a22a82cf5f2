package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Every broker advertises its proxy's address as its raft address (the
// --advertised-raft-addr flag), so every broker-to-broker connection (raft of
// every partition and of the controller, and the brokers' internal RPCs)
// goes through the proxy of its destination. The proxy learns the source
// from the transport's connection preamble, which names the dialer's
// advertised raft address (replication/transport/doc.go, "Wire format"),
// so one proxy per destination tells every directed link apart without
// any change to the broker.
//
// A connection carries the dialer's requests one way and the peer's
// responses the other, so each direction of a connection is the directed
// link it travels: requests of a connection dialed by a to b travel a->b,
// its responses b->a.
//
// Faults, per directed link:
//   - cut: bytes stop moving (a blackhole, like iptables DROP): the proxy
//     stops forwarding, its buffer fills and then TCP pushes back on the
//     sender. Connections stay open; when the cut heals the held bytes
//     flow on, as TCP retransmission would deliver them. A partition is a
//     set of cut links; a one-way partition cuts one direction only.
//   - delay: every chunk is held until it is that old (latency, no loss of
//     throughput, order kept).
//   - reset: every connection between two brokers is closed with RST.

// link is a directed broker-to-broker link, by node id.
type link struct{ from, to int }

// Net is the fault state of every link, shared by all proxies.
type Net struct {
	mu      sync.Mutex
	cut     map[link]bool
	delay   map[link]time.Duration
	conns   map[*pconn]struct{}
	changed chan struct{} // closed and replaced on every change
}

// NewNet returns a net without faults.
func NewNet() *Net {
	return &Net{cut: map[link]bool{}, delay: map[link]time.Duration{}, conns: map[*pconn]struct{}{}, changed: make(chan struct{})}
}

func (n *Net) notify() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// state reports l's faults and a channel closed when they next change.
func (n *Net) state(l link) (cut bool, delay time.Duration, changed <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut[l], n.delay[l], n.changed
}

// Cut blocks (or, with on false, unblocks) the link from -> to.
func (n *Net) Cut(from, to int, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if on {
		n.cut[link{from, to}] = true
	} else {
		delete(n.cut, link{from, to})
	}
	n.notify()
}

// Delay sets the latency added on from -> to (0 removes it).
func (n *Net) Delay(from, to int, d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if d > 0 {
		n.delay[link{from, to}] = d
	} else {
		delete(n.delay, link{from, to})
	}
	n.notify()
}

// Heal removes every cut and delay.
func (n *Net) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cut)
	clear(n.delay)
	n.notify()
}

// Reset closes, with RST, every proxied connection between a and b, and
// returns how many it closed.
func (n *Net) Reset(a, b int) int {
	n.mu.Lock()
	var victims []*pconn
	for c := range n.conns {
		if c.src == a && c.dst == b || c.src == b && c.dst == a {
			victims = append(victims, c)
		}
	}
	n.mu.Unlock()
	for _, c := range victims {
		c.reset()
	}
	return len(victims)
}

// Conns counts open proxied connections.
func (n *Net) Conns() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.conns)
}

// Proxy forwards one broker's raft listener.
type Proxy struct {
	net    *Net
	node   int
	ln     net.Listener
	target string
	nodeOf func(addr string) int // advertised raft address -> node id, 0 unknown

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// NewProxy listens on addr for broker node, whose real listener is target.
func NewProxy(n *Net, node int, addr, target string, nodeOf func(string) int) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{net: n, node: node, ln: ln, target: target, nodeOf: nodeOf}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listening address (the broker's advertised one).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting and closes every connection to its broker.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.net.mu.Lock()
	var mine []*pconn
	for c := range p.net.conns {
		if c.dst == p.node {
			mine = append(mine, c)
		}
	}
	p.net.mu.Unlock()
	for _, c := range mine {
		c.close()
	}
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(nc)
		}()
	}
}

// readPreamble reads the transport's connection preamble ("SLRT", version,
// kind, address length, address) and returns its bytes and the address.
func readPreamble(r io.Reader) ([]byte, string, error) {
	hdr := make([]byte, 8)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, "", err
	}
	if string(hdr[:4]) != "SLRT" {
		return hdr, "", fmt.Errorf("proxy: not a transport preamble: %q", hdr[:4])
	}
	n := int(binary.BigEndian.Uint16(hdr[6:8]))
	if n > 1024 {
		return hdr, "", fmt.Errorf("proxy: preamble address of %d bytes", n)
	}
	addr := make([]byte, n)
	if _, err := io.ReadFull(r, addr); err != nil {
		return nil, "", err
	}
	return append(hdr, addr...), string(addr), nil
}

func (p *Proxy) serve(client net.Conn) {
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	pre, addr, err := readPreamble(client)
	_ = client.SetReadDeadline(time.Time{})
	if err != nil && pre == nil {
		_ = client.Close()
		return
	}
	src := 0
	if err == nil {
		src = p.nodeOf(addr)
	}
	server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		// The broker is down: refuse, as its own listener would.
		resetConn(client)
		return
	}
	c := &pconn{src: src, dst: p.node, client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	p.net.mu.Lock()
	if closed {
		p.net.mu.Unlock()
		c.close()
		return
	}
	p.net.conns[c] = struct{}{}
	p.net.mu.Unlock()
	defer func() {
		p.net.mu.Lock()
		delete(p.net.conns, c)
		p.net.mu.Unlock()
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.pipe(p.net, client, server, link{src, p.node}, pre) }()
	go func() { defer wg.Done(); c.pipe(p.net, server, client, link{p.node, src}, nil) }()
	wg.Wait()
}

// pconn is one proxied connection.
type pconn struct {
	src, dst       int
	client, server net.Conn
	once           sync.Once
	done           chan struct{}
}

func (c *pconn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

func (c *pconn) reset() {
	c.once.Do(func() {
		close(c.done)
		resetConn(c.client)
		resetConn(c.server)
	})
}

// resetConn closes nc with RST rather than FIN.
func resetConn(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = nc.Close()
}

type chunk struct {
	b []byte
	t time.Time
}

// pipe copies from -> to as link l, holding chunks while l is cut and
// until they are as old as l's delay. first is sent before anything read.
func (c *pconn) pipe(n *Net, from, to net.Conn, l link, first []byte) {
	ch := make(chan chunk, 64)
	go func() {
		defer close(ch)
		if first != nil {
			ch <- chunk{first, time.Now()}
		}
		for {
			b := make([]byte, 32<<10)
			k, err := from.Read(b)
			if k > 0 {
				select {
				case ch <- chunk{b[:k], time.Now()}:
				case <-c.done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	defer c.close()
	for ck := range ch {
		for {
			cut, delay, changed := n.state(l)
			if cut {
				select {
				case <-changed:
					continue
				case <-c.done:
					return
				}
			}
			if wait := time.Until(ck.t.Add(delay)); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-changed:
					t.Stop()
					continue
				case <-c.done:
					t.Stop()
					return
				}
			}
			break
		}
		if _, err := to.Write(ck.b); err != nil {
			return
		}
	}
}
