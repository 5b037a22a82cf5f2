package broker

// ShareFetch and ShareAcknowledge (KIP-932) and their share sessions.
//
// A share session belongs to one (group, member) on this broker: epoch 0
// opens it (releasing what an older session of the same member held),
// every answered request moves its epoch by one, -1 closes it. A request
// names only partitions new to the session; the fetch covers all of them.
// Records a session's member holds are released when the session closes,
// is replaced, or its connection closes.

import (
	"errors"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/controller"
	"github.com/sluicemq/sluice/broker/group"
	"github.com/sluicemq/sluice/partition/share"
)

// maxShareSessions bounds sessions per broker (Kafka's
// group.share.max.share.sessions).
const maxShareSessions = 2000

type sessionKey struct{ group, member string }

type sharePart struct {
	topic controller.TopicID
	p     int32
}

type shareSession struct {
	next  int32 // the epoch the next request must carry
	parts map[sharePart]struct{}
	conn  *conn
}

func bumpEpoch(e int32) int32 {
	if e == math.MaxInt32 {
		return 1
	}
	return e + 1
}

// ackBatches converts a partition's acknowledgement batches, refusing
// malformed ones (the state machine checks order and overlap). RENEW is
// allowed only in a renew acknowledgement (ShareAcknowledge v2,
// IsRenewAck).
func ackBatches(in []kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch, renew bool) ([]share.AckBatch, error) {
	var out []share.AckBatch
	for _, b := range in {
		n := b.LastOffset - b.FirstOffset + 1
		switch {
		case b.FirstOffset < 0 || n <= 0:
			return nil, kerr.InvalidRequest
		case len(b.AcknowledgeTypes) == 1:
			out = append(out, share.AckBatch{First: b.FirstOffset, Last: b.LastOffset, Type: share.AckType(b.AcknowledgeTypes[0])})
		case int64(len(b.AcknowledgeTypes)) == n:
			for i, t := range b.AcknowledgeTypes {
				off := b.FirstOffset + int64(i)
				if k := len(out) - 1; k >= 0 && out[k].Type == share.AckType(t) && out[k].Last == off-1 {
					out[k].Last = off
					continue
				}
				out = append(out, share.AckBatch{First: off, Last: off, Type: share.AckType(t)})
			}
		default:
			return nil, kerr.InvalidRequest
		}
	}
	for _, b := range out {
		if b.Type < share.AckGap || b.Type > share.AckRenew || (b.Type == share.AckRenew && !renew) {
			return nil, kerr.InvalidRequest
		}
	}
	return out, nil
}

// ackCode maps an acknowledgement error to its Kafka code.
func ackCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, share.ErrInvalidRecordState):
		return kerr.InvalidRecordState.Code
	case errors.Is(err, share.ErrInvalidRequest):
		return kerr.InvalidRequest.Code
	}
	return code(err)
}

// session validates a request's session epoch and returns the session
// (nil with an error code when refused). Epoch 0 replaces any session.
func (m *shareManager) session(c *conn, k sessionKey, epoch int32) (*shareSession, int16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sessions[k]
	switch {
	case epoch == 0:
		if s == nil && len(m.sessions) >= maxShareSessions {
			return nil, kerr.ShareSessionLimitReached.Code
		}
		if s != nil {
			m.releaseLocked(k, s)
		}
		s = &shareSession{next: 0, parts: map[sharePart]struct{}{}, conn: c}
		m.sessions[k] = s
	case s == nil:
		return nil, kerr.ShareSessionNotFound.Code
	case epoch != -1 && epoch != s.next:
		return nil, kerr.InvalidShareSessionEpoch.Code
	}
	return s, 0
}

