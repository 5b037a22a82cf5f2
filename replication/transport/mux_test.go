package transport

//lint:file-ignore SA1019 raft still fills and reads the deprecated Leader and Candidate fields, so the wire carries them.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func listen(t *testing.T, opts Options) *Mux {
	t.Helper()
	opts.Logger = testLogger(t)
	m, err := Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func TestCall(t *testing.T) {
	a, b := listen(t, Options{}), listen(t, Options{})
	b.Handle("echo", func(_ context.Context, req []byte) ([]byte, error) {
		return append([]byte("echo:"), req...), nil
	})
	b.Handle("fail", func(context.Context, []byte) ([]byte, error) {
		return nil, errors.New("not the controller; leader is broker-3")
	})
	b.Handle("empty", func(context.Context, []byte) ([]byte, error) { return nil, nil })
	b.Handle("deadline", func(ctx context.Context, _ []byte) ([]byte, error) {
		if _, ok := ctx.Deadline(); !ok {
			return nil, errors.New("no deadline")
		}
		return []byte("ok"), nil
	})
	ctx := context.Background()

	got, err := a.Call(ctx, b.Addr(), "echo", []byte("hi"))
	if err != nil || string(got) != "echo:hi" {
		t.Fatalf("echo: %q %v", got, err)
	}
	// Large requests take the bulk connection, large answers come back.
	big := bytes.Repeat([]byte("x"), 3<<20)
	got, err = a.Call(ctx, b.Addr(), "echo", big)
	if err != nil || !bytes.Equal(got, append([]byte("echo:"), big...)) {
		t.Fatalf("big echo: %d bytes, %v", len(got), err)
	}
	if got, err = a.Call(ctx, b.Addr(), "empty", nil); err != nil || len(got) != 0 {
		t.Fatalf("empty: %q %v", got, err)
	}
	_, err = a.Call(ctx, b.Addr(), "nope", nil)
	if !errors.Is(err, ErrUnknownMethod) {
		t.Fatalf("unknown method: %v", err)
	}
	_, err = a.Call(ctx, b.Addr(), "fail", nil)
	var re *RemoteError
	if !errors.As(err, &re) || err.Error() != "not the controller; leader is broker-3" {
		t.Fatalf("handler error: %v", err)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if got, err = a.Call(dctx, b.Addr(), "deadline", nil); err != nil || string(got) != "ok" {
		t.Fatalf("deadline: %q %v", got, err)
	}

	// Concurrent calls share the connections.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := []byte(fmt.Sprint(i))
			got, err := a.Call(ctx, b.Addr(), "echo", req)
			if err == nil && string(got) != "echo:"+string(req) {
				err = fmt.Errorf("got %q for %q", got, req)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestCallDeadlineAndPeerLoss(t *testing.T) {
	a, b := listen(t, Options{}), listen(t, Options{})
	started := make(chan struct{}, 4)
	b.Handle("hang", func(ctx context.Context, _ []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})

	// A handler that never answers: the caller's deadline ends the call.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := a.Call(ctx, b.Addr(), "hang", nil)
	cancel()
	// Either side's copy of the deadline may fire first.
	var re *RemoteError
	if !errors.Is(err, context.DeadlineExceeded) && (!errors.As(err, &re) || re.Text != context.DeadlineExceeded.Error()) {
		t.Fatalf("hanging handler: %v", err)
	}

	// The peer goes away while a call waits: it fails with ErrConnLost
	// (or the remote's shutdown answer), not by its deadline.
	errc := make(chan error, 1)
	go func() {
		_, err := a.Call(context.Background(), b.Addr(), "hang", nil)
		errc <- err
	}()
	<-started
	<-started
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrConnLost) && !errors.Is(err, context.Canceled) {
		var re *RemoteError
		if !errors.As(err, &re) {
			t.Fatalf("call to a peer that closed: %v", err)
		}
	}

	// Calls to the closed peer fail (connection refused), well within the
	// deadline.
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.Call(ctx, b.Addr(), "hang", nil); err == nil || ctx.Err() != nil {
		t.Fatalf("call to a closed peer: %v (ctx %v)", err, ctx.Err())
	}

	// Close fails a caller's own pending calls.
	c := listen(t, Options{})
	c.Handle("hang", b.handlers["hang"])
	go func() {
		_, err := a.Call(context.Background(), c.Addr(), "hang", nil)
		errc <- err
	}()
	<-started
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("pending call at Close: %v", err)
	}
	if _, err := a.Call(context.Background(), c.Addr(), "hang", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
}

// TestUnknownGroup: a request for a group the receiver does not host is
// answered at once; once the group exists it is served.
func TestUnknownGroup(t *testing.T) {
	a, b := listen(t, Options{}), listen(t, Options{})
	ta := a.Group("late")
	req := &raft.RequestVoteRequest{RPCHeader: testHeader(), Term: 1, Candidate: []byte(a.Addr())}
	var resp raft.RequestVoteResponse
	if err := ta.RequestVote("b", b.Addr(), req, &resp); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("unknown group: %v", err)
	}
	tb := b.Group("late")
	done := make(chan struct{})
	go func() {
		defer close(done)
		rpc := <-tb.Consumer()
		if _, ok := rpc.Command.(*raft.RequestVoteRequest); !ok {
			rpc.Respond(nil, fmt.Errorf("unexpected %T", rpc.Command))
			return
		}
		rpc.Respond(&raft.RequestVoteResponse{Term: 1, Granted: true}, nil)
	}()
	if err := ta.RequestVote("b", b.Addr(), req, &resp); err != nil || !resp.Granted {
		t.Fatalf("after creating the group: %+v %v", resp, err)
	}
	<-done

	// A closed group answers as unknown; Group makes a fresh one.
	b.RemoveGroup("late")
	if err := ta.RequestVote("b", b.Addr(), req, &resp); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("removed group: %v", err)
	}
	_ = tb.Close()
	if b.Group("late") == tb {
		t.Fatal("Group returned a closed transport")
	}
}

