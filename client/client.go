package client

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/partition/keys"
)

// Record is franz-go's record: Topic, Key, Value, Headers and Timestamp to
// produce; Partition, Offset and the rest filled in by the broker. An
// alias, so records move between this package and kgo without copies.
type Record = kgo.Record

// Header is a record header.
type Header = kgo.RecordHeader

// Client produces records, runs group consumers (Consume) and administers
// the cluster (Admin). It is safe for concurrent use; create one per
// process and Close it on the way out.
type Client struct {
	opts options
	cl   *kgo.Client
	adm  *Admin
	log  *slog.Logger

	closeOnce  sync.Once
	deadlineMu sync.Mutex
	deadline   atomic.Pointer[sharedCtx]
}

// New validates opts and connects lazily: it does not wait for a broker.
// Use Ping to check that one answers.
func New(opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	c := &Client{opts: o, log: o.logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	cl, err := kgo.NewClient(append(o.kgoBase(), o.kgoOpts...)...)
	if err != nil {
		return nil, wrap("new client", "", -1, err)
	}
	c.cl = cl
	c.adm = &Admin{c: c, k: kadm.NewClient(cl), http: &http.Client{}}
	return c, nil
}

// kafkaPartitioner places keyed records with Kafka's murmur2 (the same
// function as partition/keys, so every Kafka client agrees) and spreads
// keyless ones stickily, a batch at a time.
func kafkaPartitioner() kgo.Partitioner {
	return kgo.StickyKeyPartitioner(func(key []byte, n int) int {
		return int(keys.Partition(key, int32(n)))
	})
}

// Ping checks that a broker answers.
func (c *Client) Ping(ctx context.Context) error {
	return wrap("ping", "", -1, c.cl.Ping(ctx))
}

// Produce buffers r for its topic and returns at once; fn (may be nil)
// runs when the record is acknowledged, with r's Partition and Offset
// set, or when it failed (an *Error, after retries up to the
// DeliveryTimeout). Callbacks run one at a time per partition, in
// produce order; do not block in them. Records of one key keep their
// order, across retries too (idempotence).
//
// Cancelling ctx fails the record while it is still buffered, so a
// handler that returns before the callback should not pass its request's
// context: use context.WithoutCancel(r.Context()) or a long-lived one.
func (c *Client) Produce(ctx context.Context, r *Record, fn func(*Record, error)) {
	if r == nil {
		if fn != nil {
			fn(nil, &Error{Op: "produce", Partition: -1, Err: errors.New("nil record")})
		}
		return
	}
	rctx, cancel := c.recordCtx(ctx)
	c.cl.Produce(rctx, r, func(r *Record, err error) {
		if cancel != nil {
			cancel()
		}
		if err != nil && rctx.Err() != nil && ctx.Err() == nil {
			// Our deadline, not the caller's: the delivery timeout.
			err = ErrDeliveryTimeout
		}
		err = wrap("produce", r.Topic, r.Partition, err)
		if fn != nil {
			fn(r, err)
			return
		}
		if err != nil {
			c.log.Warn("produce failed", "topic", r.Topic, "error", err)
		}
	})
}

// recordCtx bounds a record's delivery by the DeliveryTimeout. franz-go's
// own record timeout counts from the record's Timestamp, which would fail
// records with old explicit timestamps (backfills, mirrors) at once, so
// the bound is a context instead: the caller's deadline if it has one, a
// context shared by the records of the same second if the caller's
// context can never end, else a context per record.
func (c *Client) recordCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, nil
	}
	if ctx.Done() == nil {
		return c.sharedDeadline(), nil
	}
	return context.WithTimeout(ctx, c.opts.deliveryTimeout)
}

// sharedDeadline returns a context ending one DeliveryTimeout after it was
// made, renewed every second: one timer per second, not one per record.
func (c *Client) sharedDeadline() context.Context {
	now := time.Now()
	if d := c.deadline.Load(); d != nil && now.Sub(d.made) < time.Second {
		return d.ctx
	}
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	if d := c.deadline.Load(); d != nil && now.Sub(d.made) < time.Second {
		return d.ctx
	}
	// Replaced contexts are not cancelled (records still use them); each
	// ends by itself at its deadline, releasing its timer.
	ctx, cancel := context.WithDeadline(context.Background(), now.Add(c.opts.deliveryTimeout))
	c.deadline.Store(&sharedCtx{ctx: ctx, cancel: cancel, made: now})
	return ctx
}

type sharedCtx struct {
	ctx    context.Context
	cancel context.CancelFunc
	made   time.Time
}

// ProduceSync produces rs and waits until every one is acknowledged. It
// returns the first failure (an *Error); records are independent, so
// others may have been stored.
func (c *Client) ProduceSync(ctx context.Context, rs ...*Record) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	wg.Add(len(rs))
	for _, r := range rs {
		c.Produce(ctx, r, func(_ *Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// Flush sends every buffered record now and waits for their answers.
func (c *Client) Flush(ctx context.Context) error {
	return wrap("flush", "", -1, c.cl.Flush(ctx))
}

// Close flushes buffered records (each waits at most its DeliveryTimeout)
// and closes the connections. Flush first with a deadline of your own to
// bound it.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.deliveryTimeout)
		defer cancel()
		if err := c.cl.Flush(ctx); err != nil {
			c.log.Warn("flush at close", "error", err)
		}
		c.cl.Close()
		if d := c.deadline.Load(); d != nil {
			d.cancel()
		}
	})
}

// Kgo returns the underlying franz-go client, for what this package does
// not wrap. Closing it closes c.
func (c *Client) Kgo() *kgo.Client { return c.cl }

// Admin returns the administration API, sharing c's connections.
func (c *Client) Admin() *Admin { return c.adm }
