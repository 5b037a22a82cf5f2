package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Handler processes one record. Returning nil marks it done; its offset is
// then committed. Records of a partition arrive one at a time, in order;
// different partitions run concurrently.
type Handler func(ctx context.Context, r *Record) error

// BatchHandler processes the records of one partition that one poll
// returned, in offset order. Returning nil marks them all done; an error
// fails (and retries) the whole batch.
type BatchHandler func(ctx context.Context, rs []*Record) error

// ErrorHandler decides about a record whose handler failed for good
// (retries used up, or a Permanent error). Returning nil skips the record
// (its offset is committed); returning an error stops the consumer.
type ErrorHandler func(ctx context.Context, r *Record, err error) error

// ConsumerOption configures Consume and ConsumeBatches.
type ConsumerOption func(*consumerOptions)

// Consumer defaults.
const (
	DefaultCommitInterval   = time.Second
	DefaultMaxPollRecords   = 500
	DefaultSessionTimeout   = 45 * time.Second
	DefaultRebalanceTimeout = time.Minute
	DefaultRetryBackoffMin  = 100 * time.Millisecond
	DefaultRetryBackoffMax  = 10 * time.Second
)

type consumerOptions struct {
	start            Offset
	retries          int
	backoffMin       time.Duration
	backoffMax       time.Duration
	onError          ErrorHandler
	commitInterval   time.Duration
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	maxPollRecords   int
	instanceID       string
	errs             []error
}

