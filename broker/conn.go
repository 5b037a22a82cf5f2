package broker

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/protocol"
)

// maxPipelined bounds requests a connection may have in flight; Kafka
// clients send at most 5 produce requests per connection.
const maxPipelined = 16

// responder finishes a request: it may block (fsync, long-poll) and returns
// the response, or nil when none is sent (produce with acks=0).
type responder func() kmsg.Response

// closeWithoutResponse is what a responder returns when no response may be
// sent but the client must learn of a failure: an acks=0 produce that was
// refused. The writer closes the connection instead, as Kafka does; the
// producer sees the connection drop and refreshes its metadata.
type closeWithoutResponse struct{ kmsg.Response }

type pending struct {
	hdr     protocol.Header
	respond responder
	start   time.Time
}

type conn struct {
	b  *Broker
	nc net.Conn
	lg zerolog.Logger

	mu      sync.Mutex // orders deadline changes between reader and shutdown
	stopped bool
}

func newConn(b *Broker, nc net.Conn) *conn {
	return &conn{b: b, nc: nc, lg: b.lg.With().Str("remote", nc.RemoteAddr().String()).Logger()}
}

// stopReading makes the reader stop after its current request; responses
// already started are still written.
func (c *conn) stopReading() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	c.nc.SetReadDeadline(time.Now())
}

// armIdle gives the next request connections_max_idle to arrive in full,
// unless the connection is being stopped.
func (c *conn) armIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopped {
		c.nc.SetReadDeadline(time.Now().Add(c.b.cfg.ConnectionsMaxIdle))
	}
}

func (c *conn) serve() {
	c.b.metrics.ConnOpened()
	defer c.b.metrics.ConnClosed()
	// Records acquired through share sessions of this connection go back
	// when it closes (as Kafka's connection-disconnect listener does).
	defer c.b.share.connClosed(c)
	out := make(chan pending, maxPipelined)
	written := make(chan struct{})
	go c.writeLoop(out, written)
	lim := protocol.Limits{MaxRequestBytes: c.b.cfg.MaxRequestBytes, MaxControlRequestBytes: c.b.cfg.MaxControlRequestBytes}
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		c.armIdle() // covers waiting for a request and reading all of it
		frame, err := protocol.ReadFrame(br, lim)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isTimeout(err) {
				c.lg.Warn().Err(err).Msg("closing connection: bad frame")
			}
			break
		}
		start := time.Now()
		req, err := protocol.Decode(frame)
		if err != nil {
			if req != nil && req.Header.Key == 18 && errors.Is(err, protocol.ErrUnsupportedVersion) {
				// KIP-511: answer an ApiVersions of an unknown version with
				// our versions at v0, so the client can pick one.
				out <- pending{hdr: req.Header, start: start, respond: nil}
				continue
			}
			c.lg.Warn().Err(err).Msg("closing connection: bad request")
			break
		}
		// The frame is this request's alone and never reused, so produce
		// may hand its batches to the log without a copy.
		out <- pending{hdr: req.Header, start: start, respond: c.b.handle(c, req, frame)}
	}
	close(out)
	<-written
	c.nc.Close()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *conn) writeLoop(out <-chan pending, done chan<- struct{}) {
	defer close(done)
	var buf []byte
	broken := false
	for p := range out {
		var frame net.Buffers
		var release func()
		var closeConn bool
		frame, buf, release, closeConn = c.finish(p, buf[:0])
		if frame != nil && !broken {
			if _, err := frame.WriteTo(c.nc); err != nil {
				closeConn = true
			}
		}
		release()
		if closeConn && !broken {
			broken = true
			c.nc.Close() // the reader stops too
		}
		if cap(buf) > 4<<20 {
			buf = nil // do not pin one large fetch's buffer
		}
	}
}

// finish waits for p's response and encodes it into buf. It returns the
// frame to write (nil when nothing is sent), the buffer to reuse, a release
// for the fetch buffers the frame references (call it after writing), and
// whether the connection must close instead.
func (c *conn) finish(p pending, buf []byte) (net.Buffers, []byte, func(), bool) {
	release := func() {}
	if p.respond == nil {
		buf = protocol.AppendApiVersionsFallback(buf, p.hdr.CorrelationID)
		return net.Buffers{buf}, buf, release, false
	}
	resp := p.respond()
	closeConn := false
	if cw, ok := resp.(closeWithoutResponse); ok {
		resp, closeConn = cw.Response, true
	}
	var splices []protocol.Splice
	if sr, ok := resp.(*splicedResponse); ok {
		resp, splices, release = sr.Response, sr.splices, sr.release
	}
	code := "none"
	if resp != nil {
		code = responseCode(resp)
	}
	c.b.metrics.ObserveRequest(protocol.NameForKey(p.hdr.Key), code, time.Since(p.start))
	if resp == nil || closeConn {
		return nil, buf, release, closeConn
	}
	// With no splices this is AppendResponse, returned as buffers.
	frame, buf, err := protocol.AppendSplicedResponse(buf, p.hdr, resp, splices)
	if err != nil {
		c.lg.Error().Err(err).Msg("closing connection: cannot encode response")
		return nil, buf, release, true
	}
	return frame, buf, release, false
}
