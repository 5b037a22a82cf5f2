package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Run performs the workload cfg describes against a Kafka-protocol cluster
// and returns its figures. Progress, if set, is called once per interval.
//
// A run that ends but lost messages (failed sends, a short read) returns
// its Result and an error wrapping ErrIncomplete; one cut short by ctx
// returns its Result, marked Interrupted, and ctx's error. Other errors
// return no Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	adm, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID("sluice-bench"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	defer adm.Close()

	tp, notes, err := setupTopic(ctx, adm, &cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Workload != Produce && cfg.ShareGroup == "" && cfg.Consumers > tp.Partitions {
		return nil, fmt.Errorf("%w: %d consumers for %d partitions: each consumer needs at least one partition",
			ErrConfig, cfg.Consumers, tp.Partitions)
	}

	if cfg.Workload != Produce && cfg.ShareGroup != "" {
		if err := startShareGroupAtEarliest(ctx, adm, cfg.ShareGroup); err != nil {
			return nil, err
		}
	}

	r := &runner{cfg: &cfg, adm: adm, c: &counters{}, tag: rand.Uint64(), res: &Result{
		Schema: Schema, StartedAt: time.Now().UTC(), Config: cfg, Topic: tp, Notes: notes,
	}}
	start := time.Now()
	r.smp = &sampler{start: start, last: start, c: r.c}
	stop, done := make(chan struct{}), make(chan struct{})
	go r.smp.run(cfg.Interval, cfg.Progress, stop, done)

	switch cfg.Workload {
	case Produce:
		r.res.Produce, _, err = runProduce(ctx, r.cfg, r.c, r.smp, r.tag, cfg.Messages, cfg.Duration, false)
	case Consume:
		err = r.consume(ctx)
	case EndToEnd:
		err = r.endToEnd(ctx)
	}
	close(stop)
	<-done
	res := r.res
	res.Seconds = time.Since(start).Seconds()
	res.Series = r.smp.series
	if res.Series == nil {
		res.Series = []Sample{}
	}
	if ctx.Err() != nil {
		res.Interrupted = true
		return res, ctx.Err()
	}
	if err != nil && !errors.Is(err, ErrIncomplete) {
		return nil, err
	}
	if p := res.Produce; p != nil && p.Failed > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d of %d sends failed; first error: %s", p.Failed, p.Produced, p.FirstError))
		err = errors.Join(err, fmt.Errorf("%w: %d of %d sends failed (first: %s)", ErrIncomplete, p.Failed, p.Produced, p.FirstError))
	}
	return res, err
}

type runner struct {
	cfg *Config
	adm *kgo.Client
	c   *counters
	smp *sampler
	tag uint64
	res *Result
}

// consume reads the topic's backlog from its start, filling it first up to
// cfg.Messages.
func (r *runner) consume(ctx context.Context) error {
	cfg := r.cfg
	starts, err := listOffsets(ctx, r.adm, cfg.Topic, false)
	if err != nil {
		return err
	}
	ends, err := listOffsets(ctx, r.adm, cfg.Topic, true)
	if err != nil {
		return err
	}
	backlog := backlogOf(starts, ends)
	if cfg.Messages > backlog {
		fill := cfg.Messages - backlog
		r.res.Notes = append(r.res.Notes, fmt.Sprintf("filled the topic with %d messages first; the produce figures are the fill's", fill))
		r.res.Produce, _, err = runProduce(ctx, cfg, r.c, r.smp, r.tag, fill, 0, false)
		if err != nil || ctx.Err() != nil {
			return err
		}
		if ends, err = listOffsets(ctx, r.adm, cfg.Topic, true); err != nil {
			return err
		}
		backlog = backlogOf(starts, ends)
	}
	if backlog == 0 {
		return fmt.Errorf("%w %q is empty: nothing to consume (pass a message count to fill it first)", ErrTopic, cfg.Topic)
	}
	want := backlog
	if cfg.Messages > 0 {
		want = min(want, cfg.Messages)
	}
	ph, err := startConsume(ctx, cfg, r.c, r.smp, r.tag, starts, false)
	if err != nil {
		return err
	}
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = ph.start.Add(cfg.Duration)
	}
	why := await(ctx, func() bool { return r.c.consumed.Load() >= want || ph.caughtUp(ends) },
		r.c.consumed.Load, cfg.DrainTimeout, deadline)
	ph.stop()
	cr := ph.result()
	cr.CatchUpMsgsPerSec = cr.MsgsPerSec
	r.res.Consume = cr
	if why == stalled {
		msg := fmt.Sprintf("consumers read %d of %d messages and then nothing for %v", cr.Consumed, want, cfg.DrainTimeout)
		if ph.firstErr != "" {
			msg += "; first fetch error: " + ph.firstErr
		}
		r.res.Notes = append(r.res.Notes, msg)
		return fmt.Errorf("%w: %s", ErrIncomplete, msg)
	}
	if why == timeUp {
		r.res.Notes = append(r.res.Notes, fmt.Sprintf("stopped at the duration limit after %d of %d messages", cr.Consumed, want))
	}
	return nil
}

