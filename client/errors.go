package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Sentinels, for errors.Is. The Kafka ones are franz-go's kerr values, so
// errors.Is works on errors from this package and from kgo alike.
var (
	ErrInvalidOption   = errors.New("client: invalid option")
	ErrClosed          = kgo.ErrClientClosed
	ErrNoAdminAddr     = errors.New("client: no admin HTTP address; use client.AdminAddr(\"host:9644\")")
	ErrNotFound        = errors.New("client: not found")                         // admin API 404
	ErrConflict        = errors.New("client: refused in the current state")      // admin API 409
	ErrBadRequest      = errors.New("client: the admin API refused the request") // admin API 400
	ErrDeliveryTimeout = kgo.ErrRecordTimeout

	ErrNotLeader      = kerr.NotLeaderForPartition
	ErrUnknownTopic   = kerr.UnknownTopicOrPartition
	ErrTopicExists    = kerr.TopicAlreadyExists
	ErrRecordTooLarge = kerr.MessageTooLarge
	ErrUnknownGroup   = kerr.GroupIDNotFound
	ErrGroupNotEmpty  = kerr.NonEmptyGroup
)

// Error is an error from a broker or from the client's delivery machinery,
// with what is known about where it happened and whether retrying can
// help. Every error this package returns from a broker call is an *Error.
type Error struct {
	Op        string // what was attempted: "produce", "create topic", "move partition", ...
	Topic     string // empty when not about one topic
	Partition int32  // -1 when not about one partition
	// Code is the Kafka error code (kerr), 0 when the error is not Kafka's.
	Code int16
	// HTTPStatus is the admin API's answer, 0 when not an HTTP call.
	HTTPStatus int
	// Message is the admin API's explanation, when there is one.
	Message string
	Err     error
}

func (e *Error) Error() string {
	s := "client: " + e.Op
	if e.Topic != "" {
		s += " " + e.Topic
		if e.Partition >= 0 {
			s += fmt.Sprintf("/%d", e.Partition)
		}
	}
	switch {
	case e.Message != "" && e.Err != nil:
		return s + ": " + e.Message + " (" + e.Err.Error() + ")"
	case e.Message != "":
		return s + ": " + e.Message
	case e.Err != nil:
		return s + ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Retriable reports whether the same call may succeed later unchanged:
// leader elections, unavailable coordinators, timeouts, lost connections,
// a 503 from the admin API. Note that produce errors reach the caller
// only after the client has already retried for the DeliveryTimeout.
func (e *Error) Retriable() bool {
	if e.Code != 0 {
		return kerr.TypedErrorForCode(e.Code).Retriable
	}
	if e.HTTPStatus != 0 {
		switch e.HTTPStatus {
		case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout, http.StatusTooManyRequests:
			return true
		}
		return false
	}
	return retriable(e.Err)
}

// IsRetriable reports whether err, from this package, franz-go or the
// network, may go away if the call is repeated unchanged.
func IsRetriable(err error) bool {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Retriable()
	}
	return retriable(err)
}

func retriable(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, kgo.ErrClientClosed):
		// The caller gave up, or closed the client: repeating cannot help.
		return false
	case errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, kgo.ErrRecordRetries), errors.Is(err, kgo.ErrMaxBuffered):
		return true
	case kerr.IsRetriable(err):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return true
	}
	var ne net.Error
	if !errors.As(err, &ne) {
		return false
	}
	// Every syscall.Errno is a net.Error, file errors (ENOENT) included.
	_, errno := ne.(syscall.Errno)
	return !errno
}

// wrap turns err into an *Error for op, or returns nil for nil.
func wrap(op, topic string, partition int32, err error) error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	e := &Error{Op: op, Topic: topic, Partition: partition, Err: err}
	if ke, ok := errors.AsType[*kerr.Error](err); ok {
		e.Code = ke.Code
	}
	return e
}
