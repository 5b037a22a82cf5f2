package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluicemq/sluice/client"
)

func (a *app) newGroupCmd() *cobra.Command {
	return parent("group", "Consumer groups: list, describe, lag, reset offsets, delete",
		a.newGroupList(), a.newGroupDescribe(), a.newGroupLag(), a.newGroupReset(), a.newGroupDelete())
}

type groupRow struct {
	Name         string `json:"name"`
	State        string `json:"state"`
	ProtocolType string `json:"protocol_type"`
	Coordinator  int32  `json:"coordinator"`
}

func (a *app) newGroupList() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List consumer groups with their state",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			gs, err := c.Admin().ListGroups(ctx)
			if err != nil {
				return err
			}
			rows := []groupRow{}
			for _, g := range gs {
				rows = append(rows, groupRow{g.Name, g.State, g.ProtocolType, g.Coordinator})
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"groups": rows})
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "STATE", "TYPE", "COORDINATOR")
			for _, r := range rows {
				t.row(r.Name, r.State, r.ProtocolType, r.Coordinator)
			}
			return t.flush()
		},
	}
}

// groupDescription is group describe --json.
type groupDescription struct {
	Group        string        `json:"group"`
	State        string        `json:"state"`
	ProtocolType string        `json:"protocol_type"`
	Protocol     string        `json:"protocol"`
	Coordinator  int32         `json:"coordinator"`
	Members      []memberRow   `json:"members"`
	Offsets      []groupOffset `json:"offsets"`
	TotalLag     int64         `json:"total_lag"`
}

type memberRow struct {
	MemberID   string             `json:"member_id"`
	InstanceID string             `json:"instance_id,omitempty"`
	ClientID   string             `json:"client_id"`
	Host       string             `json:"host"`
	Assigned   map[string][]int32 `json:"assigned"`
}

type groupOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"` // -1: nothing committed
	LogStart  int64  `json:"log_start"`
	End       int64  `json:"end"`
	Lag       int64  `json:"lag"`
	Member    string `json:"member,omitempty"`
}

func (a *app) newGroupDescribe() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's state, members, assignments and committed offsets",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			d, err := c.Admin().DescribeGroup(ctx, argv[0])
			if err != nil {
				return err
			}
			lag, err := c.Admin().Lag(ctx, argv[0])
			if err != nil {
				return err
			}
			out := groupDescription{Group: d.Name, State: d.State, ProtocolType: d.ProtocolType, Protocol: d.Protocol,
				Coordinator: d.Coordinator, Members: []memberRow{}, Offsets: []groupOffset{}, TotalLag: lag.Total}
			for _, m := range d.Members {
				out.Members = append(out.Members, memberRow{m.ID, m.InstanceID, m.ClientID, m.Host, m.Assigned})
			}
			for _, p := range lag.Partitions {
				out.Offsets = append(out.Offsets, groupOffset{p.Topic, p.Partition, p.Committed, p.Start, p.End, p.Lag, p.Member})
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			t := newTable(w)
			t.row("GROUP", out.Group)
			t.row("STATE", out.State)
			t.row("PROTOCOL", strings.Trim(out.ProtocolType+"/"+out.Protocol, "/"))
			t.row("COORDINATOR", out.Coordinator)
			t.row("MEMBERS", len(out.Members))
			t.row("TOTAL LAG", out.TotalLag)
			if err := t.flush(); err != nil {
				return err
			}
			if len(out.Members) > 0 {
				fmt.Fprintln(w)
				t = newTable(w, "MEMBER", "CLIENT-ID", "HOST", "ASSIGNED")
				for _, m := range out.Members {
					t.row(m.MemberID, m.ClientID, m.Host, assignment(m.Assigned))
				}
				if err := t.flush(); err != nil {
					return err
				}
			}
			if len(out.Offsets) > 0 {
				fmt.Fprintln(w)
				t = newTable(w, "TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER")
				for _, o := range out.Offsets {
					t.row(o.Topic, o.Partition, offsetOrNone(o.Committed), o.End, o.Lag, o.Member)
				}
				return t.flush()
			}
			return nil
		},
	}
	cmd.ValidArgsFunction = a.completeGroups
	return cmd
}

