package transport

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

var (
	_ raft.AppendPipeline = (*pipeline)(nil)
	_ raft.AppendFuture   = (*appendFuture)(nil)
)

// AppendEntriesPipeline implements raft.Transport. The pipeline sends on the
// bulk connection to target, so its requests arrive in order, and allows
// Options.MaxRPCsInFlight unanswered requests; it ends (raft falls back to
// single requests) when that connection breaks. With MaxRPCsInFlight 1 it
// answers raft.ErrPipelineReplicationNotSupported.
func (t *Transport) AppendEntriesPipeline(_ raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	n := t.m.opts.MaxRPCsInFlight
	if n < 2 {
		return nil, raft.ErrPipelineReplicationNotSupported
	}
	if t.isClosed() {
		return nil, ErrClosed
	}
	c, err := t.m.conn(context.Background(), target, connBulk)
	if err != nil {
		return nil, err
	}
	p := &pipeline{
		t:        t,
		c:        c,
		target:   target,
		slots:    make(chan struct{}, n),
		inflight: make(chan *appendFuture, n),
		done:     make(chan raft.AppendFuture, doneBuffer),
		stop:     make(chan struct{}),
		exited:   make(chan struct{}),
	}
	t.qmu.Lock()
	if t.closed {
		t.qmu.Unlock()
		return nil, ErrClosed
	}
	t.pipes[p] = struct{}{}
	t.wg.Add(1)
	t.qmu.Unlock()
	go p.collect()
	return p, nil
}

// doneBuffer is how many answered futures may wait for raft. A slot is
// freed when its answer arrives, not when raft takes the future: raft's
// pipelineDecode stops reading at the first failed response while its
// sender may still be blocked in AppendEntries waiting for a slot, and
// would never return to notice. Raft's sender sees the decoder's exit after
// at most a few more sends, far fewer than this.
const doneBuffer = 1024

// pipeline is one group's AppendEntries stream to one follower. Its
// collector goroutine (owned by the pipeline, stopped by Close, counted in
// the Transport's wg) waits for responses in send order and hands the
// futures to raft.
type pipeline struct {
	t      *Transport
	c      *conn
	target raft.ServerAddress

	slots    chan struct{}      // one per unanswered request
	inflight chan *appendFuture // sent, in order
	done     chan raft.AppendFuture

	stopOnce sync.Once
	stop     chan struct{}
	exited   chan struct{} // closed when collect returns
}

type appendFuture struct {
	start time.Time
	req   *raft.AppendEntriesRequest
	resp  *raft.AppendEntriesResponse
	err   error
	id    uint64
	cl    *call
}

func (f *appendFuture) Error() error                          { return f.err }
func (f *appendFuture) Start() time.Time                      { return f.start }
func (f *appendFuture) Request() *raft.AppendEntriesRequest   { return f.req }
func (f *appendFuture) Response() *raft.AppendEntriesResponse { return f.resp }

// AppendEntries sends one request; it blocks while MaxRPCsInFlight are
// unanswered.
func (p *pipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	select {
	case <-p.stop:
		return nil, raft.ErrPipelineShutdown
	default:
	}
	select {
	case p.slots <- struct{}{}:
	case <-p.stop:
		return nil, raft.ErrPipelineShutdown
	case <-p.c.dead:
		return nil, fmt.Errorf("%w: pipeline to %s", ErrConnLost, p.target)
	}
	fut, err := p.send(args, resp)
	if err != nil {
		<-p.slots
		return nil, err
	}
	p.inflight <- fut // never blocks: slots bound it
	return fut, nil
}

func (p *pipeline) send(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (*appendFuture, error) {
	m := p.t.m
	if drop, err := m.applyFault(p.target); err != nil {
		return nil, err
	} else if drop {
		return nil, fmt.Errorf("%w: to %s", ErrDropped, p.target)
	}
	p.t.trim(args)
	fut := &appendFuture{start: time.Now(), req: args, resp: resp}
	id, cl, err := p.c.register()
	if err != nil {
		return nil, err
	}
	fut.id, fut.cl = id, cl
	e := newFrame(msgAppendEntries, id, p.t.id, appendSizeHint(args))
	encodeAppendEntriesRequest(e, args)
	bufs, err := e.finish(p.c.maxFrame)
	if err != nil {
		p.c.cancel(id)
		return nil, err
	}
	if err := p.c.send(bufs); err != nil {
		p.c.cancel(id)
		return nil, fmt.Errorf("%w: %v", ErrConnLost, err)
	}
	return fut, nil
}

// Consumer implements raft.AppendPipeline.
func (p *pipeline) Consumer() <-chan raft.AppendFuture { return p.done }

// Close implements raft.AppendPipeline: it stops the collector, failing the
// requests still in flight, and waits for it.
func (p *pipeline) Close() error {
	p.stopOnce.Do(func() {
		close(p.stop)
		p.t.qmu.Lock()
		delete(p.t.pipes, p)
		p.t.qmu.Unlock()
	})
	<-p.exited
	return nil
}

func (p *pipeline) collect() {
	defer p.t.wg.Done()
	defer close(p.exited)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var fut *appendFuture
		select {
		case fut = <-p.inflight:
		case <-p.stop:
			p.drain()
			return
		}
		timer.Reset(max(time.Until(fut.start.Add(p.t.m.opts.RPCTimeout)), 0))
		body, err := p.c.wait(fut.id, fut.cl, timer.C, p.stop, nil, nil)
		if err == nil {
			var r response
			if r, err = decodeResponse(body); err == nil {
				err = raftResult(r, func(b []byte) error { return decodeAppendEntriesResponse(b, fut.resp) })
			}
		}
		fut.err = err
		<-p.slots
		select {
		case p.done <- fut:
		case <-p.stop:
			p.drain()
			return
		}
	}
}

// drain forgets the requests still in flight after Close.
func (p *pipeline) drain() {
	for {
		select {
		case fut := <-p.inflight:
			p.c.cancel(fut.id)
		default:
			return
		}
	}
}
