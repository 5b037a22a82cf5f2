package broker

// Consumer lag: how far a group's committed offsets trail the partitions'
// high watermarks, in records and in time (the age of the first record
// the group has not consumed). Each broker measures the groups it
// coordinates every lag_interval for /metrics, so a scrape of every broker
// counts each group once; GET /v1/groups/{group} measures on demand.
//
// A partition hosted here is read locally (any replica's high watermark is
// committed data; a follower's trails the leader's by at most a commit
// timeout). Others are asked over the internal client, a franz-go client
// against this broker's own Kafka listener: ListOffsets for the bounds, and
// a one-partition Fetch to the leader for the record's timestamp.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metrics"
	"github.com/sluicemq/sluice/log/batch"
)

// lagReads bounds the reads spent finding one record's timestamp: each
// read returns at least one batch, so more are needed only where
// compaction left batches without the offset asked for.
const lagReads = 8

var errLagClosed = errors.New("broker: shutting down")

// lagMonitor owns the internal client the lag loop and the group admin
// routes share. The client is created on first use, so a broker whose
// partitions are all local never opens one, and closed when the lag loop
// stops.
type lagMonitor struct {
	b *Broker

	mu     sync.Mutex
	cl     *kgo.Client
	closed bool
}

func newLagMonitor(b *Broker) *lagMonitor { return &lagMonitor{b: b} }

// client returns the internal client, creating it on first use.
func (m *lagMonitor) client() (*kgo.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errLagClosed
	}
	if m.cl != nil {
		return m.cl, nil
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(selfAddr(m.b.ln.Addr())),
		kgo.ClientID(fmt.Sprintf("sluice-broker-%d", m.b.cfg.NodeID)),
		kgo.DialTimeout(5*time.Second),
		kgo.RetryTimeout(10*time.Second),
	)
	if err != nil {
		return nil, err
	}
	m.cl = cl
	return cl, nil
}

func (m *lagMonitor) admin() (*kadm.Client, error) {
	cl, err := m.client()
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// close closes the client; later calls to client fail.
func (m *lagMonitor) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	if m.cl != nil {
		m.cl.Close()
		m.cl = nil
	}
}

// selfAddr is an address that reaches this broker's Kafka listener from
// this host, even when it listens on all interfaces.
func selfAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if ip != nil && ip.To4() == nil {
			host = "::1"
		} else {
			host = "127.0.0.1"
		}
	}
	return net.JoinHostPort(host, port)
}

// startLagLoop starts the loop that publishes the lag metrics.
func (b *Broker) startLagLoop() {
	b.bgWG.Add(1)
	go b.lagLoop()
}

// lagLoop measures the coordinated groups every lag_interval and
// publishes them as metrics; it owns the internal client's end.
func (b *Broker) lagLoop() {
	defer b.bgWG.Done()
	defer b.lag.close()
	defer b.metrics.SetGroupStats(nil)
	t := time.NewTicker(b.cfg.LagInterval)
	defer t.Stop()
	for {
		select {
		case <-b.closing:
			return
		case <-t.C:
			// A slow remote broker delays the next refresh, never stacks them.
			ctx, cancel := context.WithTimeout(b.stopCtx, max(b.cfg.LagInterval, 10*time.Second))
			b.metrics.SetGroupStats(b.groupStats(ctx))
			cancel()
		}
	}
}

// groupStats measures the groups this broker coordinates. Partitions
// whose lag cannot be measured are left out (and logged at debug).
func (b *Broker) groupStats(ctx context.Context) []metrics.GroupStat {
	infos := b.groups.Coordinated()
	r := newLagReader(ctx, b, time.Now())
	var all []topicPartition
	for _, g := range infos {
		for _, o := range g.Offsets {
			all = append(all, topicPartition{o.Topic, o.Partition})
		}
	}
	r.prefetch(all)
	out := make([]metrics.GroupStat, 0, len(infos))
	for _, g := range infos {
		gs := metrics.GroupStat{Group: g.Group, State: g.State, Members: g.Members}
		for _, o := range g.Offsets {
			if o.Offset < 0 {
				continue // nothing committed
			}
			pl := r.lag(o.Topic, o.Partition, o.Offset)
			if pl.Error != "" {
				b.lg.Debug().Str("group", g.Group).Str("topic", o.Topic).Int32("partition", o.Partition).
					Str("error", pl.Error).Msg("consumer lag not measured")
				continue
			}
			gs.Partitions = append(gs.Partitions, metrics.GroupPartitionStat{
				Topic: o.Topic, Partition: o.Partition, LagRecords: pl.LagRecords, LagSeconds: pl.LagSeconds,
			})
		}
		out = append(out, gs)
	}
	return out
}

