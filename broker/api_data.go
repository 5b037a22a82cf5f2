package broker

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/protocol"
)

// commandProducer is a replica that takes a batch behind a spare byte
// without copying it (replication.Replica.ProduceCommand).
type commandProducer interface {
	ProduceCommand(cmd []byte, acks int16) func() (partition.ProduceResult, error)
}

// produce validates and proposes every partition's batch now, in request
// order, and waits in the responder: acks=-1 until a majority of the
// partition's replicas has fsynced it (raft commit), acks=1 until the
// leader has, acks=0 not at all (no response; the connection is closed if
// any partition was refused). A partition not led here answers
// NOT_LEADER_OR_FOLLOWER, so clients refresh metadata and retry.
//
// frame is the buffer r was decoded from, which belongs to this request
// alone (nil: none). Each partition's records lie in it right after their
// decoded length prefix, so the replica takes them from there, using the
// byte before as its command tag, instead of copying every batch
// (protocol.SpareByteBefore). The frame then lives as long as raft and the
// LogStore's tail cache keep its batches.
func (b *Broker) produce(r *kmsg.ProduceRequest, frame []byte) responder {
	resp := r.ResponseKind().(*kmsg.ProduceResponse)
	type wait struct {
		ti, pi int
		fn     func() (partition.ProduceResult, error)
	}
	var waits []wait
	var refuse error
	switch {
	case r.Acks != 0 && r.Acks != 1 && r.Acks != -1:
		refuse = kerr.InvalidRequiredAcks
	case r.TransactionID != nil:
		refuse = kerr.TransactionalIDAuthorizationFailed
	}
	for ti, rt := range r.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		t := b.reg.get(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			p := t.partition(rp.Partition)
			switch {
			case refuse != nil:
				sp.ErrorCode = code(refuse)
			case isInternal(rt.Topic) && t != nil:
				sp.ErrorCode = kerr.InvalidTopicException.Code // only the coordinator writes it
			case p == nil:
				sp.ErrorCode = t.partitionError(rp.Partition).Code
			case r.Version < 7 && isZstd(rp.Records):
				// KIP-110: zstd needs Produce v7+, as Kafka enforces.
				sp.ErrorCode = kerr.UnsupportedCompressionType.Code
			default:
				b.metrics.AddBytesIn(rt.Topic, len(rp.Records))
				fn := (func() (partition.ProduceResult, error))(nil)
				if cp, ok := p.(commandProducer); ok {
					if cmd, ok := protocol.SpareByteBefore(frame, rp.Records); ok {
						fn = cp.ProduceCommand(cmd, r.Acks)
					}
				}
				if fn == nil {
					fn = p.Produce(rp.Records, r.Acks)
				}
				waits = append(waits, wait{ti, len(st.Partitions), fn})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return func() kmsg.Response {
		for _, w := range waits {
			res, err := w.fn()
			sp := &resp.Topics[w.ti].Partitions[w.pi]
			sp.ErrorCode = code(err)
			if err == nil {
				sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = res.BaseOffset, res.LogAppendTime, res.LogStartOffset
			}
		}
		if r.Acks == 0 {
			for _, st := range resp.Topics {
				for _, sp := range st.Partitions {
					if sp.ErrorCode != 0 {
						return closeWithoutResponse{resp}
					}
				}
			}
			return nil
		}
		return resp
	}
}

// isZstd reports whether records starts with a v2 batch compressed with
// zstd (attributes bits 0-2 = 4).
func isZstd(records []byte) bool {
	return len(records) > 22 && records[16] == 2 && records[22]&7 == 4
}

// fetch answers from the logs, long-polling until min_bytes are available,
// max_wait passes (capped by fetch_max_wait_max) or the broker stops.
// Fetch sessions (KIP-227) are declined by always answering session id 0,
// so clients send full fetch requests.
func (b *Broker) fetch(r *kmsg.FetchRequest) responder {
	return func() kmsg.Response {
		wait := min(time.Duration(r.MaxWaitMillis)*time.Millisecond, b.cfg.FetchMaxWaitMax)
		deadline := time.Now().Add(wait)
		for {
			resp, total, changed, failed := b.fetchOnce(r)
			left := time.Until(deadline)
			if r.SessionID != 0 || failed || total >= int(r.MinBytes) || left <= 0 || len(changed) == 0 {
				return resp
			}
			resp.release() // not enough yet: read again after waiting
			if !b.waitAny(left, changed) {
				resp, _, _, _ = b.fetchOnce(r)
				return resp
			}
		}
	}
}

// waitAny waits up to d for any of chans to be closed; it reports whether
// one was (false: the time ran out or the broker is stopping).
func (b *Broker) waitAny(d time.Duration, chans []<-chan struct{}) bool {
	cases := make([]reflect.SelectCase, 0, len(chans)+2)
	timer := time.NewTimer(d)
	defer timer.Stop()
	cases = append(cases,
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(b.closing)})
	for _, ch := range chans {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
	}
	chosen, _, _ := reflect.Select(cases)
	return chosen >= 2
}

// stopping reports whether ch (the broker's closing channel) is closed.
func stopping(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// splicedResponse is a response whose record batches are written from the
// log's read buffers with writev rather than copied into the encoding.
type splicedResponse struct {
	kmsg.Response
	splices []protocol.Splice
	reads   []partition.FetchResult
}

// release hands the read buffers back once the response is written or
// discarded.
func (s *splicedResponse) release() {
	for i := range s.reads {
		s.reads[i].Release()
	}
	s.reads, s.splices = nil, nil
}

// fetchOnce reads every requested partition once. It returns the response,
// the record bytes in it, the channels to wait on for more, and whether any
// partition failed (which answers at once, as Kafka does).
func (b *Broker) fetchOnce(r *kmsg.FetchRequest) (*splicedResponse, int, []<-chan struct{}, bool) {
	resp := r.ResponseKind().(*kmsg.FetchResponse)
	out := &splicedResponse{Response: resp}
	if r.SessionID != 0 {
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		return out, 0, nil, true
	}
	remaining := int(r.MaxBytes)
	if r.Version < 3 || remaining <= 0 {
		remaining = 50 << 20 // Kafka's fetch.max.bytes default
	}
	total, failed := 0, false
	var changed []<-chan struct{}
	for _, rt := range r.Topics {
		var t *topic
		if r.Version >= 13 {
			t = b.reg.getByID(rt.TopicID)
		} else {
			t = b.reg.get(rt.Topic)
		}
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			// Empty, not null: librdkafka refuses a null record set.
			sp.Partition, sp.RecordBatches = rp.Partition, []byte{}
			rep := t.partition(rp.Partition)
			switch {
			case t == nil && r.Version >= 13:
				sp.ErrorCode, failed = kerr.UnknownTopicID.Code, true
			case rep == nil:
				// Any replica serves committed data; one hosted elsewhere
				// sends the client back to metadata.
				sp.ErrorCode, failed = t.partitionError(rp.Partition).Code, true
			default:
				p := rep.Partition()
				limit := min(int(rp.PartitionMaxBytes), remaining)
				if limit <= 0 && total > 0 {
					// No room left: report offsets only (KIP-74 lets the
					// first partition with data exceed the limits).
					sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = p.HighWatermark(), p.HighWatermark(), p.LogStartOffset()
					break
				}
				res, err := p.Fetch(rp.FetchOffset, max(limit, 1))
				sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = res.HighWatermark, res.HighWatermark, res.LogStartOffset
				if errors.Is(err, kerr.OffsetOutOfRange) && rp.FetchOffset > res.HighWatermark && !rep.ConfirmLeader() {
					// A follower behind the leader (or a leader that was
					// paused and not yet told of the new term) cannot tell:
					// only a confirmed leader may say an offset is past the
					// end, or the client would reset its position. Rare,
					// so the quorum round trip costs nothing in the common
					// path.
					err = kerr.NotLeaderForPartition
				}
				if err != nil {
					sp.ErrorCode, failed = code(err), true
					break
				}
				if res.Bytes == 0 {
					changed = append(changed, p.Changed())
					break
				}
				// The batches are written from the log's buffers by writev
				// (protocol.Splice): a marker stands in for them in the
				// kmsg encoding, and the buffers are released once written.
				var s protocol.Splice
				binary.LittleEndian.PutUint64(s.Marker[:8], rand.Uint64())
				binary.LittleEndian.PutUint64(s.Marker[8:], rand.Uint64())
				s.Parts = res.Batches
				sp.RecordBatches = s.Marker[:]
				out.splices = append(out.splices, s)
				out.reads = append(out.reads, res)
				total += res.Bytes
				remaining -= res.Bytes
				b.metrics.AddBytesOut(t.name, res.Bytes)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return out, total, changed, failed
}

func (b *Broker) listOffsets(r *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range r.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		t := b.reg.get(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			p := t.partition(rp.Partition)
			if p == nil {
				sp.ErrorCode = t.partitionError(rp.Partition).Code
			} else if off, ts, err := p.ListOffset(rp.Timestamp); err != nil {
				sp.ErrorCode = code(err)
			} else {
				sp.Offset, sp.Timestamp, sp.LeaderEpoch = off, ts, 0
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
