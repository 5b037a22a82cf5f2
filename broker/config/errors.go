package config

import "errors"

var (
	// ErrHelp is returned by Load when the arguments ask for help (-h or
	// --help). The caller prints Usage() to stdout and exits 0.
	ErrHelp = errors.New("config: help requested")
	// ErrInvalid is wrapped by every error Validate reports, so callers can
	// tell a bad value from an unreadable file.
	ErrInvalid = errors.New("config: invalid")
)
