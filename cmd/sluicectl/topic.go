package main

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
)

func (a *app) newTopicCmd() *cobra.Command {
	return parent("topic", "Create, list, describe, alter and delete topics",
		a.newTopicCreate(), a.newTopicList(), a.newTopicDescribe(), a.newTopicAlter(), a.newTopicDelete())
}

func (a *app) newTopicCreate() *cobra.Command {
	var (
		partitions int32
		rf         int16
		configs    []string
	)
	cmd := &cobra.Command{
		Use:   "create TOPIC...",
		Short: "Create topics (an existing one exits 5)",
		Example: `  sluicectl topic create signups -p 6 -r 3
  sluicectl topic create users --config cleanup.policy=compact --config retention.ms=-1`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, names []string) error {
			cfg, err := parseKVs("config", configs)
			if err != nil {
				return err
			}
			if partitions < 0 || rf < 0 {
				return usagef("--partitions and --replication-factor: want numbers >= 1 (or 0 for the broker's default)")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			type created struct {
				Topic      string `json:"topic"`
				Partitions int    `json:"partitions"`
				Replicas   int    `json:"replication_factor"`
			}
			out := []created{}
			for _, n := range names {
				ctx, cancel := a.reqCtx(cmd)
				err := c.Admin().CreateTopic(ctx, client.TopicSpec{Name: n, Partitions: partitions, ReplicationFactor: rf, Configs: cfg})
				var ti client.TopicInfo
				if err == nil {
					// Other brokers learn of the topic from the controller
					// a moment later.
					_, err = pollUntil(ctx, 100*time.Millisecond, func() (bool, error) {
						var derr error
						ti, derr = c.Admin().DescribeTopic(ctx, n)
						if errors.Is(derr, client.ErrUnknownTopic) {
							return false, nil
						}
						return derr == nil, derr
					})
				}
				cancel()
				if err != nil {
					return err
				}
				cr := created{Topic: n, Partitions: len(ti.Partitions)}
				if len(ti.Partitions) > 0 {
					cr.Replicas = len(ti.Partitions[0].Replicas)
				}
				out = append(out, cr)
				if !a.flags.json {
					fmt.Fprintf(cmd.OutOrStdout(), "created topic %s (%d partitions, replication factor %d)\n", n, cr.Partitions, cr.Replicas)
				}
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"created": out})
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int32VarP(&partitions, "partitions", "p", 0, "number of partitions (default: the broker's default_partitions)")
	f.Int16VarP(&rf, "replication-factor", "r", 0, "replicas per partition (default: the broker's default_replication_factor)")
	f.StringArrayVarP(&configs, "config", "c", nil, "topic config key=value, repeatable (e.g. retention.ms=86400000)")
	return cmd
}

// topicRow is one topic in topic list --json.
type topicRow struct {
	Name              string `json:"name"`
	ID                string `json:"id"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replication_factor"`
	Internal          bool   `json:"internal"`
}

func (a *app) newTopicList() *cobra.Command {
	var internal bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List topics with their partition counts and replication factors",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			ts, err := c.Admin().ListTopics(ctx, internal)
			if err != nil {
				return err
			}
			rows := []topicRow{}
			for _, t := range ts {
				r := topicRow{Name: t.Name, ID: t.ID, Partitions: len(t.Partitions), Internal: t.Internal}
				if len(t.Partitions) > 0 {
					r.ReplicationFactor = len(t.Partitions[0].Replicas)
				}
				rows = append(rows, r)
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"topics": rows})
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "PARTITIONS", "REPLICAS", "ID")
			for _, r := range rows {
				t.row(r.Name, r.Partitions, r.ReplicationFactor, r.ID)
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&internal, "internal", false, "include internal topics (__consumer_offsets)")
	return cmd
}

// topicDescription is topic describe --json.
type topicDescription struct {
	Name       string               `json:"name"`
	ID         string               `json:"id"`
	Internal   bool                 `json:"internal"`
	Partitions []partitionRow       `json:"partitions"`
	Configs    []client.ConfigEntry `json:"configs"`
}

type partitionRow struct {
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
}

