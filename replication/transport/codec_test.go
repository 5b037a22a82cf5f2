package transport

//lint:file-ignore SA1019 raft still fills and reads the deprecated Leader and Candidate fields, so the wire carries them.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func testHeader() raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("node-1"), Addr: []byte("10.0.0.1:7000")}
}

// frameBytes encodes one frame and returns it as a single byte slice.
func frameBytes(t testing.TB, typ byte, id uint64, name string, body func(*encoder)) []byte {
	t.Helper()
	e := newFrame(typ, id, name, 64)
	body(e)
	bufs, err := e.finish(MaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, b := range bufs {
		out = append(out, b...)
	}
	return out
}

// roundTrip encodes with enc inside a frame, reads the frame back and decodes
// its body with dec.
func roundTrip(t *testing.T, typ byte, enc func(*encoder), dec func([]byte) error) {
	t.Helper()
	raw := frameBytes(t, typ, 42, "group/7", enc)
	f, err := readFrame(bufio.NewReader(bytes.NewReader(raw)), MaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	if f.typ != typ || f.id != 42 || string(f.name) != "group/7" {
		t.Fatalf("frame header: %#x %d %q", f.typ, f.id, f.name)
	}
	if err := dec(f.body); err != nil {
		t.Fatal(err)
	}
}

func TestCodecAppendEntries(t *testing.T) {
	large := bytes.Repeat([]byte("0123456789abcdef"), 1<<16+3) // 1 MiB + 48 bytes: referenced, not copied
	now := time.Now()
	in := &raft.AppendEntriesRequest{
		RPCHeader: testHeader(), Term: 9, Leader: []byte("10.0.0.1:7000"),
		PrevLogEntry: 1000, PrevLogTerm: 8, LeaderCommitIndex: 999,
		Entries: []*raft.Log{
			{Index: 1001, Term: 9, Type: raft.LogCommand, Data: nil},
			{Index: 1002, Term: 9, Type: raft.LogCommand, Data: []byte{}},
			{Index: 1003, Term: 9, Type: raft.LogNoop, Data: []byte("x"), Extensions: []byte("ext"), AppendedAt: now},
			{Index: 1004, Term: 9, Type: raft.LogCommand, Data: large, AppendedAt: now.Add(time.Second)},
			{Index: 1005, Term: 9, Type: raft.LogConfiguration, Data: bytes.Repeat([]byte{7}, refMin)},
		},
	}
	var out raft.AppendEntriesRequest
	roundTrip(t, msgAppendEntries, func(e *encoder) { encodeAppendEntriesRequest(e, in) },
		func(b []byte) error { return decodeAppendEntriesRequest(b, &out) })
	if len(out.Entries) != len(in.Entries) {
		t.Fatalf("%d entries, want %d", len(out.Entries), len(in.Entries))
	}
	for i, l := range in.Entries {
		o := out.Entries[i]
		if !l.AppendedAt.Equal(o.AppendedAt) || l.AppendedAt.IsZero() != o.AppendedAt.IsZero() {
			t.Fatalf("entry %d time %v, want %v", i, o.AppendedAt, l.AppendedAt)
		}
		o.AppendedAt = l.AppendedAt
		if !reflect.DeepEqual(l, o) {
			t.Fatalf("entry %d: %+v, want %+v", i, o, l)
		}
	}
	if out.Entries[0].Data != nil || out.Entries[1].Data == nil {
		t.Fatal("nil and empty Data not preserved")
	}
	outNoEntries := out
	outNoEntries.Entries, in.Entries = nil, nil
	if !reflect.DeepEqual(in, &outNoEntries) {
		t.Fatalf("got %+v, want %+v", outNoEntries, in)
	}

	// A heartbeat-shaped request (no entries).
	hb := &raft.AppendEntriesRequest{RPCHeader: testHeader(), Term: 3, Leader: []byte("a")}
	var hbOut raft.AppendEntriesRequest
	roundTrip(t, msgAppendEntries, func(e *encoder) { encodeAppendEntriesRequest(e, hb) },
		func(b []byte) error { return decodeAppendEntriesRequest(b, &hbOut) })
	if !reflect.DeepEqual(hb, &hbOut) || !isHeartbeat(&hbOut) {
		t.Fatalf("heartbeat: %+v", hbOut)
	}

	for _, r := range []raft.AppendEntriesResponse{
		{RPCHeader: testHeader(), Term: 9, LastLog: 1005, Success: true},
		{Term: 1 << 62, LastLog: 0, NoRetryBackoff: true},
		{},
	} {
		var o raft.AppendEntriesResponse
		roundTrip(t, msgAppendEntries|respBit, func(e *encoder) { encodeAppendEntriesResponse(e, &r) },
			func(b []byte) error { return decodeAppendEntriesResponse(b, &o) })
		if !reflect.DeepEqual(r, o) {
			t.Fatalf("got %+v, want %+v", o, r)
		}
	}
}

// TestCodecNoCopy checks that large Data is referenced by the sender's frame,
// and aliased into the receiver's frame buffer rather than copied again.
func TestCodecNoCopy(t *testing.T) {
	data := bytes.Repeat([]byte{1}, 64<<10)
	req := &raft.AppendEntriesRequest{Term: 1, Entries: []*raft.Log{{Index: 1, Term: 1, Data: data}}}
	e := newFrame(msgAppendEntries, 1, "g", 64)
	encodeAppendEntriesRequest(e, req)
	bufs, err := e.finish(MaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, b := range bufs {
		if len(b) == len(data) && &b[0] == &data[0] {
			found = true
		}
	}
	if !found {
		t.Fatal("entry data copied into the frame")
	}
	var out raft.AppendEntriesRequest
	raw := frameBytes(t, msgAppendEntries, 1, "g", func(e *encoder) { encodeAppendEntriesRequest(e, req) })
	f, err := parseFrame(raw[4:])
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeAppendEntriesRequest(f.body, &out); err != nil {
		t.Fatal(err)
	}
	d := out.Entries[0].Data
	if &d[0] != &raw[len(raw)-len(d)-2] { // followed by nil Extensions and the time flag
		t.Fatal("decoded data does not alias the frame buffer")
	}
}

func TestCodecVotes(t *testing.T) {
	rv := raft.RequestVoteRequest{RPCHeader: testHeader(), Term: 5, Candidate: []byte("c"), LastLogIndex: 77, LastLogTerm: 4, LeadershipTransfer: true}
	var rvo raft.RequestVoteRequest
	roundTrip(t, msgRequestVote, func(e *encoder) { encodeRequestVoteRequest(e, &rv) },
		func(b []byte) error { return decodeRequestVoteRequest(b, &rvo) })
	if !reflect.DeepEqual(rv, rvo) {
		t.Fatalf("got %+v, want %+v", rvo, rv)
	}
	rvr := raft.RequestVoteResponse{RPCHeader: testHeader(), Term: 5, Peers: []byte("peers"), Granted: true}
	var rvro raft.RequestVoteResponse
	roundTrip(t, msgRequestVote|respBit, func(e *encoder) { encodeRequestVoteResponse(e, &rvr) },
		func(b []byte) error { return decodeRequestVoteResponse(b, &rvro) })
	if !reflect.DeepEqual(rvr, rvro) {
		t.Fatalf("got %+v, want %+v", rvro, rvr)
	}
	pv := raft.RequestPreVoteRequest{RPCHeader: testHeader(), Term: 6, LastLogIndex: 1, LastLogTerm: 1}
	var pvo raft.RequestPreVoteRequest
	roundTrip(t, msgRequestPreVote, func(e *encoder) { encodeRequestPreVoteRequest(e, &pv) },
		func(b []byte) error { return decodeRequestPreVoteRequest(b, &pvo) })
	if !reflect.DeepEqual(pv, pvo) {
		t.Fatalf("got %+v, want %+v", pvo, pv)
	}
	pvr := raft.RequestPreVoteResponse{RPCHeader: testHeader(), Term: 6, Granted: true}
	var pvro raft.RequestPreVoteResponse
	roundTrip(t, msgRequestPreVote|respBit, func(e *encoder) { encodeRequestPreVoteResponse(e, &pvr) },
		func(b []byte) error { return decodeRequestPreVoteResponse(b, &pvro) })
	if !reflect.DeepEqual(pvr, pvro) {
		t.Fatalf("got %+v, want %+v", pvro, pvr)
	}
}

func TestCodecTimeoutNowAndSnapshot(t *testing.T) {
	tn := raft.TimeoutNowRequest{RPCHeader: testHeader()}
	var tno raft.TimeoutNowRequest
	roundTrip(t, msgTimeoutNow, func(e *encoder) { encodeTimeoutNowRequest(e, &tn) },
		func(b []byte) error { return decodeTimeoutNowRequest(b, &tno) })
	if !reflect.DeepEqual(tn, tno) {
		t.Fatalf("got %+v, want %+v", tno, tn)
	}
	tnr := raft.TimeoutNowResponse{RPCHeader: testHeader()}
	var tnro raft.TimeoutNowResponse
	roundTrip(t, msgTimeoutNow|respBit, func(e *encoder) { encodeTimeoutNowResponse(e, &tnr) },
		func(b []byte) error { return decodeTimeoutNowResponse(b, &tnro) })
	if !reflect.DeepEqual(tnr, tnro) {
		t.Fatalf("got %+v, want %+v", tnro, tnr)
	}
	is := raft.InstallSnapshotRequest{
		RPCHeader: testHeader(), SnapshotVersion: raft.SnapshotVersionMax, Term: 3, Leader: []byte("l"),
		LastLogIndex: 500, LastLogTerm: 3, Peers: []byte("p"), Configuration: bytes.Repeat([]byte("cfg"), 1000),
		ConfigurationIndex: 12, Size: 1 << 40,
	}
	var iso raft.InstallSnapshotRequest
	roundTrip(t, msgInstallSnapshot, func(e *encoder) { encodeInstallSnapshotRequest(e, &is) },
		func(b []byte) error { return decodeInstallSnapshotRequest(b, &iso) })
	if !reflect.DeepEqual(is, iso) {
		t.Fatalf("got %+v, want %+v", iso, is)
	}
	isr := raft.InstallSnapshotResponse{RPCHeader: testHeader(), Term: 3, Success: true}
	var isro raft.InstallSnapshotResponse
	roundTrip(t, msgInstallSnapshot|respBit, func(e *encoder) { encodeInstallSnapshotResponse(e, &isr) },
		func(b []byte) error { return decodeInstallSnapshotResponse(b, &isro) })
	if !reflect.DeepEqual(isr, isro) {
		t.Fatalf("got %+v, want %+v", isro, isr)
	}
}

func TestCodecResponseEnvelope(t *testing.T) {
	cases := []struct {
		status  byte
		text    string
		hasErr  bool
		payload []byte
		want    error
	}{
		{statusOK, "", false, []byte("hello"), nil},
		{statusOK, "", false, []byte{}, nil},
		{statusOK, "raft said no", true, []byte("p"), &RemoteError{}},
		{statusRemoteError, "handler: boom", true, nil, &RemoteError{}},
		{statusUnknownGroup, "g", true, nil, ErrUnknownGroup},
		{statusUnknownMethod, "m", true, nil, ErrUnknownMethod},
		{statusBusy, "b", true, nil, ErrBusy},
		{statusShutdown, "s", true, nil, ErrRemoteClosed},
	}
	for _, c := range cases {
		var payload func(*encoder)
		if c.payload != nil {
			payload = func(e *encoder) { e.tail(c.payload) }
		}
		raw := frameBytes(t, msgCall|respBit, 1, "", func(e *encoder) { encodeResponse(e, c.status, c.text, c.hasErr, payload) })
		f, err := parseFrame(raw[4:])
		if err != nil {
			t.Fatal(err)
		}
		r, err := decodeResponse(f.body)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.payload, c.payload) || (r.payload == nil) != (c.payload == nil) {
			t.Fatalf("payload %q, want %q", r.payload, c.payload)
		}
		err = r.error()
		switch want := c.want.(type) {
		case nil:
			if err != nil {
				t.Fatalf("status %d: %v", c.status, err)
			}
		case *RemoteError:
			var re *RemoteError
			if !errors.As(err, &re) || re.Error() != c.text {
				t.Fatalf("status %d: %v, want remote error %q", c.status, err, c.text)
			}
		default:
			if !errors.Is(err, want) {
				t.Fatalf("status %d: %v, want %v", c.status, err, want)
			}
		}
	}
}

func TestReadFrameLimits(t *testing.T) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], MaxFrame+1)
	if _, err := readFrame(bufio.NewReader(bytes.NewReader(b[:])), MaxFrame); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized length: %v", err)
	}
	binary.BigEndian.PutUint32(b[:], 3)
	if _, err := readFrame(bufio.NewReader(bytes.NewReader(b[:])), MaxFrame); !errors.Is(err, ErrMalformed) {
		t.Fatalf("undersized length: %v", err)
	}
	// A frame claiming 60 MiB that ends early fails without a full read.
	binary.BigEndian.PutUint32(b[:], 60<<20)
	in := append(b[:], make([]byte, 100)...)
	if _, err := readFrame(bufio.NewReader(bytes.NewReader(in)), MaxFrame); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
	// The sender refuses what the receiver would refuse.
	e := newFrame(msgCall, 1, "m", 0)
	e.tail(make([]byte, 2<<20))
	if _, err := e.finish(1 << 20); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("sender cap: %v", err)
	}
	// Entry counts are bounded by the bytes present.
	var req raft.AppendEntriesRequest
	body := frameBytes(t, msgAppendEntries, 1, "g", func(e *encoder) {
		encodeAppendEntriesRequest(e, &raft.AppendEntriesRequest{})
	})
	body = append(body[:len(body)-1], 0xff, 0xff, 0xff, 0xff, 0x0f) // count 2^32-1
	f, err := parseFrame(body[4:])
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeAppendEntriesRequest(f.body, &req); !errors.Is(err, ErrMalformed) {
		t.Fatalf("huge entry count: %v", err)
	}
}

