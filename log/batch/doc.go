// Package batch reads, checks and writes Kafka RecordBatch v2 (magic 2)
// bytes, the unit Sluice stores in its log and exchanges with clients.
//
// A batch is a 61-byte big-endian header followed by its records, which may
// be compressed together as one blob:
//
//	[0:8]   baseOffset            int64
//	[8:12]  batchLength           int32  (total length - 12)
//	[12:16] partitionLeaderEpoch  int32
//	[16]    magic                 int8   (2)
//	[17:21] crc                   uint32 (CRC-32C of [21:end])
//	[21:23] attributes            int16  (codec, timestamp type, flags)
//	[23:27] lastOffsetDelta       int32
//	[27:35] baseTimestamp         int64
//	[35:43] maxTimestamp          int64
//	[43:51] producerId            int64
//	[51:53] producerEpoch         int16
//	[53:57] baseSequence          int32
//	[57:61] recordCount           int32
//	[61:]   records
//
// The produce path calls SplitBatches and then Validate on each batch, which
// checks framing, CRC and header fields and walks uncompressed records
// without allocating; it then stamps offsets with SetBaseOffset and
// SetPartitionLeaderEpoch (outside the CRC) and, for LogAppendTime topics,
// SetLogAppendTime. Records iterates over the records, decompressing with
// the caps in Limits, and Build encodes batches.
//
// Everything here treats its input as hostile: no function panics on any
// byte slice (except the documented setters given less than a header),
// lengths are checked against the bytes present before use, and
// decompression stops at the configured cap. Errors wrap the sentinels in
// errors.go so callers can map them to Kafka error codes with errors.Is.
// The package never prints or logs.
package batch
