package share

import (
	"fmt"
	"math"
	"time"
)

// Config is a share group's configuration for one share-partition. A zero
// field means Kafka's default (LockDuration 30 s, DeliveryLimit 5,
// MaxInFlight 2000, BackoffFactor 2); zero BackoffBase means no backoff and
// zero BackoffMax means no cap. Validate reports values that New and
// SetConfig would otherwise clamp.
type Config struct {
	// LockDuration is the acquisition lock (share.record.lock.duration.ms).
	LockDuration time.Duration
	// DeliveryLimit: a record released or expired after this many
	// deliveries is archived (share.delivery.count.limit).
	DeliveryLimit int
	// MaxInFlight bounds the records tracked between SPSO and SPEO
	// (group.share.partition.max.record.locks). Offsets without a record
	// (compaction gaps) do not count.
	MaxInFlight int
	// A released or expired record becomes available again only after
	// min(BackoffMax, BackoffBase*BackoffFactor^(deliveries-1)). Sluice
	// extension.
	BackoffBase   time.Duration
	BackoffFactor float64
	BackoffMax    time.Duration
	// KeyOrdering: records of one key are acquired one at a time, in
	// offset order. Sluice extension.
	KeyOrdering bool
	// DeadLetter: records archived by REJECT or by the delivery limit are
	// queued (DeadLetters) until the caller confirms it wrote them to the
	// dead-letter topic (DeadLettered); SPSO waits for them.
	DeadLetter bool
}

// Defaults and limits.
const (
	DefaultLockDuration  = 30 * time.Second
	DefaultDeliveryLimit = 5
	DefaultMaxInFlight   = 2000
	DefaultBackoffFactor = 2.0

	// MaxDeliveryLimit keeps a delivery count inside Kafka's int16.
	MaxDeliveryLimit = math.MaxInt16
	// MaxMaxInFlight bounds the window's memory (about 64 bytes a record).
	MaxMaxInFlight = 1 << 20
)

// DefaultConfig returns Kafka's defaults with every Sluice extension off.
func DefaultConfig() Config {
	return Config{
		LockDuration:  DefaultLockDuration,
		DeliveryLimit: DefaultDeliveryLimit,
		MaxInFlight:   DefaultMaxInFlight,
		BackoffFactor: DefaultBackoffFactor,
	}
}

// Validate reports negative durations, a delivery limit outside
// [0, MaxDeliveryLimit], MaxInFlight outside [0, MaxMaxInFlight], and a
// BackoffFactor that is neither 0 (default) nor at least 1.
func (c Config) Validate() error {
	switch {
	case c.LockDuration < 0:
		return fmt.Errorf("%w: negative lock duration %v", ErrInvalidConfig, c.LockDuration)
	case c.DeliveryLimit < 0 || c.DeliveryLimit > MaxDeliveryLimit:
		return fmt.Errorf("%w: delivery limit %d outside [0, %d]", ErrInvalidConfig, c.DeliveryLimit, MaxDeliveryLimit)
	case c.MaxInFlight < 0 || c.MaxInFlight > MaxMaxInFlight:
		return fmt.Errorf("%w: max in-flight %d outside [0, %d]", ErrInvalidConfig, c.MaxInFlight, MaxMaxInFlight)
	case c.BackoffBase < 0 || c.BackoffMax < 0:
		return fmt.Errorf("%w: negative backoff", ErrInvalidConfig)
	case c.BackoffFactor != 0 && !(c.BackoffFactor >= 1) || math.IsInf(c.BackoffFactor, 0):
		return fmt.Errorf("%w: backoff factor %v below 1", ErrInvalidConfig, c.BackoffFactor)
	}
	return nil
}

// normalized fills defaults and clamps what Validate would refuse.
func (c Config) normalized() Config {
	if c.LockDuration <= 0 {
		c.LockDuration = DefaultLockDuration
	}
	if c.DeliveryLimit <= 0 {
		c.DeliveryLimit = DefaultDeliveryLimit
	}
	c.DeliveryLimit = min(c.DeliveryLimit, MaxDeliveryLimit)
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	c.MaxInFlight = min(c.MaxInFlight, MaxMaxInFlight)
	c.BackoffBase = max(c.BackoffBase, 0)
	c.BackoffMax = max(c.BackoffMax, 0)
	switch {
	case c.BackoffFactor == 0:
		c.BackoffFactor = DefaultBackoffFactor
	case !(c.BackoffFactor >= 1) || math.IsInf(c.BackoffFactor, 0): // NaN too
		c.BackoffFactor = 1
	}
	return c
}

// Backoff returns the delay before a record released after its
// deliveries-th delivery is available again: 0 without BackoffBase, else
// min(BackoffMax, BackoffBase*BackoffFactor^(deliveries-1)), never
// overflowing.
func (c Config) Backoff(deliveries int) time.Duration {
	c = c.normalized()
	if c.BackoffBase == 0 {
		return 0
	}
	d := float64(c.BackoffBase) * math.Pow(c.BackoffFactor, float64(max(deliveries-1, 0)))
	if c.BackoffMax > 0 && d > float64(c.BackoffMax) {
		return c.BackoffMax
	}
	if !(d < float64(math.MaxInt64)) {
		return math.MaxInt64
	}
	return time.Duration(d)
}
