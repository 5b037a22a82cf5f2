package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
)

func (a *app) newDLQCmd() *cobra.Command {
	return parent("dlq", "Dead-letter topics of share groups: list, show, redrive",
		a.newDLQList(), a.newDLQShow(), a.newDLQRedrive())
}

// deadLetterRow is one dead letter in dlq list --json; dlq show adds the
// value and the stored headers.
type deadLetterRow struct {
	Partition       int32      `json:"partition"`
	Offset          int64      `json:"offset"`
	Timestamp       time.Time  `json:"timestamp"` // when it was dead-lettered
	SourceTopic     string     `json:"source_topic"`
	SourcePartition int32      `json:"source_partition"`
	SourceOffset    int64      `json:"source_offset"`
	SourceTimestamp *time.Time `json:"source_timestamp"` // the original record's; null when unknown
	DeliveryCount   int32      `json:"delivery_count"`
	Reason          string     `json:"reason"`
	Error           string     `json:"error"` // the worker's last error (sluice.dlq.error); empty when none reached the broker
	Group           string     `json:"group"`
	AgeSeconds      float64    `json:"age_seconds"` // since it was dead-lettered
	Key             *string    `json:"key"`
}

func newDeadLetterRow(d client.DeadLetterRecord, now time.Time) deadLetterRow {
	r := d.Record
	row := deadLetterRow{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UTC(), SourceTopic: d.SourceTopic,
		SourcePartition: d.SourcePartition, SourceOffset: d.SourceOffset, DeliveryCount: d.DeliveryCount, Reason: d.Reason,
		Error: d.Error, Group: d.Group, AgeSeconds: max(now.Sub(r.Timestamp).Seconds(), 0), Key: strPtr(r.Key)}
	if !d.SourceTime.IsZero() {
		t := d.SourceTime.UTC()
		row.SourceTimestamp = &t
	}
	return row
}

// source prints topic/partition/offset, or - for a record without provenance.
func (r deadLetterRow) source() string {
	if r.SourceTopic == "" {
		return "-"
	}
	return fmt.Sprintf("%s/%d/%d", r.SourceTopic, r.SourcePartition, r.SourceOffset)
}

// maxErrorColumn is the most of an error dlq list prints (dlq show prints
// it all).
const maxErrorColumn = 60

// oneLine is s on one line for a table: control characters (newlines,
// tabs) become spaces, and past limit runes (0: no limit) it is cut.
func oneLine(s string, limit int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if limit > 3 && utf8.RuneCountInString(s) > limit {
		s = string([]rune(s)[:limit-3]) + "..."
	}
	return s
}