func TestPreamble(t *testing.T) {
	kind, from, err := readPreamble(bytes.NewReader(preamble(connBulk, "10.0.0.2:9000")))
	if err != nil || kind != connBulk || from != "10.0.0.2:9000" {
		t.Fatalf("%d %q %v", kind, from, err)
	}
	for _, bad := range [][]byte{
		[]byte("GET / HTTP/1.1\r\n"),
		{'S', 'L', 'R', 'T', 9, 1, 0, 0},
		{'S', 'L', 'R', 'T', 1, 7, 0, 0},
		{'S', 'L', 'R', 'T', 1, 1, 0xff, 0xff},
	} {
		if _, _, err := readPreamble(bytes.NewReader(bad)); !errors.Is(err, ErrBadPreamble) {
			t.Fatalf("%q: %v", bad, err)
		}
	}
}

// FuzzDecode feeds arbitrary bytes to the frame reader and every body
// decoder: nothing may panic, and nothing may allocate by a claimed length
// beyond the bytes present (the entry count, byte strings) or the frame cap.
func FuzzDecode(f *testing.F) {
	f.Add(frameBytes(f, msgAppendEntries, 1, "g", func(e *encoder) {
		encodeAppendEntriesRequest(e, &raft.AppendEntriesRequest{RPCHeader: testHeader(), Term: 2, Leader: []byte("l"),
			Entries: []*raft.Log{{Index: 1, Term: 2, Data: []byte("data")}, {Index: 2, Term: 2, AppendedAt: time.Unix(1, 2)}}})
	}))
	f.Add(frameBytes(f, msgRequestVote, 2, "g", func(e *encoder) {
		encodeRequestVoteRequest(e, &raft.RequestVoteRequest{RPCHeader: testHeader(), Term: 3})
	}))
	f.Add(frameBytes(f, msgAppendEntries|respBit, 3, "", func(e *encoder) {
		encodeResponse(e, statusOK, "", false, func(e *encoder) {
			encodeAppendEntriesResponse(e, &raft.AppendEntriesResponse{Term: 3, Success: true})
		})
	}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		if _, _, err := readPreamble(bytes.NewReader(data)); err == nil {
			_, _, _ = readPreamble(br) // frames follow a connection's preamble
		}
		for {
			fr, err := readFrame(br, MaxFrame)
			if err != nil {
				return
			}
			if len(fr.body) > len(data) {
				t.Fatalf("body of %d bytes from %d input bytes", len(fr.body), len(data))
			}
			typ := fr.typ &^ respBit
			if fr.typ&respBit == 0 {
				if typ == msgCall {
					d := decoder{b: fr.body}
					d.uvarint()
					continue
				}
				_, _ = decodeRequest(typ, fr.body)
				continue
			}
			r, err := decodeResponse(fr.body)
			if err != nil {
				continue
			}
			_ = r.error()
			b := r.payload
			_ = decodeAppendEntriesResponse(b, new(raft.AppendEntriesResponse))
			_ = decodeRequestVoteResponse(b, new(raft.RequestVoteResponse))
			_ = decodeRequestPreVoteResponse(b, new(raft.RequestPreVoteResponse))
			_ = decodeTimeoutNowResponse(b, new(raft.TimeoutNowResponse))
			_ = decodeInstallSnapshotResponse(b, new(raft.InstallSnapshotResponse))
		}
	})
}

// A peer claiming more entries than raft ever sends in one AppendEntries
// is refused before the entries are allocated; the limit itself decodes.
func TestAppendEntriesCountLimit(t *testing.T) {
	decode := func(n int) (int, error) {
		req := &raft.AppendEntriesRequest{Entries: make([]*raft.Log, n)}
		for i := range req.Entries {
			req.Entries[i] = &raft.Log{Index: uint64(i + 1), Term: 1}
		}
		raw := frameBytes(t, msgAppendEntries, 1, "g", func(e *encoder) { encodeAppendEntriesRequest(e, req) })
		f, err := parseFrame(raw[4:])
		if err != nil {
			t.Fatal(err)
		}
		var out raft.AppendEntriesRequest
		err = decodeAppendEntriesRequest(f.body, &out)
		return len(out.Entries), err
	}
	if n, err := decode(maxEntriesPerAppend + 1); !errors.Is(err, ErrMalformed) {
		t.Fatalf("%d entries decoded (%v); want ErrMalformed above %d", n, err, maxEntriesPerAppend)
	}
	if n, err := decode(maxEntriesPerAppend); err != nil || n != maxEntriesPerAppend {
		t.Fatalf("at the limit: %d entries, %v", n, err)
	}
}