func offsetOrNone(o int64) string {
	if o < 0 {
		return "none"
	}
	return fmt.Sprint(o)
}

// assignment prints topic:0,1 other:2.
func assignment(m map[string][]int32) string {
	var parts []string
	for _, t := range slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}) {
		parts = append(parts, t+":"+ids(m[t]))
	}
	return strings.Join(parts, " ")
}

// groupLag is group lag --json.
type groupLag struct {
	Group      string                     `json:"group"`
	State      string                     `json:"state"`
	Partitions []client.GroupPartitionLag `json:"partitions"`
	Totals     client.GroupLagTotals      `json:"totals"`
}

func (a *app) newGroupLag() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lag GROUP",
		Short: "Show how far a group is behind, in records and seconds, per partition and in total",
		Long: `Show how far a group is behind on every partition it has committed: in
records (from the committed offset to the high watermark) and in seconds (the
age of the next record to consume; 0 when caught up). Needs the HTTP admin
API (--admin-url).`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			st, err := c.Admin().GroupStatus(ctx, argv[0])
			if err != nil {
				return err
			}
			if st.Partitions == nil {
				st.Partitions = []client.GroupPartitionLag{}
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), groupLag{st.Group, st.State, st.Partitions, st.Totals})
			}
			w := cmd.OutOrStdout()
			t := newTable(w, "TOPIC", "PARTITION", "COMMITTED", "LOG-START", "END", "LAG", "LAG-SECONDS")
			for _, p := range st.Partitions {
				if p.Error != "" {
					t.row(p.Topic, p.Partition, offsetOrNone(p.Committed), "?", "?", "?", "? ("+p.Error+")")
					continue
				}
				t.row(p.Topic, p.Partition, offsetOrNone(p.Committed), p.LogStart, p.HighWatermark, p.LagRecords, seconds(p.LagSeconds))
			}
			t.row("TOTAL", "", "", "", "", st.Totals.LagRecords, seconds(st.Totals.MaxLagSeconds)+" (max)")
			if err := t.flush(); err != nil {
				return err
			}
			if len(st.Partitions) == 0 {
				fmt.Fprintf(w, "group %s (%s) has committed no offsets\n", st.Group, st.State)
			}
			if st.Totals.Unmeasured > 0 {
				return fmt.Errorf("the lag of %d partitions could not be measured (see the table); retry", st.Totals.Unmeasured)
			}
			return nil
		},
	}
	cmd.ValidArgsFunction = a.completeGroups
	return cmd
}

// resetResult is group and share-group reset-offsets --json; the same
// shape as the HTTP admin API's POST /v1/groups/{group}/reset answer.
type resetResult struct {
	Group      string         `json:"group"`
	Topic      string         `json:"topic"`
	To         string         `json:"to"`
	DryRun     bool           `json:"dry_run"`
	Partitions []resetPartRow `json:"partitions"`
}

type resetPartRow struct {
	Partition int32 `json:"partition"`
	OldOffset int64 `json:"old_offset"` // -1: nothing was committed
	NewOffset int64 `json:"new_offset"`
	Clamped   bool  `json:"clamped,omitempty"` // --to-offset was outside the log
}

// resetTarget is where reset-offsets (group or share-group) moves the
// offsets: one of the --to-* flags, on the partitions of --partitions.
type resetTarget struct {
	earliest, latest bool
	datetime         string
	offset           int64
	partitions       string
}

