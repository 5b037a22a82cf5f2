package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// Headers of a share group's dead letters, written by the broker next to
// the original record's key, value and headers, and the header Redrive
// adds to the copies it makes.
const (
	HeaderDeadLetterTopic         = "sluice.dlq.topic"          // the source topic
	HeaderDeadLetterPartition     = "sluice.dlq.partition"      // its partition
	HeaderDeadLetterOffset        = "sluice.dlq.offset"         // the record's offset there
	HeaderDeadLetterDeliveryCount = "sluice.dlq.delivery.count" // deliveries it had
	HeaderDeadLetterGroup         = "sluice.dlq.group"          // the share group that gave up on it
	HeaderDeadLetterReason        = "sluice.dlq.reason"         // ReasonRejected or ReasonDeliveryLimit
	HeaderDeadLetterError         = "sluice.dlq.error"          // the last error a worker reported for it (Reject's reason, a handler's error); absent when none reached the leader
	HeaderDeadLetterTimestamp     = "sluice.dlq.timestamp"      // the original record's timestamp, Unix ms
	HeaderRedrivenFrom            = "sluice.redriven-from"      // on a redriven copy: "dlq-topic/partition/offset"

	headerDeadLetterPrefix = "sluice.dlq."
)

// Dead-letter reasons (sluice.dlq.reason).
const (
	ReasonRejected      = "rejected"       // a consumer rejected it (Reject, kgo.AckReject)
	ReasonDeliveryLimit = "delivery limit" // released or timed out share.delivery.count.limit times
)

// ErrNotDeadLetter is returned by ParseDeadLetter for a record without
// the sluice.dlq.topic header.
var ErrNotDeadLetter = errors.New("client: not a dead letter: no " + HeaderDeadLetterTopic + " header")

// DeadLetterRecord is a record of a dead-letter topic with its
// provenance read from the sluice.dlq.* headers.
type DeadLetterRecord struct {
	// Record is the record as stored in the dead-letter topic: its
	// Topic, Partition and Offset are the dead-letter topic's, its
	// Timestamp when it was dead-lettered.
	Record          *Record
	SourceTopic     string
	SourcePartition int32 // -1 when the header is missing
	SourceOffset    int64 // -1 when the header is missing
	DeliveryCount   int32
	Group           string
	Reason          string
	// Error is the last error a Worker reported for the record: the
	// reason given to Reject, or the text of the handler's error that
	// released it last. Empty when none reached the partition's leader
	// (another client, a note that failed, a leader change in between).
	Error      string
	SourceTime time.Time // the original record's timestamp; zero when missing
}

// Headers returns the original record's headers: the stored ones without
// the sluice.dlq.* provenance.
func (d DeadLetterRecord) Headers() []Header {
	var out []Header
	for _, h := range d.Record.Headers {
		if !strings.HasPrefix(h.Key, headerDeadLetterPrefix) {
			out = append(out, h)
		}
	}
	return out
}

// ParseDeadLetter reads r's provenance. A record without
// sluice.dlq.topic is ErrNotDeadLetter (the result still holds r); a
// malformed number is an error naming the header.
func ParseDeadLetter(r *Record) (DeadLetterRecord, error) {
	d := DeadLetterRecord{Record: r, SourcePartition: -1, SourceOffset: -1}
	var errs []error
	num := func(key, v string, bits int) int64 {
		n, err := strconv.ParseInt(v, 10, bits)
		if err != nil {
			errs = append(errs, fmt.Errorf("client: dead letter %s/%d offset %d: header %s %q: want an integer", r.Topic, r.Partition, r.Offset, key, v))
		}
		return n
	}
	for _, h := range r.Headers {
		v := string(h.Value)
		switch h.Key {
		case HeaderDeadLetterTopic:
			d.SourceTopic = v
		case HeaderDeadLetterPartition:
			d.SourcePartition = int32(num(h.Key, v, 32))
		case HeaderDeadLetterOffset:
			d.SourceOffset = num(h.Key, v, 64)
		case HeaderDeadLetterDeliveryCount:
			d.DeliveryCount = int32(num(h.Key, v, 32))
		case HeaderDeadLetterGroup:
			d.Group = v
		case HeaderDeadLetterReason:
			d.Reason = v
		case HeaderDeadLetterError:
			d.Error = v
		case HeaderDeadLetterTimestamp:
			d.SourceTime = time.UnixMilli(num(h.Key, v, 64))
		}
	}
	if d.SourceTopic == "" {
		errs = append(errs, ErrNotDeadLetter)
	}
	return d, errors.Join(errs...)
}

