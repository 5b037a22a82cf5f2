package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The share workload: members of a share group (KIP-932) consume the
// workload's topic alongside the consumer group, accepting every record.
// Each poll is a share-poll operation listing the records with their
// delivery counts; the acknowledgement of each partition's records of a
// poll is one share-ack operation: ok when the broker answered success,
// unknown otherwise. No refusal is certain: franz-go retries a
// ShareAcknowledge whose first attempt may have been applied, and the
// retry then reports INVALID_RECORD_STATE or SHARE_SESSION_NOT_FOUND.
// After healing, the drain asks the brokers for the group's lag on every
// partition (DescribeShareGroupOffsets): 0 when every record is
// acknowledged (or archived), which settles the unknown outcomes.

// shareLimit is the group's delivery limit: faults release records, and a
// record archived by the limit would look acknowledged.
const shareLimit = 100

// shareWorkload runs the share group's members.
type shareWorkload struct {
	w    *Workload
	stop chan struct{}
	wg   sync.WaitGroup

	Delivered, Accepted atomic.Int64
}

func newShareWorkload(w *Workload) *shareWorkload {
	return &shareWorkload{w: w, stop: make(chan struct{})}
}

// configure makes the group start at the log start, lock records for
// cfg.ShareLock, and never archive a record for its delivery count.
func (s *shareWorkload) configure(ctx context.Context) error {
	cl, err := kgo.NewClient(s.w.clientOpts("share-admin")...)
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeGroupConfig, s.w.cfg.ShareGroup
	for _, kv := range [][2]string{
		{"share.auto.offset.reset", "earliest"},
		{"share.record.lock.duration.ms", strconv.FormatInt(s.w.cfg.ShareLock.Milliseconds(), 10)},
		{"share.delivery.count.limit", strconv.Itoa(shareLimit)},
	} {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Op, c.Name, c.Value = kmsg.IncrementalAlterConfigOpSet, kv[0], kmsg.StringPtr(kv[1])
		rr.Configs = append(rr.Configs, c)
	}
	req.Resources = append(req.Resources, rr)
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		resp, err := req.RequestWith(cctx, cl)
		if err == nil && len(resp.Resources) == 1 {
			err = kerr.ErrorForCode(resp.Resources[0].ErrorCode)
		}
		if err == nil {
			return nil
		}
		if cctx.Err() != nil {
			return fmt.Errorf("share group %s configs: %w", s.w.cfg.ShareGroup, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// start configures the group and starts its members.
func (s *shareWorkload) start(ctx context.Context) error {
	if err := s.configure(ctx); err != nil {
		return err
	}
	for i := range s.w.cfg.ShareConsumers {
		m := &shareMember{s: s, proc: fmt.Sprintf("share-%d", i)}
		cl, err := kgo.NewClient(append(s.w.clientOpts(m.proc),
			kgo.ShareGroup(s.w.cfg.ShareGroup),
			kgo.ConsumeTopics(s.w.cfg.Topic),
			kgo.ShareMaxRecords(200),
			kgo.ShareAckCallback(m.acked),
			kgo.FetchMaxWait(500*time.Millisecond),
		)...)
		if err != nil {
			return err
		}
		m.cl = cl
		s.wg.Add(1)
		go m.run(ctx)
	}
	return nil
}

// shareMember is one member of the share group: one client, one goroutine.
type shareMember struct {
	s    *shareWorkload
	proc string
	cl   *kgo.Client

	mu      sync.Mutex
	results kgo.ShareAckResults
}

func (m *shareMember) acked(_ *kgo.Client, res kgo.ShareAckResults) {
	m.mu.Lock()
	m.results = append(m.results, res...)
	m.mu.Unlock()
}

func (m *shareMember) take() kgo.ShareAckResults {
	m.mu.Lock()
	defer m.mu.Unlock()
	res := m.results
	m.results = nil
	return res
}

// ackOutcome judges partition p's acknowledgements from the answers of
// one flush: ok when every answer about p is a success, unknown
// otherwise (an error, or no answer).
func ackOutcome(res kgo.ShareAckResults, p int32) (string, error) {
	typ := ""
	var first error
	for _, r := range res {
		if r.Partition != p {
			continue
		}
		if r.Err != nil {
			typ = Unknown
			if first == nil {
				first = r.Err
			}
		} else if typ == "" {
			typ = OK
		}
	}
	if typ == "" {
		return Unknown, errors.New("no acknowledgement result for the partition")
	}
	return typ, first
}

// run polls, writes the deliveries to the history, accepts them and
// flushes, and writes each partition's acknowledgement outcome. A flush
// returns once every acknowledgement queued has been answered and the
// callback has run, so the answers collected are this poll's; they are
// per partition, and the broker applies a partition's acknowledgements
// all or none.
func (m *shareMember) run(ctx context.Context) {
	s := m.s
	h := s.w.h
	defer s.wg.Done()
	defer m.cl.Close() // leaves: releases what is buffered unpolled
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		op := h.Invoke(Op{Process: m.proc, F: FSharePoll})
		fs := m.cl.PollRecords(pctx, 500)
		cancel()
		records := fs.Records()
		recs := make([]ShareRec, 0, len(records))
		for _, r := range records {
			recs = append(recs, ShareRec{P: r.Partition, O: r.Offset, V: shortValue(r.Value), N: r.DeliveryCount()})
		}
		op.Shares = recs
		h.Complete(op, OK, nil)
		if len(recs) == 0 {
			if fs.IsClientClosed() || ctx.Err() != nil {
				return
			}
			continue
		}
		s.Delivered.Add(int64(len(recs)))
		byPart := map[int32][]ShareRec{}
		for _, r := range recs {
			byPart[r.P] = append(byPart[r.P], r)
		}
		parts := make([]int32, 0, len(byPart))
		for p := range byPart {
			parts = append(parts, p)
		}
		slices.Sort(parts)
		ops := map[int32]Op{}
		for _, p := range parts {
			ops[p] = h.Invoke(Op{Process: m.proc, F: FShareAck, P: p, Shares: byPart[p]})
		}
		m.cl.MarkAcks(kgo.AckAccept, records...)
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := m.cl.FlushAcks(fctx)
		cancel()
		res := m.take()
		if err != nil {
			// Unanswered: unknown. Wait for the answers still to come
			// (franz-go gives up on requests in time) so that they are
			// not taken for the next poll's.
			for _, p := range parts {
				h.Complete(ops[p], Unknown, err)
			}
			wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			_ = m.cl.FlushAcks(wctx)
			cancel()
			m.take()
			continue
		}
		for _, p := range parts {
			t, err := ackOutcome(res, p)
			if t == OK {
				s.Accepted.Add(int64(len(byPart[p])))
			}
			h.Complete(ops[p], t, err)
		}
	}
}

// lags asks the group's coordinator for the group's lag on every
// partition of hws (DescribeShareGroupOffsets, KIP-1226's lag: records up
// to the high watermark not acknowledged or archived). A partition the
// group has no state on, or whose leader did not answer, is missing.
func (s *shareWorkload) lags(ctx context.Context, cl *kgo.Client, hws map[int32]int64) map[int32]int64 {
	req := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
	rg := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
	rg.GroupID = s.w.cfg.ShareGroup
	rt := kmsg.NewDescribeShareGroupOffsetsRequestGroupTopic()
	rt.Topic = s.w.cfg.Topic
	for p := range hws {
		rt.Partitions = append(rt.Partitions, p)
	}
	slices.Sort(rt.Partitions)
	rg.Topics = append(rg.Topics, rt)
	req.Groups = append(req.Groups, rg)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out := map[int32]int64{}
	resp, err := req.RequestWith(cctx, cl)
	if err != nil || len(resp.Groups) != 1 || resp.Groups[0].ErrorCode != 0 {
		return out
	}
	for _, t := range resp.Groups[0].Topics {
		for _, p := range t.Partitions {
			switch {
			case p.ErrorCode != 0 || p.StartOffset < 0:
			case p.Lag >= 0:
				out[p.Partition] = p.Lag
			default: // no lag in the answer (version 0): the start offset says
				out[p.Partition] = max(hws[p.Partition]-p.StartOffset, 0)
			}
		}
	}
	return out
}

// drain lets the members go on until the brokers report no lag on any
// partition of hws (the healed cluster's end offsets), or timeout, then
// stops them (each finishes its poll and writes its acknowledgements'
// outcomes, then leaves the group) and writes a share-drain operation
// with the last lags read. It returns an error when a lag remains.
func (s *shareWorkload) drain(ctx context.Context, timeout time.Duration, hws map[int32]int64) error {
	cl, err := kgo.NewClient(s.w.clientOpts("share-observer")...)
	if err != nil {
		s.stopAll()
		return err
	}
	defer cl.Close()
	deadline := time.Now().Add(timeout)
	var lags map[int32]int64
	done := false
	for {
		lags = s.lags(ctx, cl, hws)
		done = len(lags) == len(hws)
		for _, l := range lags {
			done = done && l == 0
		}
		if done || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		sleep(ctx, 500*time.Millisecond)
	}
	s.stopAll()
	var behind int64
	for p := range hws {
		if l, ok := lags[p]; ok {
			behind += l
		} else {
			behind += hws[p]
		}
	}
	op := Op{Process: "share-drain", Type: Info, F: FShareDrain, Offsets: lags, Value: "complete"}
	if !done {
		op.Value = fmt.Sprintf("deadline: lag %d", behind)
	}
	s.w.h.Add(op)
	if !done {
		return fmt.Errorf("the share group still has %d records not acknowledged after %v (lags %v, end offsets %v)", behind, timeout, lags, hws)
	}
	return nil
}

// stopAll stops the members; each leaves the group.
func (s *shareWorkload) stopAll() {
	close(s.stop)
	s.wg.Wait()
}
