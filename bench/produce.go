package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// producerOpts are the kgo options every producer client shares.
func producerOpts(cfg *Config) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID("sluice-bench"),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.ProducerLinger(cfg.Linger),
		kgo.ProducerBatchMaxBytes(int32(cfg.BatchMaxBytes)),
		// Enough room that the in-flight bound, not the client's buffer,
		// limits maximum-throughput runs.
		kgo.MaxBufferedRecords(max(2*cfg.MaxInFlight, 10000)),
		// Without it a record to a dead broker is retried forever and the
		// run never ends.
		kgo.RecordDeliveryTimeout(cfg.DrainTimeout),
	}
	switch cfg.Acks {
	case AcksAll:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case AcksLeader:
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case AcksNone:
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	}
	codec := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}[cfg.Compression]
	return append(opts, kgo.ProducerBatchCompression(codec))
}

// payload is the value template: a header of HeaderSize bytes (send time,
// run tag), then half random bytes and half repeated letters.
func payload(size int, tag uint64, rng *rand.Rand) []byte {
	b := make([]byte, size)
	body := 0
	if size >= HeaderSize {
		binary.BigEndian.PutUint64(b[8:16], tag)
		body = HeaderSize
	}
	half := body + (size-body)/2
	for i := body; i < half; i++ {
		b[i] = byte(rng.Uint32())
	}
	for i := half; i < size; i++ {
		b[i] = byte('a' + i%26)
	}
	return b
}

// keyPicker draws keys from cfg.Keys keys, uniformly or by zipf.
type keyPicker struct {
	keys [][]byte
	rng  *rand.Rand
	zipf *rand.Zipf
}

