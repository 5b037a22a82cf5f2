package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
)

func (a *app) newShareGroupCmd() *cobra.Command {
	return parent("share-group", "Share groups (queues): list, describe, configure, offsets",
		a.newShareGroupList(), a.newShareGroupDescribe(), a.newShareGroupConfig(),
		a.newShareGroupOffsets(), a.newShareGroupReset(), a.newShareGroupDeleteOffsets())
}

type shareGroupRow struct {
	Name        string `json:"name"`
	State       string `json:"state"`
	Coordinator int32  `json:"coordinator"`
}

func (a *app) newShareGroupList() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List share groups with their state",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			gs, err := c.Admin().ListShareGroups(ctx)
			if err != nil {
				return err
			}
			rows := []shareGroupRow{}
			for _, g := range gs {
				rows = append(rows, shareGroupRow{g.Name, g.State, g.Coordinator})
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"share_groups": rows})
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "STATE", "COORDINATOR")
			for _, r := range rows {
				t.row(r.Name, r.State, r.Coordinator)
			}
			return t.flush()
		},
	}
}

// shareGroupDescription is share-group describe --json.
type shareGroupDescription struct {
	Group           string           `json:"group"`
	State           string           `json:"state"`
	Coordinator     int32            `json:"coordinator"`
	Epoch           int32            `json:"epoch"`
	AssignmentEpoch int32            `json:"assignment_epoch"`
	Assignor        string           `json:"assignor"`
	Members         []shareMemberRow `json:"members"`
}

type shareMemberRow struct {
	MemberID   string             `json:"member_id"`
	ClientID   string             `json:"client_id"`
	Host       string             `json:"host"`
	Subscribed []string           `json:"subscribed"`
	Assigned   map[string][]int32 `json:"assigned"`
}

// shareGroupErr points at share-group list for an unknown group.
func shareGroupErr(group string, err error) error {
	if errors.Is(err, client.ErrUnknownGroup) {
		return codedError{exitNotFound, fmt.Errorf("share group %q does not exist (see sluicectl share-group list)", group)}
	}
	return err
}

func (a *app) newShareGroupDescribe() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a share group's state, members and the partitions each is assigned",
		Long: `Show a share group's state, members and assignments, as its coordinator sees
them. In a share group several members may share a partition: each record is
acquired by one member at a time and acknowledged on its own.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			d, err := c.Admin().DescribeShareGroup(ctx, argv[0])
			if err != nil {
				return shareGroupErr(argv[0], err)
			}
			out := shareGroupDescription{Group: d.Group, State: d.State, Coordinator: d.Coordinator, Epoch: d.Epoch,
				AssignmentEpoch: d.AssignmentEpoch, Assignor: d.Assignor, Members: []shareMemberRow{}}
			for _, m := range d.Members {
				out.Members = append(out.Members, shareMemberRow{m.ID, m.ClientID, m.Host, m.Subscribed, m.Assigned})
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			t := newTable(w)
			t.row("GROUP", out.Group)
			t.row("STATE", out.State)
			t.row("COORDINATOR", out.Coordinator)
			t.row("EPOCH", out.Epoch)
			t.row("ASSIGNOR", out.Assignor)
			t.row("MEMBERS", len(out.Members))
			if err := t.flush(); err != nil {
				return err
			}
			if len(out.Members) == 0 {
				return nil
			}
			fmt.Fprintln(w)
			t = newTable(w, "MEMBER", "CLIENT-ID", "HOST", "SUBSCRIBED", "ASSIGNED")
			for _, m := range out.Members {
				t.row(m.MemberID, m.ClientID, m.Host, strings.Join(m.Subscribed, ","), assignment(m.Assigned))
			}
			return t.flush()
		},
	}
	cmd.ValidArgsFunction = a.completeShareGroups
	return cmd
}

// shareGroupConfig is share-group config --json.
type shareGroupConfig struct {
	Group   string           `json:"group"`
	Set     []string         `json:"set"`
	Deleted []string         `json:"deleted"`
	Configs []configEntryRow `json:"configs"`
}

type configEntryRow struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Source string `json:"source"` // group or default
}

func (a *app) newShareGroupConfig() *cobra.Command {
	var set, del []string
	cmd := &cobra.Command{
		Use:   "config GROUP",
		Short: "Show a share group's configs, or set (--set k=v) and reset (--delete k) them",
		Long: `Show every config of a share group with its source (group: set on the group;
default), or change them: --set k=v sets, --delete k returns k to its default.
A group can be configured before its first worker starts, and should be:
share.auto.offset.reset decides where a new group begins.

Configs: share.auto.offset.reset (latest|earliest), share.record.lock.duration.ms,
share.delivery.count.limit, share.partition.max.record.locks,
share.retry.backoff.ms, share.retry.backoff.multiplier, share.retry.backoff.max.ms,
share.dead.letter.topic, share.key.ordering (true|false), share.delay.header.
Values out of range are refused (exit 2) and nothing changes.`,
		Example: `  sluicectl share-group config mailers
  sluicectl share-group config mailers --set share.auto.offset.reset=earliest --set share.dead.letter.topic=signups.dlq
  sluicectl share-group config mailers --set share.retry.backoff.ms=1000 --delete share.key.ordering`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			group := argv[0]
			kv, err := parseKVs("set", set)
			if err != nil {
				return err
			}
			for _, k := range del {
				if _, ok := kv[k]; ok {
					return usagef("config %q is both set and deleted", k)
				}
			}
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			if len(kv) > 0 || len(del) > 0 {
				if err := c.Admin().SetShareGroupConfig(ctx, group, kv, del...); err != nil {
					return err
				}
			}
			cfg, err := c.Admin().ShareGroupConfig(ctx, group)
			if err != nil {
				return err
			}
			res := shareGroupConfig{Group: group, Set: slices.Sorted(mapKeys(kv)), Deleted: slices.Clone(del), Configs: []configEntryRow{}}
			if res.Set == nil {
				res.Set = []string{}
			}
			if res.Deleted == nil {
				res.Deleted = []string{}
			}
			for _, e := range cfg {
				res.Configs = append(res.Configs, configEntryRow{e.Name, e.Value, e.Source})
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			out := cmd.OutOrStdout()
			if len(kv) > 0 || len(del) > 0 {
				for _, k := range res.Set {
					fmt.Fprintf(out, "set %s=%s\n", k, kv[k])
				}
				for _, k := range res.Deleted {
					fmt.Fprintf(out, "deleted %s (back to its default)\n", k)
				}
				return nil
			}
			t := newTable(out, "CONFIG", "VALUE", "SOURCE")
			for _, e := range res.Configs {
				t.row(e.Name, e.Value, e.Source)
			}
			return t.flush()
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&set, "set", nil, "set config key=value, repeatable")
	f.StringArrayVar(&del, "delete", nil, "return config key to its default, repeatable")
	cmd.ValidArgsFunction = a.completeShareGroups
	return cmd
}

func (a *app) completeShareGroups(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.completeNames(cmd, toComplete, func(ctx context.Context) ([]string, error) {
		c, err := a.client()
		if err != nil {
			return nil, err
		}
		gs, err := c.Admin().ListShareGroups(ctx)
		var out []string
		for _, g := range gs {
			out = append(out, g.Name)
		}
		return out, err
	})
}