// bind adds the --to-* and --partitions flags to f. earliest and latest
// are the help of --to-earliest and --to-latest, which says what the move
// does to the group.
func (rt *resetTarget) bind(f *pflag.FlagSet, earliest, latest string) {
	f.BoolVar(&rt.earliest, "to-earliest", false, earliest)
	f.BoolVar(&rt.latest, "to-latest", false, latest)
	f.StringVar(&rt.datetime, "to-datetime", "", "the first record at or after this RFC 3339 time, e.g. 2026-01-02T15:04:05Z")
	f.Int64Var(&rt.offset, "to-offset", 0, "this offset on every chosen partition (clamped to the log)")
	f.StringVar(&rt.partitions, "partitions", "", "only these partitions, comma-separated (default: all)")
}

// parse checks the flags bound to f (exactly one --to-*) and returns the
// offset to move to, its name in a resetResult ("earliest", "latest",
// "timestamp" or "offset") and the chosen partitions (nil: all).
func (rt *resetTarget) parse(f *pflag.FlagSet) (to client.Offset, name string, partitions []int32, err error) {
	n := 0
	if rt.earliest {
		to, name, n = client.Beginning(), "earliest", n+1
	}
	if rt.latest {
		to, name, n = client.End(), "latest", n+1
	}
	if f.Changed("to-datetime") {
		ts, err := time.Parse(time.RFC3339Nano, rt.datetime)
		if err != nil {
			return to, "", nil, usagef("--to-datetime %q: want RFC 3339, e.g. 2026-01-02T15:04:05Z", rt.datetime)
		}
		to, name, n = client.AtTime(ts), "timestamp", n+1
	}
	if f.Changed("to-offset") {
		if rt.offset < 0 {
			return to, "", nil, usagef("--to-offset %d: want >= 0", rt.offset)
		}
		to, name, n = client.AtOffset(rt.offset), "offset", n+1
	}
	if n != 1 {
		return to, "", nil, usagef("give exactly one of --to-earliest, --to-latest, --to-datetime, --to-offset")
	}
	if rt.partitions != "" {
		if partitions, err = parseIDs("--partitions", rt.partitions); err != nil {
			return to, "", nil, err
		}
	}
	return to, name, partitions, nil
}

// resetKind is what tells group and share-group reset-offsets apart.
type resetKind struct {
	group   string // in messages: "group", "share group"
	clients string // who must stop for a reset: "consumers", "workers"
	// members describes group: how many active members it has and who
	// they are (empty where the describe does not say).
	members func(ctx context.Context, adm *client.Admin, group string) (n int, names string, err error)
	// reset moves the offsets; plan, for --dry-run, only says where to.
	reset, plan    func(adm *client.Admin, ctx context.Context, group, topic string, to client.Offset, partitions ...int32) ([]client.OffsetReset, error)
	oldCol, newCol string // the table's offset columns
	dryRunNote     string // the line under a dry run's table
}

var groupReset = resetKind{
	group: "group", clients: "consumers",
	members: func(ctx context.Context, adm *client.Admin, group string) (int, string, error) {
		d, err := adm.DescribeGroup(ctx, group)
		return len(d.Members), memberNames(d.Members), err
	},
	reset: (*client.Admin).ResetOffsets, plan: (*client.Admin).PlanResetOffsets,
	oldCol: "OLD-OFFSET", newCol: "NEW-OFFSET", dryRunNote: "dry run: nothing was committed",
}

