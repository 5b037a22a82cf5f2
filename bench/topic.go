package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// leaderWait bounds the wait for a new topic's partitions to elect leaders,
// so elections are not part of the measurement.
const leaderWait = 30 * time.Second

// preferredWait bounds the wait for leaders to settle on their preferred
// replicas.
const preferredWait = 10 * time.Second

// topicState is what a fresh Metadata request says about one topic.
type topicState struct {
	exists     bool
	partitions int
	rf         int
	leaders    bool // every partition has a leader
	preferred  bool // every leader is its partition's first replica
}

// describeTopic asks the cluster directly (not the client's metadata
// cache, which may predate a create) and never auto-creates.
func describeTopic(ctx context.Context, cl *kgo.Client, topic string) (topicState, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return topicState{}, fmt.Errorf("metadata: %w", err)
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		switch err := kerr.ErrorForCode(t.ErrorCode); {
		case errors.Is(err, kerr.UnknownTopicOrPartition):
			return topicState{}, nil
		case errors.Is(err, kerr.LeaderNotAvailable):
			return topicState{exists: true}, nil
		case err != nil:
			return topicState{}, fmt.Errorf("metadata for %q: %w", topic, err)
		}
		st := topicState{exists: true, partitions: len(t.Partitions), leaders: len(t.Partitions) > 0}
		st.preferred = st.leaders
		for _, p := range t.Partitions {
			st.rf = max(st.rf, len(p.Replicas))
			if p.Leader < 0 || p.ErrorCode != 0 {
				st.leaders = false
			}
			if len(p.Replicas) == 0 || p.Leader != p.Replicas[0] {
				st.preferred = false
			}
		}
		return st, nil
	}
	return topicState{}, nil
}

// setupTopic creates or finds cfg's topic and waits until every partition
// has a leader.
func setupTopic(ctx context.Context, cl *kgo.Client, cfg *Config) (Topic, []string, error) {
	tp := Topic{Name: cfg.Topic}
	var notes []string
	cctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	st, err := describeTopic(cctx, cl, cfg.Topic)
	cancel()
	if err != nil {
		var op *net.OpError
		switch {
		case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
			return tp, nil, fmt.Errorf("%w: no answer from %v within %v: are the brokers up?", ErrUnreachable, cfg.Brokers, cfg.ConnectTimeout)
		case errors.As(err, &op):
			return tp, nil, fmt.Errorf("%w: %v: are the brokers up at %v?", ErrUnreachable, op, cfg.Brokers)
		}
		return tp, nil, fmt.Errorf("%w: %w", ErrTopic, err)
	}
	switch {
	case !st.exists && cfg.Reuse:
		return tp, nil, fmt.Errorf("%w %q does not exist (it must, with reuse; drop --reuse to create it)", ErrTopic, cfg.Topic)
	case !st.exists:
		resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(cfg.Partitions), int16(cfg.ReplicationFactor), nil, cfg.Topic)
		if err == nil {
			err = resp.Err
		}
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists):
			notes = append(notes, fmt.Sprintf("topic %q was created by someone else meanwhile; used as it is", cfg.Topic))
		case err != nil:
			return tp, nil, fmt.Errorf("%w %q: create with %d partitions, replication factor %d: %w",
				ErrTopic, cfg.Topic, cfg.Partitions, cfg.ReplicationFactor, err)
		default:
			tp.Created = true
		}
	default:
		notes = append(notes, fmt.Sprintf("topic %q existed; used as it is (%d partitions, replication factor %d)",
			cfg.Topic, st.partitions, st.rf))
	}
	// A cluster that moves new partitions' leadership to their preferred
	// replicas (Sluice does, about 2 s after creation) would otherwise
	// stall the first seconds of the run while clients find the new
	// leaders. Past preferredWait any leader will do.
	begin := time.Now()
	deadline := begin.Add(leaderWait)
	for {
		st, err = describeTopic(ctx, cl, cfg.Topic)
		if err != nil {
			return tp, nil, fmt.Errorf("%w: %w", ErrTopic, err)
		}
		if st.exists && st.leaders && (st.preferred || time.Since(begin) > preferredWait) {
			if !st.preferred {
				notes = append(notes, "some partitions are not led by their preferred replica")
			}
			break
		}
		if time.Now().After(deadline) {
			return tp, nil, fmt.Errorf("%w %q: partitions without a leader after %v", ErrTopic, cfg.Topic, leaderWait)
		}
		select {
		case <-ctx.Done():
			return tp, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	tp.Partitions, tp.ReplicationFactor = st.partitions, st.rf
	return tp, notes, nil
}

// listOffsets returns each partition's start or end offset.
func listOffsets(ctx context.Context, cl *kgo.Client, topic string, end bool) (map[int32]int64, error) {
	adm := kadm.NewClient(cl)
	var lo kadm.ListedOffsets
	var err error
	if end {
		lo, err = adm.ListEndOffsets(ctx, topic)
	} else {
		lo, err = adm.ListStartOffsets(ctx, topic)
	}
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("%w %q: list offsets: %w", ErrTopic, topic, err)
	}
	out := map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}