type topicPartition struct {
	topic     string
	partition int32
}

// partitionLag is a group's lag on one partition.
type partitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"`
	LogStart  int64  `json:"log_start"`
	// HighWatermark is the end of the committed data.
	HighWatermark int64 `json:"high_watermark"`
	// LagRecords counts from the committed offset, or from the log start
	// when retention has removed the committed offset's record.
	LagRecords int64 `json:"lag_records"`
	// LagSeconds is the age of the record at that position, 0 when caught
	// up (or when the record carries no timestamp).
	LagSeconds float64 `json:"lag_seconds"`
	// Error says why the lag could not be measured.
	Error string `json:"error,omitempty"`
}

type logBounds struct {
	start, hw int64
	err       error
}

type recordAt struct {
	tp     topicPartition
	offset int64
}

// lagReader measures lag at one instant, caching bounds and timestamps
// so groups sharing partitions cost one read each.
type lagReader struct {
	ctx    context.Context
	b      *Broker
	now    time.Time
	bounds map[topicPartition]logBounds
	stamps map[recordAt]int64
}

func newLagReader(ctx context.Context, b *Broker, now time.Time) *lagReader {
	return &lagReader{ctx: ctx, b: b, now: now, bounds: map[topicPartition]logBounds{}, stamps: map[recordAt]int64{}}
}

// prefetch lists the bounds of the partitions not hosted here, with one
// ListOffsets round per bound for all of them.
func (r *lagReader) prefetch(tps []topicPartition) {
	var topics []string
	seen := map[string]bool{}
	for _, tp := range tps {
		t := r.b.reg.get(tp.topic)
		// Known, unknown (deleted topics) or hosted here: nothing to ask.
		if _, ok := r.bounds[tp]; ok || seen[tp.topic] || !t.has(tp.partition) || t.partition(tp.partition) != nil {
			continue
		}
		seen[tp.topic] = true
		topics = append(topics, tp.topic)
	}
	if len(topics) == 0 {
		return
	}
	fail := func(err error) {
		for _, tp := range tps {
			if seen[tp.topic] {
				r.bounds[tp] = logBounds{err: err}
			}
		}
	}
	adm, err := r.b.lag.admin()
	if err != nil {
		fail(err)
		return
	}
	// Partial answers are used; listErr says why the rest is missing.
	starts, listErr := adm.ListStartOffsets(r.ctx, topics...)
	if listErr != nil && len(starts) == 0 {
		fail(listErr)
		return
	}
	ends, err := adm.ListEndOffsets(r.ctx, topics...)
	if err != nil && len(ends) == 0 {
		fail(err)
		return
	}
	if err != nil {
		listErr = err
	}
	for _, tp := range tps {
		if !seen[tp.topic] || r.b.reg.get(tp.topic).partition(tp.partition) != nil {
			continue
		}
		s, ok1 := starts.Lookup(tp.topic, tp.partition)
		e, ok2 := ends.Lookup(tp.topic, tp.partition)
		switch {
		case (!ok1 || !ok2) && listErr != nil:
			r.bounds[tp] = logBounds{err: listErr}
		case !ok1 || !ok2:
			r.bounds[tp] = logBounds{err: fmt.Errorf("partition %s/%d: offsets not listed", tp.topic, tp.partition)}
		case s.Err != nil:
			r.bounds[tp] = logBounds{err: s.Err}
		case e.Err != nil:
			r.bounds[tp] = logBounds{err: e.Err}
		default:
			r.bounds[tp] = logBounds{start: s.Offset, hw: e.Offset}
		}
	}
}

// boundsOf is the partition's log start and high watermark.
func (r *lagReader) boundsOf(tp topicPartition) logBounds {
	if rep := r.b.reg.get(tp.topic).partition(tp.partition); rep != nil {
		p := rep.Partition()
		return logBounds{start: p.LogStartOffset(), hw: p.HighWatermark()}
	}
	if bd, ok := r.bounds[tp]; ok {
		return bd
	}
	r.prefetch([]topicPartition{tp})
	return r.bounds[tp]
}

