// Command chaos is Sluice's Jepsen-style fault harness. It runs real
// sluiced processes on loopback with every broker-to-broker link through a
// fault proxy it controls, drives idempotent acks=all producers, a
// consumer group and a share group against them while a nemesis kills,
// pauses and partitions brokers, writes every operation to a history (JSON lines),
// and checks the history for Jepsen's anomalies. Any anomaly fails the run
// (exit 1) and keeps the history, the brokers' data and their logs.
//
//	go run ./scripts/chaos -duration 3m                  # mixed faults
//	go run ./scripts/chaos -faults kill -kill-cycles 200 -min-acked 1000000
//	go run ./scripts/chaos -check run/history.jsonl      # re-check a history
//
// Every run prints its seed; -seed replays the same fault schedule and
// workload choices (timing on real processes is not deterministic).
// See docs/RELIABILITY.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Summary is the structured result printed at the end of a run.
type Summary struct {
	Seed         uint64         `json:"seed"`
	Command      string         `json:"command"`
	Started      string         `json:"started"`
	Seconds      float64        `json:"seconds"`
	Brokers      int            `json:"brokers"`
	Partitions   int            `json:"partitions"`
	Faults       map[string]int `json:"faults"`
	Liveness     []string       `json:"liveness_failures,omitempty"`
	HarnessError string         `json:"harness_error,omitempty"`
	Dir          string         `json:"dir"`
	History      string         `json:"history"`
	Report
}