func (o *consumerOptions) fail(format string, args ...any) {
	o.errs = append(o.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
}

// StartAt sets where a group starts on a partition it has never committed
// (default Beginning). Committed offsets always win: to move an existing
// group, stop its consumers and use Admin.ResetOffsets.
func StartAt(o Offset) ConsumerOption {
	return func(c *consumerOptions) { c.start = o }
}

// Retries sets how many times a failed handler call is repeated, with
// backoff, before the record counts as failed (default 0). Retries happen
// in place: the partition waits, so its order holds, and rebalances wait
// too, so keep retries times backoff well under the RebalanceTimeout.
func Retries(n int) ConsumerOption {
	return func(c *consumerOptions) {
		if n < 0 {
			c.fail("retries %d: want >= 0", n)
			return
		}
		c.retries = n
	}
}

// RetryBackoff sets the wait before retry k: min * 2^(k-1), capped at max,
// with up to 20% jitter (default 100ms to 10s).
func RetryBackoff(minWait, maxWait time.Duration) ConsumerOption {
	return func(c *consumerOptions) {
		if minWait <= 0 || maxWait < minWait {
			c.fail("retry backoff %v..%v: want 0 < min <= max", minWait, maxWait)
			return
		}
		c.backoffMin, c.backoffMax = minWait, maxWait
	}
}

// OnError sets what happens to a record whose handler failed for good.
// The default stops the consumer and returns a *HandlerError: nothing is
// skipped, and the record comes back first when the group restarts.
func OnError(fn ErrorHandler) ConsumerOption {
	return func(c *consumerOptions) {
		if fn == nil {
			c.fail("OnError: nil handler")
			return
		}
		c.onError = fn
	}
}

// CommitInterval sets how often marked offsets are committed (default
// 1 s); they are also committed on revocation and when Consume returns.
// After a crash, records handled since the last commit are redelivered:
// a shorter interval means fewer duplicates, at one small replicated write
// per interval.
func CommitInterval(d time.Duration) ConsumerOption {
	return func(c *consumerOptions) {
		if d < 100*time.Millisecond {
			c.fail("commit interval %v: want 100ms or more", d)
			return
		}
		c.commitInterval = d
	}
}

// SessionTimeout sets how long the group waits for a silent member before
// giving its partitions to others (default 45 s). Shorter detects crashes
// sooner; too short evicts members during GC pauses or network blips. The
// broker bounds it (group_min/max_session_timeout).
func SessionTimeout(d time.Duration) ConsumerOption {
	return func(c *consumerOptions) {
		if d < time.Second {
			c.fail("session timeout %v: want 1s or more", d)
			return
		}
		c.sessionTimeout = d
	}
}

// RebalanceTimeout sets how long a rebalance waits for members to finish
// their current poll (default 1 m). A member that takes longer is removed
// and its records are redelivered elsewhere.
func RebalanceTimeout(d time.Duration) ConsumerOption {
	return func(c *consumerOptions) {
		if d < time.Second {
			c.fail("rebalance timeout %v: want 1s or more", d)
			return
		}
		c.rebalanceTimeout = d
	}
}

// MaxPollRecords bounds the records handled between two rebalance points
// (default 500); a BatchHandler's batches are at most this large.
func MaxPollRecords(n int) ConsumerOption {
	return func(c *consumerOptions) {
		if n < 1 {
			c.fail("max poll records %d: want >= 1", n)
			return
		}
		c.maxPollRecords = n
	}
}

// InstanceID makes the member static (KIP-345): a restart with the same
// id within the session timeout gets its partitions back without a
// rebalance. Each running member needs its own id.
func InstanceID(id string) ConsumerOption {
	return func(c *consumerOptions) { c.instanceID = id }
}

// permanent marks an error that retrying cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so the consumer does not retry it (a malformed
// record, say) and goes straight to the OnError policy.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err was wrapped by Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// HandlerError is returned by Consume when a handler failed for good and
// the OnError policy stopped the consumer. Record's offset was not
// committed: the group resumes with it.
type HandlerError struct {
	Record   *Record
	Attempts int
	Err      error
}

func (e *HandlerError) Error() string {
	return fmt.Sprintf("client: handler failed on %s/%d offset %d after %d attempts: %v",
		e.Record.Topic, e.Record.Partition, e.Record.Offset, e.Attempts, e.Err)
}

func (e *HandlerError) Unwrap() error { return e.Err }

// Headers DeadLetter adds to a parked record.
const (
	HeaderDLQError     = "dlq.error"
	HeaderDLQTopic     = "dlq.topic"
	HeaderDLQPartition = "dlq.partition"
	HeaderDLQOffset    = "dlq.offset"
)

// DeadLetter returns an ErrorHandler that parks a failed record in topic
// (same key, value and headers, plus dlq.* headers saying where it came
// from and why) and then skips it. If parking fails the consumer stops,
// so no record is dropped.
func (c *Client) DeadLetter(topic string) ErrorHandler {
	return func(ctx context.Context, r *Record, err error) error {
		dl := &Record{
			Topic: topic, Key: r.Key, Value: r.Value,
			Headers: append(append([]Header(nil), r.Headers...),
				Header{Key: HeaderDLQError, Value: []byte(err.Error())},
				Header{Key: HeaderDLQTopic, Value: []byte(r.Topic)},
				Header{Key: HeaderDLQPartition, Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
				Header{Key: HeaderDLQOffset, Value: strconv.AppendInt(nil, r.Offset, 10)},
			),
		}
		if perr := c.ProduceSync(ctx, dl); perr != nil {
			return fmt.Errorf("client: parking %s/%d offset %d in %s: %w", r.Topic, r.Partition, r.Offset, topic, perr)
		}
		c.log.Info("record parked in dead-letter topic", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "dead_letter_topic", topic, "error", err)
		return nil
	}
}

// Consume joins group, consumes topics and calls h for each record until
// ctx is done or a record fails for good with the default OnError. It
// marks a record after h returns nil and commits marked offsets every
// CommitInterval, on revocation and before returning, so a committed
// offset never passes a record whose handler has not finished
// (at-least-once). It returns nil after ctx is done and the final commit.
func (c *Client) Consume(ctx context.Context, group string, topics []string, h Handler, opts ...ConsumerOption) error {
	if h == nil {
		return fmt.Errorf("%w: nil handler", ErrInvalidOption)
	}
	return c.consume(ctx, group, topics, func(ctx context.Context, rs []*Record) error { return h(ctx, rs[0]) }, false, opts)
}

// ConsumeBatches is Consume with a handler per partition batch: fewer
// calls (one database transaction per batch, say) for coarser retries.
func (c *Client) ConsumeBatches(ctx context.Context, group string, topics []string, h BatchHandler, opts ...ConsumerOption) error {
	if h == nil {
		return fmt.Errorf("%w: nil handler", ErrInvalidOption)
	}
	return c.consume(ctx, group, topics, h, true, opts)
}

func (c *Client) consume(ctx context.Context, group string, topics []string, h BatchHandler, batched bool, opts []ConsumerOption) error {
	o := consumerOptions{
		start:            Beginning(),
		backoffMin:       DefaultRetryBackoffMin,
		backoffMax:       DefaultRetryBackoffMax,
		commitInterval:   DefaultCommitInterval,
		sessionTimeout:   DefaultSessionTimeout,
		rebalanceTimeout: DefaultRebalanceTimeout,
		maxPollRecords:   DefaultMaxPollRecords,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if group == "" {
		o.fail("group: want a non-empty name")
	}
	if len(topics) == 0 {
		o.fail("topics: want one or more")
	}
	if err := errors.Join(o.errs...); err != nil {
		return err
	}
	cs := &consumer{c: c, o: o, h: h, batched: batched, group: group}
	kopts := append(c.opts.kgoBase(),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeStartOffset(o.start.kgo()),
		// At-least-once: a commit that fell below the log start resumes at
		// the oldest record still there, never further on.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(o.commitInterval),
		// Rebalances happen only between polls, after this member's marks
		// are committed, so no finished record is handed to another member.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(cs.revoked),
		kgo.OnPartitionsLost(cs.lost),
		kgo.SessionTimeout(o.sessionTimeout),
		kgo.HeartbeatInterval(max(o.sessionTimeout/10, 100*time.Millisecond)),
		kgo.RebalanceTimeout(o.rebalanceTimeout),
	)
	if o.instanceID != "" {
		kopts = append(kopts, kgo.InstanceID(o.instanceID))
	}
	cl, err := kgo.NewClient(append(kopts, c.opts.kgoOpts...)...)
	if err != nil {
		return wrap("consume", "", -1, err)
	}
	cs.cl = cl
	return cs.run(ctx)
}

type consumer struct {
	c       *Client
	o       consumerOptions
	h       BatchHandler
	batched bool
	group   string
	cl      *kgo.Client
}

func (cs *consumer) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		cs.c.log.Warn("commit on revoke failed; records since the last commit will be redelivered", "group", cs.group, "error", err)
	}
}

func (cs *consumer) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	cs.c.log.Warn("partitions lost; records handled since the last commit will be redelivered", "group", cs.group, "partitions", fmt.Sprint(lost))
}