// age prints a duration coarsely: 45s, 12m, 3h, 2d.
func age(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func (a *app) newDLQList() *cobra.Command {
	var n int
	cmd := &cobra.Command{
		Use:     "list TOPIC",
		Aliases: []string{"ls"},
		Short:   "List a dead-letter topic's records with where they came from and why",
		Long: `List the records of a dead-letter topic, oldest first: where each came from
(source topic/partition/offset), how often it was delivered, why it was
dead-lettered ("rejected" by a consumer, or "delivery limit"), the share group,
how long ago, and the last error the worker reported (cut short; dlq show
prints it whole). Records written there by something else show - as source.`,
		Example: `  sluicectl dlq list signups.dlq
  sluicectl dlq list signups.dlq -n 0 --json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			topic := argv[0]
			if n < 0 {
				return usagef("-n %d: want >= 0 (0: all)", n)
			}
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			total, err := recordCount(ctx, c, topic)
			if err != nil {
				return err
			}
			dls, err := c.Admin().DeadLetters(ctx, topic, n)
			if err != nil {
				return err
			}
			now := time.Now()
			rows := []deadLetterRow{}
			for _, d := range dls {
				rows = append(rows, newDeadLetterRow(d, now))
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"topic": topic, "dead_letters": rows, "total": total})
			}
			t := newTable(cmd.OutOrStdout(), "PARTITION", "OFFSET", "SOURCE", "DELIVERIES", "REASON", "GROUP", "AGE", "ERROR")
			for _, r := range rows {
				t.row(r.Partition, r.Offset, r.source(), r.DeliveryCount, r.Reason, r.Group, age(r.AgeSeconds), oneLine(r.Error, maxErrorColumn))
			}
			if err := t.flush(); err != nil {
				return err
			}
			if int64(len(rows)) < total {
				fmt.Fprintf(cmd.ErrOrStderr(), "showing %d of %d records; -n 0 shows all\n", len(rows), total)
			}
			return nil
		},
	}
	cmd.Flags().IntVarP(&n, "count", "n", 50, "show at most this many records, oldest first (0: all)")
	cmd.ValidArgsFunction = a.completeTopics(1)
	return cmd
}

// recordCount is the records a topic holds: end minus start per partition
// (compaction aside).
func recordCount(ctx context.Context, c *client.Client, topic string) (int64, error) {
	k := c.Admin().Kadm()
	starts, err := k.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, &client.Error{Op: "list offsets", Topic: topic, Partition: -1, Err: err}
	}
	ends, err := k.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, &client.Error{Op: "list offsets", Topic: topic, Partition: -1, Err: err}
	}
	var n int64
	for p, e := range ends[topic] {
		n += e.Offset - starts[topic][p].Offset
	}
	return n, nil
}

// deadLetterShow is dlq show --json.
type deadLetterShow struct {
	deadLetterRow
	Topic   string       `json:"topic"`
	Value   *string      `json:"value"`
	Headers []headerJSON `json:"headers"` // as stored, sluice.dlq.* included
}

func (a *app) newDLQShow() *cobra.Command {
	var partition int32
	cmd := &cobra.Command{
		Use:   "show TOPIC OFFSET",
		Short: "Print one dead letter in full: provenance, key, headers and value",
		Args:  args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			topic := argv[0]
			off, err := strconv.ParseInt(argv[1], 10, 64)
			if err != nil || off < 0 {
				return usagef("offset %q: want a number >= 0", argv[1])
			}
			if partition < 0 {
				return usagef("--partition %d: want >= 0", partition)
			}
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			d, err := c.Admin().ReadDeadLetter(ctx, topic, partition, off)
			if errors.Is(err, client.ErrNotFound) {
				return codedError{exitNotFound, fmt.Errorf("%s/%d has no record at offset %d (see sluicectl dlq list %s)", topic, partition, off, topic)}
			}
			if err != nil {
				return err
			}
			out := deadLetterShow{deadLetterRow: newDeadLetterRow(d, time.Now()), Topic: topic, Value: strPtr(d.Record.Value), Headers: []headerJSON{}}
			for _, h := range d.Record.Headers {
				out.Headers = append(out.Headers, headerJSON{h.Key, string(h.Value)})
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			t := newTable(w)
			t.row("TOPIC", fmt.Sprintf("%s/%d/%d", topic, out.Partition, out.Offset))
			t.row("DEAD-LETTERED", fmt.Sprintf("%s (%s ago)", out.Timestamp.Format(time.RFC3339), age(out.AgeSeconds)))
			t.row("SOURCE", out.source())
			if out.SourceTimestamp != nil {
				t.row("PRODUCED", out.SourceTimestamp.Format(time.RFC3339Nano))
			}
			t.row("REASON", out.Reason)
			t.row("ERROR", oneLine(out.Error, 0))
			t.row("DELIVERIES", out.DeliveryCount)
			t.row("GROUP", out.Group)
			t.row("KEY", nullable(out.Key))
			for _, h := range out.Headers {
				t.row("HEADER", h.Key+"="+h.Value)
			}
			t.row("VALUE", nullable(out.Value))
			return t.flush()
		},
	}
	cmd.Flags().Int32VarP(&partition, "partition", "p", 0, "the dead-letter topic's partition (dead-letter topics the broker creates have one)")
	cmd.ValidArgsFunction = a.completeTopics(1)
	return cmd
}

func nullable(s *string) string {
	if s == nil {
		return "(null)"
	}
	return *s
}

func (a *app) newDLQRedrive() *cobra.Command {
	var (
		rate   float64
		limit  int
		group  string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "redrive TOPIC",
		Short: "Copy dead letters back to their source topics, rate-limited, continuing where the last run stopped",
		Long: `Copy the dead letters of TOPIC back to the topics they came from: the original
key, value and headers, without the sluice.dlq.* headers, plus
sluice.redriven-from naming the dead letter. Share groups then deliver them
afresh, with a new delivery count.

Progress is a consumer group's committed offsets on TOPIC (--group, default
sluice-redrive-TOPIC), committed after each batch is stored: a later run, or
one after Ctrl-C, continues where this one stopped and copies nothing twice
(unless a run dies between storing a batch and committing it). A run reads up
to the end as of its start. Records without provenance are left alone.
--dry-run counts what would be copied and changes nothing. Progress goes to
stderr, the summary to stdout.`,
		Example: `  sluicectl dlq redrive signups.dlq --dry-run
  sluicectl dlq redrive signups.dlq --rate 50 --limit 1000`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			topic := argv[0]
			switch {
			case rate < 0:
				return usagef("--rate %v: want >= 0 (0: no limit)", rate)
			case limit < 0:
				return usagef("--limit %d: want >= 0 (0: no limit)", limit)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			errw := cmd.ErrOrStderr()
			verb := "copied"
			if dryRun {
				verb = "would copy"
			}
			var last time.Time
			res, err := c.Admin().Redrive(cmd.Context(), topic, client.RedriveOptions{
				Rate: rate, Limit: limit, Group: group, DryRun: dryRun,
				Progress: func(r client.RedriveResult) {
					if time.Since(last) < time.Second {
						return
					}
					last = time.Now()
					fmt.Fprintf(errw, "%s %d so far (not dead letters %d)\n", verb, r.Copied, r.Invalid)
				},
			})
			if err != nil {
				if res.Copied > 0 && cmd.Context().Err() == nil {
					fmt.Fprintf(errw, "%s %d before the error; a new run continues after them\n", verb, res.Copied)
				}
				if cmd.Context().Err() != nil {
					return codedError{exitError, fmt.Errorf("interrupted after %d copies; a new run continues where this one stopped", res.Copied)}
				}
				return err
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			var srcs []string
			for _, s := range slices.Sorted(maps.Keys(res.Sources)) {
				srcs = append(srcs, fmt.Sprintf("%s: %d", s, res.Sources[s]))
			}
			fmt.Fprintf(w, "%s %d dead letters from %s", verb, res.Copied, topic)
			if len(srcs) > 0 {
				fmt.Fprintf(w, " (%s)", strings.Join(srcs, ", "))
			}
			fmt.Fprintf(w, "; not dead letters %d; %d left\n", res.Invalid, res.Remaining)
			t := newTable(w, "PARTITION", "FROM", "NEXT", "END")
			for _, p := range res.Partitions {
				t.row(p.Partition, p.From, p.Next, p.End)
			}
			if err := t.flush(); err != nil {
				return err
			}
			if dryRun {
				fmt.Fprintln(w, "dry run: nothing was copied or committed")
			} else {
				fmt.Fprintf(w, "progress committed for group %s\n", res.Group)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Float64Var(&rate, "rate", 0, "copy at most this many records per second (0: no limit)")
	f.IntVar(&limit, "limit", 0, "copy at most this many records in this run (0: all)")
	f.StringVarP(&group, "group", "g", "", "consumer group that records the progress (default sluice-redrive-TOPIC)")
	f.BoolVar(&dryRun, "dry-run", false, "count what would be copied; copy and commit nothing")
	cmd.ValidArgsFunction = a.completeTopics(1)
	_ = cmd.RegisterFlagCompletionFunc("group", a.completeGroups)
	return cmd
}