type options struct {
	seed            uint64
	brokers         int
	partitions      int
	duration        time.Duration
	killCycles      int
	minAcked        int64
	faults          string
	leaderFrac      float64
	faultMin        time.Duration
	faultMax        time.Duration
	healMin         time.Duration
	healMax         time.Duration
	producers       int
	keys            int
	rate            float64
	inflight        int
	valueSize       int
	deliveryTimeout time.Duration
	consumers       int
	commitEvery     time.Duration
	shareConsumers  int
	shareLock       time.Duration
	hb              string
	dir             string
	sluiced         string
	keep            bool
	check           string
	catchUp         time.Duration
	maxDuration     time.Duration
	brokerArgs      string
	clientLog       bool
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the fault schedule and the workload's choices; 0 picks one from the clock (printed)")
	fs.IntVar(&o.brokers, "brokers", 3, "brokers (at least 3; the first 3, or 5 of 5 or more, are controller voters; decommission needs a non-voter: 4, or 6 or more)")
	fs.IntVar(&o.partitions, "partitions", 6, "partitions of the test topic (replication factor 3)")
	fs.DurationVar(&o.duration, "duration", 2*time.Minute, "least time faults are injected")
	fs.IntVar(&o.killCycles, "kill-cycles", 0, "keep injecting until at least this many kill cycles ran (kill, kill-leader, power-loss: one broker each; power-loss-all: every broker, counted once)")
	fs.Int64Var(&o.minAcked, "min-acked", 0, "keep injecting until at least this many records were acknowledged")
	fs.StringVar(&o.faults, "faults", "kill,kill-leader,pause,pause-leader,partition-leader,partition-random,bridge,one-way,delay,reset",
		"comma-separated fault kinds: "+strings.Join(faultKinds, ","))
	fs.Float64Var(&o.leaderFrac, "leader-frac", 0.5, "probability that kill and pause aim at a partition's leader")
	fs.DurationVar(&o.faultMin, "fault-min", 2*time.Second, "shortest fault (and downtime of a killed broker)")
	fs.DurationVar(&o.faultMax, "fault-max", 8*time.Second, "longest fault")
	fs.DurationVar(&o.healMin, "heal-min", 2*time.Second, "shortest healthy time between faults (after every broker is ready)")
	fs.DurationVar(&o.healMax, "heal-max", 5*time.Second, "longest healthy time between faults")
	fs.IntVar(&o.producers, "producers", 3, "idempotent producers (each its own client and keys)")
	fs.IntVar(&o.keys, "keys", 8, "keys per producer")
	fs.Float64Var(&o.rate, "rate", 400, "records per second over all producers; 0 for as fast as -inflight allows")
	fs.IntVar(&o.inflight, "inflight", 500, "unanswered records per producer")
	fs.IntVar(&o.valueSize, "value-size", 64, "bytes per record value")
	fs.DurationVar(&o.deliveryTimeout, "delivery-timeout", 30*time.Second, "a record not acknowledged within this is given up (unknown)")
	fs.IntVar(&o.consumers, "consumers", 2, "members of the consumer group")
	fs.DurationVar(&o.commitEvery, "commit-every", 500*time.Millisecond, "how often consumers commit what they polled")
	fs.IntVar(&o.shareConsumers, "share-consumers", 2, "members of a share group (KIP-932) that consume the topic too and accept every record; 0 for none")
	fs.DurationVar(&o.shareLock, "share-lock", 15*time.Second, "the share group's record lock duration (share.record.lock.duration.ms)")
	fs.StringVar(&o.hb, "raft-heartbeat-timeout", "1s", "the brokers' --raft-heartbeat-timeout")
	fs.StringVar(&o.dir, "dir", "", "run directory (data, logs, history); default a new directory under $TMPDIR")
	fs.StringVar(&o.sluiced, "sluiced", "", "sluiced binary; default: go build ./cmd/sluiced into the run directory")
	fs.BoolVar(&o.keep, "keep", false, "keep the run directory even when the run passes")
	fs.StringVar(&o.check, "check", "", "only check the history file given and print the report")
	fs.DurationVar(&o.catchUp, "catch-up", 2*time.Minute, "how long the group may take to consume everything after healing")
	fs.DurationVar(&o.maxDuration, "max-duration", 0, "give up injecting after this long even if -kill-cycles or -min-acked are not reached (0: no limit)")
	fs.StringVar(&o.brokerArgs, "broker-args", "", "extra flags for every sluiced, space-separated")
	fs.BoolVar(&o.clientLog, "client-log", false, "write the franz-go clients' log (info level) to clients.log in the run directory")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.brokers < 3 {
		return nil, fmt.Errorf("-brokers must be at least 3")
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano()) & (1<<53 - 1)
	}
	for _, k := range strings.Split(o.faults, ",") {
		if k != "" && !contains(faultKinds, k) {
			return nil, fmt.Errorf("unknown fault kind %q (known: %s)", k, strings.Join(faultKinds, ","))
		}
		if k == "decommission" && voterCount(o.brokers) == o.brokers {
			return nil, fmt.Errorf("decommission drains a broker that is not a controller voter, and all %d brokers are: use -brokers 4, or 6 or more", o.brokers)
		}
	}
	return o, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s chaos: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func run(args []string) int {
	o, err := parseFlags(args)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if o.check != "" {
		rep, err := CheckFile(o.check)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		printJSON(rep)
		if !rep.Valid {
			return 1
		}
		return 0
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	sum, code := runChaos(ctx, o, args)
	printJSON(sum)
	printVerdict(sum, code)
	return code
}

func printJSON(v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	fmt.Println(string(b))
}

func printVerdict(s *Summary, code int) {
	fmt.Fprintf(os.Stderr, "\nseed %d: %d sends ok, %d failed, %d unknown; %d kills (%d aimed at leaders), %d pauses; election p50 %.2fs p99 %.2fs (%d measured)\n",
		s.Seed, s.Sends.OK, s.Sends.Fail, s.Sends.Unknown, s.Kills, s.LeaderKills, s.Pauses, s.ElectionP50, s.ElectionP99, s.Elections)
	var names []string
	for _, a := range AllAnomalies {
		names = append(names, fmt.Sprintf("%s %d", a, s.Anomalies[a]))
	}
	if sh := s.Share; sh != nil {
		fmt.Fprintf(os.Stderr, "share group: %d deliveries of %d records, %d redelivered (max delivery count %d); acks %d ok, %d failed, %d unknown; %d accepted with an unknown outcome\n",
			sh.Deliveries, sh.Records, sh.Redelivered, sh.MaxDeliveryCount, sh.Acks.OK, sh.Acks.Fail, sh.Acks.Unknown, sh.AcceptedUnknown)
	}
	if d, r := s.Decommissions, s.ReAdds; d != (Counts{}) || r != (Counts{}) {
		fmt.Fprintf(os.Stderr, "decommissions %d drained, %d failed, %d unknown (stopped or unfinished); re-adds %d ok, %d failed, %d unknown\n",
			d.OK, d.Fail, d.Unknown, r.OK, r.Fail, r.Unknown)
	}
	fmt.Fprintf(os.Stderr, "anomalies: %s\n", strings.Join(names, ", "))
	switch code {
	case 0:
		fmt.Fprintln(os.Stderr, "PASS")
	case 1:
		fmt.Fprintf(os.Stderr, "FAIL: anomalies found; history and data kept in %s (replay the schedule with -seed %d)\n", s.Dir, s.Seed)
	default:
		fmt.Fprintf(os.Stderr, "ERROR: %s; run directory kept in %s (-seed %d)\n", s.HarnessError, s.Dir, s.Seed)
	}
}

// buildSluiced builds the broker into dir.
func buildSluiced(dir string) (string, error) {
	out := filepath.Join(dir, "sluiced")
	cmd := exec.Command("go", "build", "-o", out, "github.com/sluicemq/sluice/cmd/sluiced")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building sluiced: %w", err)
	}
	return out, nil
}

