package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
)

// shareOffsetsResult is share-group offsets --json.
type shareOffsetsResult struct {
	Group   string           `json:"group"`
	Offsets []shareOffsetRow `json:"offsets"`
}

type shareOffsetRow struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	StartOffset int64  `json:"start_offset"`
	Lag         int64  `json:"lag"` // -1: unknown
	LeaderEpoch int32  `json:"leader_epoch"`
}

func (a *app) newShareGroupOffsets() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "offsets GROUP",
		Short: "Show a share group's start offset and lag on each partition it consumed",
		Long: `Show, for every partition a share group has state on, its start offset (the
share-partition start offset, SPSO: every record before it is acknowledged or
archived; some after it may be done too) and its lag (records from the start
offset to the end not yet done), as each partition's leader has them.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			os, err := c.Admin().ShareGroupOffsets(ctx, argv[0])
			if err != nil {
				return shareGroupErr(argv[0], err)
			}
			res := shareOffsetsResult{Group: argv[0], Offsets: []shareOffsetRow{}}
			for _, o := range os {
				res.Offsets = append(res.Offsets, shareOffsetRow{o.Topic, o.Partition, o.Start, o.Lag, o.LeaderEpoch})
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			t := newTable(cmd.OutOrStdout(), "TOPIC", "PARTITION", "START-OFFSET", "LAG")
			for _, o := range res.Offsets {
				t.row(o.Topic, o.Partition, o.StartOffset, lagOrUnknown(o.Lag))
			}
			return t.flush()
		},
	}
	cmd.ValidArgsFunction = a.completeShareGroups
	return cmd
}

func lagOrUnknown(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return fmt.Sprint(n)
}

func (a *app) newShareGroupReset() *cobra.Command {
	var (
		topic, toTime, parts string
		toEarliest, toLatest bool
		toOffset             int64
		dryRun               bool
	)
	cmd := &cobra.Command{
		Use:     "reset-offsets GROUP --topic TOPIC (--to-earliest | --to-latest | --to-datetime TIME | --to-offset N)",
		Aliases: []string{"reset"},
		Short:   "Move a stopped share group's start offsets: redeliver or skip records",
		Long: `Move a share group's start offset on a topic: records from the new start are
