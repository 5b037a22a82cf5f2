package main

import (
	"context"
	"errors"
	"fmt"

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

var shareGroupReset = resetKind{
	group: "share group", clients: "workers",
	members: func(ctx context.Context, adm *client.Admin, group string) (int, string, error) {
		d, err := adm.DescribeShareGroup(ctx, group)
		return len(d.Members), "", err
	},
	reset: (*client.Admin).ResetShareGroupOffsets, plan: (*client.Admin).PlanResetShareGroupOffsets,
	oldCol: "OLD-START", newCol: "NEW-START", dryRunNote: "dry run: nothing was changed",
}

func (a *app) newShareGroupReset() *cobra.Command {
	var (
		topic  string
		target resetTarget
		dryRun bool
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
			return a.resetOffsets(cmd, shareGroupReset, argv[0], topic, &target, dryRun)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&topic, "topic", "t", "", "the topic whose start offsets to move (required)")
	target.bind(f, "the oldest record still in the log: redeliver everything", "the end of the log: skip everything not yet done")
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