// releaseLocked (m.mu held) releases what a session's member holds on the
// session's partitions, in the background. A release goes by member, so
// a new session of the member must not acquire before it is done, or it
// would release that session's records too: released(k) says when.
func (m *shareManager) releaseLocked(k sessionKey, s *shareSession) {
	var hosts []*shareHost
	for sp := range s.parts {
		if h := m.hosts[shareKey{k.group, sp.topic, sp.p}]; h != nil {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return
	}
	prev, done := m.releasing[k], make(chan struct{})
	m.releasing[k] = done
	m.b.bgWG.Add(1)
	go func() {
		defer m.b.bgWG.Done()
		if prev != nil {
			<-prev
		}
		now := time.Now()
		for _, h := range hosts {
			h.release(k.member, now)
		}
		m.mu.Lock()
		if m.releasing[k] == done {
			delete(m.releasing, k)
		}
		m.mu.Unlock()
		close(done)
	}()
}

// released returns a channel closed when the releases of k's ended
// sessions are done; nil when none is under way.
func (m *shareManager) released(k sessionKey) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.releasing[k]
}

// connClosed ends the sessions a connection opened.
func (m *shareManager) connClosed(c *conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, s := range m.sessions {
		if s.conn == c {
			m.releaseLocked(k, s)
			delete(m.sessions, k)
		}
	}
}

// endSession closes a session (epoch -1).
func (m *shareManager) endSession(k sessionKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.sessions[k]; s != nil {
		m.releaseLocked(k, s)
		delete(m.sessions, k)
	}
}

func (m *shareManager) advance(k sessionKey, s *shareSession, epoch int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions[k] == s {
		s.next = bumpEpoch(epoch)
	}
}

// shareLeaderHint names a partition's leader for clients to move to.
func (b *Broker) shareLeaderHint(t *topic, p int32) (leader, epoch int32) {
	if t == nil || !t.has(p) {
		return -1, -1
	}
	return leaderOf(t, int(p))
}

func (b *Broker) shareFetch(c *conn, r *kmsg.ShareFetchRequest) responder {
	resp := r.ResponseKind().(*kmsg.ShareFetchResponse)
	fail := func(code int16) responder { resp.ErrorCode = code; return now(resp) }
	groupID, member := derefStr(r.GroupID), derefStr(r.MemberID)
	if groupID == "" || len(groupID) > group.MaxGroupIDLen || member == "" || len(member) > 36 {
		return fail(kerr.InvalidRequest.Code)
	}
	hasAcks := false
	for _, t := range r.Topics {
		for _, p := range t.Partitions {
			hasAcks = hasAcks || len(p.AcknowledgementBatches) > 0
		}
	}
	if (r.ShareSessionEpoch == 0 && hasAcks) || r.IsRenewAck {
		return fail(kerr.InvalidRequest.Code) // renewals come in ShareAcknowledge
	}
	if r.ShareSessionEpoch == -1 && (len(r.Topics) > 0 && !hasAcks || len(r.ForgottenTopicsData) > 0) {
		return fail(kerr.InvalidRequest.Code)
	}
	m := b.share
	k := sessionKey{groupID, member}
	sess, ec := m.session(c, k, r.ShareSessionEpoch)
	if ec != 0 {
		return fail(ec)
	}
	var released <-chan struct{}
	if r.ShareSessionEpoch == 0 {
		released = m.released(k) // the session replaced, or one its connection closed
	}
	cfg, _ := m.shareConfig(groupID)
	resp.AcquisitionLockTimeoutMillis = int32(cfg.LockDuration.Milliseconds())
	return func() kmsg.Response {
		if released != nil {
			select {
			case <-released:
			case <-b.closing:
			}
		}
		now := time.Now()
		out := map[sharePart]*kmsg.ShareFetchResponseTopicPartition{}
		entry := func(sp sharePart) *kmsg.ShareFetchResponseTopicPartition {
			if e := out[sp]; e != nil {
				return e
			}
			e := kmsg.NewShareFetchResponseTopicPartition()
			e.Partition, e.CurrentLeader.LeaderID, e.CurrentLeader.LeaderEpoch = sp.p, -1, -1
			out[sp] = &e
			return &e
		}
		// Add, then acknowledge, then forget: a partition carrying only
		// acks is listed in both.
		for _, rt := range r.Topics {
			t := b.reg.getByID(rt.TopicID)
			for _, rp := range rt.Partitions {
				sp := sharePart{rt.TopicID, rp.Partition}
				m.mu.Lock()
				sess.parts[sp] = struct{}{}
				m.mu.Unlock()
				if len(rp.AcknowledgementBatches) == 0 {
					continue
				}
				e := entry(sp)
				e.AcknowledgeErrorCode = b.shareAck(t, rp.Partition, k, rp.AcknowledgementBatches, false, now)
			}
		}
		m.mu.Lock()
		for _, f := range r.ForgottenTopicsData {
			for _, p := range f.Partitions {
				delete(sess.parts, sharePart{f.TopicID, p})
			}
		}
		targets := make([]sharePart, 0, len(sess.parts))
		for sp := range sess.parts {
			targets = append(targets, sp)
		}
		m.mu.Unlock()
		if r.ShareSessionEpoch == -1 {
			m.endSession(k)
			return b.shareFetchResponse(resp, out)
		}
		maxRecords := int(r.MaxRecords)
		if maxRecords <= 0 {
			maxRecords = 500
		}
		wait := min(time.Duration(r.MaxWaitMillis)*time.Millisecond, b.cfg.FetchMaxWaitMax)
		deadline := now.Add(wait)
		for {
			got, waits := b.shareAcquire(targets, k, maxRecords, entry)
			left := time.Until(deadline)
			if got || left <= 0 || len(waits) == 0 {
				break
			}
			// Locks expire and delays end on the share tick: look again
			// at least every second.
			if !b.waitAny(min(left, time.Second), waits) && stopping(b.closing) {
				break
			}
		}
		m.advance(k, sess, r.ShareSessionEpoch)
		return b.shareFetchResponse(resp, out)
	}
}

