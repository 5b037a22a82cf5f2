package broker

// Share-partitions hosted here: for every (share group, partition) whose
// partition this broker leads, a working copy of the share state machine
// (partition/share) that runs ahead of the committed copy by the deltas it
// is replicating. Every change is replicated through the partition's raft
// group (Replica.ProposeShare) before its effect is answered, so records
// are never handed out, acknowledged or dead-lettered on the strength of
// state a new leader would not have.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/broker/controller"
	"github.com/sluicemq/sluice/broker/metrics"
	"github.com/sluicemq/sluice/log/batch"
	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/partition/share"
	"github.com/sluicemq/sluice/protocol/sluiceapi"
)

type shareKey struct {
	group string
	topic controller.TopicID
	p     int32
}

// shareHost is one share-partition led here.
type shareHost struct {
	key   shareKey
	name  string // topic name
	rep   replica
	term  uint64
	delay string // header naming a record's not-before time; "" for none
	dlq   string // dead-letter topic; "" for none

	mu   sync.Mutex
	sp   *share.Partition // nil after a failed replication: rebuilt on next use
	wake chan struct{}    // closed and replaced when records may have become acquirable
	busy bool             // a dead-letter write is under way
	// notes holds the last error a member reported (SluiceShareNote) for
	// records not done yet: at most one per record in the window, each at
	// most sluiceapi.MaxNoteText bytes. Leader memory only: a new leader
	// (a new shareHost) starts without them.
	notes map[int64]string
}

// shareManager owns the share-partitions and share sessions of a broker.
type shareManager struct {
	b *Broker

	mu       sync.Mutex
	hosts    map[shareKey]*shareHost
	sessions map[sessionKey]*shareSession
	// releasing: closed when the release of what a member's ended
	// sessions held is done (api_share.go releaseLocked).
	releasing map[sessionKey]chan struct{}
}

func newShareManager(b *Broker) *shareManager {
	return &shareManager{b: b, hosts: map[shareKey]*shareHost{}, sessions: map[sessionKey]*shareSession{},
		releasing: map[sessionKey]chan struct{}{}}
}

// shareConfig turns a group's configs into the state machine's.
func (m *shareManager) shareConfig(group string) (cfg share.Config, values map[string]string) {
	values, _ = m.b.groupConfigs(group)
	num := func(name string) int64 { n, _ := strconv.ParseInt(values[name], 10, 64); return n }
	factor, _ := strconv.ParseFloat(values["share.retry.backoff.multiplier"], 64)
	cfg = share.Config{
		LockDuration:  time.Duration(num("share.record.lock.duration.ms")) * time.Millisecond,
		DeliveryLimit: int(num("share.delivery.count.limit")),
		MaxInFlight:   int(num("share.partition.max.record.locks")),
		BackoffBase:   time.Duration(num("share.retry.backoff.ms")) * time.Millisecond,
		BackoffFactor: factor,
		BackoffMax:    time.Duration(num("share.retry.backoff.max.ms")) * time.Millisecond,
		KeyOrdering:   values["share.key.ordering"] == "true",
		DeadLetter:    values["share.dead.letter.topic"] != "",
	}
	return cfg, values
}

// host returns the share-partition of group on partition p of t, built
// from the committed state when this broker starts leading it.
func (m *shareManager) host(group string, t *topic, p int32) (*shareHost, error) {
	h, err := m.entry(group, t, p, true)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h, h.load(m)
}

// entry returns the share-partition of group on partition p of t if this
// broker leads p, without building its working copy. Unless create, a
// share-partition not hosted yet (or hosted for an older term) is nil: a
// note, which needs an acquired record, creates nothing.
func (m *shareManager) entry(group string, t *topic, p int32, create bool) (*shareHost, error) {
	rep := t.partition(p)
	if rep == nil || !rep.Ready() {
		return nil, kerr.NotLeaderForPartition
	}
	_, term := rep.Leader()
	k := shareKey{group, t.id, p}
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hosts[k]
	if h == nil || h.term != term || h.rep != rep {
		if !create {
			return nil, nil
		}
		h = &shareHost{key: k, name: t.name, rep: rep, term: term, wake: make(chan struct{})}
		m.hosts[k] = h
	}
	return h, nil
}

