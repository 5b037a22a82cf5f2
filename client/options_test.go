package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/client"
)

func TestOptionValidation(t *testing.T) {
	b := client.Brokers("127.0.0.1:9092")
	tests := []struct {
		name string
		opts []client.Option
		want []string // every one must appear in the error
	}{
		{"no brokers", nil, []string{"no brokers: use client.Brokers"}},
		{"bad broker", []client.Option{client.Brokers("localhost")}, []string{`broker address "localhost": want host:port`}},
		{"codec", []client.Option{b, client.Compression("brotli")}, []string{`compression "brotli": want none, gzip, snappy, lz4 or zstd`}},
		{"acks without disabling idempotence", []client.Option{b, client.RequiredAcks(client.AcksLeader)}, []string{"acks=leader with idempotence", "client.Idempotence(false)"}},
		{"acks value", []client.Option{b, client.RequiredAcks(2)}, []string{"acks 2: want AcksAll (-1), AcksLeader (1) or AcksNone (0)"}},
		{"linger", []client.Option{b, client.Linger(-time.Millisecond)}, []string{"linger -1ms: want 0 to 1m"}},
		{"batch", []client.Option{b, client.BatchMaxBytes(10)}, []string{"batch max bytes 10: want 1 KiB to 1 GiB"}},
		{"request timeout", []client.Option{b, client.RequestTimeout(0)}, []string{"request timeout 0s: want 100ms to 10m"}},
		{"delivery timeout", []client.Option{b, client.DeliveryTimeout(time.Millisecond)}, []string{"delivery timeout 1ms: want 1s or more"}},
		{"admin scheme", []client.Option{b, client.AdminAddr("ftp://h:1")}, []string{`admin address "ftp://h:1": want http or https`}},
		{"admin port", []client.Option{b, client.AdminAddr("h")}, []string{`admin address "h": want host:port`}},
		{"client id", []client.Option{b, client.ClientID("")}, []string{"client id: want a non-empty string"}},
		{"all reported at once", []client.Option{b, client.Linger(-1), client.Compression("x")}, []string{"linger", `compression "x"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.New(tc.opts...)
			if err == nil {
				c.Close()
				t.Fatal("no error")
			}
			if !errors.Is(err, client.ErrInvalidOption) {
				t.Fatalf("%v does not wrap ErrInvalidOption", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
		})
	}

	c, err := client.New(b, client.RequiredAcks(client.AcksLeader), client.Idempotence(false), client.Compression(client.CompressionZstd),
		client.Linger(0), client.BatchMaxBytes(64<<10), client.AdminAddr("https://admin.example:9644/"), client.ClientID("x"))
	if err != nil {
		t.Fatalf("valid options: %v", err)
	}
	c.Close()
}

func TestErrorClassification(t *testing.T) {
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	tests := []struct {
		name      string
		err       error
		retriable bool
		is        error
	}{
		{"not leader", &client.Error{Op: "produce", Code: kerr.NotLeaderForPartition.Code, Err: kerr.NotLeaderForPartition}, true, client.ErrNotLeader},
		{"raw kerr", kerr.LeaderNotAvailable, true, kerr.LeaderNotAvailable},
		{"topic exists", &client.Error{Code: kerr.TopicAlreadyExists.Code, Err: kerr.TopicAlreadyExists}, false, client.ErrTopicExists},
		{"too large", fmt.Errorf("wrapped: %w", kerr.MessageTooLarge), false, client.ErrRecordTooLarge},
		{"coordinator moving", kerr.NotCoordinator, true, kerr.NotCoordinator},
		{"delivery timeout", &client.Error{Op: "produce", Err: client.ErrDeliveryTimeout}, true, kgo.ErrRecordTimeout},
		{"closed", &client.Error{Op: "produce", Err: kgo.ErrClientClosed}, false, client.ErrClosed},
		{"caller cancelled", fmt.Errorf("x: %w", context.Canceled), false, context.Canceled},
		{"network", opErr, true, nil},
		{"eof", io.EOF, true, io.EOF},
		{"http 503", &client.Error{HTTPStatus: 503, Err: errors.New("Service Unavailable")}, true, nil},
		{"http 409", &client.Error{HTTPStatus: 409, Err: client.ErrConflict}, false, client.ErrConflict},
		{"plain", errors.New("boom"), false, nil},
		{"file", &fs.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}, false, fs.ErrNotExist},
		{"nil", nil, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := client.IsRetriable(tc.err); got != tc.retriable {
				t.Fatalf("IsRetriable(%v) = %v, want %v", tc.err, got, tc.retriable)
			}
			if tc.is != nil && !errors.Is(tc.err, tc.is) {
				t.Fatalf("%v is not %v", tc.err, tc.is)
			}
		})
	}
}

// With no broker to talk to, a record fails after the DeliveryTimeout as
// ErrDeliveryTimeout, which is retriable; a caller's own deadline is the
// caller's error, which is not.
func TestDeliveryTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c, err := client.New(client.Brokers(addr), client.DeliveryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	err = c.ProduceSync(context.Background(), &client.Record{Topic: "t", Value: []byte("x")})
	if !errors.Is(err, client.ErrDeliveryTimeout) || !client.IsRetriable(err) {
		t.Fatalf("got %v, want a retriable ErrDeliveryTimeout", err)
	}
	if d := time.Since(start); d < time.Second || d > 10*time.Second {
		t.Fatalf("failed after %v, want about 1s", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = c.ProduceSync(ctx, &client.Record{Topic: "t", Value: []byte("x")})
	if !errors.Is(err, context.DeadlineExceeded) || client.IsRetriable(err) {
		t.Fatalf("got %v, want the caller's DeadlineExceeded, not retriable", err)
	}
}
