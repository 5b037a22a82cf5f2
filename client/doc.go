// Package client is the Go client for Sluice, on franz-go (kgo for
// producing and consuming, kadm for administration). It works against any
// Kafka-protocol broker; the cluster operations need Sluice's HTTP admin
// API.
//
//	c, err := client.New(client.Brokers("127.0.0.1:9092"))
//	...
//	defer c.Close()
//	c.Produce(ctx, &client.Record{Topic: "signups", Key: []byte("user-42"), Value: v}, nil)
//	err = c.Consume(ctx, "email", []string{"signups"}, handle, client.Retries(3), client.OnError(c.DeadLetter("signups.dlq")))
//	w, err := client.NewWorker(c, "mailers", "signups", send) // a queue: see "Queues" below
//
// # Delivery guarantees
//
// Producing. With the default AcksAll a record is acknowledged once a Raft
// majority of its partition's replicas has fsynced it: it survives the
// loss of any minority of brokers, power loss included. The producer is
// idempotent by default: it retries failed or unanswered requests until
// the DeliveryTimeout, and the broker drops the batches it already stored
// (it answers with their original offsets), so retries neither duplicate
// nor reorder records. A record whose callback reports an error may still
// have been stored (the answer, not the write, was lost); treat such
// errors as "unknown", and let consumers tolerate duplicates. AcksLeader
// (the leader's fsync only) and AcksNone (no answer) trade that away for
// latency and need Idempotence(false).
//
// Consuming is at-least-once. Consume calls the handler, marks a record
// only after the handler returns nil, and commits the marked offsets every
// CommitInterval, before a rebalance takes partitions away, and when it
// returns. So a committed offset never passes a record that was not
// handled; but a record handled after the last commit is handled again if
// the consumer crashes or is removed from the group (session or rebalance
// timeout). Handlers must therefore be idempotent, e.g. keyed by the
// record's topic/partition/offset or by a business id. Exactly-once
// (transactions) is not offered.
//
// A handler error is retried in place Retries times with backoff; then the
// OnError policy decides: the default stops the consumer without
// committing the record (nothing is skipped; a poison record stops its
// partition until it is dealt with); DeadLetter parks it in another topic
// and moves on (nothing is lost, the partition keeps flowing); a custom
// ErrorHandler may log and skip. Wrap an error with Permanent to skip the
// retries.
//
// # Ordering
//
// Order is per partition, and a record's key picks its partition
// (Kafka's murmur2, as every Kafka client, so keyed records from Java,
// librdkafka and this package land together). All records of one key are
// therefore stored and handled in the order produced; records of
// different keys are not ordered. The consumer handles partitions
// concurrently and each partition one record (or batch) at a time, and a
// retry holds its partition, so per-key order holds through retries too
// (not through DeadLetter: the parked record is out of order by design).
// Adding partitions moves keys: order holds before and after, not across.
//
// # Replay
//
// Every group keeps its own committed offsets, so a new group sees the
// whole retained log independently of others. StartAt picks where a group
// with no commits begins (Beginning by default, End, AtOffset or AtTime).
// To replay an existing group, stop its consumers and call
// Admin.ResetOffsets (Admin.PlanResetOffsets previews it). Tail reads a
// topic without a group, committing nothing.
//
// # Queues: share groups and Worker
//
// A Worker is a member of a share group (KIP-932): the broker hands each
// record to one member at a time, so any number of workers share a topic,
// more than it has partitions, and each record is acknowledged on its
// own rather than by an offset.
//
//	adm.SetShareGroupConfig(ctx, "mailers", map[string]string{
//		client.ShareAutoOffsetReset:    "earliest",
//		client.ShareDeadLetterTopic:    "signups.dlq",
//		client.ShareDeliveryCountLimit: "5",
//		client.ShareRetryBackoffMs:     "1000",
//	})
//	w, err := client.NewWorker(c, "mailers", "signups", send, client.Concurrency(8))
//	go w.Run(ctx)
//	...
//	w.Stop(ctx)
//
// What the handler returns decides: nil accepts the record (done);
// Reject(reason) archives it; any other error, or Retry(err), releases
// it. A record is acquired under a lock (share.record.lock.duration.ms, 30 s
// by default); a record not acknowledged when its lock runs out (the
// worker died, or the handler is too slow) is delivered again, to any
// member. RENEW is not offered yet, so a handler must finish within the
// lock; its context ends when the lock does.
//
// Retries: a released or timed-out record becomes available again only
// after share.retry.backoff.ms, multiplied by share.retry.backoff.multiplier
// for each earlier delivery, capped by share.retry.backoff.max.ms.
// r.DeliveryCount() says which delivery a handler sees.
//
// Dead letters: at share.delivery.count.limit deliveries, or on Reject, the
// record is archived and, when share.dead.letter.topic is set, written
// there (the topic is created with one partition if missing) with the
// original key, value and headers plus sluice.dlq.topic, .partition,
// .offset, .delivery.count, .group, .reason ("rejected" or "delivery
// limit"), .timestamp and .error: the last error the worker reported, the
// reason given to Reject or the text of the handler's error
// (DeadLetterRecord.Error). KIP-932's acknowledgement carries no text, so
// the worker sends it first with a Sluice protocol extension; the leader
// keeps it in memory only, so after a leader change it may be missing.
// DeadLetters and ReadDeadLetter read them back (ParseDeadLetter); Redrive
// copies them to their source topics, rate-limited, recording its progress
// as a consumer group's offsets on the dead-letter topic so a re-run
// continues.
//
// Delayed delivery: a record carrying the header NotBefore(t) (or the
// group's share.delay.header) is not delivered by share groups before t,
// however far ahead; ordinary consumer groups read it in offset order.
//
// Ordering: records are delivered roughly in offset order, but releases,
// timeouts and parallel workers reorder them. With share.key.ordering the
// broker hands out at most one record per key at a time, in offset order,
// so each key is handled in order across workers and redeliveries; a
// Worker with Concurrency > 1 runs different keys in parallel, and records
// of one key from one fetch one after another.
//
// Guarantees: at least once. A record is done only once its ACCEPT reached
// the partition leader and was replicated; a worker that crashes, or whose
// acknowledgement is lost, has its records delivered again. Share state
// (record states, delivery counts) is replicated through the partition's
// Raft group, so it survives a leader failover: a delivery is counted
// before the records are handed out, so the count never undercounts
// deliveries; records acquired when the leader fails are redelivered by
// the new leader, and the delivery that was lost in flight still counts
// (the count may exceed the deliveries a handler actually saw by those).
// Handlers must be idempotent.
//
// Stopping: Stop stops fetching, lets running handlers finish and
// acknowledges their records, releases the records fetched but not yet
// handled (other workers get them without waiting for their locks; the
// group's retry backoff, if any, still applies), and leaves the group. A fetch's records are all handled before
// the next fetch: keep MaxRecords / Concurrency times a handler's time well
// under the lock duration.
//
// # Options and what they trade
//
//   - Linger (5 ms): larger batches and fewer fsyncs per record, for up to
//     that much latency on a lone record.
//   - BatchMaxBytes (1 MiB): bounded by the topic's max.message.bytes.
//   - Compression (none): CPU for bytes; lz4 or snappy are cheap, zstd
//     compresses best, gzip is the slowest.
//   - RequestTimeout (10 s) and DeliveryTimeout (2 m): how long a request,
//     and a record with all its retries, may take before it fails.
//   - CommitInterval (1 s): commit load against duplicates after a crash.
//   - SessionTimeout (45 s): crash detection against spurious evictions.
//   - MaxPollRecords (500) and RebalanceTimeout (1 m): a poll's records must
//     be handled within the rebalance timeout, retries included.
//
// # Errors
//
// Broker and delivery errors are *Error, carrying the Kafka code or the
// admin API's HTTP status; Retriable (or IsRetriable) says whether the
// same call may succeed later. Sentinels such as ErrNotLeader,
// ErrUnknownTopic, ErrTopicExists and ErrGroupNotEmpty work with
// errors.Is. Invalid options wrap ErrInvalidOption and say what is wrong.
//
// The package never writes to stdout or stderr; pass Logger to see its
// and franz-go's logs.
package client
