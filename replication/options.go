package replication

import "github.com/rs/zerolog"

// Option configures a LogStore or an FSM.
type Option func(*options)

type options struct {
	logger zerolog.Logger
}

// WithLogger sets the logger; the default discards everything.
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) { o.logger = l }
}

func buildOptions(opts []Option) options {
	o := options{logger: zerolog.Nop()}
	for _, f := range opts {
		f(&o)
	}
	return o
}
