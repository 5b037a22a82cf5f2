package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/protocol/sluiceapi"
)

// WorkerHandler handles one record of a share group. Its result decides
// what becomes of the record: nil accepts it (done for good); Reject
// archives it (and dead-letters it when the group has a dead-letter
// topic); any other error, or one wrapped by Retry, releases it, and the
// broker delivers it again after the group's retry backoff, until its
// delivery limit. r.DeliveryCount() says which delivery this is (1 the
// first time). The reject reason or the error's text is the record's last
// error: a dead letter carries the last one (DeadLetterRecord.Error).
//
// ctx ends when the worker stops impatiently (Stop's context expired, or
// Run's context was cancelled) and when the record's acquisition lock
// runs out: after that the broker may give the record to another worker.
type WorkerHandler func(ctx context.Context, r *Record) error

// WorkerOption configures NewWorker.
type WorkerOption func(*workerOptions)

// Worker defaults.
const (
	DefaultWorkerConcurrency = 1
	DefaultWorkerMaxRecords  = 50
)

// HeaderNotBefore is the record header a share group reads as a record's
// not-before time (Unix milliseconds, decimal), unless the group's
// share.delay.header names another. See NotBefore.
const HeaderNotBefore = "sluice.not-before"

// NotBefore returns the header that holds a record back from share groups
// until t (delayed delivery). Ordinary consumer groups ignore it.
func NotBefore(t time.Time) Header {
	return Header{Key: HeaderNotBefore, Value: strconv.AppendInt(nil, t.UnixMilli(), 10)}
}

type workerOptions struct {
	concurrency int
	maxRecords  int
	errs        []error
}

