package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
)

func (a *app) newClusterCmd() *cobra.Command {
	return parent("cluster", "Brokers, the controller, adding and decommissioning brokers",
		a.newClusterStatus(), a.newClusterBrokers(), a.newClusterAdd(), a.newDecommission(), a.newUndrain())
}

// clusterSummary is cluster status --json.
type clusterSummary struct {
	ClusterID        string          `json:"cluster_id"`
	ControllerLeader int32           `json:"controller_leader"` // -1: none
	ControllerVoters []int32         `json:"controller_voters"`
	Brokers          int             `json:"brokers"`
	Draining         []int32         `json:"draining"`
	Topics           int             `json:"topics"`
	Partitions       int             `json:"partitions"`
	Leaderless       []partitionRef  `json:"leaderless"`
	Moving           []movingSummary `json:"moving"`
}

type partitionRef struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

type movingSummary struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Replicas  []int32 `json:"replicas"`
	Target    []int32 `json:"target"`
}

func summarize(st *client.ClusterStatus) clusterSummary {
	s := clusterSummary{ClusterID: st.ClusterID, ControllerLeader: st.Controller.Leader, ControllerVoters: st.Controller.Voters,
		Brokers: len(st.Brokers), Draining: []int32{}, Topics: len(st.Topics), Leaderless: []partitionRef{}, Moving: []movingSummary{}}
	if s.ControllerVoters == nil {
		s.ControllerVoters = []int32{}
	}
	for _, b := range st.Brokers {
		if b.Draining {
			s.Draining = append(s.Draining, b.ID)
		}
	}
	for _, t := range st.Topics {
		for _, p := range t.Partitions {
			s.Partitions++
			if p.Leader < 0 {
				s.Leaderless = append(s.Leaderless, partitionRef{t.Name, p.Partition})
			}
			if len(p.Target) > 0 {
				s.Moving = append(s.Moving, movingSummary{t.Name, p.Partition, p.Replicas, p.Target})
			}
		}
	}
	return s
}

func (a *app) newClusterStatus() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Cluster id, controller, broker and partition health at a glance",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.cluster(cmd)
			if err != nil {
				return err
			}
			s := summarize(st)
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), s)
			}
			leader := "none (election in progress?)"
			if s.ControllerLeader >= 0 {
				leader = fmt.Sprintf("broker %d", s.ControllerLeader)
			}
			t := newTable(cmd.OutOrStdout())
			t.row("CLUSTER ID", s.ClusterID)
			t.row("CONTROLLER", fmt.Sprintf("%s (voters %s)", leader, ids(s.ControllerVoters)))
			t.row("BROKERS", fmt.Sprintf("%d (draining: %s)", s.Brokers, orNone(ids(s.Draining))))
			t.row("TOPICS", s.Topics)
			t.row("PARTITIONS", fmt.Sprintf("%d (without a leader: %d, moving: %d)", s.Partitions, len(s.Leaderless), len(s.Moving)))
			for _, m := range s.Moving {
				t.row("MOVING", fmt.Sprintf("%s/%d %s -> %s", m.Topic, m.Partition, ids(m.Replicas), ids(m.Target)))
			}
			for _, p := range s.Leaderless {
				t.row("NO LEADER", fmt.Sprintf("%s/%d", p.Topic, p.Partition))
			}
			return t.flush()
		},
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// cluster asks the admin API for the cluster's state.
func (a *app) cluster(cmd *cobra.Command) (*client.ClusterStatus, error) {
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := a.reqCtx(cmd)
	defer cancel()
	return c.Admin().Cluster(ctx)
}

