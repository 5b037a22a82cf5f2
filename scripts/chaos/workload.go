package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// WorkloadConfig shapes the clients' traffic.
type WorkloadConfig struct {
	Seeds           []string
	Topic           string
	Group           string
	Seed            uint64
	Producers       int
	KeysPerProducer int
	Rate            float64   // records per second over all producers; 0 unlimited
	InFlight        int       // unanswered records per producer
	ValueSize       int       // bytes per value, padding included
	ClientLog       io.Writer // franz-go's log lines (info), nil for none
	DeliveryTimeout time.Duration
	Consumers       int
	CommitEvery     time.Duration
	ShareConsumers  int           // members of the share group; 0 for none
	ShareGroup      string        // the share group's name
	ShareLock       time.Duration // the share group's record lock duration
}

// Workload runs idempotent acks=all producers, a consumer group that polls
// and commits, and an observer reading the group's committed offsets; it
// writes every operation to the history.
type Workload struct {
	cfg WorkloadConfig
	h   *History

	Acked, Failed, Unknown, Pending atomic.Int64
	Polled, Commits                 atomic.Int64

	stopProduce chan struct{}
	stopConsume chan struct{}
	prodWG      sync.WaitGroup
	consWG      sync.WaitGroup
	obsWG       sync.WaitGroup

	mu        sync.Mutex
	committed map[int32]int64 // latest committed offsets the observer read

	share *shareWorkload // nil without share consumers
}

// NewWorkload prepares a workload; Start runs it.
func NewWorkload(cfg WorkloadConfig, h *History) *Workload {
	w := &Workload{cfg: cfg, h: h, stopProduce: make(chan struct{}), stopConsume: make(chan struct{}), committed: map[int32]int64{}}
	if cfg.ShareConsumers > 0 {
		w.share = newShareWorkload(w)
	}
	return w
}

// clientOpts are what every client of the workload shares: short backoff
// and fresh metadata so failovers are found quickly.
func (w *Workload) clientOpts(name string) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.ClientID(name),
		kgo.SeedBrokers(w.cfg.Seeds...),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.MetadataMaxAge(5 * time.Second),
		kgo.DialTimeout(2 * time.Second),
		kgo.RequestTimeoutOverhead(5 * time.Second),
	}
	if w.cfg.ClientLog != nil {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(w.cfg.ClientLog, kgo.LogLevelInfo, func() string { return time.Now().Format("15:04:05.000 ") + name + " " })))
	}
	return opts
}

// Start launches producers, consumers, the share group's members and the
// observer.
func (w *Workload) Start(ctx context.Context) error {
	if w.share != nil {
		if err := w.share.start(ctx); err != nil {
			return err
		}
	}
	for i := range w.cfg.Producers {
		cl, err := kgo.NewClient(append(w.clientOpts(fmt.Sprintf("producer-%d", i)),
			kgo.DefaultProduceTopic(w.cfg.Topic),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordRetries(1<<30),
			kgo.RecordDeliveryTimeout(w.cfg.DeliveryTimeout),
			kgo.ProducerLinger(2*time.Millisecond),
			kgo.ProduceRequestTimeout(10*time.Second),
		)...)
		if err != nil {
			return err
		}
		w.prodWG.Add(1)
		go w.produce(ctx, i, cl)
	}
	for i := range w.cfg.Consumers {
		if err := w.startConsumer(ctx, i); err != nil {
			return err
		}
	}
	cl, err := kgo.NewClient(w.clientOpts("observer")...)
	if err != nil {
		return err
	}
	w.obsWG.Add(1)
	go w.observe(ctx, cl)
	return nil
}

// classify turns a produce or commit error into fail (the broker refused
// it: it did not happen) or unknown (it may have happened).
func classify(err error) string {
	var ke *kerr.Error
	if errors.As(err, &ke) && !ke.Retriable && !errors.Is(err, kerr.RequestTimedOut) {
		return Fail
	}
	return Unknown
}

// value builds the record value "<key>/<seq>|<padding>"; the history keeps
// the part before '|'.
func value(key string, seq int64, size int) (full []byte, short string) {
	short = fmt.Sprintf("%s/%d", key, seq)
	if pad := size - len(short) - 1; pad > 0 {
		return []byte(short + "|" + strings.Repeat("x", pad)), short
	}
	return []byte(short), short
}