// resetOffsets is reset-offsets of kind k: it moves group's offsets on
// topic to target, or on a dry run says where it would, and prints them.
func (a *app) resetOffsets(cmd *cobra.Command, k resetKind, group, topic string, target *resetTarget, dryRun bool) error {
	if topic == "" {
		return usagef("--topic: required")
	}
	to, toName, ps, err := target.parse(cmd.Flags())
	if err != nil {
		return err
	}
	c, ctx, cancel, err := a.connect(cmd)
	if err != nil {
		return err
	}
	defer cancel()
	// Check for members first, for a clear refusal; the broker refuses
	// the reset too if one joins meanwhile.
	n, names, err := k.members(ctx, c.Admin(), group)
	switch {
	case errors.Is(err, client.ErrUnknownGroup):
		// No such group yet: the reset creates it at these offsets (for
		// a classic group, seeds its offsets, as Kafka's tool).
	case err != nil:
		return err
	case n > 0 && !dryRun:
		if names != "" {
			names = " (" + names + ")"
		}
		return codedError{exitConflict, fmt.Errorf("%s %q has %d active members%s; stop its %s, then reset (or add --dry-run to preview)",
			k.group, group, n, names, k.clients)}
	case n > 0:
		fmt.Fprintf(cmd.ErrOrStderr(), "note: %s %q has %d active members; the reset itself would be refused until they stop\n", k.group, group, n)
	}
	reset := k.reset
	if dryRun {
		reset = k.plan
	}
	rs, err := reset(c.Admin(), ctx, group, topic, to, ps...)
	if errors.Is(err, client.ErrGroupNotEmpty) {
		return codedError{exitConflict, fmt.Errorf("%s %q has active members; stop its %s, then reset", k.group, group, k.clients)}
	}
	if err != nil {
		return err
	}
	res := resetResult{Group: group, Topic: topic, To: toName, DryRun: dryRun, Partitions: []resetPartRow{}}
	for _, r := range rs {
		res.Partitions = append(res.Partitions, resetPartRow{r.Partition, r.Old, r.New, toName == "offset" && r.New != target.offset})
	}
	if a.flags.json {
		return printJSON(cmd.OutOrStdout(), res)
	}
	w := cmd.OutOrStdout()
	t := newTable(w, "TOPIC", "PARTITION", k.oldCol, k.newCol, "NOTE")
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
		fmt.Fprintln(w, k.dryRunNote)
	}
	return nil
}

func (a *app) newGroupReset() *cobra.Command {
	var (
		topic  string
		target resetTarget
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "reset-offsets GROUP --topic TOPIC (--to-earliest | --to-latest | --to-datetime TIME | --to-offset N)",
		Short: "Move a stopped group's committed offsets: replay or skip records",
		Long: `Move a group's committed offsets on a topic, to replay records (earlier) or
skip them (later). The group's consumers must be stopped: a group with members
is refused (exit 5). --dry-run shows what would change and commits nothing.
--to-offset is clamped to each partition's log.`,
		Example: `  sluicectl group reset-offsets email --topic signups --to-earliest --dry-run
  sluicectl group reset-offsets email --topic signups --to-datetime 2026-01-02T15:04:05Z
  sluicectl group reset-offsets email --topic signups --to-offset 42 --partitions 0,3`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.resetOffsets(cmd, groupReset, argv[0], topic, &target, dryRun)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&topic, "topic", "t", "", "the topic whose offsets to move (required)")
	target.bind(f, "the oldest record still in the log: replay everything", "the end of the log: skip everything not yet consumed")
	f.BoolVar(&dryRun, "dry-run", false, "show the new offsets without committing them")
	cmd.ValidArgsFunction = a.completeGroups
	_ = cmd.RegisterFlagCompletionFunc("topic", a.completeTopics(-1))
	return cmd
}

func memberNames(ms []client.GroupMember) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.ClientID+"@"+m.Host)
	}
	return strings.Join(s, ", ")
}

func (a *app) newGroupDelete() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete GROUP...",
		Aliases: []string{"rm"},
		Short:   "Delete groups and their committed offsets (their consumers must be stopped)",
		Args:    args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, groups []string) error {
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			for _, g := range groups {
				err := c.Admin().DeleteGroup(ctx, g)
				if errors.Is(err, client.ErrGroupNotEmpty) {
					return codedError{exitConflict, fmt.Errorf("group %q has active members; stop its consumers first", g)}
				}
				if err != nil {
					return err
				}
				if !a.flags.json {
					fmt.Fprintf(cmd.OutOrStdout(), "deleted group %s\n", g)
				}
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"deleted": groups})
			}
			return nil
		},
	}
	cmd.ValidArgsFunction = a.completeGroups
	return cmd
}