func (a *app) newClusterBrokers() *cobra.Command {
	return &cobra.Command{
		Use:   "brokers",
		Short: "List the registered brokers: addresses, roles, replica and leader counts",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.cluster(cmd)
			if err != nil {
				return err
			}
			if a.flags.json {
				bs := st.Brokers
				if bs == nil {
					bs = []client.BrokerStatus{}
				}
				return printJSON(cmd.OutOrStdout(), map[string]any{"brokers": bs})
			}
			t := newTable(cmd.OutOrStdout(), "ID", "KAFKA", "RAFT", "HTTP", "VOTER", "DRAINING", "REPLICAS", "LEADERS")
			for _, b := range st.Brokers {
				t.row(b.ID, b.KafkaAddr, b.RaftAddr, b.HTTPAddr, yesNo(b.Voter), yesNo(b.Draining), b.Replicas, b.Leaders)
			}
			return t.flush()
		},
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// addPlan is cluster add --json.
type addPlan struct {
	Broker           int32    `json:"broker"`
	ControllerVoters string   `json:"controller_voters"`
	Command          []string `json:"command"`
	Registered       bool     `json:"registered"`
	KafkaAddr        string   `json:"kafka_addr,omitempty"` // once registered
}

func (a *app) newClusterAdd() *cobra.Command {
	var (
		id          int32
		host, data  string
		wait        bool
		waitTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Print how to start a new broker so it joins, and optionally wait until it has",
		Long: `A broker joins a running cluster by starting with the cluster's controller
voters (--controller-voters, the same list on every broker) and its own node id:
it registers as a non-voter and takes replicas of new topics. Existing
partitions move to it only by explicit moves (sluicectl partition move).

add prints the sluiced command line for the new broker, with the voters
filled in from the cluster. With --wait it then waits (progress on stderr)
until the broker has registered.`,
		Example: `  sluicectl cluster add --id 4 --host 10.0.0.4
  sluicectl cluster add --id 4 --host 10.0.0.4 --wait`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.cluster(cmd)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("id") {
				for _, b := range st.Brokers {
					id = max(id, b.ID+1)
				}
			}
			var voters []string
			for _, v := range st.Controller.Voters {
				addr := "?"
				for _, b := range st.Brokers {
					if b.ID == v {
						addr = b.RaftAddr
					}
				}
				voters = append(voters, fmt.Sprintf("%d@%s", v, addr))
			}
			p := addPlan{Broker: id, ControllerVoters: strings.Join(voters, ","), Command: []string{
				"sluiced", "--node-id", fmt.Sprint(id), "--data-dir", data,
				"--kafka-addr", "0.0.0.0:9092", "--advertised-kafka-addr", host + ":9092",
				"--raft-addr", "0.0.0.0:9192", "--advertised-raft-addr", host + ":9192",
				"--http-addr", "0.0.0.0:9644",
				"--controller-voters", strings.Join(voters, ","),
			}}
			registered := func(st *client.ClusterStatus) bool {
				for _, b := range st.Brokers {
					if b.ID == id {
						p.Registered, p.KafkaAddr = true, b.KafkaAddr
					}
				}
				return p.Registered
			}
			if registered(st) && !wait {
				return codedError{exitConflict, fmt.Errorf("broker %d is already registered (kafka %s); pick another --id", id, p.KafkaAddr)}
			}
			if !a.flags.json {
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "Start broker %d with the cluster's controller voters; it joins as a non-voter:\n\n", id)
				fmt.Fprintf(out, "  %s\n\n", shellLines(p.Command))
				fmt.Fprintln(out, "It takes replicas of new topics; move existing partitions to it with")
				fmt.Fprintf(out, "sluicectl partition move TOPIC PARTITION --replicas ...,%d\n", id)
			}
			if wait && !p.Registered {
				ctx, cancel := withWaitTimeout(cmd.Context(), waitTimeout)
				defer cancel()
				fmt.Fprintf(cmd.ErrOrStderr(), "waiting for broker %d to register (Ctrl-C to stop)...\n", id)
				c, _ := a.client()
				_, err := pollUntil(ctx, time.Second, func() (bool, error) {
					st, err := c.Admin().Cluster(ctx)
					if err != nil {
						return false, err
					}
					return registered(st), nil
				})
				if err != nil {
					return waitErr(cmd, err, fmt.Sprintf("broker %d has not registered", id), "")
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "broker %d registered (kafka %s)\n", id, p.KafkaAddr)
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), p)
			}
			if p.Registered {
				fmt.Fprintf(cmd.OutOrStdout(), "\nBroker %d is registered (kafka %s).\n", id, p.KafkaAddr)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int32Var(&id, "id", 0, "node id of the new broker (default: one more than the highest registered)")
	f.StringVar(&host, "host", "NEW_HOST", "host name or address other brokers and clients reach the new broker at")
	f.StringVar(&data, "data-dir", "/var/lib/sluice", "data directory of the new broker")
	f.BoolVar(&wait, "wait", false, "after printing, wait until the broker has registered")
	f.DurationVar(&waitTimeout, "wait-timeout", 0, "give up waiting after this long (default: until done or Ctrl-C)")
	return cmd
}