// load (h.mu held) builds the working copy when there is none and applies
// the group's current configs.
func (h *shareHost) load(m *shareManager) error {
	cfg, values := m.shareConfig(h.key.group)
	h.delay, h.dlq = values["share.delay.header"], values["share.dead.letter.topic"]
	if h.sp != nil {
		if h.sp.Config() != cfg {
			h.sp.SetConfig(cfg)
		}
		return nil
	}
	p := h.rep.Partition()
	if b := p.ShareState(h.key.group); b != nil {
		sp, err := share.Restore(cfg, b)
		if err != nil {
			return err
		}
		// Acquisitions of the previous leader end here: their owners and
		// locks are not replicated (KIP-932 does the same).
		sp.ReleaseAll(time.Now())
		h.sp = sp
		return nil
	}
	start := p.HighWatermark()
	if values["share.auto.offset.reset"] == "earliest" {
		start = p.LogStartOffset()
	}
	h.sp = share.New(cfg, start)
	return nil
}

// replicate (h.mu held) proposes the changes made since the last call and
// waits for their commit. On failure the working copy is dropped: it may
// hold changes the group will never commit.
func (h *shareHost) replicate() error {
	delta := h.sp.TakeDelta()
	if delta == nil {
		return nil
	}
	if err := h.rep.ProposeShare(h.key.group, h.term, delta); err != nil {
		h.sp = nil
		return err
	}
	return nil
}

// poke (h.mu held) wakes fetches waiting on this share-partition.
func (h *shareHost) poke() {
	close(h.wake)
	h.wake = make(chan struct{})
}

// acquire admits new records from the log and acquires up to max for
// member; it returns the acquired ranges and the batches holding them.
func (h *shareHost) acquire(m *shareManager, member string, max int, now time.Time) ([]share.Range, []byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.load(m); err != nil {
		return nil, nil, err
	}
	p := h.rep.Partition()
	h.sp.Expire(now)
	if ls := p.LogStartOffset(); h.sp.Start() < ls {
		h.sp.SkipTo(ls) // retention or DeleteRecords passed the window
	}
	for h.sp.Room() > 0 && h.sp.NextRead() < p.HighWatermark() {
		from := h.sp.NextRead()
		res, err := p.Fetch(from, 1<<20)
		if err != nil {
			break
		}
		recs, end := admittable(res.Batches, h.delay)
		res.Release()
		if end <= from {
			break
		}
		h.sp.Admit(recs, end)
		if h.sp.NextRead() == from {
			break
		}
	}
	ranges := h.sp.Acquire(member, max, now)
	if err := h.replicate(); err != nil {
		return nil, nil, err
	}
	if len(ranges) == 0 {
		return nil, nil, nil
	}
	records, err := readRange(p, ranges[0].First, ranges[len(ranges)-1].Last)
	if err != nil {
		// Hand nothing out that cannot be read: release at once.
		var back []share.AckBatch
		for _, r := range ranges {
			back = append(back, share.AckBatch{First: r.First, Last: r.Last, Type: share.AckRelease})
		}
		_ = h.sp.Ack(member, back, now)
		_ = h.replicate()
		return nil, nil, err
	}
	return ranges, records, nil
}

// admittable lists the records of batches as the state machine needs them
// (offset, key, not-before from the delay header) and the offset after the
// last batch.
func admittable(batches [][]byte, delayHeader string) ([]share.Record, int64) {
	var out []share.Record
	end := int64(-1)
	for _, b := range batches {
		hd, err := batch.ParseHeader(b)
		if err != nil {
			break
		}
		end = hd.NextOffset()
		if hd.IsControl() {
			continue
		}
		_ = batch.Records(b, batch.Limits{}, func(r batch.Record) error {
			rec := share.Record{Offset: hd.RecordOffset(r), Key: r.Key}
			if delayHeader != "" {
				for _, rh := range r.Headers {
					if rh.Key == delayHeader {
						rec.NotBefore, _ = strconv.ParseInt(string(rh.Value), 10, 64)
					}
				}
			}
			out = append(out, rec)
			return nil
		})
	}
	return out, end
}

// readRange copies the batches holding offsets first through last.
func readRange(p *partition.Partition, first, last int64) ([]byte, error) {
	var out []byte
	for off := first; off <= last; {
		res, err := p.Fetch(off, 1<<20)
		if err != nil {
			return nil, err
		}
		if len(res.Batches) == 0 {
			res.Release()
			return nil, kerr.OffsetOutOfRange
		}
		for _, b := range res.Batches {
			out = append(out, b...)
			if hd, err := batch.ParseHeader(b); err == nil {
				off = hd.NextOffset()
			}
		}
		res.Release()
	}
	return out, nil
}

// ack applies acknowledgements of member and replicates them.
func (h *shareHost) ack(m *shareManager, member string, batches []share.AckBatch, now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.load(m); err != nil {
		return err
	}
	if err := h.sp.Ack(member, batches, now); err != nil {
		return err
	}
	if err := h.replicate(); err != nil {
		return err
	}
	h.pruneNotes()
	h.poke()
	return nil
}

