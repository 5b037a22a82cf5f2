package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// finalReader reads every partition from every replica, straight from each
// broker (any replica serves fetches up to its own high watermark, which
// is committed data), so the checker compares the replicas' logs offset by
// offset and not only what the leader serves.
type finalReader struct {
	cl      *kgo.Client
	topic   string
	topicID [16]byte
	h       *History
}

func newFinalReader(ctx context.Context, seeds []string, topic string, h *History) (*finalReader, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	if err != nil {
		return nil, err
	}
	md, err := kadm.NewClient(cl).Metadata(ctx, topic)
	if err != nil {
		cl.Close()
		return nil, err
	}
	t, ok := md.Topics[topic]
	if !ok || t.Err != nil {
		cl.Close()
		return nil, fmt.Errorf("final read: metadata of %s: %v", topic, t.Err)
	}
	return &finalReader{cl: cl, topic: topic, topicID: t.ID, h: h}, nil
}

func (f *finalReader) close() { f.cl.Close() }

// fetch asks broker node for partition p from offset off.
func (f *finalReader) fetch(ctx context.Context, node int, p int32, off int64, maxBytes int32) (*kmsg.FetchResponseTopicPartition, error) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 0
	req.MinBytes = 1
	req.MaxBytes = maxBytes
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = f.topic, f.topicID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, off, maxBytes
	rp.CurrentLeaderEpoch, rp.LogStartOffset = -1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := f.cl.Broker(node).Request(cctx, req)
	if err != nil {
		return nil, err
	}
	fr := resp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(fr.ErrorCode); err != nil {
		return nil, err
	}
	if len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != 1 {
		return nil, fmt.Errorf("final read: broker %d answered %d topics", node, len(fr.Topics))
	}
	part := &fr.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(part.ErrorCode); err != nil {
		return nil, err
	}
	return part, nil
}

// highWatermarks asks every replica of p for its high watermark.
func (f *finalReader) highWatermarks(ctx context.Context, p int32, replicas []int32) (map[int]int64, error) {
	hw := map[int]int64{}
	for _, r := range replicas {
		part, err := f.fetch(ctx, int(r), p, 0, 1)
		if err != nil {
			return nil, fmt.Errorf("broker %d partition %d: %w", r, p, err)
		}
		hw[int(r)] = part.HighWatermark
	}
	return hw, nil
}

// converge waits until every replica of every partition reports the same
// high watermark (followers learn commits a little after the leader).
func (f *finalReader) converge(ctx context.Context, replicas map[int32][]int32, timeout time.Duration) (map[int32]int64, error) {
	deadline := time.Now().Add(timeout)
	for {
		out := map[int32]int64{}
		var lastErr error
		for p, rs := range replicas {
			hws, err := f.highWatermarks(ctx, p, rs)
			if err != nil {
				lastErr = err
				break
			}
			first, same := int64(-1), true
			for _, hw := range hws {
				if first >= 0 && hw != first {
					same = false
				}
				first = hw
			}
			if !same {
				lastErr = fmt.Errorf("partition %d: replicas' high watermarks differ: %v", p, hws)
				break
			}
			out[p] = first
		}
		if lastErr == nil {
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, lastErr
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// read reads partition p from broker node up to hw into the history, and
// returns how many records it read.
func (f *finalReader) read(ctx context.Context, node int, p int32, hw int64) (int, error) {
	var n int
	for off := int64(0); off < hw; {
		part, err := f.fetch(ctx, node, p, off, 4<<20)
		if err != nil {
			return n, fmt.Errorf("broker %d partition %d offset %d: %w", node, p, off, err)
		}
		fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Offset: off, Topic: f.topic, Partition: p}, part, kgo.DefaultDecompressor(), nil)
		if fp.Err != nil {
			return n, fmt.Errorf("broker %d partition %d offset %d: %w", node, p, off, fp.Err)
		}
		if len(fp.Records) == 0 {
			return n, fmt.Errorf("broker %d partition %d: no record at offset %d below its high watermark %d", node, p, off, hw)
		}
		recs := make([]Rec, 0, len(fp.Records))
		for _, r := range fp.Records {
			if r.Offset >= hw {
				break
			}
			recs = append(recs, Rec{P: p, O: r.Offset, V: shortValue(r.Value)})
			off = r.Offset + 1
		}
		n += len(recs)
		f.h.Add(Op{Process: "final-reader", Type: OK, F: FRead, Node: node, P: p, Recs: recs})
	}
	return n, nil
}
