package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/protocol/sluiceapi"
)

// maxNotesPerRequest bounds one SluiceShareNote request to about 200 KiB
// (notes are at most 1 KiB), well under the broker's 1 MiB limit on
// requests other than Produce.
const maxNotesPerRequest = 200

// noteChunk is some of one partition's notes.
type noteChunk struct {
	p     int32
	notes []sluiceapi.ShareNote
}

// sendNotes tells the leaders of the failures' partitions why their
// handlers failed (SluiceShareNote), so that dead letters carry the last
// error: one request per leader (more past maxNotesPerRequest), with the
// topic's id and leaders from the client's cached metadata. Partitions
// whose leader moved are tried once more after a metadata refresh. Notes
// are best effort: what fails is logged at debug level.
func (w *Worker) sendNotes(ctx context.Context, cl *kgo.Client, failed []failure) {
	byPart := map[int32][]sluiceapi.ShareNote{}
	for _, f := range failed {
		byPart[f.r.Partition] = append(byPart[f.r.Partition], sluiceapi.ShareNote{
			Offset:        f.r.Offset,
			DeliveryCount: int16(min(max(f.r.DeliveryCount(), 0), math.MaxInt16)),
			Text:          sluiceapi.Truncate(f.text),
		})
	}
	var pending []noteChunk
	for _, p := range slices.Sorted(maps.Keys(byPart)) {
		for notes := range slices.Chunk(byPart[p], maxNotesPerRequest) {
			pending = append(pending, noteChunk{p, notes})
		}
	}
	for attempt := range 2 {
		topicID, leaders, err := w.noteMetadata(ctx, cl, attempt > 0)
		if err != nil {
			w.c.log.Debug("handler errors not sent to the broker: no metadata", "group", w.group, "topic", w.topic, "error", err)
			return
		}
		var retry []noteChunk
		for _, b := range packNotes(pending, leaders) {
			retry = append(retry, w.sendNoteBatch(ctx, cl, topicID, b)...)
		}
		if pending = retry; len(pending) == 0 || ctx.Err() != nil {
			break
		}
	}
	for _, c := range pending {
		w.c.log.Debug("handler errors not sent to the broker", "group", w.group, "topic", w.topic, "partition", c.p, "records", len(c.notes))
	}
}

// noteBatch is one request's worth of chunks for one leader (-1: none
// known).
type noteBatch struct {
	leader int32
	chunks []noteChunk
}

// packNotes groups chunks by leader into requests of at most
// maxNotesPerRequest notes, one chunk per partition each.
func packNotes(chunks []noteChunk, leaders map[int32]int32) []noteBatch {
	var out []noteBatch
	open := map[int32]int{} // leader -> index in out of its last batch
	for _, c := range chunks {
		leader, ok := leaders[c.p]
		if !ok || leader < 0 {
			leader = -1
		}
		i, ok := open[leader]
		if ok {
			b := &out[i]
			n := 0
			for _, x := range b.chunks {
				n += len(x.notes)
			}
			if n+len(c.notes) > maxNotesPerRequest || slices.ContainsFunc(b.chunks, func(x noteChunk) bool { return x.p == c.p }) {
				ok = false
			}
		}
		if !ok {
			out = append(out, noteBatch{leader: leader})
			i = len(out) - 1
			open[leader] = i
		}
		out[i].chunks = append(out[i].chunks, c)
	}
	return out
}

// sendNoteBatch sends one request and returns the chunks worth another
// try after a metadata refresh (no leader known, the broker unreachable,
// not the leader, or the topic unknown to it).
func (w *Worker) sendNoteBatch(ctx context.Context, cl *kgo.Client, topicID [16]byte, b noteBatch) []noteChunk {
	if b.leader < 0 {
		return b.chunks
	}
	req := &sluiceapi.ShareNoteRequest{GroupID: w.group, Topics: []sluiceapi.ShareNoteRequestTopic{{TopicID: topicID}}}
	for _, c := range b.chunks {
		req.Topics[0].Partitions = append(req.Topics[0].Partitions, sluiceapi.ShareNoteRequestPartition{Partition: c.p, Notes: c.notes})
	}
	resp, err := req.RequestWith(ctx, cl.Broker(int(b.leader)))
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		w.c.log.Debug("handler errors not sent to the broker", "group", w.group, "topic", w.topic, "broker", b.leader, "error", err)
		if errors.Is(err, kerr.InvalidRequest) {
			return nil // another try would fare no better
		}
		return b.chunks
	}
	codes := map[int32]int16{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			codes[p.Partition] = p.ErrorCode
		}
	}
	var retry []noteChunk
	for _, c := range b.chunks {
		code, ok := codes[c.p]
		err := kerr.ErrorForCode(code)
		switch {
		case !ok:
			w.c.log.Debug("handler errors not sent to the broker: partition missing from the answer", "group", w.group, "topic", w.topic, "partition", c.p)
		case err == nil:
		case errors.Is(err, kerr.NotLeaderForPartition), errors.Is(err, kerr.UnknownTopicID), errors.Is(err, kerr.UnknownTopicOrPartition):
			retry = append(retry, c)
		default:
			// INVALID_RECORD_STATE: a lock ran out, so the note would
			// describe a delivery that is over.
			w.c.log.Debug("handler errors refused by the broker", "group", w.group, "topic", w.topic, "partition", c.p, "error", err)
		}
	}
	return retry
}

// noteMetadata returns the worker's topic id and its partitions' leaders
// from the client's metadata cache (refreshed when refresh is set).
func (w *Worker) noteMetadata(ctx context.Context, cl *kgo.Client, refresh bool) ([16]byte, map[int32]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(w.topic)
	req.Topics = append(req.Topics, rt)
	limit := time.Duration(0) // franz-go's MetadataMinAge
	if refresh {
		limit = time.Nanosecond
	}
	resp, err := cl.RequestCachedMetadata(ctx, req, limit)
	if err != nil {
		return [16]byte{}, nil, err
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != w.topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return [16]byte{}, nil, err
		}
		leaders := make(map[int32]int32, len(t.Partitions))
		for _, p := range t.Partitions {
			leaders[p.Partition] = p.Leader
		}
		return t.TopicID, leaders, nil
	}
	return [16]byte{}, nil, fmt.Errorf("topic %s missing from the metadata", w.topic)
}