func (a *app) newTopicDescribe() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "describe TOPIC",
		Short: "Show a topic's partitions (leaders, replicas) and configs",
		Long: `Show a topic's partitions (leader, epoch, replicas, in-sync replicas) and
its configs: those set on the topic, or every config with --all-configs.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			ti, err := c.Admin().DescribeTopic(ctx, argv[0])
			if err != nil {
				return err
			}
			cfgs, err := c.Admin().DescribeTopicConfigs(ctx, argv[0])
			if err != nil {
				return err
			}
			d := topicDescription{Name: ti.Name, ID: ti.ID, Internal: ti.Internal, Partitions: []partitionRow{}, Configs: []client.ConfigEntry{}}
			for _, p := range ti.Partitions {
				d.Partitions = append(d.Partitions, partitionRow{p.Partition, p.Leader, p.LeaderEpoch, p.Replicas, p.ISR})
			}
			for _, e := range cfgs {
				if all || e.Source == "topic" {
					d.Configs = append(d.Configs, e)
				}
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), d)
			}
			out := cmd.OutOrStdout()
			t := newTable(out)
			t.row("NAME", d.Name)
			t.row("ID", d.ID)
			t.row("PARTITIONS", len(d.Partitions))
			if len(d.Partitions) > 0 {
				t.row("REPLICATION FACTOR", len(d.Partitions[0].Replicas))
			}
			if err := t.flush(); err != nil {
				return err
			}
			fmt.Fprintln(out)
			if len(d.Configs) == 0 {
				fmt.Fprintln(out, "CONFIGS: none set on the topic (--all-configs shows the defaults)")
			} else {
				t = newTable(out, "CONFIG", "VALUE", "SOURCE")
				for _, e := range d.Configs {
					t.row(e.Name, e.Value, e.Source)
				}
				if err := t.flush(); err != nil {
					return err
				}
			}
			fmt.Fprintln(out)
			t = newTable(out, "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR")
			for _, p := range d.Partitions {
				leader := fmt.Sprint(p.Leader)
				if p.Leader < 0 {
					leader = "none"
				}
				t.row(p.Partition, leader, p.LeaderEpoch, ids(p.Replicas), ids(p.ISR))
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all-configs", "a", false, "show every config with its source, not only those set on the topic")
	cmd.ValidArgsFunction = a.completeTopics(1)
	return cmd
}

func (a *app) newTopicAlter() *cobra.Command {
	var (
		set, del   []string
		partitions int32
	)
	cmd := &cobra.Command{
		Use:   "alter TOPIC",
		Short: "Set or delete topic configs, or add partitions",
		Long: `Set configs (--set k=v), return configs to their defaults (--delete k), or
raise the partition count (--partitions N, the new total). Adding partitions
moves keys to other partitions from then on: a key's order holds before and
after, not across.`,
		Example: `  sluicectl topic alter signups --set retention.ms=3600000 --delete cleanup.policy
  sluicectl topic alter signups --partitions 12`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			topic := argv[0]
			kv, err := parseKVs("set", set)
			if err != nil {
				return err
			}
			for _, k := range del {
				if _, ok := kv[k]; ok {
					return usagef("config %q is both set and deleted", k)
				}
			}
			if len(kv) == 0 && len(del) == 0 && !cmd.Flags().Changed("partitions") {
				return usagef("nothing to change: give --set, --delete or --partitions")
			}
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			type altered struct {
				Topic      string   `json:"topic"`
				Set        []string `json:"set"`
				Deleted    []string `json:"deleted"`
				Partitions int      `json:"partitions"`
			}
			res := altered{Topic: topic, Set: slices.Sorted(mapKeys(kv)), Deleted: slices.Clone(del)}
			if res.Deleted == nil {
				res.Deleted = []string{}
			}
			ti, err := c.Admin().DescribeTopic(ctx, topic)
			if err != nil {
				return err
			}
			res.Partitions = len(ti.Partitions)
			if cmd.Flags().Changed("partitions") {
				switch have := int32(len(ti.Partitions)); {
				case partitions < have:
					return usagef("--partitions %d: topic %s has %d; partitions can be added, not removed", partitions, topic, have)
				case partitions > have:
					if err := c.Admin().AddPartitions(ctx, topic, int(partitions-have)); err != nil {
						return err
					}
					res.Partitions = int(partitions)
				}
			}
			if len(kv) > 0 || len(del) > 0 {
				if err := c.Admin().AlterTopicConfigs(ctx, topic, kv, del...); err != nil {
					return err
				}
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			out := cmd.OutOrStdout()
			for _, k := range res.Set {
				fmt.Fprintf(out, "set %s=%s\n", k, kv[k])
			}
			for _, k := range res.Deleted {
				fmt.Fprintf(out, "deleted %s (back to its default)\n", k)
			}
			if res.Partitions != len(ti.Partitions) {
				fmt.Fprintf(out, "partitions %d -> %d\n", len(ti.Partitions), res.Partitions)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&set, "set", nil, "set config key=value, repeatable")
	f.StringArrayVar(&del, "delete", nil, "return config key to its default, repeatable")
	f.Int32VarP(&partitions, "partitions", "p", 0, "raise the partition count to this total")
	cmd.ValidArgsFunction = a.completeTopics(1)
	return cmd
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (a *app) newTopicDelete() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete TOPIC...",
		Aliases: []string{"rm"},
		Short:   "Delete topics and all their records",
		Args:    args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, names []string) error {
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			// Check every name first, so a typo deletes nothing.
			for _, n := range names {
				if _, err := c.Admin().DescribeTopic(ctx, n); err != nil {
					return err
				}
			}
			if err := c.Admin().DeleteTopics(ctx, names...); err != nil {
				return err
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"deleted": names})
			}
			for _, n := range names {
				fmt.Fprintf(cmd.OutOrStdout(), "deleted topic %s\n", n)
			}
			return nil
		},
	}
	cmd.ValidArgsFunction = a.completeTopics(-1)
	return cmd
}