func (cs *consumer) run(ctx context.Context) error {
	var stopErr error
	for stopErr == nil {
		fs := cs.cl.PollRecords(ctx, cs.o.maxPollRecords)
		if ctx.Err() != nil || fs.IsClientClosed() {
			cs.cl.AllowRebalance()
			break
		}
		fs.EachError(func(t string, p int32, err error) {
			cs.c.log.Warn("fetch error", "group", cs.group, "topic", t, "partition", p, "error", err)
		})
		stopErr = cs.process(ctx, fs)
		cs.cl.AllowRebalance()
	}
	// A fresh context: the final commit must happen even though ctx is done.
	cctx, cancel := context.WithTimeout(context.Background(), cs.c.opts.requestTimeout)
	defer cancel()
	cerr := cs.cl.CommitMarkedOffsets(cctx)
	cs.cl.Close()
	if cerr != nil {
		cerr = wrap("commit offsets", "", -1, cerr)
		cs.c.log.Warn("final commit failed; records since the last commit will be redelivered", "group", cs.group, "error", cerr)
	}
	return errors.Join(stopErr, cerr)
}

// process runs the handler over one poll: partitions concurrently, each
// in order, and stops every partition at the first error that stops the
// consumer.
func (cs *consumer) process(ctx context.Context, fs kgo.Fetches) error {
	var parts [][]*Record
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			parts = append(parts, p.Records)
		}
	})
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		once    sync.Once
		stopErr error
		wg      sync.WaitGroup
	)
	stop := func(err error) {
		once.Do(func() { stopErr = err; cancel() })
	}
	for _, rs := range parts {
		wg.Go(func() {
			if err := cs.partition(pctx, rs); err != nil {
				stop(err)
			}
		})
	}
	wg.Wait()
	if stopErr != nil && ctx.Err() != nil {
		// Shutting down: unfinished records are redelivered, not failures.
		return nil
	}
	return stopErr
}

// partition handles one partition's records in order, marking each unit
// when it is done.
func (cs *consumer) partition(ctx context.Context, rs []*Record) error {
	step := 1
	if cs.batched {
		step = len(rs)
	}
	for i := 0; i < len(rs); i += step {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		unit := rs[i:min(i+step, len(rs))]
		if err := cs.handle(ctx, unit); err != nil {
			return err
		}
		cs.cl.MarkCommitRecords(unit[len(unit)-1])
	}
	return nil
}

// handle runs the handler with retries, then the OnError policy.
func (cs *consumer) handle(ctx context.Context, unit []*Record) error {
	attempts := 0
	for {
		attempts++
		err := cs.h(ctx, unit)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r := unit[0]
		if !IsPermanent(err) && attempts <= cs.o.retries {
			wait := cs.backoff(attempts)
			cs.c.log.Warn("handler failed; retrying", "group", cs.group, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "attempt", attempts, "backoff", wait, "error", err)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			continue
		}
		if cs.o.onError == nil {
			return &HandlerError{Record: r, Attempts: attempts, Err: err}
		}
		for _, r := range unit {
			if perr := cs.o.onError(ctx, r, err); perr != nil {
				return &HandlerError{Record: r, Attempts: attempts, Err: perr}
			}
		}
		return nil
	}
}

// backoff is the wait before retry n (1-based): exponential, capped,
// jittered down by up to 20% so failing members do not retry in step.
func (cs *consumer) backoff(n int) time.Duration {
	d := cs.o.backoffMin
	for i := 1; i < n && d < cs.o.backoffMax; i++ {
		d *= 2
	}
	d = min(d, cs.o.backoffMax)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}