// TestRemoteErrorWithResponse: raft may answer an error and a response; both
// come back.
func TestRemoteErrorWithResponse(t *testing.T) {
	a, b := listen(t, Options{}), listen(t, Options{})
	tb := b.Group("g")
	go func() {
		rpc := <-tb.Consumer()
		rpc.Respond(&raft.AppendEntriesResponse{Term: 7, LastLog: 3}, errors.New("log store failed"))
	}()
	req := &raft.AppendEntriesRequest{RPCHeader: testHeader(), Term: 7, Entries: []*raft.Log{{Index: 1, Term: 7}}}
	var resp raft.AppendEntriesResponse
	err := a.Group("g").AppendEntries("b", b.Addr(), req, &resp)
	if err == nil || err.Error() != "log store failed" || resp.Term != 7 || resp.LastLog != 3 {
		t.Fatalf("%+v %v", resp, err)
	}
}

// TestTrimAppendEntries: a request over MaxAppendBytes is cut, and raft
// sees the cut in req.Entries.
func TestTrimAppendEntries(t *testing.T) {
	a, b := listen(t, Options{MaxAppendBytes: 100 << 10}), listen(t, Options{})
	tb := b.Group("g")
	got := make(chan int, 1)
	go func() {
		rpc := <-tb.Consumer()
		got <- len(rpc.Command.(*raft.AppendEntriesRequest).Entries)
		rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
	}()
	req := &raft.AppendEntriesRequest{RPCHeader: testHeader(), Term: 1}
	for i := 1; i <= 10; i++ {
		req.Entries = append(req.Entries, &raft.Log{Index: uint64(i), Term: 1, Data: make([]byte, 30<<10)})
	}
	var resp raft.AppendEntriesResponse
	if err := a.Group("g").AppendEntries("b", b.Addr(), req, &resp); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != 3 || len(req.Entries) != 3 {
		t.Fatalf("received %d entries, request shows %d, want 3", n, len(req.Entries))
	}
}