func (o *workerOptions) fail(format string, args ...any) {
	o.errs = append(o.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
}

// Concurrency sets how many records a worker handles at once (default
// 1). Records of one key from one fetch are handled one after another,
// in offset order, whatever the concurrency; with the group's
// share.key.ordering the broker also hands out at most one record per key
// at a time, so each key stays in order across workers and redeliveries.
func Concurrency(n int) WorkerOption {
	return func(o *workerOptions) {
		if n < 1 || n > 10000 {
			o.fail("concurrency %d: want 1 to 10000", n)
			return
		}
		o.concurrency = n
	}
}

// MaxRecords caps the records one fetch acquires (default 50). A fetch's
// records are all handled before the next fetch, and each one's lock
// (share.record.lock.duration.ms, 30 s by default) runs from the fetch:
// keep MaxRecords / Concurrency times the handler's time well under it.
func MaxRecords(n int) WorkerOption {
	return func(o *workerOptions) {
		if n < 1 || n > 10000 {
			o.fail("max records %d: want 1 to 10000", n)
			return
		}
		o.maxRecords = n
	}
}

// rejection is the error Reject returns.
type rejection struct{ reason string }

func (r *rejection) Error() string { return "rejected: " + r.reason }

// Reject returns an error that makes a Worker reject the record: the
// broker archives it and, when the group has share.dead.letter.topic,
// writes it there with sluice.dlq.reason "rejected" and reason as
// sluice.dlq.error (DeadLetterRecord.Error), cut to 1 KiB. KIP-932's
// acknowledgement carries no text, so the worker first sends reason to
// the partition's leader with a Sluice protocol extension
// (SluiceShareNote, see package protocol/sluiceapi); the error of a
// handler that fails without Reject goes the same way, so a record that
// reaches the delivery limit carries its last error. A note is best
// effort: the leader keeps it in memory only, so after a leader change, or
// if the note could not be sent (logged at debug level), the dead letter
// has no sluice.dlq.error. The worker also logs the rejection (see
// Logger) with the record's position.
func Reject(reason string) error { return &rejection{reason} }

// IsRejected reports whether err came from Reject, and its reason.
func IsRejected(err error) (reason string, ok bool) {
	if r, ok := errors.AsType[*rejection](err); ok {
		return r.reason, true
	}
	return "", false
}

// retry marks an error as worth another delivery.
type retry struct{ err error }

func (r retry) Error() string { return r.err.Error() }
func (r retry) Unwrap() error { return r.err }

// Retry wraps err to say that the record should be delivered again after
// the group's backoff. Any error other than a Reject does the same; Retry
// only makes the intent explicit. Retry(nil) is nil.
func Retry(err error) error {
	if err == nil {
		return nil
	}
	return retry{err}
}

// WorkerStats counts what a worker did with the records it was given.
type WorkerStats struct {
	Accepted int64 // handled: acknowledged with ACCEPT
	Released int64 // handler failed, or not handled at a stop: RELEASE, redelivered later
	Rejected int64 // Reject: archived (and dead-lettered)
	Expired  int64 // lock ran out before the handler started: not handled, the broker redelivers it
	// AckErrors counts partitions whose acknowledgements the broker
	// refused or that could not be sent (a lock had run out, a leader
	// changed); their records are delivered again.
	AckErrors int64
}

// Worker consumes one topic as a member of a share group (KIP-932): every
// record is handed to one of the group's workers, which acknowledges it
// on its own, so any number of workers share a partition. Create it
// with NewWorker, start it with Run, end it with Stop or by cancelling
// Run's context. See the package documentation for the guarantees.
type Worker struct {
	c     *Client
	group string
	topic string
	h     WorkerHandler
	o     workerOptions

	started  atomic.Bool
	stopOnce sync.Once
	stopping chan struct{} // closed by Stop: fetch nothing more, start no handler
	done     chan struct{} // closed when Run returns

	mu      sync.Mutex
	hcancel context.CancelFunc // ends the handlers' context; set while Run runs

	accepted, released, rejected, expired, ackErrs atomic.Int64
}

// NewWorker returns a worker for group on topic; it joins the group when
// Run starts. The group's behaviour (lock duration, delivery limit,
// backoff, dead-letter topic, key ordering, where a new group starts) is
// its configuration: Admin.SetShareGroupConfig.
func NewWorker(c *Client, group, topic string, h WorkerHandler, opts ...WorkerOption) (*Worker, error) {
	o := workerOptions{concurrency: DefaultWorkerConcurrency, maxRecords: DefaultWorkerMaxRecords}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case c == nil:
		o.fail("nil client")
	case group == "":
		o.fail("group: want a non-empty name")
	case topic == "":
		o.fail("topic: want a non-empty name")
	case h == nil:
		o.fail("nil handler")
	}
	if err := errors.Join(o.errs...); err != nil {
		return nil, err
	}
	return &Worker{c: c, group: group, topic: topic, h: h, o: o, stopping: make(chan struct{}), done: make(chan struct{})}, nil
}

// Stats returns what the worker has done so far.
func (w *Worker) Stats() WorkerStats {
	return WorkerStats{Accepted: w.accepted.Load(), Released: w.released.Load(), Rejected: w.rejected.Load(),
		Expired: w.expired.Load(), AckErrors: w.ackErrs.Load()}
}