func runChaos(ctx context.Context, o *options, args []string) (*Summary, int) {
	start := time.Now()
	sum := &Summary{Seed: o.seed, Command: "chaos " + strings.Join(args, " "), Started: start.UTC().Format(time.RFC3339),
		Brokers: o.brokers, Partitions: o.partitions}
	sum.Anomalies = map[string]int{}
	fail := func(err error) (*Summary, int) {
		sum.HarnessError = err.Error()
		sum.Seconds = time.Since(start).Seconds()
		return sum, 2
	}
	dir := o.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "sluice-chaos-")
		if err != nil {
			return fail(err)
		}
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	sum.Dir = dir
	sum.History = filepath.Join(dir, "history.jsonl")
	logf("seed %d, run directory %s", o.seed, dir)

	bin := o.sluiced
	if bin == "" {
		b, err := buildSluiced(dir)
		if err != nil {
			return fail(err)
		}
		bin = b
	}
	h, err := NewHistory(sum.History)
	if err != nil {
		return fail(err)
	}
	historyClosed := false
	closeHistory := func() error {
		if historyClosed {
			return nil
		}
		historyClosed = true
		return h.Close()
	}
	defer closeHistory()

	extra := strings.Fields(o.brokerArgs)
	if needsFaultFS(o.faults) && !slices.Contains(extra, "--debug-fault-fs") {
		extra = append(extra, "--debug-fault-fs")
		logf("power-loss and disk faults: brokers run with --debug-fault-fs (every SIGKILL drops their unsynced writes)")
	}
	c, err := NewCluster(bin, dir, o.brokers, o.hb, extra, logf)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	for _, b := range c.Brokers {
		if err := c.Start(b.ID); err != nil {
			return fail(err)
		}
	}
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	for _, b := range c.Brokers {
		if err := c.WaitReady(rctx, b.ID); err != nil {
			rcancel()
			return fail(err)
		}
	}
	rcancel()
	const topic, group, shareGroup = "chaos", "chaos-group", "chaos-share"
	if err := createTopic(ctx, c.Seeds(), topic, o.partitions); err != nil {
		return fail(err)
	}
	logf("cluster up: %d brokers, topic %s with %d partitions", o.brokers, topic, o.partitions)

	w := NewWorkload(WorkloadConfig{
		Seeds: c.Seeds(), Topic: topic, Group: group, Seed: o.seed,
		Producers: o.producers, KeysPerProducer: o.keys, Rate: o.rate, InFlight: o.inflight,
		ValueSize: o.valueSize, DeliveryTimeout: o.deliveryTimeout,
		Consumers: o.consumers, CommitEvery: o.commitEvery,
		ShareConsumers: o.shareConsumers, ShareGroup: shareGroup, ShareLock: o.shareLock,
	}, h)
	if o.clientLog {
		f, err := os.Create(filepath.Join(dir, "clients.log"))
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		w.cfg.ClientLog = f
	}
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	if err := w.Start(wctx); err != nil {
		return fail(err)
	}
	var kinds []string
	for _, k := range strings.Split(o.faults, ",") {
		if k != "" {
			kinds = append(kinds, k)
		}
	}
	nem := NewNemesis(NemesisConfig{Kinds: kinds, LeaderFrac: o.leaderFrac, FaultMin: o.faultMin, FaultMax: o.faultMax,
		HealMin: o.healMin, HealMax: o.healMax}, c, h, o.seed, topic, o.partitions, logf)

	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go progress(start, w, c, nem, stopProgress, progressDone)

	// Warm up, then faults.
	sleep(ctx, 3*time.Second)
	if len(kinds) > 0 {
		nem.Run(ctx, func() bool {
			elapsed := time.Since(start)
			if o.maxDuration > 0 && elapsed > o.maxDuration {
				return true
			}
			return elapsed >= o.duration && nem.Kills() >= o.killCycles && w.Acked.Load() >= o.minAcked
		})
	} else {
		sleep(ctx, o.duration)
	}
	if ctx.Err() != nil {
		c.KillAll()
		close(stopProgress)
		<-progressDone
		return fail(fmt.Errorf("interrupted"))
	}
	// Healed: let the healthy cluster take traffic, then drain.
	nem.Heal(ctx)
	logf("healed; producing on a healthy cluster for 5s")
	sleep(ctx, 5*time.Second)
	w.StopProducing()
	logf("producers stopped: %d acknowledged, %d failed, %d unknown", w.Acked.Load(), w.Failed.Load(), w.Unknown.Load())

	fr, err := newFinalReader(ctx, c.Seeds(), topic, h)
	if err != nil {
		return fail(err)
	}
	defer fr.close()
	// The final read reads the current replicas: no move may be under way
	// (decommission moves replicas; a move's replicas are old and new).
	if err := c.WaitMoves(ctx, 2*time.Minute); err != nil {
		sum.Liveness = append(sum.Liveness, err.Error())
	}
	replicas, _, err := c.Replicas(ctx, topic)
	if err != nil {
		return fail(err)
	}
	hws, err := fr.converge(ctx, replicas, 60*time.Second)
	if err != nil {
		sum.Liveness = append(sum.Liveness, "replicas did not converge: "+err.Error())
	}
	// The group catches up with everything committed.
	logf("waiting up to %v for the group to consume and commit every record: end offsets %v", o.catchUp, hws)
	deadline := time.Now().Add(o.catchUp)
	for {
		com := w.Committed()
		behind := int64(0)
		for p, hw := range hws {
			behind += max(hw-com[p], 0)
		}
		if behind == 0 && len(hws) > 0 {
			break
		}
		if time.Now().After(deadline) {
			sum.Liveness = append(sum.Liveness, fmt.Sprintf("the group is %d records behind after %v: committed %v, end offsets %v", behind, o.catchUp, com, hws))
			break
		}
		sleep(ctx, 500*time.Millisecond)
	}
	// The share group accepts every acknowledged record too.
	if w.share != nil {
		logf("waiting up to %v for the share group to acknowledge every record", o.catchUp)
		if err := w.share.drain(ctx, o.catchUp, hws); err != nil {
			sum.Liveness = append(sum.Liveness, err.Error())
		}
		logf("share group: %d deliveries, %d accepted", w.share.Delivered.Load(), w.share.Accepted.Load())
	}
	w.StopConsuming()
	// One more read of the committed offsets, after the consumers' last commits.
	if cl, err := kgo.NewClient(w.clientOpts("observer-final")...); err == nil {
		w.readCommitted(ctx, kadm.NewClient(cl))
		cl.Close()
	}
	// Final read of every replica.
	total := 0
	for p := int32(0); p < int32(o.partitions); p++ {
		for _, r := range replicas[p] {
			n, err := fr.read(ctx, int(r), p, hws[p])
			if err != nil {
				sum.Liveness = append(sum.Liveness, "final read: "+err.Error())
			}
			total += n
		}
	}
	logf("final read: %d records over %d partitions and their replicas", total, o.partitions)
	close(stopProgress)
	<-progressDone
	wcancel()
	c.Close()
	if err := closeHistory(); err != nil {
		return fail(fmt.Errorf("history: %w", err))
	}

	// Judge the history as written to disk, as -check would.
	rep, err := CheckFile(sum.History)
	if err != nil {
		return fail(err)
	}
	sum.Report = rep
	sum.Faults = nem.Counts()
	sum.Liveness = append(nem.Errors(), sum.Liveness...)
	sum.Seconds = time.Since(start).Seconds()
	if b, err := json.MarshalIndent(sum, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "summary.json"), b, 0o644)
	}
	code := 0
	switch {
	case !rep.Valid:
		code = 1
	case len(sum.Liveness) > 0:
		sum.HarnessError = "liveness: " + strings.Join(sum.Liveness, "; ")
		code = 2
	}
	if code == 0 && !o.keep {
		_ = os.RemoveAll(dir)
		sum.Dir, sum.History = "", ""
	}
	return sum, code
}

