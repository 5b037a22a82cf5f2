package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// consumePhase runs cfg.Consumers consumers, each reading its share of the
// partitions from given offsets. Partitions are assigned directly, not
// through a group, so any broker works and no rebalance is measured.
type consumePhase struct {
	cfg *Config
	c   *counters
	tag uint64
	e2e bool // read send times from values
	// shared: the consumers are share-group members, which get records
	// out of order, so pos is not kept and a run ends by counts only.
	shared bool
	pos    map[int32]*atomic.Int64
	last   atomic.Int64 // unix nanoseconds of the last record read
	start  time.Time

	errOnce  sync.Once
	firstErr string

	e2eRecs []*recorder
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// startConsume starts the consumers; stop them with stop.
func startConsume(ctx context.Context, cfg *Config, c *counters, smp *sampler, tag uint64, from map[int32]int64, e2e bool) (*consumePhase, error) {
	ph := &consumePhase{cfg: cfg, c: c, tag: tag, e2e: e2e, pos: map[int32]*atomic.Int64{}}
	shares := make([]map[int32]kgo.Offset, cfg.Consumers)
	for i := range shares {
		shares[i] = map[int32]kgo.Offset{}
	}
	for p, off := range from {
		ph.pos[p] = new(atomic.Int64)
		ph.pos[p].Store(off)
		shares[int(p)%cfg.Consumers][p] = kgo.NewOffset().At(off)
	}
	ph.shared = cfg.ShareGroup != ""
	var clients []*kgo.Client
	var recs []*recorder
	for _, share := range shares {
		opts := []kgo.Opt{
			kgo.SeedBrokers(cfg.Brokers...),
			kgo.ClientID("sluice-bench"),
			kgo.FetchMaxBytes(64 << 20),
		}
		if cfg.ShareGroup != "" {
			// Each poll's records are accepted by the next poll.
			opts = append(opts, kgo.ShareGroup(cfg.ShareGroup), kgo.ConsumeTopics(cfg.Topic))
		} else {
			opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: share}))
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			for _, c := range clients {
				c.Close()
			}
			return nil, fmt.Errorf("bench: consumer client: %w", err)
		}
		clients = append(clients, cl)
		r := newRecorder()
		recs = append(recs, r)
		smp.addE2E(r)
	}
	cctx, cancel := context.WithCancel(ctx)
	ph.cancel = cancel
	ph.start = time.Now()
	for i, cl := range clients {
		ph.wg.Add(1)
		go func() {
			defer ph.wg.Done()
			defer cl.Close()
			ph.consumer(cctx, cl, recs[i])
		}()
	}
	ph.e2eRecs = recs
	return ph, nil
}

func (ph *consumePhase) consumer(ctx context.Context, cl *kgo.Client, e2e *recorder) {
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachError(func(_ string, _ int32, err error) {
			ph.errOnce.Do(func() { ph.firstErr = err.Error() })
		})
		now := time.Now()
		var n, bytes, tagged int64
		fs.EachRecord(func(r *kgo.Record) {
			n++
			bytes += int64(len(r.Value))
			if !ph.shared {
				ph.pos[r.Partition].Store(r.Offset + 1)
			}
			if ph.e2e && len(r.Value) >= HeaderSize && binary.BigEndian.Uint64(r.Value[8:16]) == ph.tag {
				tagged++
				e2e.record(now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(r.Value)))))
			}
		})
		if n > 0 {
			ph.c.consumed.Add(n)
			ph.c.consumedBytes.Add(bytes)
			ph.c.tagged.Add(tagged)
			ph.last.Store(now.UnixNano())
		}
	}
}

// caughtUp reports whether every partition was read up to targets.
func (ph *consumePhase) caughtUp(targets map[int32]int64) bool {
	for p, end := range targets {
		if pos, ok := ph.pos[p]; ok && pos.Load() < end {
			return false
		}
	}
	return true
}

func (ph *consumePhase) stop() {
	ph.cancel()
	ph.wg.Wait()
}

// result summarises the read; consumed counts are taken from c, which only
// this phase's consumers add to.
func (ph *consumePhase) result() *ConsumeResult {
	cr := &ConsumeResult{Consumed: ph.c.consumed.Load(), Bytes: ph.c.consumedBytes.Load()}
	if last := ph.last.Load(); last > 0 {
		cr.Seconds = time.Unix(0, last).Sub(ph.start).Seconds()
	}
	if cr.Seconds > 0 {
		cr.MsgsPerSec = float64(cr.Consumed) / cr.Seconds
		cr.MBPerSec = float64(cr.Bytes) / cr.Seconds / 1e6
	}
	return cr
}

// startShareGroupAtEarliest sets share.auto.offset.reset=earliest on
// group, so a new group reads the backlog a Consume run measures (KIP-932's
// default, latest, would start past it).
func startShareGroupAtEarliest(ctx context.Context, adm *kgo.Client, group string) error {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Op, c.Name, c.Value = kmsg.IncrementalAlterConfigOpSet, "share.auto.offset.reset", kmsg.StringPtr("earliest")
	rr.Configs = append(rr.Configs, c)
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, adm)
	if err == nil && len(resp.Resources) == 1 {
		err = kerr.ErrorForCode(resp.Resources[0].ErrorCode)
	}
	if err != nil {
		return fmt.Errorf("%w: share group %q: setting share.auto.offset.reset: %w", ErrConfig, group, err)
	}
	return nil
}