// Run joins the group and handles records until Stop is called or ctx
// is done; it returns nil then, after acknowledging every record it was
// given and leaving the group. Cancelling ctx also cancels the handlers'
// context; Stop lets them finish. Fetch errors are logged and retried,
// so Run returns an error only when it cannot start. A worker runs once.
func (w *Worker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: worker already ran", ErrInvalidOption)
	}
	defer close(w.done)
	hctx, hcancel := context.WithCancel(ctx)
	defer hcancel()
	w.mu.Lock()
	w.hcancel = hcancel
	w.mu.Unlock()
	select {
	case <-w.stopping:
		return nil
	default:
	}
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	go func() {
		select {
		case <-w.stopping:
			pcancel()
		case <-pctx.Done():
		}
	}()

	cl, err := kgo.NewClient(append(w.c.opts.kgoBase(),
		append([]kgo.Opt{
			kgo.ShareGroup(w.group),
			kgo.ConsumeTopics(w.topic),
			kgo.ShareMaxRecords(int32(w.o.maxRecords)),
			kgo.ShareAckCallback(w.acked),
			// Fetch only while polling: records are acquired only when the
			// worker is ready for them, so none sit in a buffer with their
			// lock running, and a stop does not spend a delivery on them.
			// The price: one broker is fetched from at a time, so the
			// idle wait is short.
			kgo.MaxConcurrentFetches(0),
			kgo.FetchMaxWait(time.Second),
			// franz-go sends only the keys it knows of: add Sluice's
			// SluiceShareNote, which carries handler errors to the broker.
			kgo.MaxVersions(sluiceapi.AddVersions(nil)),
		}, w.c.opts.kgoOpts...)...)...)
	if err != nil {
		return wrap("worker", w.topic, -1, err)
	}
	for {
		fs := cl.PollRecords(pctx, w.o.maxRecords)
		if pctx.Err() != nil || fs.IsClientClosed() {
			// A poll that raced the stop may still have returned records;
			// leaving releases them.
			w.released.Add(int64(len(fs.Records())))
			break
		}
		fs.EachError(func(t string, p int32, err error) {
			w.c.log.Warn("share fetch error", "group", w.group, "topic", t, "partition", p, "error", err)
		})
		w.process(hctx, pctx.Done(), cl, fs.Records())
		if pctx.Err() != nil {
			// No more polls: the next one would accept the records left
			// unacknowledged, which leaving releases instead.
			break
		}
	}
	// Leaving stops fetching, sends the acknowledgements still queued,
	// releases the records not acknowledged (fetched but not handled)
	// and closes the share sessions. Releasing them ourselves before
	// would let a fetch still running acquire them again.
	lctx, lcancel := context.WithTimeout(context.WithoutCancel(ctx), w.c.opts.requestTimeout)
	defer lcancel()
	if err := cl.LeaveGroupContext(lctx); err != nil {
		w.c.log.Warn("leaving the share group failed; unacknowledged records return when their locks run out", "group", w.group, "error", err)
	}
	cl.Close()
	return nil
}

// Stop stops fetching, lets the handlers running finish and acknowledges
// their records, releases the records fetched but not yet handled (so
// other workers get them at once), and leaves the group. If ctx ends
// first, the handlers' context is cancelled and Stop returns ctx's error;
// Run still acknowledges what they return and leaves. Stopping a worker
// that never ran prevents it from running.
func (w *Worker) Stop(ctx context.Context) error {
	w.stopOnce.Do(func() { close(w.stopping) })
	if !w.started.Load() {
		return nil
	}
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
	}
	w.mu.Lock()
	if w.hcancel != nil {
		w.hcancel()
	}
	w.mu.Unlock()
	return ctx.Err()
}

// process handles one fetch: lanes of records in parallel, each lane in
// order, until stop (Stop, or Run's context) is closed; records not
// started then are left unacknowledged for the leave to release.
// Otherwise every record is acknowledged before process returns, because
// franz-go accepts what is left at the next poll: accepted ones at once,
// failed ones together at the end, after one batch of notes (giveBack).
func (w *Worker) process(ctx context.Context, stop <-chan struct{}, cl *kgo.Client, rs []*Record) {
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	lanes := lanesOf(rs)
	next := make(chan []*Record)
	var (
		wg     sync.WaitGroup
		failMu sync.Mutex
		failed []failure
	)
	fail := func(f failure) {
		failMu.Lock()
		defer failMu.Unlock()
		failed = append(failed, f)
	}
	for range min(w.o.concurrency, len(lanes)) {
		wg.Go(func() {
			for lane := range next {
				for i, r := range lane {
					if stopped() {
						w.unhandled(lane[i:])
						break
					}
					w.handle(ctx, cl, r, fail)
				}
			}
		})
	}
dispatch:
	for i, lane := range lanes {
		select {
		case next <- lane:
		case <-stop:
			for _, l := range lanes[i:] {
				w.unhandled(l)
			}
			break dispatch
		}
	}
	close(next)
	wg.Wait()
	w.giveBack(ctx, cl, failed)
}