// shareAcquire acquires records for the session's partitions; it reports
// whether any were acquired, and the channels to wait on when none were.
func (b *Broker) shareAcquire(targets []sharePart, k sessionKey, maxRecords int, entry func(sharePart) *kmsg.ShareFetchResponseTopicPartition) (bool, []<-chan struct{}) {
	m := b.share
	var waits []<-chan struct{}
	got := false
	now := time.Now()
	for _, sp := range targets {
		if maxRecords <= 0 {
			break
		}
		t := b.reg.getByID(sp.topic)
		if t == nil || !t.has(sp.p) {
			entry(sp).ErrorCode = kerr.UnknownTopicOrPartition.Code
			if t == nil {
				entry(sp).ErrorCode = kerr.UnknownTopicID.Code
			}
			continue
		}
		h, err := m.host(k.group, t, sp.p)
		if err != nil {
			e := entry(sp)
			e.ErrorCode = code(err)
			if errors.Is(err, kerr.NotLeaderForPartition) {
				e.CurrentLeader.LeaderID, e.CurrentLeader.LeaderEpoch = b.shareLeaderHint(t, sp.p)
			}
			continue
		}
		ranges, records, err := h.acquire(m, k.member, maxRecords, now)
		if err != nil {
			entry(sp).ErrorCode = code(err)
			continue
		}
		if len(ranges) == 0 {
			h.mu.Lock()
			waits = append(waits, h.wake)
			h.mu.Unlock()
			waits = append(waits, h.rep.Partition().Changed())
			continue
		}
		got = true
		e := entry(sp)
		e.Records = records
		for _, r := range ranges {
			ar := kmsg.NewShareFetchResponseTopicPartitionAcquiredRecord()
			ar.FirstOffset, ar.LastOffset, ar.DeliveryCount = r.First, r.Last, r.DeliveryCount
			e.AcquiredRecords = append(e.AcquiredRecords, ar)
			maxRecords -= int(r.Last - r.First + 1)
		}
	}
	return got, waits
}

