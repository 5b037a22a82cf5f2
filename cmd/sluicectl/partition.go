package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
)

func (a *app) newPartitionCmd() *cobra.Command {
	return parent("partition", "Move partitions between brokers and transfer their leadership",
		a.newPartitionMove(), a.newTransferLeadership())
}

// topicPartition reads the TOPIC PARTITION arguments.
func topicPartition(argv []string) (string, int32, error) {
	p, err := parseID("partition", argv[1])
	return argv[0], p, err
}

func (a *app) newPartitionMove() *cobra.Command {
	var (
		replicas     string
		wait, noWait bool
		waitTimeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "move TOPIC PARTITION --replicas 2,3,4",
		Short: "Move a partition's replicas to other brokers (the first listed becomes the preferred leader)",
		Long: `Move a partition to the listed brokers. The controller adds the new replicas,
lets them catch up, then removes the old ones, one raft membership change at
a time, in the background. Listing the same brokers in another order only
changes the preferred leader. --wait follows the move (progress on stderr)
until it is done; a move already pending to another target exits 5.`,
		Example: `  sluicectl partition move signups 0 --replicas 2,3,4 --wait
  sluicectl partition move signups 0 --replicas 2,3,4 && sluicectl partition move signups 0 --replicas 2,3,4 --wait`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			topic, p, err := topicPartition(argv)
			if err != nil {
				return err
			}
			if replicas == "" {
				return usagef("--replicas: required, e.g. --replicas 2,3,4")
			}
			rs, err := parseIDs("--replicas", replicas)
			if err != nil {
				return err
			}
			if noWait {
				wait = false
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := a.reqCtx(cmd)
			m, err := c.Admin().MovePartition(ctx, topic, p, rs)
			cancel()
			if err != nil {
				return err
			}
			if wait && !m.Done() {
				wctx, cancel := withWaitTimeout(cmd.Context(), waitTimeout)
				defer cancel()
				pr := newProgress(cmd)
				m, err = c.Admin().WaitMove(wctx, topic, p, func(s *client.MoveStatus) { pr.say(moveLine(s)) })
				if err != nil {
					return waitErr(cmd, err, fmt.Sprintf("%s/%d has not finished moving", topic, p),
						fmt.Sprintf("sluicectl partition move %s %d --replicas %s --wait", topic, p, ids(rs)))
				}
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), m)
			}
			out := cmd.OutOrStdout()
			if m.Done() {
				fmt.Fprintf(out, "%s/%d: done, replicas %s\n", topic, p, ids(m.Replicas))
				return nil
			}
			fmt.Fprintf(out, "%s/%d: moving %s -> %s (follow with --wait)\n", topic, p, ids(m.Replicas), ids(m.Target))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&replicas, "replicas", "", "the new replica brokers, comma-separated; the first is the preferred leader (required)")
	f.BoolVar(&wait, "wait", false, "follow the move until it is done")
	f.BoolVar(&noWait, "no-wait", false, "return once the move is recorded (the default)")
	f.DurationVar(&waitTimeout, "wait-timeout", 0, "give up following after this long; the move continues (default: until done or Ctrl-C)")
	cmd.ValidArgsFunction = a.completeTopics(1)
	return cmd
}

func moveLine(s *client.MoveStatus) string {
	line := fmt.Sprintf("%s/%d: %s, replicas %s", s.Topic, s.Partition, s.State, ids(s.Replicas))
	if len(s.Target) > 0 {
		line += " -> " + ids(s.Target)
	}
	if s.Progress != nil {
		line += ": " + s.Progress.Step
		if s.Progress.Error != "" {
			line += " (retrying: " + s.Progress.Error + ")"
		}
	}
	return line
}

func (a *app) newTransferLeadership() *cobra.Command {
	var to int32
	cmd := &cobra.Command{
		Use:   "transfer-leadership TOPIC PARTITION --to BROKER",
		Short: "Make a replica the partition's leader now",
		Long: `Make one of the partition's replicas its leader now. Brokers hand leadership
back to the preferred replica (the first) at their next check; to make it
last, move the partition to the same brokers with this one first.`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			topic, p, err := topicPartition(argv)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("to") || to < 0 {
				return usagef("--to: required, the id of a broker holding a replica")
			}
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			tr, err := c.Admin().TransferLeadership(ctx, topic, p, to)
			if err != nil {
				return err
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), tr)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%d: leader %d -> %d\n", topic, p, tr.Previous, tr.Leader)
			if tr.Note != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "note: %s\n", tr.Note)
			}
			return nil
		},
	}
	cmd.Flags().Int32Var(&to, "to", -1, "the broker to lead the partition (required)")
	cmd.ValidArgsFunction = a.completeTopics(1)
	return cmd
}
