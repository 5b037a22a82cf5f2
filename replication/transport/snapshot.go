package transport

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

const (
	// snapChunk is the sender's copy buffer: the only snapshot memory the
	// transport holds on either side (the receiver reads through the
	// connection's 16 KiB bufio.Reader into raft's own copy buffer).
	snapChunk = 64 << 10
	// snapRestoreRate is the slowest FSM restore the sender waits for: after
	// the last byte, the answer may take RPCTimeout plus one second per
	// this many bytes of snapshot (the receiver closes its sink and
	// restores before answering). A dead peer is still noticed sooner, by
	// TCP keepalive.
	snapRestoreRate = 1 << 20
	// maxSnapResponse caps the response frame on a snapshot connection.
	maxSnapResponse = 1 << 20
)

// sendSnapshot runs InstallSnapshot on a connection of its own to target's
// listener: preamble, the request frame, then exactly args.Size bytes copied
// from data in snapChunk pieces, then one response frame. Every write and
// read must progress within RPCTimeout, so a snapshot of any size is only
// failed by a stall, never by its length.
func (t *Transport) sendSnapshot(target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	if t.isClosed() {
		return ErrClosed
	}
	m := t.m
	if drop, err := m.applyFault(target); err != nil {
		return err
	} else if drop {
		return fmt.Errorf("%w: snapshot to %s", ErrDropped, target)
	}
	e := newFrame(msgInstallSnapshot, 1, t.id, 128+len(args.Configuration)+len(args.Peers))
	encodeInstallSnapshotRequest(e, args)
	bufs, err := e.finish(maxSnapshotHeader)
	if err != nil {
		return err
	}
	nc, err := m.dial(context.Background(), target, connSnapshot)
	if err != nil {
		return err
	}
	if !m.trackSnap(nc) {
		_ = nc.Close()
		return ErrClosed
	}
	defer m.untrackSnap(nc)

	timeout := m.opts.RPCTimeout
	_ = nc.SetWriteDeadline(time.Now().Add(timeout))
	nb := net.Buffers(bufs)
	if _, err := nb.WriteTo(nc); err != nil {
		return fmt.Errorf("%w: snapshot to %s: %v", ErrConnLost, target, err)
	}
	buf := make([]byte, snapChunk)
	var sent int64
	for sent < args.Size {
		n, rerr := data.Read(buf[:min(int64(len(buf)), args.Size-sent)])
		if n > 0 {
			_ = nc.SetWriteDeadline(time.Now().Add(timeout))
			if _, err := nc.Write(buf[:n]); err != nil {
				return fmt.Errorf("%w: snapshot to %s after %d bytes: %v", ErrConnLost, target, sent, err)
			}
			sent += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("transport: reading snapshot for %s: %w", target, rerr)
		}
	}
	if sent < args.Size {
		return fmt.Errorf("%w: %d of %d bytes", ErrSnapshotSize, sent, args.Size)
	}
	wait := timeout + time.Duration(args.Size/snapRestoreRate)*time.Second
	_ = nc.SetReadDeadline(time.Now().Add(wait))
	f, err := readFrame(bufio.NewReaderSize(nc, 4096), maxSnapResponse)
	if err != nil {
		return fmt.Errorf("%w: snapshot response from %s: %v", ErrConnLost, target, err)
	}
	if f.typ != msgInstallSnapshot|respBit {
		return fmt.Errorf("%w: snapshot response type %#x", ErrMalformed, f.typ)
	}
	r, err := decodeResponse(f.body)
	if err != nil {
		return err
	}
	return raftResult(r, func(b []byte) error { return decodeInstallSnapshotResponse(b, resp) })
}

// snapReader is the rpc.Reader raft copies the snapshot from: the rest of
// the connection, limited to the request's size, each read bounded by
// RPCTimeout.
type snapReader struct {
	nc      net.Conn
	r       io.Reader
	timeout time.Duration
}

func (s *snapReader) Read(p []byte) (int, error) {
	_ = s.nc.SetReadDeadline(time.Now().Add(s.timeout))
	return s.r.Read(p)
}

// receiveSnapshot serves one inbound snapshot connection: the request frame,
// then raft reads the data straight from the socket while it fills its
// snapshot sink; its answer goes back and the connection closes.
func (m *Mux) receiveSnapshot(nc net.Conn, br *bufio.Reader, from raft.ServerAddress) {
	timeout := m.opts.RPCTimeout
	_ = nc.SetReadDeadline(time.Now().Add(timeout))
	f, err := readFrame(br, maxSnapshotHeader)
	if err == nil && f.typ != msgInstallSnapshot {
		err = fmt.Errorf("%w: message type %#x on a snapshot connection", ErrMalformed, f.typ)
	}
	if err != nil {
		m.log.Warn().Err(err).Str("peer", string(from)).Msg("transport bad snapshot request")
		return
	}
	reply := func(status byte, text string, hasErr bool, payload func(*encoder)) {
		if drop, err := m.applyFault(from); drop || err != nil {
			return
		}
		e := newFrame(msgInstallSnapshot|respBit, f.id, "", 64)
		encodeResponse(e, status, text, hasErr, payload)
		bufs, err := e.finish(maxSnapResponse)
		if err != nil {
			return
		}
		_ = nc.SetWriteDeadline(time.Now().Add(timeout))
		nb := net.Buffers(bufs)
		_, _ = nb.WriteTo(nc)
	}
	t := m.group(f.name)
	if t == nil {
		reply(statusUnknownGroup, fmt.Sprintf("group %q not found on %s", f.name, m.addr), true, nil)
		return
	}
	req := new(raft.InstallSnapshotRequest)
	if err := decodeInstallSnapshotRequest(f.body, req); err != nil {
		m.log.Warn().Err(err).Str("peer", string(from)).Str("group", t.id).Msg("transport bad snapshot request")
		reply(statusMalformed, err.Error(), true, nil)
		return
	}
	m.log.Info().Str("peer", string(from)).Str("group", t.id).Int64("size", req.Size).
		Uint64("last_index", req.LastLogIndex).Msg("transport receiving snapshot")
	respCh := make(chan raft.RPCResponse, 1)
	rpc := raft.RPC{
		Command:  req,
		Reader:   &snapReader{nc: nc, r: io.LimitReader(br, req.Size), timeout: timeout},
		RespChan: respCh,
	}
	select {
	case t.consumeCh <- rpc:
	case <-t.shutdown:
		reply(statusShutdown, "group "+t.id+" closed", true, nil)
		return
	case <-m.closing:
		return
	}
	select {
	case r := <-respCh:
		text, hasErr := "", r.Error != nil
		if hasErr {
			text = r.Error.Error()
		}
		reply(statusOK, text, hasErr, encodeRaftResponse(r.Response))
	case <-t.shutdown:
		reply(statusShutdown, "group "+t.id+" closed", true, nil)
	case <-m.closing:
	}
}