delivered again as first deliveries (earlier), or skipped (later); what was in
flight is forgotten. The group's workers must be stopped: a group with members
is refused (exit 5). --dry-run shows what would change and changes nothing.
--to-offset is clamped to each partition's log. A group that does not exist
yet is created with these offsets, so it starts there.`,
		Example: `  sluicectl share-group reset-offsets mailers --topic signups --to-earliest --dry-run
  sluicectl share-group reset-offsets mailers --topic signups --to-datetime 2026-01-02T15:04:05Z
  sluicectl share-group reset-offsets mailers --topic signups --to-offset 42 --partitions 0,3`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			group := argv[0]
			if topic == "" {
				return usagef("--topic: required")
			}
			var (
				to    client.Offset
				toStr string
				n     int
			)
			f := cmd.Flags()
			if toEarliest {
				to, toStr, n = client.Beginning(), "earliest", n+1
			}
			if toLatest {
				to, toStr, n = client.End(), "latest", n+1
			}
			if f.Changed("to-datetime") {
				ts, err := time.Parse(time.RFC3339Nano, toTime)
				if err != nil {
					return usagef("--to-datetime %q: want RFC 3339, e.g. 2026-01-02T15:04:05Z", toTime)
				}
				to, toStr, n = client.AtTime(ts), "timestamp", n+1
			}
			if f.Changed("to-offset") {
				if toOffset < 0 {
					return usagef("--to-offset %d: want >= 0", toOffset)
				}
				to, toStr, n = client.AtOffset(toOffset), "offset", n+1
			}
			if n != 1 {
				return usagef("give exactly one of --to-earliest, --to-latest, --to-datetime, --to-offset")
			}
			var ps []int32
			if parts != "" {
				var err error
				if ps, err = parseIDs("--partitions", parts); err != nil {
					return err
				}
			}
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			// Check for members first, for a clear refusal; the broker
			// refuses the change too if one joins meanwhile.
			d, err := c.Admin().DescribeShareGroup(ctx, group)
			switch {
			case errors.Is(err, client.ErrUnknownGroup):
				// No such group yet: the reset creates it at these offsets.
			case err != nil:
				return err
			case len(d.Members) > 0 && !dryRun:
				return codedError{exitConflict, fmt.Errorf("share group %q has %d active members; stop its workers, then reset (or add --dry-run to preview)",
					group, len(d.Members))}
			case len(d.Members) > 0:
				fmt.Fprintf(cmd.ErrOrStderr(), "note: share group %q has %d active members; the reset itself would be refused until they stop\n", group, len(d.Members))
			}
			var rs []client.OffsetReset
			if dryRun {
				rs, err = c.Admin().PlanResetShareGroupOffsets(ctx, group, topic, to, ps...)
			} else {
				rs, err = c.Admin().ResetShareGroupOffsets(ctx, group, topic, to, ps...)
			}
			if errors.Is(err, client.ErrGroupNotEmpty) {
				return codedError{exitConflict, fmt.Errorf("share group %q has active members; stop its workers, then reset", group)}
			}
			if err != nil {
				return err
			}
			res := resetResult{Group: group, Topic: topic, To: toStr, DryRun: dryRun, Partitions: []resetPartRow{}}
			for _, r := range rs {
				res.Partitions = append(res.Partitions, resetPartRow{r.Partition, r.Old, r.New, toStr == "offset" && r.New != toOffset})
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			t := newTable(w, "TOPIC", "PARTITION", "OLD-START", "NEW-START", "NOTE")
			for _, r := range res.Partitions {
				note := ""
				if r.Clamped {
					note = "clamped to the log"
				}
				t.row(topic, r.Partition, offsetOrNone(r.OldOffset), r.NewOffset, note)
			}
			if err := t.flush(); err != nil {
				return err
			}
			if dryRun {
				fmt.Fprintln(w, "dry run: nothing was changed")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&topic, "topic", "t", "", "the topic whose start offsets to move (required)")
	f.BoolVar(&toEarliest, "to-earliest", false, "the oldest record still in the log: redeliver everything")
	f.BoolVar(&toLatest, "to-latest", false, "the end of the log: skip everything not yet done")
	f.StringVar(&toTime, "to-datetime", "", "the first record at or after this RFC 3339 time, e.g. 2026-01-02T15:04:05Z")
	f.Int64Var(&toOffset, "to-offset", 0, "this offset on every chosen partition (clamped to the log)")
	f.StringVar(&parts, "partitions", "", "only these partitions, comma-separated (default: all)")
	f.BoolVar(&dryRun, "dry-run", false, "show the new start offsets without changing them")
	cmd.ValidArgsFunction = a.completeShareGroups
	_ = cmd.RegisterFlagCompletionFunc("topic", a.completeTopics(-1))
	return cmd
}

func (a *app) newShareGroupDeleteOffsets() *cobra.Command {
	var topics []string
	cmd := &cobra.Command{
		Use:   "delete-offsets GROUP --topic TOPIC...",
		Short: "Forget a stopped share group's state on topics: it starts again by share.auto.offset.reset",
		Long: `Delete a share group's state (start offsets, records in flight) on whole
topics, so its next worker starts where share.auto.offset.reset says. The
group's workers must be stopped: a group with members is refused (exit 5). A
topic that does not exist, or on which the group has no offsets, is exit 4.`,
		Example: `  sluicectl share-group delete-offsets mailers --topic signups
  sluicectl share-group delete-offsets mailers -t signups -t invoices`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			group := argv[0]
			if len(topics) == 0 {
				return usagef("--topic: required")
			}
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			err = c.Admin().DeleteShareGroupOffsets(ctx, group, topics...)
			if ce, ok := errors.AsType[*client.Error](err); ok && errors.Is(err, client.ErrUnknownTopic) && ce.Topic != "" {
				return codedError{exitNotFound, fmt.Errorf("share group %q has no offsets on topic %q, or the topic does not exist", group, ce.Topic)}
			}
			if errors.Is(err, client.ErrGroupNotEmpty) {
				return codedError{exitConflict, fmt.Errorf("share group %q has active members; stop its workers first", group)}
			}
			if err != nil {
				return shareGroupErr(group, err)
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"group": group, "deleted": topics})
			}
			for _, t := range topics {
				fmt.Fprintf(cmd.OutOrStdout(), "deleted the offsets of share group %s on %s\n", group, t)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&topics, "topic", "t", nil, "a topic whose offsets to delete (required, repeatable)")
	cmd.ValidArgsFunction = a.completeShareGroups
	_ = cmd.RegisterFlagCompletionFunc("topic", a.completeTopics(-1))
	return cmd
}
