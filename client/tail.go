package client

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TailOptions says what Tail reads.
type TailOptions struct {
	From       Offset  // where to start on each partition; the zero value is Beginning
	Partitions []int32 // empty: every partition
	// StopAtEnd makes Tail return once it has passed each partition's
	// end as of the call, instead of waiting for new records.
	StopAtEnd bool
}

// Tail reads topic without a consumer group (nothing is committed), from
// o.From, calling fn with each record: records of one partition in
// order, partitions interleaved. It returns nil when ctx is done or, with
// StopAtEnd, at the end; fn's error, which stops it; or a fetch error
// that retrying cannot fix. An unknown topic is ErrUnknownTopic.
//
// With StopAtEnd, a compacted partition whose last records were removed
// has no record at its end offset, so Tail waits for the next one there.
func (c *Client) Tail(ctx context.Context, topic string, o TailOptions, fn func(*Record) error) error {
	if fn == nil {
		return fmt.Errorf("%w: nil callback", ErrInvalidOption)
	}
	from, err := c.adm.offsetsAt(ctx, topic, o.From)
	if err != nil {
		return err
	}
	parts := slices.Clone(o.Partitions)
	if len(parts) == 0 {
		for p := range from {
			parts = append(parts, p)
		}
	}
	var ends map[int32]int64
	if o.StopAtEnd {
		if ends, err = c.adm.offsetsAt(ctx, topic, End()); err != nil {
			return err
		}
	}
	start := map[int32]kgo.Offset{}
	pending := map[int32]int64{} // StopAtEnd: partitions not yet read to their end
	for _, p := range parts {
		at, ok := from[p]
		if !ok {
			return wrap("tail", topic, p, kerr.UnknownTopicOrPartition)
		}
		start[p] = kgo.NewOffset().At(at)
		if o.StopAtEnd && at < ends[p] {
			pending[p] = ends[p]
		}
	}
	if o.StopAtEnd && len(pending) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(c.opts.kgoBase(),
		append([]kgo.Opt{
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
			// A start removed by retention meanwhile: the oldest record left.
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		}, c.opts.kgoOpts...)...)...)
	if err != nil {
		return wrap("tail", topic, -1, err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) && !IsRetriable(err) {
				ferr = wrap("tail", t, p, err)
			}
			c.log.Warn("fetch error", "topic", t, "partition", p, "error", err)
		})
		if ferr != nil {
			return ferr
		}
		var stop error
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			for _, r := range fp.Records {
				if stop != nil {
					return
				}
				end, open := pending[r.Partition]
				if o.StopAtEnd && (!open || r.Offset >= end) {
					delete(pending, r.Partition)
					continue // past the end this call reads to
				}
				if err := fn(r); err != nil {
					stop = err
					return
				}
				if open && r.Offset+1 >= end {
					delete(pending, r.Partition)
				}
			}
		})
		if stop != nil {
			return stop
		}
		if o.StopAtEnd && len(pending) == 0 {
			return nil
		}
	}
}
