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
		out <- pending{hdr: req.Header, start: start, respond: c.b.handle(c, req)}
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
		var resp kmsg.Response
		var bufs net.Buffers    // set when the frame is written by writev
		var sr *splicedResponse // its read buffers are released after the write
		if p.respond == nil {
			buf = protocol.AppendApiVersionsFallback(buf[:0], p.hdr.CorrelationID)
		} else {
			resp = p.respond()
			cw, closeConn := resp.(closeWithoutResponse)
			if closeConn {
				resp = cw.Response
			}
			var spliced bool
			if sr, spliced = resp.(*splicedResponse); spliced {
				resp = sr.Response
			}
			code := "none"
			if resp != nil {
				code = responseCode(resp)
			}
			c.b.metrics.ObserveRequest(apiName(p.hdr.Key), code, time.Since(p.start))
			if closeConn && !broken {
				broken = true
				c.nc.Close() // the reader stops too
			}
			if resp == nil || closeConn {
				if sr != nil {
					sr.release()
				}
				continue
			}
			if spliced && !broken {
				var err error
				if bufs, buf, err = protocol.AppendSplicedResponse(buf[:0], p.hdr, resp, sr.splices); err != nil {
					c.lg.Error().Err(err).Msg("closing connection: cannot encode fetch response")
					broken = true
					c.nc.Close()
				}
			} else if !spliced {
				buf = protocol.AppendResponse(buf[:0], p.hdr, resp)
			}
		}
		var err error
		switch {
		case broken:
		case bufs != nil:
			_, err = bufs.WriteTo(c.nc)
		default:
			_, err = c.nc.Write(buf)
		}
		if sr != nil {
			sr.release()
		}
		if err != nil {
			broken = true
			c.nc.Close() // the reader stops too
		}
		if cap(buf) > 4<<20 {
			buf = nil // do not pin one large fetch's buffer
		}
	}
}

func apiName(key int16) string {
	if r := kmsg.RequestForKey(key); r != nil {
		return kmsg.NameForKey(key)
	}
	return "Unknown"
}