// lanesOf groups a fetch's records by partition and key, keeping offset
// order within each; keyless records each get a lane of their own.
func lanesOf(rs []*Record) [][]*Record {
	type laneKey struct {
		topic     string
		partition int32
		key       string
	}
	var lanes [][]*Record
	idx := map[laneKey]int{}
	for _, r := range rs {
		if r.Key == nil {
			lanes = append(lanes, []*Record{r})
			continue
		}
		k := laneKey{r.Topic, r.Partition, string(r.Key)}
		i, ok := idx[k]
		if !ok {
			i = len(lanes)
			idx[k] = i
			lanes = append(lanes, nil)
		}
		lanes[i] = append(lanes[i], r)
	}
	return lanes
}

// failure is a record its handler failed: it is acknowledged with status
// (REJECT or RELEASE) once text has been sent to its leader.
type failure struct {
	r      *Record
	status kgo.AckStatus
	text   string
}

// handle runs the handler on r and acknowledges r by its result; a failed
// record goes to fail, to be acknowledged with the fetch's other failures
// after their notes (giveBack).
func (w *Worker) handle(ctx context.Context, cl *kgo.Client, r *Record, fail func(failure)) {
	deadline := r.AcquisitionDeadline()
	if !deadline.IsZero() {
		if !time.Now().Before(deadline) {
			// Another worker may have it by now; handling it here would
			// only duplicate work. Releasing is refused or harmless.
			w.expired.Add(1)
			cl.MarkAcks(kgo.AckRelease, r)
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	err := w.h(ctx, r)
	switch reason, rejected := IsRejected(err); {
	case err == nil:
		w.accepted.Add(1)
		cl.MarkAcks(kgo.AckAccept, r)
	case rejected:
		w.rejected.Add(1)
		w.c.log.Info("record rejected", "group", w.group, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
			"delivery", r.DeliveryCount(), "reason", reason)
		fail(failure{r: r, status: kgo.AckReject, text: reason})
	default:
		w.released.Add(1)
		w.c.log.Debug("record released for redelivery", "group", w.group, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
			"delivery", r.DeliveryCount(), "error", err)
		fail(failure{r: r, status: kgo.AckRelease, text: err.Error()})
	}
}

// noteTimeout bounds the notes of one fetch's failures, which hold back
// their acknowledgements.
const noteTimeout = 2 * time.Second

// giveBack acknowledges the records whose handlers failed, after telling
// their leaders why (sendNotes). A note that cannot be delivered does not
// hold the acknowledgement back beyond noteTimeout; none is sent when the
// handlers' context is done (an impatient stop: the errors would say only
// that).
func (w *Worker) giveBack(ctx context.Context, cl *kgo.Client, failed []failure) {
	if len(failed) == 0 {
		return
	}
	if ctx.Err() == nil {
		nctx, cancel := context.WithTimeout(ctx, noteTimeout)
		w.sendNotes(nctx, cl, failed)
		cancel()
	}
	for _, f := range failed {
		cl.MarkAcks(f.status, f.r)
	}
}

// unhandled counts records left unacknowledged at a stop: leaving the
// group releases them.
func (w *Worker) unhandled(rs []*Record) {
	w.released.Add(int64(len(rs)))
}

// acked is franz-go's report of the broker's answers to acknowledgements.
func (w *Worker) acked(_ *kgo.Client, res kgo.ShareAckResults) {
	for _, r := range res {
		if r.Err != nil {
			w.ackErrs.Add(1)
			w.c.log.Warn("acknowledgement failed; the records are delivered again", "group", w.group, "topic", r.Topic, "partition", r.Partition, "error", r.Err)
		}
	}
}
