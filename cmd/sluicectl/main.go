// Command sluicectl is Sluice's admin CLI, in the style of rpk and
// kubectl. This package only wires commands, flags and output; the work
// is done by the client package (Kafka protocol and HTTP admin API) and,
// for debug dump-segment, the log package.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/client"
	slog "github.com/sluicemq/sluice/log"
)

// Exit codes scripts can rely on (listed in the root command's help).
const (
	exitOK          = 0
	exitError       = 1 // any other failure
	exitUsage       = 2 // bad flags or arguments, or values the broker rejected as invalid
	exitCorrupt     = 3 // debug dump-segment: the file is damaged
	exitNotFound    = 4 // no such topic, partition, group or broker
	exitConflict    = 5 // refused in the current state: exists, group has members, move pending
	exitUnavailable = 6 // broker unreachable or timed out; retrying may help
)

const exitCodesHelp = `Exit codes:
  0  success (consume: -n records read, the end reached with -e, or Ctrl-C)
  1  error
  2  usage: bad flags or arguments, or values the broker rejected as invalid
  3  debug dump-segment: the file is damaged
  4  not found: no such topic, partition, group, broker or record
  5  conflict: refused in the current state (topic exists, group has members,
     partition already moving, broker is a controller voter)
  6  unavailable: a broker could not be reached or timed out; retrying may help`

func main() {
	// Ctrl-C cancels the command's context: follows and waits stop cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns its exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{}
	root := a.newRoot()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	a.close()
	if err == nil {
		return exitOK
	}
	code, msg := a.explain(err)
	fmt.Fprintln(stderr, "sluicectl:", msg)
	return code
}

// usageError is a bad command line; run exits 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// codedError carries its own exit code.
type codedError struct {
	code int
	err  error
}

func (e codedError) Error() string { return e.err.Error() }
func (e codedError) Unwrap() error { return e.err }

// explain maps err to an exit code and a message that says what to do.
func (a *app) explain(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "client: ")
	if ce, ok := errors.AsType[*client.Error](err); ok && ce.HTTPStatus != 0 && ce.Message != "" {
		msg = ce.Op + ": " + ce.Message // the admin API's explanation says it all
	}
	if ce, ok := errors.AsType[codedError](err); ok {
		return ce.code, msg
	}
	if _, ok := errors.AsType[usageError](err); ok {
		return exitUsage, msg + " (see --help)"
	}
	if isCobraUsage(err) {
		return exitUsage, msg + " (see --help)"
	}
	switch {
	case errors.Is(err, slog.ErrCorrupt):
		return exitCorrupt, msg
	case errors.Is(err, client.ErrUnknownTopic), errors.Is(err, kerr.UnknownTopicID):
		if ce, ok := errors.AsType[*client.Error](err); ok && ce.Topic != "" && ce.HTTPStatus == 0 {
			if ce.Partition >= 0 {
				return exitNotFound, fmt.Sprintf("topic %q has no partition %d, or does not exist (see sluicectl topic describe %s)", ce.Topic, ce.Partition, ce.Topic)
			}
			return exitNotFound, fmt.Sprintf("topic %q does not exist (see sluicectl topic list)", ce.Topic)
		}
		return exitNotFound, msg
	case errors.Is(err, client.ErrUnknownGroup):
		if ce, ok := errors.AsType[*client.Error](err); ok && ce.Message != "" {
			return exitNotFound, fmt.Sprintf("%s does not exist (see sluicectl group list)", ce.Message)
		}
		return exitNotFound, msg
	case errors.Is(err, client.ErrNotFound):
		return exitNotFound, msg
	case errors.Is(err, client.ErrConflict), errors.Is(err, client.ErrTopicExists), errors.Is(err, client.ErrGroupNotEmpty),
		errors.Is(err, kerr.ReassignmentInProgress):
		return exitConflict, msg
	case errors.Is(err, client.ErrBadRequest), errors.Is(err, client.ErrInvalidOption),
		errors.Is(err, kerr.InvalidReplicationFactor), errors.Is(err, kerr.InvalidPartitions), errors.Is(err, kerr.InvalidConfig),
		errors.Is(err, kerr.InvalidTopicException), errors.Is(err, kerr.InvalidReplicaAssignment), errors.Is(err, kerr.InvalidRequest),
		errors.Is(err, kerr.PolicyViolation), errors.Is(err, kerr.InvalidGroupID):
		return exitUsage, msg
	}
	if ue, ok := errors.AsType[*url.Error](err); ok && isDial(err) {
		return exitUnavailable, fmt.Sprintf("cannot reach the admin API at %s: is the broker running? set --admin-url or SLUICE_ADMIN_URL (%v)",
			strings.Join(a.set.AdminURLs, ","), ue.Err)
	}
	if isDial(err) {
		return exitUnavailable, fmt.Sprintf("cannot reach %s: is the broker running? set --brokers or SLUICE_BROKERS (%s)",
			strings.Join(a.set.Brokers, ","), msg)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return exitUnavailable, fmt.Sprintf("no answer within %v from %s: is the broker running? raise --timeout, or check --brokers and --admin-url (%s)",
			a.timeout, strings.Join(a.set.Brokers, ","), msg)
	}
	if client.IsRetriable(err) {
		return exitUnavailable, msg + " (temporary: retry)"
	}
	return exitError, msg
}