func createTopic(ctx context.Context, seeds []string, topic string, parts int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		r, err := adm.CreateTopic(cctx, int32(parts), 3, nil, topic)
		if err == nil && r.Err == nil {
			break
		}
		if cctx.Err() != nil {
			return fmt.Errorf("create topic %s: %v %v", topic, err, r.Err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Wait until every partition has a leader.
	for {
		md, err := adm.Metadata(cctx, topic)
		if err == nil {
			t := md.Topics[topic]
			ok := t.Err == nil && len(t.Partitions) == parts
			for _, p := range t.Partitions {
				ok = ok && p.Leader >= 1
			}
			if ok {
				return nil
			}
		}
		if cctx.Err() != nil {
			return fmt.Errorf("topic %s: partitions without a leader", topic)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// progress prints one line a second.
func progress(start time.Time, w *Workload, c *Cluster, nem *Nemesis, stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastAcked int64
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		acked := w.Acked.Load()
		var states []string
		for _, b := range c.Brokers {
			s := fmt.Sprintf("%d:up", b.ID)
			switch {
			case !b.Running():
				s = fmt.Sprintf("%d:DOWN", b.ID)
			case b.Paused():
				s = fmt.Sprintf("%d:PAUSED", b.ID)
			}
			states = append(states, s)
		}
		sort.Strings(states)
		f := nem.Current()
		if f == "" {
			f = "none"
		}
		share := ""
		if w.share != nil {
			share = fmt.Sprintf(" | share delivered %d accepted %d", w.share.Delivered.Load(), w.share.Accepted.Load())
		}
		fmt.Fprintf(os.Stderr, "[%5.0fs] acked %d (+%d/s) failed %d unknown %d pending %d | polled %d commits %d%s | brokers %s | kills %d | fault: %s\n",
			time.Since(start).Seconds(), acked, acked-lastAcked, w.Failed.Load(), w.Unknown.Load(), w.Pending.Load(),
			w.Polled.Load(), w.Commits.Load(), share, strings.Join(states, " "), nem.Kills(), f)
		lastAcked = acked
	}
}