// shellLines prints a command line over several lines, two flags a line.
func shellLines(argv []string) string {
	var b strings.Builder
	b.WriteString(argv[0])
	for i := 1; i < len(argv); i += 2 {
		if i > 1 && (i-1)%4 == 0 {
			b.WriteString(" \\\n   ")
		}
		b.WriteString(" " + argv[i])
		if i+1 < len(argv) {
			b.WriteString(" " + argv[i+1])
		}
	}
	return b.String()
}

func withWaitTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

// pollUntil calls step every interval until it is done, fails with an
// error retrying cannot fix, or ctx ends.
func pollUntil(ctx context.Context, every time.Duration, step func() (bool, error)) (bool, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		done, err := step()
		switch {
		case err != nil && !client.IsRetriable(err):
			return false, err
		case done:
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-t.C:
		}
	}
}

// waitErr explains a wait that ended early: Ctrl-C or --wait-timeout
// leave the operation running in the background.
func waitErr(cmd *cobra.Command, err error, what, follow string) error {
	bg := ""
	if follow != "" {
		bg = "; it continues in the background: follow it with " + follow
	}
	switch {
	case cmd.Context().Err() != nil:
		return fmt.Errorf("interrupted: %s yet%s", what, bg)
	case errors.Is(err, context.DeadlineExceeded):
		return codedError{exitUnavailable, fmt.Errorf("--wait-timeout passed: %s yet%s", what, bg)}
	}
	return err
}