// errStop ends a Tail early.
var errStop = errors.New("client: stop reading")

// DeadLetters reads up to limit records (0: all) of the dead-letter topic,
// oldest first, up to its end as of the call, sorted by partition and
// offset. Records that are not dead letters (no sluice.dlq.topic) are
// returned too, with empty provenance. An unknown topic is
// ErrUnknownTopic.
func (a *Admin) DeadLetters(ctx context.Context, topic string, limit int) ([]DeadLetterRecord, error) {
	var out []DeadLetterRecord
	err := a.c.Tail(ctx, topic, TailOptions{StopAtEnd: true}, func(r *Record) error {
		if limit > 0 && len(out) >= limit {
			return errStop
		}
		d, _ := ParseDeadLetter(r)
		out = append(out, d)
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	slices.SortFunc(out, func(x, y DeadLetterRecord) int {
		if x.Record.Partition != y.Record.Partition {
			return int(x.Record.Partition - y.Record.Partition)
		}
		return int(x.Record.Offset - y.Record.Offset)
	})
	return out, nil
}

// ReadDeadLetter reads the record at offset of the dead-letter topic's
// partition. An offset with no record (past the end, removed by
// retention or compaction) is ErrNotFound.
func (a *Admin) ReadDeadLetter(ctx context.Context, topic string, partition int32, offset int64) (DeadLetterRecord, error) {
	var got *Record
	err := a.c.Tail(ctx, topic, TailOptions{From: AtOffset(offset), Partitions: []int32{partition}, StopAtEnd: true}, func(r *Record) error {
		got = r
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return DeadLetterRecord{}, err
	}
	if got == nil || got.Offset != offset {
		return DeadLetterRecord{}, &Error{Op: "read dead letter", Topic: topic, Partition: partition,
			Message: fmt.Sprintf("no record at offset %d", offset), Err: ErrNotFound}
	}
	d, _ := ParseDeadLetter(got)
	return d, nil
}

// RedriveOptions says what Redrive copies.
type RedriveOptions struct {
	// Rate caps the copies per second; 0 copies as fast as the cluster
	// takes them.
	Rate float64
	// Limit caps the copies of this run; 0 copies everything up to the
	// topic's end as of the start.
	Limit int
	// Group is the consumer group whose committed offsets on the
	// dead-letter topic record how far redriving got (default
	// "sluice-redrive-" + the topic). No consumer may run in it.
	Group string
	// Filter picks the dead letters to copy; nil copies all. Records it
	// declines are passed over and count as done for Group: redrive them
	// later with another Group.
	Filter func(DeadLetterRecord) bool
	// DryRun reads and counts what would be copied, and copies and
	// commits nothing.
	DryRun bool
	// Progress, if set, is called on Redrive's goroutine after each batch
	// is copied and committed, with the counts so far.
	Progress func(RedriveResult)
}

// RedriveResult counts what Redrive did.
type RedriveResult struct {
	Topic  string `json:"topic"`
	Group  string `json:"group"`
	DryRun bool   `json:"dry_run"`
	// Copied counts records copied back to their source topics (on a dry
	// run, those that would be).
	Copied int `json:"copied"`
	// Skipped counts records Filter declined.
	Skipped int `json:"skipped"`
	// Invalid counts records without sluice.dlq.topic, left where they are.
	Invalid int `json:"invalid"`
	// Remaining counts records not examined, up to the end as of the
	// start: left by Limit, or by an error.
	Remaining int64 `json:"remaining"`
	// Sources counts the copies per source topic.
	Sources map[string]int `json:"sources"`
	// Partitions says which offsets of each partition were examined.
	Partitions []RedrivePartition `json:"partitions"`
}

// RedrivePartition is the range of one dead-letter partition a Redrive
// examined: From up to Next (exclusive); Next is committed for the
// group, so the next run starts there. End is the partition's end as of
// the start.
type RedrivePartition struct {
	Partition int32 `json:"partition"`
	From      int64 `json:"from"`
	Next      int64 `json:"next"`
	End       int64 `json:"end"`
}

// Redrive copies the dead letters of topic back to their source topics
// (from sluice.dlq.topic): the original key, value and headers, without
// the sluice.dlq.* ones, plus sluice.redriven-from naming the dead
// letter. It starts where o.Group's committed offsets say the last run
// stopped (the log start the first time) and reads up to the end as of
// the call, so records dead-lettered again meanwhile wait for the next
// run. After each batch is acknowledged it commits the group's offsets
// past it: a re-run copies nothing twice, unless a run died between a
// batch's copy and its commit (at least once). Copies are keyed as the
// originals, so they land on the same partitions unless the source
// topic's partition count changed.
//
// It returns the counts, also on an error (what was committed before it
// stands).
func (a *Admin) Redrive(ctx context.Context, topic string, o RedriveOptions) (RedriveResult, error) {
	if o.Group == "" {
		o.Group = "sluice-redrive-" + topic
	}
	res := RedriveResult{Topic: topic, Group: o.Group, DryRun: o.DryRun, Sources: map[string]int{}, Partitions: []RedrivePartition{}}
	switch {
	case o.Rate < 0:
		return res, fmt.Errorf("%w: rate %v: want >= 0 (0: no limit)", ErrInvalidOption, o.Rate)
	case o.Limit < 0:
		return res, fmt.Errorf("%w: limit %d: want >= 0 (0: no limit)", ErrInvalidOption, o.Limit)
	}
	starts, err := a.offsetsAt(ctx, topic, Beginning())
	if err != nil {
		return res, err
	}
	ends, err := a.offsetsAt(ctx, topic, End())
	if err != nil {
		return res, err
	}
	committed, err := a.k.FetchOffsetsForTopics(ctx, o.Group, topic)
	if err != nil {
		return res, groupErr("redrive", o.Group, err)
	}
	for _, p := range slices.Sorted(func(yield func(int32) bool) {
		for p := range ends {
			if !yield(p) {
				return
			}
		}
	}) {
		from := starts[p]
		if c, ok := committed.Lookup(topic, p); ok && c.Err == nil && c.At > from {
			from = min(c.At, ends[p])
		}
		res.Partitions = append(res.Partitions, RedrivePartition{Partition: p, From: from, Next: from, End: ends[p]})
	}
	rd := &redriver{a: a, topic: topic, o: o, res: &res, batchMax: 500}
	if o.Rate > 0 {
		rd.interval = time.Duration(float64(time.Second) / o.Rate)
		rd.batchMax = min(max(int(o.Rate), 1), 500)
	}
	for i := range res.Partitions {
		if err = rd.partition(ctx, &res.Partitions[i]); err == nil {
			err = ctx.Err() // Tail ends quietly when ctx does
		}
		if err != nil {
			break
		}
	}
	for _, p := range res.Partitions {
		res.Remaining += p.End - p.Next
	}
	return res, err
}

// redriver copies one partition after another, in batches.
type redriver struct {
	a        *Admin
	topic    string
	o        RedriveOptions
	res      *RedriveResult
	batchMax int
	interval time.Duration // between copies; 0: no limit
	next     time.Time     // when the next copy may go

	batch   []*Record
	sources []string // batch's source topics
}

func (rd *redriver) partition(ctx context.Context, p *RedrivePartition) error {
	if p.Next >= p.End || rd.limitReached() {
		return nil
	}
	pos := p.Next // past the last record examined
	err := rd.a.c.Tail(ctx, rd.topic, TailOptions{From: AtOffset(p.Next), Partitions: []int32{p.Partition}, StopAtEnd: true}, func(r *Record) error {
		if r.Offset >= p.End || rd.limitReached() {
			return errStop
		}
		d, _ := ParseDeadLetter(r) // malformed numbers do not stop a copy
		switch {
		case d.SourceTopic == "":
			rd.res.Invalid++
		case rd.o.Filter != nil && !rd.o.Filter(d):
			rd.res.Skipped++
		default:
			if err := rd.pace(ctx, p, pos); err != nil {
				return err
			}
			rd.add(d)
		}
		pos = r.Offset + 1
		if len(rd.batch) >= rd.batchMax {
			return rd.flush(ctx, p, pos)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	// Also when the batch is empty: records passed over count as done.
	return rd.flush(ctx, p, pos)
}

func (rd *redriver) limitReached() bool {
	return rd.o.Limit > 0 && rd.res.Copied+len(rd.batch) >= rd.o.Limit
}

// pace waits for the copy's turn under Rate. Records waiting in the batch
// go out first, so a rate-limited redrive sends each copy when it is due
// rather than in bursts; when sending falls behind, copies batch up.
func (rd *redriver) pace(ctx context.Context, p *RedrivePartition, pos int64) error {
	if rd.interval == 0 {
		return nil
	}
	now := time.Now()
	if now.Before(rd.next) {
		if err := rd.flush(ctx, p, pos); err != nil {
			return err
		}
		t := time.NewTimer(time.Until(rd.next))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		now = time.Now()
	}
	if rd.next.Before(now) {
		rd.next = now // idle time is not saved up for a burst
	}
	rd.next = rd.next.Add(rd.interval)
	return nil
}

// add queues the copy of d.
func (rd *redriver) add(d DeadLetterRecord) {
	r := d.Record
	c := &Record{Topic: d.SourceTopic, Key: r.Key, Value: r.Value}
	for _, h := range d.Headers() {
		if h.Key != HeaderRedrivenFrom {
			c.Headers = append(c.Headers, h)
		}
	}
	c.Headers = append(c.Headers, Header{Key: HeaderRedrivenFrom, Value: fmt.Appendf(nil, "%s/%d/%d", r.Topic, r.Partition, r.Offset)})
	rd.batch = append(rd.batch, c)
	rd.sources = append(rd.sources, d.SourceTopic)
}

// flush copies the batch, then commits pos for the partition.
func (rd *redriver) flush(ctx context.Context, p *RedrivePartition, pos int64) error {
	if pos == p.Next && len(rd.batch) == 0 {
		return nil
	}
	if !rd.o.DryRun {
		if err := rd.a.c.ProduceSync(ctx, rd.batch...); err != nil {
			return err
		}
		offs := kadm.Offsets{}
		offs.Add(kadm.Offset{Topic: rd.topic, Partition: p.Partition, At: pos, LeaderEpoch: -1})
		cres, err := rd.a.k.CommitOffsets(ctx, rd.o.Group, offs)
		if err == nil {
			err = cres.Error()
		}
		if err != nil {
			return groupErr("redrive: commit", rd.o.Group, err)
		}
	}
	rd.res.Copied += len(rd.batch)
	for _, s := range rd.sources {
		rd.res.Sources[s]++
	}
	p.Next = pos
	rd.batch, rd.sources = rd.batch[:0], rd.sources[:0]
	if rd.o.Progress != nil {
		snap := *rd.res
		snap.Sources, snap.Partitions = maps.Clone(snap.Sources), slices.Clone(snap.Partitions)
		rd.o.Progress(snap)
	}
	return nil
}
