package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
)

// produceSummary is produce --json.
type produceSummary struct {
	Topic      string            `json:"topic"`
	Produced   int               `json:"produced"`
	Failed     int               `json:"failed"`
	Partitions []producedRecords `json:"partitions"`
}

type producedRecords struct {
	Partition   int32 `json:"partition"`
	Records     int   `json:"records"`
	FirstOffset int64 `json:"first_offset"`
	LastOffset  int64 `json:"last_offset"`
}

func (a *app) newProduceCmd() *cobra.Command {
	var (
		keySep, compression, acks string
		headers                   []string
	)
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce one record per line of stdin",
		Long: `Produce one record per line of stdin (without the newline) to an existing
topic. With -K SEP, the text before the first SEP of a line is the record's
key (records of one key go to one partition, in order); a line without SEP
has no key. A summary goes to stderr (stdout with --json). Exits 1 if any
record failed.`,
		Example: `  echo 'user-42:send confirmation email' | sluicectl produce signups -K :
  sluicectl produce signups -H source=import --compression zstd < lines.txt`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			topic := argv[0]
			hs, err := parseHeaders(headers)
			if err != nil {
				return err
			}
			var opts []client.Option
			switch acks {
			case "all", "-1":
			case "leader", "1":
				opts = append(opts, client.RequiredAcks(client.AcksLeader), client.Idempotence(false))
			case "none", "0":
				opts = append(opts, client.RequiredAcks(client.AcksNone), client.Idempotence(false))
			default:
				return usagef("--acks %q: want all, leader or none", acks)
			}
			opts = append(opts, client.Compression(client.Codec(compression)), client.DeliveryTimeout(max(a.timeout, time.Second)))
			c, err := a.newClient(opts...)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			dctx, cancel := a.reqCtx(cmd)
			_, err = c.Admin().DescribeTopic(dctx, topic)
			cancel()
			if errors.Is(err, client.ErrUnknownTopic) {
				return codedError{exitNotFound, fmt.Errorf("topic %q does not exist; create it with: sluicectl topic create %s", topic, topic)}
			}
			if err != nil {
				return err
			}
			var (
				mu    sync.Mutex
				sum   = produceSummary{Topic: topic, Partitions: []producedRecords{}}
				parts = map[int32]*producedRecords{}
				first error
			)
			done := func(r *client.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					sum.Failed++
					if first == nil {
						first = err
					}
					return
				}
				sum.Produced++
				p := parts[r.Partition]
				if p == nil {
					p = &producedRecords{Partition: r.Partition, FirstOffset: r.Offset, LastOffset: r.Offset}
					parts[r.Partition] = p
				}
				p.Records++
				p.FirstOffset, p.LastOffset = min(p.FirstOffset, r.Offset), max(p.LastOffset, r.Offset)
			}
			// Lines are read on their own goroutine: a read from a terminal
			// cannot be interrupted, and Ctrl-C must still end the command
			// (after delivering what was read).
			lines := make(chan []byte, 64)
			readErr := make(chan error, 1)
			go func() {
				defer close(lines)
				in := bufio.NewReaderSize(cmd.InOrStdin(), 1<<16)
				for {
					line, err := in.ReadBytes('\n')
					if len(line) > 0 || err == nil {
						select {
						case lines <- bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r")):
						case <-ctx.Done():
							return
						}
					}
					if err != nil {
						if err != io.EOF {
							readErr <- err
						}
						return
					}
				}
			}()
			pctx := context.WithoutCancel(ctx) // records read before Ctrl-C are still delivered
		read:
			for {
				select {
				case <-ctx.Done():
					break read
				case line, ok := <-lines:
					if !ok {
						break read
					}
					r := &client.Record{Topic: topic, Value: line, Headers: hs}
					if keySep != "" {
						if k, v, ok := bytes.Cut(line, []byte(keySep)); ok {
							r.Key, r.Value = k, v
						}
					}
					c.Produce(pctx, r, done)
				}
			}
			fctx, cancel := context.WithTimeout(pctx, max(a.timeout, time.Second))
			defer cancel()
			if err := c.Flush(fctx); err != nil {
				return err
			}
			select {
			case err := <-readErr:
				return fmt.Errorf("reading stdin: %w", err)
			default:
			}
			mu.Lock()
			defer mu.Unlock()
			for _, p := range parts {
				sum.Partitions = append(sum.Partitions, *p)
			}
			slices.SortFunc(sum.Partitions, func(x, y producedRecords) int { return int(x.Partition - y.Partition) })
			if a.flags.json {
				if err := printJSON(cmd.OutOrStdout(), sum); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "produced %d records to %s (%d partitions)\n", sum.Produced, topic, len(sum.Partitions))
			}
			if first != nil {
				return fmt.Errorf("%d of %d records failed; the first: %w", sum.Failed, sum.Failed+sum.Produced, first)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&keySep, "key-separator", "K", "", "split each line at the first SEP into key and value")
	f.StringArrayVarP(&headers, "header", "H", nil, "header key=value added to every record, repeatable")
	f.StringVarP(&compression, "compression", "z", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	f.StringVar(&acks, "acks", "all", "when a record counts as written: all (a raft majority fsynced it), leader, or none")
	cmd.ValidArgsFunction = a.completeTopics(1)
	_ = cmd.RegisterFlagCompletionFunc("compression", cobra.FixedCompletions([]string{"none", "gzip", "snappy", "lz4", "zstd"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("acks", cobra.FixedCompletions([]string{"all", "leader", "none"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func parseHeaders(kvs []string) ([]client.Header, error) {
	var out []client.Header
	for _, kv := range kvs {
		k, v, ok := bytes.Cut([]byte(kv), []byte("="))
		if !ok || len(k) == 0 {
			return nil, usagef("--header %q: want key=value", kv)
		}
		out = append(out, client.Header{Key: string(k), Value: v})
	}
	return out, nil
}