func backlogOf(starts, ends map[int32]int64) int64 {
	var n int64
	for p, end := range ends {
		n += max(end-starts[p], 0)
	}
	return n
}

// endToEnd produces and consumes at once; consumers start at the current
// end of the topic, so they read only what this run (and any other
// producer meanwhile) sends.
func (r *runner) endToEnd(ctx context.Context) error {
	cfg := r.cfg
	from, err := listOffsets(ctx, r.adm, cfg.Topic, true)
	if err != nil {
		return err
	}
	ph, err := startConsume(ctx, cfg, r.c, r.smp, r.tag, from, true)
	if err != nil {
		return err
	}
	pr, _, err := runProduce(ctx, cfg, r.c, r.smp, r.tag, cfg.Messages, cfg.Duration, true)
	if err != nil {
		ph.stop()
		return err
	}
	r.res.Produce = pr
	produced := time.Now()
	taggedAtFinish := r.c.tagged.Load()
	why := await(ctx, func() bool { return r.c.tagged.Load() >= pr.Acknowledged }, r.c.tagged.Load, cfg.DrainTimeout, time.Time{})
	ph.stop()

	cr := ph.result()
	if last := time.Unix(0, ph.last.Load()); last.After(produced) {
		cr.DrainSeconds = last.Sub(produced).Seconds()
		if left := r.c.tagged.Load() - taggedAtFinish; left > 0 {
			cr.CatchUpMsgsPerSec = float64(left) / cr.DrainSeconds
		}
	}
	r.res.Consume = cr
	e2e := summarize(mergeTotals(ph.e2eRecs))
	r.res.EndToEnd = &e2e
	if foreign := cr.Consumed - r.c.tagged.Load(); foreign > 0 {
		r.res.Notes = append(r.res.Notes, fmt.Sprintf("%d messages read were not this run's (another producer on the topic); they have no end-to-end latency", foreign))
	}
	if why == stalled {
		msg := fmt.Sprintf("consumers read %d of %d acknowledged messages within %v of the producers' finish",
			r.c.tagged.Load(), pr.Acknowledged, cfg.DrainTimeout)
		if ph.firstErr != "" {
			msg += "; first fetch error: " + ph.firstErr
		}
		r.res.Notes = append(r.res.Notes, msg)
		return fmt.Errorf("%w: %s", ErrIncomplete, msg)
	}
	return nil
}

type awaitEnd int

const (
	reached awaitEnd = iota
	stalled          // no progress for the stall time
	timeUp           // the deadline passed
	cancelled
)

// await polls done until it holds, ctx ends, the deadline (if any) passes,
// or progress has not moved for stall.
func await(ctx context.Context, done func() bool, progress func() int64, stall time.Duration, deadline time.Time) awaitEnd {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	last, lastMove := progress(), time.Now()
	for !done() {
		select {
		case <-ctx.Done():
			return cancelled
		case now := <-t.C:
			if !deadline.IsZero() && now.After(deadline) {
				return timeUp
			}
			if p := progress(); p != last {
				last, lastMove = p, now
			} else if now.Sub(lastMove) > stall {
				return stalled
			}
		}
	}
	return reached
}