func newKeyPicker(cfg *Config, keys [][]byte, seed uint64) *keyPicker {
	kp := &keyPicker{keys: keys, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	if cfg.KeyDist == Zipf && len(keys) > 1 {
		kp.zipf = rand.NewZipf(kp.rng, cfg.ZipfS, 1, uint64(len(keys)-1))
	}
	return kp
}

func (kp *keyPicker) next() []byte {
	switch {
	case len(kp.keys) == 0:
		return nil
	case kp.zipf != nil:
		return kp.keys[kp.zipf.Uint64()]
	default:
		return kp.keys[kp.rng.IntN(len(kp.keys))]
	}
}

// producePhase is one round of sending by every producer.
type producePhase struct {
	cfg      *Config
	c        *counters
	tag      uint64
	stamp    bool // write each message's send time into its value
	pub      []*recorder
	delay    []*recorder
	lastAck  atomic.Int64 // unix nanoseconds
	errOnce  sync.Once
	firstErr string
}

func (ph *producePhase) failed(err error) {
	ph.c.failed.Add(1)
	ph.errOnce.Do(func() { ph.firstErr = err.Error() })
}

func (ph *producePhase) acked(now time.Time) {
	n := now.UnixNano()
	for {
		old := ph.lastAck.Load()
		if n <= old || ph.lastAck.CompareAndSwap(old, n) {
			return
		}
	}
}

// runProduce sends n messages (0: until d) over cfg.Producers producers
// and waits for every acknowledgement or failure.
func runProduce(ctx context.Context, cfg *Config, c *counters, smp *sampler, tag uint64, n int64, d time.Duration, stamp bool) (*ProduceResult, time.Time, error) {
	ph := &producePhase{cfg: cfg, c: c, tag: tag, stamp: stamp}
	keys := make([][]byte, cfg.Keys)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%d", i)
	}
	clients := make([]*kgo.Client, cfg.Producers)
	for i := range clients {
		cl, err := kgo.NewClient(producerOpts(cfg)...)
		if err != nil {
			for _, c := range clients[:i] {
				c.Close()
			}
			return nil, time.Time{}, fmt.Errorf("bench: producer client: %w", err)
		}
		clients[i] = cl
		ph.pub = append(ph.pub, newRecorder())
		ph.delay = append(ph.delay, newRecorder())
		smp.addPublish(ph.pub[i])
	}
	producedBefore, ackedBefore, failedBefore, bytesBefore := c.produced.Load(), c.acked.Load(), c.failed.Load(), c.ackedBytes.Load()
	start := time.Now()
	var deadline time.Time
	if d > 0 {
		deadline = start.Add(d)
	}
	var wg sync.WaitGroup
	for i, cl := range clients {
		share := int64(0)
		if n > 0 {
			share = n / int64(cfg.Producers)
			if int64(i) < n%int64(cfg.Producers) {
				share++
			}
			if share == 0 {
				cl.Close()
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cl.Close()
			ph.producer(ctx, i, cl, keys, share, start, deadline)
		}()
	}
	wg.Wait()
	end := time.Unix(0, ph.lastAck.Load())
	if end.Before(start) {
		end = time.Now()
	}
	pr := &ProduceResult{
		Produced:     c.produced.Load() - producedBefore,
		Acknowledged: c.acked.Load() - ackedBefore,
		Failed:       c.failed.Load() - failedBefore,
		Bytes:        c.ackedBytes.Load() - bytesBefore,
		Seconds:      end.Sub(start).Seconds(),
		Latency:      summarize(mergeTotals(ph.pub)),
		FirstError:   ph.firstErr,
	}
	if pr.Seconds > 0 {
		pr.MsgsPerSec = float64(pr.Acknowledged) / pr.Seconds
		pr.MBPerSec = float64(pr.Bytes) / pr.Seconds / 1e6
	}
	if cfg.Rate > 0 {
		l := summarize(mergeTotals(ph.delay))
		pr.SendDelay = &l
	}
	return pr, end, nil
}

// producer is one producer's send loop. It stops sending at n messages, at
// the deadline or when ctx ends, then waits for what it sent.
func (ph *producePhase) producer(ctx context.Context, id int, cl *kgo.Client, keys [][]byte, n int64, start, deadline time.Time) {
	cfg := ph.cfg
	seed := uint64(time.Now().UnixNano()) + uint64(id)
	kp := newKeyPicker(cfg, keys, seed)
	tmpl := payload(cfg.MessageSize, ph.tag, rand.New(rand.NewPCG(seed, 1)))
	pub, delay := ph.pub[id], ph.delay[id]

	var sem chan struct{}
	var every float64 // nanoseconds between this producer's sends
	if cfg.Rate > 0 {
		every = float64(time.Second) * float64(cfg.Producers) / cfg.Rate
	} else {
		sem = make(chan struct{}, cfg.MaxInFlight)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	// Records are not cancelled with ctx: an interrupted run still waits
	// for what it sent, bounded by RecordDeliveryTimeout.
	pctx := context.WithoutCancel(ctx)

send:
	for i := int64(0); n == 0 || i < n; i++ {
		var intended time.Time
		if sem != nil {
			if ctx.Err() != nil || (!deadline.IsZero() && time.Now().After(deadline)) {
				break
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				break send
			}
			intended = time.Now()
		} else {
			// The schedule, not the clock, decides what is sent: a late
			// message is still sent, and its lateness counts.
			intended = start.Add(time.Duration(float64(i) * every))
			if !deadline.IsZero() && !intended.Before(deadline) {
				break
			}
			if wait := time.Until(intended); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					timer.Stop()
					break send
				}
			} else if ctx.Err() != nil {
				break
			}
			delay.record(time.Since(intended))
		}
		val := tmpl
		if ph.stamp {
			val = make([]byte, len(tmpl))
			copy(val, tmpl)
			binary.BigEndian.PutUint64(val, uint64(intended.UnixNano()))
		}
		ph.c.produced.Add(1)
		cl.Produce(pctx, &kgo.Record{Key: kp.next(), Value: val}, func(r *kgo.Record, err error) {
			now := time.Now()
			if err != nil {
				ph.failed(err)
			} else {
				ph.c.acked.Add(1)
				ph.c.ackedBytes.Add(int64(len(r.Value)))
				pub.record(now.Sub(intended))
				ph.acked(now)
			}
			if sem != nil {
				<-sem
			}
		})
	}
	// Flush returns once every record's callback ran; RecordDeliveryTimeout
	// bounds it, this only guards against a client that hangs regardless.
	fctx, cancel := context.WithTimeout(pctx, 2*cfg.DrainTimeout+10*time.Second)
	defer cancel()
	_ = cl.Flush(fctx)
}