func (a *app) newDecommission() *cobra.Command {
	var (
		wait, noWait bool
		waitTimeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "decommission BROKER",
		Short: "Drain a broker: move every replica off it, showing progress until done",
		Long: `Drain a broker: it takes no new replicas, and the controller moves its
replicas to other brokers one partition at a time. By default the command
follows the drain (progress on stderr) until the broker holds no replicas;
then the broker can be stopped. With --no-wait it returns once the drain is
recorded; run it again (it is harmless) to follow. Controller voters cannot
be decommissioned (exit 5). undrain stops a drain.`,
		Example: `  sluicectl cluster decommission 4
  sluicectl cluster decommission 4 --no-wait && sluicectl cluster decommission 4 --json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			id, err := parseID("broker", argv[0])
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
			d, err := c.Admin().Decommission(ctx, id)
			cancel()
			if err != nil {
				return err
			}
			if wait && !d.Done {
				wctx, cancel := withWaitTimeout(cmd.Context(), waitTimeout)
				defer cancel()
				pr := newProgress(cmd)
				d, err = c.Admin().WaitDecommission(wctx, id, func(s *client.DecommissionStatus) {
					pr.say(decommissionLine(s))
				})
				if err != nil {
					return waitErr(cmd, err, fmt.Sprintf("broker %d still holds replicas", id), fmt.Sprintf("sluicectl cluster decommission %d", id))
				}
			}
			return a.printDecommission(cmd, d)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&wait, "wait", true, "follow the drain until the broker holds no replicas")
	f.BoolVar(&noWait, "no-wait", false, "return once the drain is recorded (same as --wait=false)")
	f.DurationVar(&waitTimeout, "wait-timeout", 0, "give up following after this long; the drain continues (default: until done or Ctrl-C)")
	cmd.ValidArgsFunction = a.completeBrokers
	return cmd
}

func decommissionLine(s *client.DecommissionStatus) string {
	line := fmt.Sprintf("broker %d: %d replicas left", s.Broker, s.ReplicasRemaining)
	for _, p := range s.Partitions {
		if p.Progress != nil {
			line += fmt.Sprintf("; moving %s/%d to %s: %s", p.Topic, p.Partition, ids(p.Target), p.Progress.Step)
			if p.Progress.Error != "" {
				line += " (retrying: " + p.Progress.Error + ")"
			}
			break
		}
	}
	if s.Error != "" {
		line += "; blocked: " + s.Error
	}
	return line
}

func (a *app) printDecommission(cmd *cobra.Command, d *client.DecommissionStatus) error {
	if a.flags.json {
		if d.Partitions == nil {
			d.Partitions = []client.PartitionMove{}
		}
		return printJSON(cmd.OutOrStdout(), d)
	}
	out := cmd.OutOrStdout()
	state := "drained: it holds no replicas and can be stopped"
	switch {
	case !d.Draining:
		state = "not draining (takes new replicas)"
	case !d.Done:
		state = fmt.Sprintf("draining: %d replicas left", d.ReplicasRemaining)
	}
	fmt.Fprintf(out, "broker %d %s\n", d.Broker, state)
	if d.Error != "" {
		fmt.Fprintf(out, "blocked: %s\n", d.Error)
	}
	if d.Note != "" {
		fmt.Fprintf(out, "note: %s\n", d.Note)
	}
	if len(d.Partitions) > 0 {
		fmt.Fprintln(out)
		t := newTable(out, "TOPIC", "PARTITION", "REPLICAS", "TARGET", "STEP")
		for _, p := range d.Partitions {
			step := ""
			if p.Progress != nil {
				step = p.Progress.Step
			}
			t.row(p.Topic, p.Partition, ids(p.Replicas), ids(p.Target), step)
		}
		return t.flush()
	}
	return nil
}

func (a *app) newUndrain() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "undrain BROKER",
		Short: "Stop draining a broker: it takes new replicas again",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			id, err := parseID("broker", argv[0])
			if err != nil {
				return err
			}
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			d, err := c.Admin().Undrain(ctx, id)
			if err != nil {
				return err
			}
			return a.printDecommission(cmd, d)
		},
	}
	cmd.ValidArgsFunction = a.completeBrokers
	return cmd
}

// progress writes status lines to stderr when they change, and a
// heartbeat every 10 s when they do not, so a long step is not mistaken
// for a hang.
type progress struct {
	cmd   *cobra.Command
	last  string
	when  time.Time
	start time.Time
}

func newProgress(cmd *cobra.Command) *progress {
	return &progress{cmd: cmd, start: time.Now()}
}

func (p *progress) say(line string) {
	if line == p.last && time.Since(p.when) < 10*time.Second {
		return
	}
	p.last, p.when = line, time.Now()
	fmt.Fprintf(p.cmd.ErrOrStderr(), "[%s] %s\n", time.Since(p.start).Truncate(time.Second), line)
}

func (a *app) newLeadersCmd() *cobra.Command {
	rebalance := &cobra.Command{
		Use:   "rebalance",
		Short: "Hand every partition's leadership to its preferred replica (the first)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, cancel, err := a.connect(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			r, err := c.Admin().RebalanceLeaders(ctx)
			if err != nil {
				return err
			}
			if r.Transfers == nil {
				r.Transfers = []client.Transfer{}
			}
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), r)
			}
			out := cmd.OutOrStdout()
			if len(r.Transfers) == 0 {
				fmt.Fprintln(out, "every partition is led by its preferred replica")
			} else {
				t := newTable(out, "TOPIC", "PARTITION", "FROM", "TO", "ERROR")
				for _, x := range r.Transfers {
					t.row(x.Topic, x.Partition, x.From, x.To, x.Error)
				}
				if err := t.flush(); err != nil {
					return err
				}
			}
			var failed []string
			for b, e := range r.Errors {
				failed = append(failed, fmt.Sprintf("broker %d: %s", b, e))
			}
			for _, x := range r.Transfers {
				if x.Error != "" {
					failed = append(failed, fmt.Sprintf("%s/%d: %s", x.Topic, x.Partition, x.Error))
				}
			}
			if len(failed) > 0 {
				slices.Sort(failed)
				return fmt.Errorf("%d transfers failed or brokers could not be asked (%s); run it again once the cluster settles", len(failed), strings.Join(failed, "; "))
			}
			return nil
		},
	}
	return parent("leaders", "Partition leadership across brokers", rebalance)
}