// note keeps the texts of notes whose records member (nil: any member)
// holds at the note's delivery count, the latest per record. It returns
// share.ErrInvalidRecordState when some note was refused (the others are
// kept): the record is not acquired (released, expired, done, not read
// yet), by that member, at that delivery.
func (h *shareHost) note(member *string, notes []sluiceapi.ShareNote) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sp == nil {
		return share.ErrInvalidRecordState // nothing is acquired until it is rebuilt
	}
	var refused error
	for _, n := range notes {
		st, ok := h.sp.Status(n.Offset)
		if !ok || st.State != share.Acquired || st.DeliveryCount != n.DeliveryCount || member != nil && st.Owner != *member {
			refused = fmt.Errorf("%w: offset %d delivery %d", share.ErrInvalidRecordState, n.Offset, n.DeliveryCount)
			continue
		}
		if h.notes == nil {
			h.notes = make(map[int64]string)
		}
		h.notes[n.Offset] = n.Text
	}
	return refused
}

// pruneNotes (h.mu held) drops the notes of records that are done or no
// longer in the window: acknowledged, archived without a dead letter,
// dead-lettered, or skipped.
func (h *shareHost) pruneNotes() {
	if len(h.notes) == 0 || h.sp == nil {
		return
	}
	for off := range h.notes {
		if st, ok := h.sp.Status(off); !ok || st.Done() {
			delete(h.notes, off)
		}
	}
}

// release gives back everything member holds here (its session ended).
func (h *shareHost) release(member string, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sp == nil {
		return
	}
	h.sp.ReleaseMember(member, now)
	if h.replicate() == nil {
		h.poke()
	}
}

// tick expires locks, wakes waiters when records come due, and writes
// dead letters. The manager calls it every second.
func (h *shareHost) tick(m *shareManager, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sp == nil || !h.rep.Ready() {
		return
	}
	h.sp.Expire(now)
	if h.replicate() != nil {
		return
	}
	h.pruneNotes()
	if d, ok := h.sp.NextDeadline(); ok && !d.After(now) {
		h.poke()
	}
	if letters := h.sp.DeadLetters(); len(letters) > 0 && h.dlq != "" && !h.busy {
		h.busy = true
		dlq := h.dlq
		var errs map[int64]string // the letters' last notes
		for _, dl := range letters {
			if text := h.notes[dl.Offset]; text != "" {
				if errs == nil {
					errs = make(map[int64]string)
				}
				errs[dl.Offset] = text
			}
		}
		m.b.bgWG.Add(1)
		go func() {
			defer m.b.bgWG.Done()
			h.deadLetter(m, dlq, letters, errs)
		}()
	}
}

// deadLetterErrorHeader carries a dead letter's last note (the error the
// member reported with SluiceShareNote before it gave the record back).
const deadLetterErrorHeader = "sluice.dlq.error"