// lag measures one committed offset (>= 0).
func (r *lagReader) lag(topic string, p int32, committed int64) partitionLag {
	pl := partitionLag{Topic: topic, Partition: p, Committed: committed}
	tp := topicPartition{topic, p}
	t := r.b.reg.get(topic)
	if !t.has(p) {
		pl.Error = "unknown topic or partition"
		return pl
	}
	bd := r.boundsOf(tp)
	if bd.err != nil {
		pl.Error = bd.err.Error()
		return pl
	}
	pl.LogStart, pl.HighWatermark = bd.start, bd.hw
	pos := max(committed, bd.start)
	if pos >= bd.hw {
		return pl // caught up (or committed past the end)
	}
	pl.LagRecords = bd.hw - pos
	ts, ok := r.stamps[recordAt{tp, pos}]
	if !ok {
		var err error
		if rep := t.partition(p); rep != nil {
			ts, err = localTimestamp(rep, pos)
		} else {
			ts, err = r.remoteTimestamp(t, p, pos, bd.hw)
		}
		if err != nil {
			pl.Error = fmt.Sprintf("reading the record at offset %d: %v", pos, err)
			return pl
		}
		r.stamps[recordAt{tp, pos}] = ts
	}
	if ts >= 0 {
		pl.LagSeconds = max(0, r.now.Sub(time.UnixMilli(ts)).Seconds())
	}
	return pl
}

// localTimestamp is the timestamp of the first record at or after pos in
// a replica hosted here, -1 when there is none below the high watermark.
func localTimestamp(rep replica, pos int64) (int64, error) {
	p := rep.Partition()
	for range lagReads {
		pos = max(pos, p.LogStartOffset()) // retention may run meanwhile
		if pos >= p.HighWatermark() {
			return -1, nil
		}
		res, err := p.Fetch(pos, 1)
		if errors.Is(err, kerr.OffsetOutOfRange) {
			continue
		}
		if err != nil {
			return -1, err
		}
		ts, next, found, err := firstTimestamp(res.Batches, pos)
		res.Release()
		if err != nil || found {
			return ts, err
		}
		if next <= pos {
			return -1, nil
		}
		pos = next
	}
	return -1, nil
}

// remoteTimestamp is localTimestamp for a partition hosted elsewhere: a
// Fetch to its leader for one batch (KIP-74 returns at least one).
func (r *lagReader) remoteTimestamp(t *topic, p int32, pos, hw int64) (int64, error) {
	leader, _ := leaderOf(t, int(p))
	if leader < 0 {
		return -1, errors.New("no leader known")
	}
	cl, err := r.b.lag.client()
	if err != nil {
		return -1, err
	}
	for range lagReads {
		if pos >= hw {
			return -1, nil
		}
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 0, 0, 1<<20
		req.SessionEpoch = -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = t.name, t.id // v13+ names topics by id
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, pos, 1
		rp.CurrentLeaderEpoch, rp.LogStartOffset = -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		kresp, err := cl.Broker(int(leader)).Request(r.ctx, req)
		if err != nil {
			return -1, err
		}
		resp := kresp.(*kmsg.FetchResponse)
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return -1, err
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return -1, errors.New("malformed fetch response")
		}
		sp := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(sp.ErrorCode); err != nil {
			return -1, err
		}
		var batches [][]byte
		for data := sp.RecordBatches; len(data) >= batch.HeaderSize; {
			h, err := batch.ParseHeader(data)
			if err != nil {
				return -1, err
			}
			if h.Size() > len(data) {
				break // a partial batch at the end
			}
			batches = append(batches, data[:h.Size()])
			data = data[h.Size():]
		}
		ts, next, found, err := firstTimestamp(batches, pos)
		if err != nil || found {
			return ts, err
		}
		if next <= pos {
			return -1, nil
		}
		pos = next
	}
	return -1, nil
}

var errFound = errors.New("found")

// firstTimestamp finds the first data record at or after pos in whole
// batches; when none is there, next is where to read on.
func firstTimestamp(batches [][]byte, pos int64) (ts, next int64, found bool, err error) {
	next = pos
	for _, b := range batches {
		h, err := batch.ParseHeader(b)
		if err != nil {
			return -1, next, false, err
		}
		next = max(next, h.NextOffset())
		if h.LastOffset() < pos || h.IsControl() {
			continue
		}
		err = batch.Records(b, batch.DefaultLimits, func(rec batch.Record) error {
			if h.RecordOffset(rec) >= pos {
				ts = h.RecordTimestamp(rec)
				return errFound
			}
			return nil
		})
		switch {
		case errors.Is(err, errFound):
			return ts, next, true, nil
		case err != nil:
			return -1, next, false, err
		}
	}
	return -1, next, false, nil
}
