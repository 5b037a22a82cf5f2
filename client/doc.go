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