// TestBadPeer: garbage and oversized frames close the connection; the Mux
// keeps serving others.
func TestBadPeer(t *testing.T) {
	b := listen(t, Options{})
	b.Handle("ping", func(context.Context, []byte) ([]byte, error) { return []byte("pong"), nil })
	for _, junk := range [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		append(preamble(connCtrl, "x:1"), 0xff, 0xff, 0xff, 0xff),
		append(preamble(connCtrl, "x:1"), 0, 0, 0, 11, 0x77, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0),
	} {
		nc, err := net.Dial("tcp", string(b.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(junk); err != nil {
			t.Fatal(err)
		}
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		var buf [1]byte
		if _, err := nc.Read(buf[:]); err == nil {
			t.Fatalf("%q: connection still open", junk)
		}
		_ = nc.Close()
	}
	a := listen(t, Options{})
	if got, err := a.Call(context.Background(), b.Addr(), "ping", nil); err != nil || string(got) != "pong" {
		t.Fatalf("%q %v", got, err)
	}
}

// TestCloseStopsGoroutines: after a cluster's rafts shut down and Close
// returns, no goroutine of the transport is left.
func TestCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		a, err := Listen("127.0.0.1:0", Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Listen("127.0.0.1:0", Options{})
		if err != nil {
			t.Fatal(err)
		}
		b.Handle("ping", func(context.Context, []byte) ([]byte, error) { return []byte("pong"), nil })
		if _, err := a.Call(context.Background(), b.Addr(), "ping", nil); err != nil {
			t.Fatal(err)
		}
		tb := b.Group("g")
		go func() {
			for rpc := range tb.Consumer() {
				rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
			}
		}()
		p, err := a.Group("g").AppendEntriesPipeline("b", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		f, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1, Entries: []*raft.Log{{Index: 1}}}, new(raft.AppendEntriesResponse))
		if err != nil {
			t.Fatal(err)
		}
		<-p.Consumer()
		if f.Error() != nil || !f.Response().Success {
			t.Fatalf("pipeline: %v %+v", f.Error(), f.Response())
		}
		// Left open on purpose: Close must stop it.
		_ = a.Close()
		_ = b.Close()
	}()
	waitFor(t, "goroutines to end", func() bool {
		// The consumer goroutine above blocks forever on an unclosed
		// channel, by design of raft.Transport; allow it.
		return runtime.NumGoroutine() <= before+1
	})
}

// TestPipeline: futures come back in send order, and the sender is not
// blocked by a consumer that stopped reading (raft's pipelineDecode quits at
// the first failure while its sender may still be sending).
func TestPipeline(t *testing.T) {
	a, b := listen(t, Options{MaxRPCsInFlight: 2}), listen(t, Options{})
	tb := b.Group("g")
	go func() {
		for rpc := range tb.Consumer() {
			req := rpc.Command.(*raft.AppendEntriesRequest)
			rpc.Respond(&raft.AppendEntriesResponse{Success: true, LastLog: req.Entries[0].Index}, nil)
		}
	}()
	p, err := a.Group("g").AppendEntriesPipeline("b", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	send := func(i uint64) {
		req := &raft.AppendEntriesRequest{Term: 1, Entries: []*raft.Log{{Index: i, Term: 1, Data: make([]byte, 10<<10)}}}
		if _, err := p.AppendEntries(req, new(raft.AppendEntriesResponse)); err != nil {
			t.Fatal(err)
		}
	}
	for i := uint64(1); i <= 50; i++ {
		send(i)
	}
	for i := uint64(1); i <= 50; i++ {
		f := <-p.Consumer()
		if f.Error() != nil || f.Response().LastLog != i || f.Request().Entries[0].Index != i {
			t.Fatalf("future %d: %v %+v", i, f.Error(), f.Response())
		}
	}
	// Nobody reads Consumer from here on; sends still complete.
	for i := uint64(51); i <= 100; i++ {
		send(i)
	}
}