// shortValue strips the padding of a value read back.
func shortValue(v []byte) string {
	s := string(v)
	if i := strings.IndexByte(s, '|'); i >= 0 {
		return s[:i]
	}
	return s
}

func (w *Workload) produce(ctx context.Context, i int, cl *kgo.Client) {
	defer w.prodWG.Done()
	defer cl.Close()
	proc := fmt.Sprintf("producer-%d", i)
	rng := rand.New(rand.NewPCG(w.cfg.Seed, uint64(1000+i)))
	seqs := make([]int64, w.cfg.KeysPerProducer)
	sem := make(chan struct{}, w.cfg.InFlight)
	var perProducer float64
	if w.cfg.Rate > 0 {
		perProducer = w.cfg.Rate / float64(w.cfg.Producers)
	}
	start := time.Now()
	var n int64
loop:
	for {
		if perProducer > 0 {
			due := start.Add(time.Duration(float64(n) / perProducer * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-w.stopProduce:
					break loop
				}
			}
		}
		select {
		case sem <- struct{}{}:
		case <-w.stopProduce:
			break loop
		}
		k := rng.IntN(w.cfg.KeysPerProducer)
		seqs[k]++
		key := fmt.Sprintf("p%dk%02d", i, k)
		full, short := value(key, seqs[k], w.cfg.ValueSize)
		op := w.h.Invoke(Op{Process: proc, F: FSend, Value: short})
		w.Pending.Add(1)
		n++
		cl.Produce(ctx, &kgo.Record{Key: []byte(key), Value: full}, func(r *kgo.Record, err error) {
			defer func() { <-sem }()
			w.Pending.Add(-1)
			if err != nil {
				typ := classify(err)
				if typ == Fail {
					w.Failed.Add(1)
				} else {
					w.Unknown.Add(1)
				}
				w.h.Complete(op, typ, err)
				return
			}
			w.Acked.Add(1)
			op.P, op.O = r.Partition, r.Offset
			w.h.Complete(op, OK, nil)
		})
	}
	// Every record ends: acknowledged, failed or timed out.
	fctx, cancel := context.WithTimeout(context.Background(), w.cfg.DeliveryTimeout+30*time.Second)
	defer cancel()
	_ = cl.Flush(fctx)
}

// StopProducing stops the producers and waits for every answer.
func (w *Workload) StopProducing() {
	close(w.stopProduce)
	w.prodWG.Wait()
}

// consumer is one member of the group.
type consumer struct {
	w    *Workload
	proc string
	cl   *kgo.Client

	mu      sync.Mutex
	owned   map[int32]bool
	pending map[int32]int64 // next offset to commit per owned partition
	done    map[int32]int64 // last committed
}

func (w *Workload) startConsumer(ctx context.Context, i int) error {
	c := &consumer{w: w, proc: fmt.Sprintf("consumer-%d", i), owned: map[int32]bool{}, pending: map[int32]int64{}, done: map[int32]int64{}}
	cl, err := kgo.NewClient(append(w.clientOpts(c.proc),
		kgo.ConsumerGroup(w.cfg.Group),
		kgo.ConsumeTopics(w.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.Balancers(kgo.RangeBalancer()), // eager: revoke everything, commit, rejoin
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.SessionTimeout(10*time.Second),
		kgo.RebalanceTimeout(30*time.Second),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { c.assign(m[w.cfg.Topic]) }),
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) { c.revoke(ctx, m[w.cfg.Topic], true) }),
		kgo.OnPartitionsLost(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) { c.revoke(ctx, m[w.cfg.Topic], false) }),
	)...)
	if err != nil {
		return err
	}
	c.cl = cl
	w.consWG.Add(1)
	go c.run(ctx)
	return nil
}

func (c *consumer) assign(parts []int32) {
	c.mu.Lock()
	for _, p := range parts {
		c.owned[p] = true
	}
	c.mu.Unlock()
	c.w.h.Add(Op{Process: c.proc, Type: Info, F: FAssign, Parts: parts})
}

