// Package bench runs produce, consume and end-to-end workloads against any
// Kafka-protocol cluster through franz-go and reports throughput and
// latency. It is the library behind cmd/sluice-bench; it never prints:
// progress goes to Config.Progress and tables to the writers it is given.
//
// # Modes
//
// Without Config.Rate a run measures maximum throughput: each producer keeps
// at most Config.MaxInFlight messages unacknowledged, and a message's
// publish latency runs from its hand-off to the client to its
// acknowledgement. With Config.Rate the run is open loop: message i of a
// producer is due at start + i/rate, is sent then or, when the producer is
// late, at once, and its latencies run from the due time. A stalled broker
// therefore shows as latency instead of a lower send rate (no coordinated
// omission). Latencies are recorded in HDR histograms (1 µs to 1 h, 3
// significant digits).
//
// # Messages
//
// A value of Config.MessageSize bytes starts with HeaderSize bytes: the
// intended send time (unix nanoseconds) and a random tag for the run, both
// big-endian uint64. Consumers of an EndToEnd run compute end-to-end
// latency from the time and count only values with the run's tag. The rest
// of the value is half random, half repeated letters: about 2:1 under
// compression.
//
// # Results (schema "sluice-bench/v1")
//
// Result is the JSON a results file holds; its field tags are the schema.
// Latencies are milliseconds, sizes bytes, MB 10^6 bytes, durations in
// "config" nanoseconds. Within v1, fields are only added; a field that
// changes meaning or goes away bumps the version, and ReadResult refuses a
// version it does not know.
//
//	schema, started_at, seconds, interrupted, notes
//	config               the Config, as run
//	topic                name, partitions, replication_factor, created
//	produce              produced = acknowledged + failed; bytes (acknowledged);
//	                     seconds (first send to last ack); msgs_per_sec, mb_per_sec;
//	                     latency_ms and, open loop, send_delay_ms; first_error
//	consume              consumed, bytes, seconds, msgs_per_sec, mb_per_sec,
//	                     catch_up_msgs_per_sec, drain_seconds
//	e2e_latency_ms       count, mean, p50, p99, p999, max (e2e runs)
//	series[]             per interval: t, interval, produce_msgs_per_sec,
//	                     produce_mb_per_sec, failed, consume_msgs_per_sec,
//	                     consume_mb_per_sec, publish_latency_ms, e2e_latency_ms,
//	                     acknowledged, consumed (totals so far)
package bench
