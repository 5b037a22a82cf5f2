// Command sluice-bench measures a Kafka-protocol cluster: produce, consume
// and end-to-end workloads, results files, comparisons and plots. This file
// only parses flags and wires them to package bench, which does the work.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/bench"
)

// Exit codes scripts can rely on.
const (
	exitOK          = 0
	exitError       = 1   // the run could not start or failed: brokers, topic, files
	exitUsage       = 2   // bad flags or arguments
	exitIncomplete  = 3   // the run ended but lost messages (failed sends, short reads)
	exitInterrupted = 130 // SIGINT or SIGTERM; partial results were still written
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError marks errors in what the user typed.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "sluice-bench:", err)
	var ue usageError
	switch {
	case errors.As(err, &ue), errors.Is(err, bench.ErrConfig):
		fmt.Fprintln(stderr, "Run 'sluice-bench --help' for usage.")
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, bench.ErrIncomplete):
		return exitIncomplete
	default:
		return exitError
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "sluice-bench",
		Short: "Benchmark a Kafka-protocol cluster (Sluice or any other)",
		Long: `sluice-bench runs produce, consume and end-to-end workloads against any
Kafka-protocol cluster and reports msgs/s, MB/s and latency percentiles
from HDR histograms. Without --rate it measures maximum throughput; with
--rate it sends open loop and measures each message from its intended send
time. Progress goes to stderr each interval, the summary to stdout.

Exit codes: 0 ok, 1 error, 2 usage, 3 run lost messages, 130 interrupted.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Runnable so that an unknown command is a usage error (exit 2).
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newWorkload(bench.Produce, "produce", "Produce messages and measure acknowledgements"),
		newWorkload(bench.Consume, "consume", "Read a topic's backlog from its start (filling it first up to --messages)"),
		newWorkload(bench.EndToEnd, "e2e", "Produce and consume at once; measure send-to-receive latency"),
		newCompare(),
		newPlot(),
	)
	return root
}

// args wraps a cobra.PositionalArgs so that its errors count as usage errors.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

type workloadFlags struct {
	brokers  string
	keyDist  string
	acks     string
	jsonPath string
	quiet    bool
}

func newWorkload(w bench.Workload, use, short string) *cobra.Command {
	cfg := bench.DefaultConfig()
	cfg.Workload = w
	cfg.Topic = ""
	var f workloadFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.apply(cmd, &cfg); err != nil {
				return err
			}
			return runWorkload(cmd, cfg, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.brokers, "brokers", "b", "127.0.0.1:9092", "seed brokers, comma-separated host:port")
	fl.StringVarP(&cfg.Topic, "topic", "t", "", "topic (default a new one, sluice-bench-<unix time>)")
	fl.BoolVar(&cfg.Reuse, "reuse", false, "the topic must exist: use it, never create it")
	fl.IntVarP(&cfg.Partitions, "partitions", "p", cfg.Partitions, "partitions of a created topic")
	fl.IntVarP(&cfg.ReplicationFactor, "replication-factor", "r", cfg.ReplicationFactor, "replication factor of a created topic")
	fl.IntVarP(&cfg.MessageSize, "size", "s", cfg.MessageSize, fmt.Sprintf("message value size in bytes (e2e needs at least %d)", bench.HeaderSize))
	fl.IntVar(&cfg.Keys, "keys", cfg.Keys, "distinct message keys; 0 sends no keys")
	fl.StringVar(&f.keyDist, "key-dist", string(cfg.KeyDist), "key distribution: uniform or zipf")
	fl.Float64Var(&cfg.ZipfS, "zipf-s", cfg.ZipfS, "zipf exponent (> 1; larger is more skewed)")
	fl.StringVar(&f.acks, "acks", string(cfg.Acks), "producer acks: all (-1), leader (1) or none (0)")
	fl.StringVar(&cfg.Compression, "compression", cfg.Compression, "batch compression: "+strings.Join(bench.Compressions, ", "))
	fl.DurationVar(&cfg.Linger, "linger", cfg.Linger, "producer linger (0 for lowest latency)")
	fl.IntVar(&cfg.BatchMaxBytes, "batch-max-bytes", cfg.BatchMaxBytes, "maximum bytes of one producer batch")
	fl.IntVar(&cfg.Producers, "producers", cfg.Producers, "producer clients")
	fl.IntVar(&cfg.Consumers, "consumers", cfg.Consumers, "consumer clients (at most the partition count, unless --share-group)")
	fl.StringVar(&cfg.ShareGroup, "share-group", "", "consume as members of this share group (KIP-932: per-record acquire and ACCEPT, any number of consumers); empty reads assigned partitions")
	fl.Int64VarP(&cfg.Messages, "messages", "n", cfg.Messages, "messages to send or read; 0 means until --duration")
	fl.DurationVarP(&cfg.Duration, "duration", "d", cfg.Duration, "how long to send or read; 0 means until --messages; with only --messages given the run is count-based")
	fl.Float64Var(&cfg.Rate, "rate", cfg.Rate, "open-loop send rate in msg/s over all producers; 0 means maximum throughput")
	fl.IntVar(&cfg.MaxInFlight, "max-in-flight", cfg.MaxInFlight, "unacknowledged messages per producer in maximum-throughput mode")
	fl.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "how long consumers may go without progress, and how long a send may take, before the run counts as lost")
	fl.DurationVar(&cfg.ConnectTimeout, "connect-timeout", cfg.ConnectTimeout, "how long to wait for the brokers' first answer")
	fl.DurationVar(&cfg.Interval, "interval", cfg.Interval, "progress and time-series interval")
	fl.StringVar(&f.jsonPath, "json", "", "also write the results as JSON to this file; - writes JSON to stdout instead of the table")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no progress lines on stderr")
	if w == bench.Produce {
		_ = fl.MarkHidden("consumers") // a produce run has none
		_ = fl.MarkHidden("share-group")
	}
	return cmd
}

// apply copies the flags that need parsing into cfg and validates it.
func (f *workloadFlags) apply(cmd *cobra.Command, cfg *bench.Config) error {
	cfg.Brokers = nil
	for _, b := range strings.Split(f.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.Brokers = append(cfg.Brokers, b)
		}
	}
	cfg.KeyDist = bench.KeyDist(f.keyDist)
	switch f.acks {
	case "-1":
		f.acks = "all"
	case "1":
		f.acks = "leader"
	case "0":
		f.acks = "none"
	}
	cfg.Acks = bench.Acks(f.acks)
	if cmd.Flags().Changed("messages") && !cmd.Flags().Changed("duration") {
		cfg.Duration = 0
	}
	if cfg.Topic == "" {
		if cfg.Reuse {
			return usageError{errors.New("--reuse needs --topic")}
		}
		cfg.Topic = fmt.Sprintf("sluice-bench-%d", time.Now().Unix())
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	return nil
}

func runWorkload(cmd *cobra.Command, cfg bench.Config, f workloadFlags) error {
	stderr := cmd.ErrOrStderr()
	if !f.quiet {
		cfg.Progress = func(s bench.Sample) { fmt.Fprintln(stderr, bench.FormatSample(s)) }
	}
	res, runErr := bench.Run(cmd.Context(), cfg)
	if res == nil {
		return runErr
	}
	if f.jsonPath == "-" {
		if err := res.WriteJSON(cmd.OutOrStdout()); err != nil {
			return err
		}
	} else {
		if err := res.WriteSummary(cmd.OutOrStdout()); err != nil {
			return err
		}
		if f.jsonPath != "" {
			if err := writeFile(f.jsonPath, res.WriteJSON); err != nil {
				return errors.Join(runErr, err)
			}
		}
	}
	return runErr
}

// writeFile writes through a temporary file so a failed write leaves no
// half a file behind.
func writeFile(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".sluice-bench-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil { // CreateTemp makes it 0600
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func newCompare() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "compare A.json B.json",
		Short: "Compare two results files: each metric of B as a ratio of A",
		Long: `Compare two results files written with --json. For every metric both runs
have, prints A, B and B/A, and whether B is better, worse or the same
(within 2%). Only ratios measured side by side on the same machine mean
much; see docs/BENCHMARKS.md.`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ra, err := bench.ReadResultFile(a[0])
			if err != nil {
				return err
			}
			rb, err := bench.ReadResultFile(a[1])
			if err != nil {
				return err
			}
			rows := bench.Compare(ra, rb)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			return bench.WriteComparison(cmd.OutOrStdout(), a[0], a[1], rows)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the comparison as JSON")
	return cmd
}

func newPlot() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "plot RESULT.json",
		Short: "Draw throughput and latency over time as a self-contained HTML page",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if out == "" {
				out = strings.TrimSuffix(a[0], filepath.Ext(a[0])) + ".html"
			}
			if ext := strings.ToLower(filepath.Ext(out)); ext != ".html" && ext != ".htm" {
				return usageError{fmt.Errorf("-o %s: only HTML output is supported (name it .html)", out)}
			}
			r, err := bench.ReadResultFile(a[0])
			if err != nil {
				return err
			}
			if err := writeFile(out, func(w io.Writer) error { return bench.WritePlot(w, r) }); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "wrote", out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "HTML file to write (default RESULT with .html)")
	return cmd
}