// revoke commits what was polled of parts (when the partitions are revoked
// rather than lost) and ends their poll sessions.
func (c *consumer) revoke(ctx context.Context, parts []int32, commit bool) {
	if commit {
		c.commit(ctx)
	}
	c.mu.Lock()
	for _, p := range parts {
		delete(c.owned, p)
		delete(c.pending, p)
		delete(c.done, p)
	}
	c.mu.Unlock()
	c.w.h.Add(Op{Process: c.proc, Type: Info, F: FRevoke, Parts: parts})
}

// commit commits the offsets polled since the last commit, synchronously.
func (c *consumer) commit(ctx context.Context) {
	c.mu.Lock()
	offs := map[int32]int64{}
	for p, o := range c.pending {
		if c.owned[p] && o != c.done[p] {
			offs[p] = o
		}
	}
	c.mu.Unlock()
	if len(offs) == 0 {
		return
	}
	req := map[string]map[int32]kgo.EpochOffset{c.w.cfg.Topic: {}}
	for p, o := range offs {
		req[c.w.cfg.Topic][p] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	op := c.w.h.Invoke(Op{Process: c.proc, F: FCommit, Offsets: offs})
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c.cl.CommitOffsetsSync(cctx, req, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		c.w.Commits.Add(1)
		if err != nil {
			c.w.h.Complete(op, classify(err), err)
			return
		}
		okOffs := map[int32]int64{}
		var perr error
		for _, t := range resp.Topics {
			for _, pr := range t.Partitions {
				if e := kerr.ErrorForCode(pr.ErrorCode); e != nil {
					perr = fmt.Errorf("partition %d: %w", pr.Partition, e)
					continue
				}
				okOffs[pr.Partition] = offs[pr.Partition]
			}
		}
		done := op
		done.Offsets = okOffs
		switch {
		case len(okOffs) == 0:
			c.w.h.Complete(done, Fail, perr)
		default:
			c.w.h.Complete(done, OK, perr)
			c.mu.Lock()
			for p, o := range okOffs {
				c.done[p] = o
			}
			c.mu.Unlock()
		}
	})
}

func (c *consumer) run(ctx context.Context) {
	defer c.w.consWG.Done()
	defer c.cl.Close()
	last := time.Now()
	for {
		select {
		case <-c.w.stopConsume:
			c.commit(ctx)
			c.cl.AllowRebalance()
			return
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		op := c.w.h.Invoke(Op{Process: c.proc, F: FPoll})
		fs := c.cl.PollRecords(pctx, 2000)
		cancel()
		var recs []Rec
		c.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, Rec{P: r.Partition, O: r.Offset, V: shortValue(r.Value)})
			if r.Offset+1 > c.pending[r.Partition] {
				c.pending[r.Partition] = r.Offset + 1
			}
		})
		c.mu.Unlock()
		op.Recs = recs
		c.w.h.Complete(op, OK, nil)
		c.w.Polled.Add(int64(len(recs)))
		if time.Since(last) >= c.w.cfg.CommitEvery {
			c.commit(ctx)
			last = time.Now()
		}
		c.cl.AllowRebalance()
	}
}

// observe reads the group's committed offsets every 250 ms.
func (w *Workload) observe(ctx context.Context, cl *kgo.Client) {
	defer w.obsWG.Done()
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		w.readCommitted(ctx, adm)
		select {
		case <-w.stopConsume:
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (w *Workload) readCommitted(ctx context.Context, adm *kadm.Client) {
	op := w.h.Invoke(Op{Process: "observer", F: FCommitted})
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := adm.FetchOffsets(cctx, w.cfg.Group)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		w.h.Complete(op, Fail, err)
		return
	}
	offs := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == w.cfg.Topic && o.Err == nil {
			offs[o.Partition] = o.At
		}
	})
	op.Offsets = offs
	w.h.Complete(op, OK, nil)
	w.mu.Lock()
	for p, o := range offs {
		w.committed[p] = o
	}
	w.mu.Unlock()
}

// Committed is what the observer last read.
func (w *Workload) Committed() map[int32]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := make(map[int32]int64, len(w.committed))
	for p, o := range w.committed {
		m[p] = o
	}
	return m
}

// StopConsuming stops the consumers (each commits what it polled first)
// and the observer.
func (w *Workload) StopConsuming() {
	close(w.stopConsume)
	w.consWG.Wait()
	w.obsWG.Wait()
}