// isCobraUsage recognizes cobra's own command-line errors, which are
// plain strings.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument",
		"invalid argument", "accepts ", "requires at least", "requires at most", "required flag", "if any flags in the group"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// isDial reports a connection that could not be made: refused, no route,
// unknown host.
func isDial(err error) bool {
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "dial" {
		return true
	}
	if _, ok := errors.AsType[*net.DNSError](err); ok {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		strings.Contains(err.Error(), "unable to dial")
}

// app holds the global flags and the lazily made client.
type app struct {
	flags   globalFlags
	set     settings
	timeout time.Duration
	cl      *client.Client
}

type globalFlags struct {
	brokers    string
	adminURL   string
	configFile string
	json       bool
	timeout    time.Duration
}

func (a *app) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "sluicectl",
		Short: "Administer a Sluice cluster: topics, groups, partitions, brokers",
		Long: `sluicectl administers a Sluice cluster: topics and configs, consumer groups
and their lag, share groups (queues) and their dead-letter topics, partition
moves and leadership, brokers, and producing and tailing records. Topics and groups go over the Kafka protocol (--brokers);
cluster operations and group lag in seconds over the HTTP admin API
(--admin-url).

Addresses come from, in order: the flags, the environment (SLUICE_BROKERS,
SLUICE_ADMIN_URL), a YAML file (--config FILE, else
~/.config/sluice/sluicectl.yaml with keys brokers and admin_url), and the
defaults of make run (127.0.0.1:9092, http://127.0.0.1:9644).

Tables are for people; --json prints stable JSON objects for scripts.
Progress of long operations goes to stderr.

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Global flags are parsed before any command runs; settings are
		// resolved once here so every command and completion sees them.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.resolve(cmd)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.flags.brokers, "brokers", "", "Kafka bootstrap addresses, host:port,... (env SLUICE_BROKERS; default 127.0.0.1:9092)")
	pf.StringVar(&a.flags.adminURL, "admin-url", "", "HTTP admin API of any broker(s), http://host:port,... (env SLUICE_ADMIN_URL; default http://127.0.0.1:9644)")
	pf.StringVar(&a.flags.configFile, "config", "", "YAML config file with brokers and admin_url (default ~/.config/sluice/sluicectl.yaml if it exists)")
	pf.BoolVar(&a.flags.json, "json", false, "print JSON for scripts instead of tables")
	pf.DurationVar(&a.flags.timeout, "timeout", 30*time.Second, "how long to wait for each request's answer (waits for moves and drains have --wait-timeout)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	root.AddGroup(&cobra.Group{ID: "admin", Title: "Cluster administration:"}, &cobra.Group{ID: "queues", Title: "Queues (share groups):"},
		&cobra.Group{ID: "data", Title: "Records:"})
	for _, c := range []*cobra.Command{a.newClusterCmd(), a.newTopicCmd(), a.newPartitionCmd(), a.newLeadersCmd(), a.newGroupCmd()} {
		c.GroupID = "admin"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.newShareGroupCmd(), a.newDLQCmd()} {
		c.GroupID = "queues"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.newProduceCmd(), a.newConsumeCmd()} {
		c.GroupID = "data"
		root.AddCommand(c)
	}
	root.AddCommand(a.newConfigCmd(), newDebugCmd())
	return root
}

// parent makes a command that only holds subcommands: run bare it prints
// its help; with an unknown subcommand it is a usage error (cobra would
// print help and exit 0).
func parent(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
	c.AddCommand(subs...)
	return c
}

// args wraps a cobra positional-argument check so its failure exits 2.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func newDebugCmd() *cobra.Command {
	return parent("debug", "Inspect Sluice's on-disk files", newDumpSegment())
}

func newDumpSegment() *cobra.Command {
	var opts slog.DumpOptions
	cmd := &cobra.Command{
		Use:   "dump-segment FILE",
		Short: "Print a segment (.seg), index (.idx) or start.ckpt file frame by frame",
		Long: `Print a segment (.seg), index (.idx) or start.ckpt file of a partition's log,
checking every frame's CRC. Exits 3 when the file is damaged, after printing
everything before the damage. The format is described in log/FORMAT.md.`,
		Args: args(cobra.ExactArgs(1)),
		// Local files only: no broker settings needed.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, args []string) error {
			return slog.Dump(cmd.OutOrStdout(), nil, args[0], opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Records, "records", false, "decode and print every record (decompressing batches)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON object per line instead of text")
	return cmd
}
