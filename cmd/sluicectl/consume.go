package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/client"
)

// errEnough stops a consume once -n records are out.
var errEnough = errors.New("enough records")

func (a *app) newConsumeCmd() *cobra.Command {
	var (
		offset, fromTime, format, group, parts string
		count                                  int
		exitAtEnd                              bool
	)
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print a topic's records, following new ones until Ctrl-C",
		Long: `Print a topic's records to stdout and follow new ones until Ctrl-C (exit 0),
-n records (exit 0), or with -e the end of the log as of the start.

Without --group nothing is committed, and -o/--from-time say where to start.
With --group the records are read as that consumer group (joining it, and
committing what was printed); -o/--from-time then apply only to partitions
the group has never committed.

--format is value (default), kv (key TAB value), json (one object per line,
as --json), or a template: %t topic, %p partition, %o offset, %k key, %v value,
%T timestamp (RFC 3339), %h headers (k=v,...), %% a percent sign; \n and \t
are a newline and a tab.`,
		Example: `  sluicectl consume signups -e                       # everything so far, then exit
  sluicectl consume signups -o end                   # only new records, until Ctrl-C
  sluicectl consume signups -o 42 -n 10 --partitions 0
  sluicectl consume signups --from-time 2026-01-02T15:00:00Z -f '%p/%o %k=%v\n'
  sluicectl consume signups --group audit`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			topic := argv[0]
			f := cmd.Flags()
			from := client.Beginning()
			switch {
			case f.Changed("offset") && f.Changed("from-time"):
				return usagef("give -o/--offset or --from-time, not both")
			case f.Changed("from-time"):
				ts, err := time.Parse(time.RFC3339Nano, fromTime)
				if err != nil {
					return usagef("--from-time %q: want RFC 3339, e.g. 2026-01-02T15:04:05Z", fromTime)
				}
				from = client.AtTime(ts)
			case offset == "beginning" || offset == "start" || offset == "oldest":
			case offset == "end" || offset == "newest":
				from = client.End()
			default:
				n, err := strconv.ParseInt(offset, 10, 64)
				if err != nil || n < 0 {
					return usagef("-o/--offset %q: want beginning, end or an offset >= 0", offset)
				}
				from = client.AtOffset(n)
			}
			if count < 0 {
				return usagef("-n %d: want >= 0 (0: no limit)", count)
			}
			if a.flags.json {
				format = "json"
			}
			fm, err := newFormatter(format)
			if err != nil {
				return err
			}
			var ps []int32
			if parts != "" {
				if ps, err = parseIDs("--partitions", parts); err != nil {
					return err
				}
			}
			if group != "" && (exitAtEnd || ps != nil) {
				return usagef("--group reads what the group is assigned: -e and --partitions work only without it")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			defer w.Flush()
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()

			var (
				mu sync.Mutex
				n  int // records printed
			)
			// emit prints r unless -n records are out already; last reports
			// that r was the nth.
			emit := func(r *client.Record) (printed, last bool, err error) {
				mu.Lock()
				defer mu.Unlock()
				if count > 0 && n >= count {
					return false, false, nil
				}
				if err := fm.write(w, r); err != nil {
					return false, false, err
				}
				n++
				return true, count > 0 && n >= count, w.Flush()
			}
			if group == "" {
				err = c.Tail(ctx, topic, client.TailOptions{From: from, Partitions: ps, StopAtEnd: exitAtEnd}, func(r *client.Record) error {
					printed, last, err := emit(r)
					if err == nil && (!printed || last) {
						err = errEnough
					}
					return err
				})
				if errors.Is(err, errEnough) {
					return nil
				}
				return err
			}
			dctx, dcancel := a.reqCtx(cmd)
			_, err = c.Admin().DescribeTopic(dctx, topic)
			dcancel()
			if err != nil {
				return err
			}
			// The group consumer runs the handler concurrently per partition
			// and commits what it returned nil for: the nth record is
			// committed, and records past it wait for the stop, uncommitted.
			err = c.Consume(ctx, group, []string{topic}, func(hctx context.Context, r *client.Record) error {
				printed, last, err := emit(r)
				switch {
				case err != nil:
					return err
				case !printed:
					<-hctx.Done()
					return hctx.Err()
				case last:
					cancel()
				}
				return nil
			}, client.StartAt(from))
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&offset, "offset", "o", "beginning", "where to start on each partition: beginning, end, or an offset")
	fl.StringVar(&fromTime, "from-time", "", "start at the first record at or after this RFC 3339 time")
	fl.IntVarP(&count, "count", "n", 0, "exit after this many records (0: no limit)")
	fl.BoolVarP(&exitAtEnd, "exit-at-end", "e", false, "exit at the end of each partition as of the start, instead of following")
	fl.StringVarP(&group, "group", "g", "", "read as this consumer group, committing what was printed")
	fl.StringVar(&parts, "partitions", "", "only these partitions, comma-separated (default: all)")
	fl.StringVarP(&format, "format", "f", "value", "value, kv, json, or a template such as '%k=%v\\n' (see above)")
	cmd.ValidArgsFunction = a.completeTopics(1)
	_ = cmd.RegisterFlagCompletionFunc("group", a.completeGroups)
	_ = cmd.RegisterFlagCompletionFunc("offset", cobra.FixedCompletions([]string{"beginning", "end"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"value", "kv", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// formatter prints records.
type formatter struct {
	json bool
	tmpl string
}

func newFormatter(f string) (*formatter, error) {
	switch f {
	case "json":
		return &formatter{json: true}, nil
	case "value", "":
		f = `%v\n`
	case "kv":
		f = `%k\t%v\n`
	}
	f = strings.NewReplacer(`\n`, "\n", `\t`, "\t").Replace(f)
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		i++
		if i == len(f) || !strings.ContainsRune("tpokvTh%", rune(f[i])) {
			return nil, usagef("--format %q: %% must be followed by one of t p o k v T h %%", f)
		}
	}
	return &formatter{tmpl: f}, nil
}

// recordJSON is one record in --format json; key and value are strings
// (invalid UTF-8 becomes U+FFFD), null when absent.
type recordJSON struct {
	Topic     string       `json:"topic"`
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Timestamp time.Time    `json:"timestamp"`
	Key       *string      `json:"key"`
	Value     *string      `json:"value"`
	Headers   []headerJSON `json:"headers"`
}

type headerJSON struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func strPtr(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

func (f *formatter) write(w io.Writer, r *client.Record) error {
	if f.json {
		j := recordJSON{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UTC(),
			Key: strPtr(r.Key), Value: strPtr(r.Value), Headers: []headerJSON{}}
		for _, h := range r.Headers {
			j.Headers = append(j.Headers, headerJSON{h.Key, string(h.Value)})
		}
		b, err := json.Marshal(j)
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	var b []byte
	for i := 0; i < len(f.tmpl); i++ {
		ch := f.tmpl[i]
		if ch != '%' {
			b = append(b, ch)
			continue
		}
		i++
		switch f.tmpl[i] {
		case 't':
			b = append(b, r.Topic...)
		case 'p':
			b = strconv.AppendInt(b, int64(r.Partition), 10)
		case 'o':
			b = strconv.AppendInt(b, r.Offset, 10)
		case 'k':
			b = append(b, r.Key...)
		case 'v':
			b = append(b, r.Value...)
		case 'T':
			b = r.Timestamp.UTC().AppendFormat(b, time.RFC3339Nano)
		case 'h':
			for j, h := range r.Headers {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, h.Key+"="...)
				b = append(b, h.Value...)
			}
		case '%':
			b = append(b, '%')
		}
	}
	_, err := w.Write(b)
	return err
}
