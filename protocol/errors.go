package protocol

import "errors"

// Sentinel errors. Every error returned by this package wraps exactly one of
// these (or io.EOF / io.ErrUnexpectedEOF / the reader's own error from
// ReadFrame), so the broker can tell them apart with errors.Is. The suggested
// broker reaction is given with each; except where noted, the connection
// must be closed, because the stream or the request cannot be trusted.
var (
	// ErrMalformedFrame means the 4-byte size prefix is zero, negative or
	// smaller than the 8-byte fixed request header (close the connection).
	ErrMalformedFrame = errors.New("protocol: malformed frame")

	// ErrFrameTooLarge means the size prefix exceeds Limits.MaxRequestBytes,
	// or a non-Produce request exceeds Limits.MaxControlRequestBytes. Nothing
	// was allocated for the frame (close the connection, as Kafka does).
	ErrFrameTooLarge = errors.New("protocol: frame too large")

	// ErrMalformedRequest means the request header or body does not decode:
	// a length or count runs past the end of the frame, a negative length
	// other than the null marker, bad tagged fields, trailing bytes after the
	// body, or a Produce request whose decoded form would need more memory
	// than its size justifies (close the connection).
	ErrMalformedRequest = errors.New("protocol: malformed request")

	// ErrUnknownAPI means the API key is not one Sluice implements (see
	// Supported). The header is returned with the error (close the
	// connection, as Kafka does).
	ErrUnknownAPI = errors.New("protocol: unknown api key")

	// ErrUnsupportedVersion means the API key is known but the version is
	// outside its Supported range. The header is returned with the error.
	// For ApiVersions (key 18) the broker answers with
	// AppendApiVersionsFallback and keeps the connection; for every other
	// key it closes the connection.
	ErrUnsupportedVersion = errors.New("protocol: unsupported api version")
)
