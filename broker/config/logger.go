package config

import (
	"io"
	"os"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// Logger builds the broker's logger writing to w (normally os.Stderr) at
// LogLevel in LogFormat: JSON lines, or zerolog's human-readable console
// format. auto chooses console when w is a terminal. Colour is used only on
// a terminal. Every event carries a timestamp.
//
// Logger expects a validated Config; an unknown level means info and an
// unknown format means JSON.
func (c Config) Logger(w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(c.LogLevel)
	if err != nil || c.LogLevel == "" {
		level = zerolog.InfoLevel
	}
	tty := isTerminal(w)
	out := w
	if c.LogFormat == LogFormatConsole || (c.LogFormat == LogFormatAuto && tty) {
		out = zerolog.ConsoleWriter{Out: w, NoColor: !tty, TimeFormat: "2006-01-02T15:04:05.000Z07:00"}
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fd := f.Fd()
	return isatty.IsTerminal(fd) || isatty.IsCygwinTerminal(fd)
}
