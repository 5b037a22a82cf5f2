// Command sluiced is the Sluice broker. It only loads the configuration,
// starts the broker and stops it on SIGTERM/SIGINT; the work is in broker/.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/config"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := config.Load(args, os.LookupEnv)
	if errors.Is(err, config.ErrHelp) {
		fmt.Fprint(os.Stdout, config.Usage())
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sluiced: %v\n(see sluiced --help)\n", err)
		return 2
	}
	lg := cfg.Logger(os.Stderr)
	b, err := broker.New(cfg, lg)
	if err != nil {
		lg.Error().Err(err).Msg("cannot start")
		return 1
	}
	if err := b.Start(); err != nil {
		lg.Error().Err(err).Msg("cannot start")
		b.Shutdown(context.Background())
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	lg.Info().Str("signal", s.String()).Msg("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	b.Shutdown(ctx)
	return 0
}
