// Command sluicectl is Sluice's admin CLI. This file only wires commands;
// the work is done in the packages they call.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	slog "github.com/sluicemq/sluice/log"
)

// Exit codes scripts can rely on.
const (
	exitOK      = 0
	exitError   = 1 // usage or I/O error
	exitCorrupt = 3 // the file is damaged
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRoot()
	root.SetArgs(args)
	err := root.Execute()
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, slog.ErrCorrupt):
		fmt.Fprintln(os.Stderr, "sluicectl:", err)
		return exitCorrupt
	default:
		fmt.Fprintln(os.Stderr, "sluicectl:", err)
		return exitError
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "sluicectl",
		Short:         "Administer a Sluice cluster and inspect its files",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	debug := &cobra.Command{Use: "debug", Short: "Inspect Sluice's on-disk files"}
	debug.AddCommand(newDumpSegment())
	root.AddCommand(debug)
	return root
}

func newDumpSegment() *cobra.Command {
	var opts slog.DumpOptions
	cmd := &cobra.Command{
		Use:   "dump-segment FILE",
		Short: "Print a segment (.seg), index (.idx) or start.ckpt file frame by frame",
		Long: `Print a segment (.seg), index (.idx) or start.ckpt file of a partition's log,
checking every frame's CRC. Exits 3 when the file is damaged, after printing
everything before the damage. The format is described in log/FORMAT.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return slog.Dump(cmd.OutOrStdout(), nil, args[0], opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Records, "records", false, "decode and print every record (decompressing batches)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON object per line instead of text")
	return cmd
}
