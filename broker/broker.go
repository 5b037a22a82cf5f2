// Package broker is the Sluice server: it wires the Kafka listener, request
// routing, topics and partitions, the HTTP admin port and metrics.
//
// Concurrency: each connection has a reader goroutine that decodes requests
// and starts them in arrival order (so a producer's batches reach a
// partition in order) and a writer goroutine that waits for each response in
// that same order and writes it. A handler does its ordering-sensitive work
// when started and defers the waiting (fsync, fetch long-poll) to the
// function it returns, so pipelined produce requests share fsyncs.
package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicemq/sluice/broker/config"
	"github.com/sluicemq/sluice/broker/metrics"
	"github.com/sluicemq/sluice/partition"
)

// Broker is a single-node Sluice server.
type Broker struct {
	cfg     config.Config
	lg      zerolog.Logger
	reg     *registry
	metrics *metrics.Metrics
	http    *metrics.Server

	ln       net.Listener
	advHost  string
	advPort  int32
	closing  chan struct{}
	stopOnce sync.Once
	ready    atomic.Bool

	connMu sync.Mutex
	conns  map[*conn]struct{}
	connWG sync.WaitGroup
	bgWG   sync.WaitGroup
}

// New opens the data directory (refusing one that belongs to another node)
// and every partition in it. Start makes it serve.
func New(cfg config.Config, lg zerolog.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	defaults := map[string]string{
		"cleanup.policy":         cfg.CleanupPolicy,
		"max.message.bytes":      strconv.FormatInt(int64(cfg.MaxMessageBytes), 10),
		"message.timestamp.type": cfg.MessageTimestampType,
		"retention.bytes":        strconv.FormatInt(cfg.RetentionBytes, 10),
		"retention.ms":           strconv.FormatInt(cfg.RetentionMs, 10),
		"segment.bytes":          strconv.FormatInt(cfg.SegmentBytes, 10),
		"segment.ms":             strconv.FormatInt(cfg.SegmentMs, 10),
	}
	if _, err := validateTopicConfigs(defaults); err != nil {
		return nil, fmt.Errorf("broker: topic defaults: %w", err)
	}
	b := &Broker{cfg: cfg, lg: lg, metrics: metrics.New(), closing: make(chan struct{}), conns: map[*conn]struct{}{}}
	plg := lg.With().Str("component", "partition").Logger()
	reg, err := openRegistry(cfg.DataDir, cfg.NodeID, cfg.ClusterID, defaults, partition.Options{Logger: &plg}, lg)
	if err != nil {
		return nil, err
	}
	b.reg = reg
	b.metrics.SetPartitionSource(b.partitionStats)
	return b, nil
}

// Start listens on the Kafka and HTTP addresses and serves until Shutdown.
func (b *Broker) Start() error {
	ln, err := net.Listen("tcp", b.cfg.KafkaAddr)
	if err != nil {
		return fmt.Errorf("broker: listen %s: %w", b.cfg.KafkaAddr, err)
	}
	b.ln = ln
	adv := b.cfg.AdvertisedKafkaAddr
	if adv == "" {
		adv = ln.Addr().String()
	}
	host, port, err := net.SplitHostPort(adv)
	if err != nil {
		ln.Close()
		return fmt.Errorf("broker: advertised address %q: %w", adv, err)
	}
	p, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		ln.Close()
		return fmt.Errorf("broker: advertised port %q: %w", port, err)
	}
	b.advHost, b.advPort = host, int32(p)
	b.http = metrics.NewServer(b.cfg.HTTPAddr, b.metrics, b.readyErr, b.lg)
	if err := b.http.Start(); err != nil {
		ln.Close()
		return err
	}
	b.bgWG.Add(2)
	go b.acceptLoop()
	go b.retentionLoop()
	b.ready.Store(true)
	b.lg.Info().Str("kafka_addr", ln.Addr().String()).Str("advertised", adv).Str("http_addr", b.http.Addr()).
		Str("data_dir", b.cfg.DataDir).Str("cluster_id", b.reg.meta.ClusterID).Int32("node_id", b.cfg.NodeID).Msg("sluiced serving")
	return nil
}

// KafkaAddr is the bound Kafka listener address.
func (b *Broker) KafkaAddr() string { return b.ln.Addr().String() }

// HTTPAddr is the bound HTTP address.
func (b *Broker) HTTPAddr() string { return b.http.Addr() }

func (b *Broker) readyErr() error {
	if !b.ready.Load() {
		return errors.New("not serving")
	}
	return nil
}

func (b *Broker) acceptLoop() {
	defer b.bgWG.Done()
	for {
		nc, err := b.ln.Accept()
		if err != nil {
			select {
			case <-b.closing:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			b.lg.Error().Err(err).Msg("accept")
			time.Sleep(50 * time.Millisecond)
			continue
		}
		c := newConn(b, nc)
		b.connMu.Lock()
		select {
		case <-b.closing:
			b.connMu.Unlock()
			nc.Close()
			return
		default:
		}
		b.conns[c] = struct{}{}
		b.connWG.Add(1)
		b.connMu.Unlock()
		go func() {
			defer b.connWG.Done()
			c.serve()
			b.connMu.Lock()
			delete(b.conns, c)
			b.connMu.Unlock()
		}()
	}
}

// retentionLoop applies retention to every partition periodically, as
// Kafka's log.retention.check.interval.ms, and snapshots producer state.
func (b *Broker) retentionLoop() {
	defer b.bgWG.Done()
	t := time.NewTicker(b.cfg.RetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-b.closing:
			return
		case <-t.C:
			for _, tp := range b.reg.list() {
				for _, p := range tp.parts {
					if _, err := p.ApplyRetention(); err != nil {
						b.lg.Error().Err(err).Str("topic", tp.name).Int32("partition", p.Index()).Msg("retention")
					}
					// Bounds what a crash restart rescans to rebuild producer state.
					if err := p.SnapshotProducers(); err != nil {
						b.lg.Error().Err(err).Str("topic", tp.name).Int32("partition", p.Index()).Msg("producer snapshot")
					}
				}
			}
		}
	}
}

func (b *Broker) partitionStats() []metrics.PartitionStat {
	var out []metrics.PartitionStat
	for _, t := range b.reg.list() {
		for _, p := range t.parts {
			out = append(out, metrics.PartitionStat{
				Topic: t.name, Partition: p.Index(), LogStart: p.LogStartOffset(),
				HighWatermark: p.HighWatermark(), LogEnd: p.Log().EndOffset(), SizeBytes: p.Log().Size(),
			})
		}
	}
	return out
}

// Shutdown stops accepting connections, lets in-flight requests finish
// (bounded by ctx), closes connections, and closes every partition, which
// syncs and snapshots producer state.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.stopOnce.Do(func() {
		b.ready.Store(false)
		close(b.closing)
		if b.ln != nil {
			b.ln.Close()
		}
		b.connMu.Lock()
		for c := range b.conns {
			c.stopReading()
		}
		b.connMu.Unlock()
		done := make(chan struct{})
		go func() { b.connWG.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			b.lg.Warn().Msg("shutdown timeout: closing connections with requests in flight")
			b.connMu.Lock()
			for c := range b.conns {
				c.nc.Close()
			}
			b.connMu.Unlock()
			<-done
		}
		b.bgWG.Wait()
		if b.http != nil {
			b.http.Shutdown(ctx)
		}
		b.reg.close()
		b.lg.Info().Msg("sluiced stopped")
	})
	return nil
}