// shareAck applies acknowledgements to one partition.
func (b *Broker) shareAck(t *topic, p int32, k sessionKey, in []kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch, renew bool, now time.Time) int16 {
	batches, err := ackBatches(in, renew)
	if err != nil {
		return kerr.InvalidRequest.Code
	}
	if t == nil {
		return kerr.UnknownTopicID.Code
	}
	if !t.has(p) {
		return kerr.UnknownTopicOrPartition.Code
	}
	h, err := b.share.host(k.group, t, p)
	if err != nil {
		return code(err)
	}
	return ackCode(h.ack(b.share, k.member, batches, now))
}

func (b *Broker) shareFetchResponse(resp *kmsg.ShareFetchResponse, out map[sharePart]*kmsg.ShareFetchResponseTopicPartition) kmsg.Response {
	byTopic := map[controller.TopicID]int{}
	leaders := map[int32]bool{}
	for sp, e := range out {
		i, ok := byTopic[sp.topic]
		if !ok {
			i = len(resp.Topics)
			byTopic[sp.topic] = i
			rt := kmsg.NewShareFetchResponseTopic()
			rt.TopicID = sp.topic
			resp.Topics = append(resp.Topics, rt)
		}
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, *e)
		if e.CurrentLeader.LeaderID >= 0 {
			leaders[e.CurrentLeader.LeaderID] = true
		}
	}
	for _, br := range b.brokers() {
		if leaders[br.NodeID] {
			ne := kmsg.NewShareFetchResponseNodeEndpoint()
			ne.NodeID, ne.Host, ne.Port = br.NodeID, br.Host, br.Port
			resp.NodeEndpoints = append(resp.NodeEndpoints, ne)
		}
	}
	return resp
}

func (b *Broker) shareAcknowledge(c *conn, r *kmsg.ShareAcknowledgeRequest) responder {
	resp := r.ResponseKind().(*kmsg.ShareAcknowledgeResponse)
	fail := func(code int16) responder { resp.ErrorCode = code; return now(resp) }
	groupID, member := derefStr(r.GroupID), derefStr(r.MemberID)
	switch {
	case groupID == "" || len(groupID) > group.MaxGroupIDLen || member == "" || len(member) > 36:
		return fail(kerr.InvalidRequest.Code)
	case r.ShareSessionEpoch == 0:
		return fail(kerr.InvalidShareSessionEpoch.Code)
	}
	m := b.share
	k := sessionKey{groupID, member}
	sess, ec := m.session(c, k, r.ShareSessionEpoch)
	if ec != 0 {
		return fail(ec)
	}
	cfg, _ := m.shareConfig(groupID)
	resp.AcquisitionLockTimeoutMillis = int32(cfg.LockDuration.Milliseconds()) // v2: after a renewal
	return func() kmsg.Response {
		now := time.Now()
		for _, rt := range r.Topics {
			t := b.reg.getByID(rt.TopicID)
			ot := kmsg.NewShareAcknowledgeResponseTopic()
			ot.TopicID = rt.TopicID
			for _, rp := range rt.Partitions {
				op := kmsg.NewShareAcknowledgeResponseTopicPartition()
				op.Partition, op.CurrentLeader.LeaderID, op.CurrentLeader.LeaderEpoch = rp.Partition, -1, -1
				in := make([]kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch, len(rp.AcknowledgementBatches))
				for i, ab := range rp.AcknowledgementBatches {
					in[i] = kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch{FirstOffset: ab.FirstOffset, LastOffset: ab.LastOffset, AcknowledgeTypes: ab.AcknowledgeTypes}
				}
				op.ErrorCode = b.shareAck(t, rp.Partition, k, in, r.IsRenewAck, now)
				if op.ErrorCode == kerr.NotLeaderForPartition.Code {
					op.CurrentLeader.LeaderID, op.CurrentLeader.LeaderEpoch = b.shareLeaderHint(t, rp.Partition)
				}
				ot.Partitions = append(ot.Partitions, op)
			}
			resp.Topics = append(resp.Topics, ot)
		}
		if r.ShareSessionEpoch == -1 {
			m.endSession(k)
		} else {
			m.advance(k, sess, r.ShareSessionEpoch)
		}
		return resp
	}
}

func derefStr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