// deadLetter writes records to the dead-letter topic with headers naming
// where they came from and why (errs: the last error reported for an
// offset, if any), then records that they were written. A crash in
// between writes them again (at least once).
func (h *shareHost) deadLetter(m *shareManager, dlq string, letters []share.DeadLetter, errs map[int64]string) {
	defer func() {
		h.mu.Lock()
		h.busy = false
		h.mu.Unlock()
	}()
	cl, err := m.b.lag.client()
	if err != nil {
		return
	}
	if m.b.reg.get(dlq) == nil {
		rf := min(3, len(m.b.ctrl.State().Brokers))
		if _, err := m.b.reg.create(dlq, 1, int16(max(rf, 1)), nil, nil, false); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			m.b.lg.Warn().Err(err).Str("dead_letter_topic", dlq).Msg("cannot create the dead-letter topic; retrying")
			return
		}
	}
	var recs []*kgo.Record
	var done []int64
	now := time.Now()
	for _, dl := range letters {
		src, err := readRecord(h.rep, dl.Offset)
		if err != nil {
			m.b.lg.Warn().Err(err).Str("group", h.key.group).Str("topic", h.name).Int32("partition", h.key.p).
				Int64("offset", dl.Offset).Msg("dead letter: source record unreadable")
			if errors.Is(err, kerr.OffsetOutOfRange) {
				done = append(done, dl.Offset) // retention took it: nothing to write
			}
			continue
		}
		r := &kgo.Record{Topic: dlq, Key: src.Key, Value: src.Value, Timestamp: now}
		for _, rh := range src.Headers {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: rh.Key, Value: rh.Value})
		}
		r.Headers = append(r.Headers,
			kgo.RecordHeader{Key: "sluice.dlq.topic", Value: []byte(h.name)},
			kgo.RecordHeader{Key: "sluice.dlq.partition", Value: []byte(strconv.Itoa(int(h.key.p)))},
			kgo.RecordHeader{Key: "sluice.dlq.offset", Value: []byte(strconv.FormatInt(dl.Offset, 10))},
			kgo.RecordHeader{Key: "sluice.dlq.delivery.count", Value: []byte(strconv.Itoa(int(dl.DeliveryCount)))},
			kgo.RecordHeader{Key: "sluice.dlq.group", Value: []byte(h.key.group)},
			kgo.RecordHeader{Key: "sluice.dlq.reason", Value: []byte(dl.Reason)},
			kgo.RecordHeader{Key: "sluice.dlq.timestamp", Value: []byte(strconv.FormatInt(src.Timestamp, 10))},
		)
		if text := errs[dl.Offset]; text != "" {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: deadLetterErrorHeader, Value: []byte(text)})
		}
		recs = append(recs, r)
		done = append(done, dl.Offset)
	}
	if len(recs) > 0 {
		ctx, cancel := context.WithTimeout(m.b.stopCtx, 30*time.Second)
		err := cl.ProduceSync(ctx, recs...).FirstErr()
		cancel()
		if err != nil {
			m.b.lg.Warn().Err(err).Str("group", h.key.group).Str("dead_letter_topic", dlq).Msg("dead letters not written; retrying")
			return
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sp == nil {
		return
	}
	h.sp.DeadLettered(done...)
	if h.replicate() == nil {
		h.pruneNotes()
		h.poke()
	}
}

// sourceRecord is one record read back from the log.
type sourceRecord struct {
	Key, Value []byte
	Headers    []batch.RecordHeader
	Timestamp  int64
}

// readRecord reads the record at offset from the local replica.
func readRecord(rep replica, offset int64) (sourceRecord, error) {
	res, err := rep.Partition().Fetch(offset, 1)
	if err != nil {
		return sourceRecord{}, err
	}
	defer res.Release()
	var out sourceRecord
	found := false
	for _, b := range res.Batches {
		hd, err := batch.ParseHeader(b)
		if err != nil {
			return sourceRecord{}, err
		}
		err = batch.Records(b, batch.Limits{}, func(r batch.Record) error {
			if !found && hd.RecordOffset(r) == offset {
				found = true
				out = sourceRecord{Key: bytes.Clone(r.Key), Value: bytes.Clone(r.Value), Timestamp: hd.RecordTimestamp(r)}
				for _, rh := range r.Headers {
					out.Headers = append(out.Headers, batch.RecordHeader{Key: rh.Key, Value: bytes.Clone(rh.Value)})
				}
			}
			return nil
		})
		if err != nil {
			return sourceRecord{}, err
		}
	}
	if !found {
		return sourceRecord{}, kerr.OffsetOutOfRange
	}
	return out, nil
}

// loop ticks every share-partition and forgets those no longer led here.
func (m *shareManager) loop() {
	defer m.b.bgWG.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.b.closing:
			return
		case <-t.C:
		}
		now := time.Now()
		m.mu.Lock()
		hosts := make([]*shareHost, 0, len(m.hosts))
		for k, h := range m.hosts {
			if !h.rep.Ready() {
				delete(m.hosts, k)
				continue
			}
			hosts = append(hosts, h)
		}
		m.mu.Unlock()
		stats := make([]metrics.ShareStat, 0, len(hosts))
		for _, h := range hosts {
			h.tick(m, now)
			if st, ok := h.stat(now); ok {
				stats = append(stats, st)
			}
		}
		m.b.metrics.SetShareStats(stats)
	}
}

// stat reports the share-partition for /metrics: records by state, a full
// window, pending dead letters and the time lag (the age of the oldest
// record not acknowledged).
func (h *shareHost) stat(now time.Time) (metrics.ShareStat, bool) {
	h.mu.Lock()
	if h.sp == nil {
		h.mu.Unlock()
		return metrics.ShareStat{}, false
	}
	st := h.sp.Stats()
	out := metrics.ShareStat{Group: h.key.group, Topic: h.name, Partition: h.key.p,
		Available: st.Available, Acquired: st.Acquired, Delayed: st.Delayed, DeadLetters: st.DeadLetters, Full: h.sp.Full()}
	oldest, ok := h.sp.OldestUnacked()
	if !ok && h.sp.NextRead() < h.rep.Partition().HighWatermark() {
		oldest, ok = h.sp.NextRead(), true // not even read yet
	}
	h.mu.Unlock()
	if ok {
		if ts, err := localTimestamp(h.rep, oldest); err == nil && ts > 0 {
			out.LagSeconds = max(0, now.Sub(time.UnixMilli(ts)).Seconds())
		}
	}
	return out, true
}
