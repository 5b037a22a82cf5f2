package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment variable Load reads.
const EnvPrefix = "SLUICE_"

// configKey names the config file: --config and SLUICE_CONFIG. It is not a
// YAML key.
const configKey = "config"

// option is one field's binding. The YAML key is the field's yaml tag; the
// flag and the environment variable are derived from it (flagName, envName).
type option struct {
	key   string
	usage string
	// bind registers the flag on fs, bound to the field in c, with the
	// field's current value as the flag's default.
	bind func(fs *pflag.FlagSet, c *Config, name, usage string)
}

// options lists every Config field but File, in the order of the usage text.
// The help texts state units; pflag appends the default when it is not the
// type's zero value, and the texts state the others.
var options = []option{
	{"node_id", "broker id in the cluster (Kafka node.id), >= 0",
		func(fs *pflag.FlagSet, c *Config, n, u string) { fs.Int32Var(&c.NodeID, n, c.NodeID, u) }},
	{"data_dir", "directory for partition logs, Raft state and the cluster id",
		func(fs *pflag.FlagSet, c *Config, n, u string) { fs.StringVar(&c.DataDir, n, c.DataDir, u) }},
	{"kafka_addr", "host:port the Kafka listener binds; port 0 picks a free port",
		func(fs *pflag.FlagSet, c *Config, n, u string) { fs.StringVar(&c.KafkaAddr, n, c.KafkaAddr, u) }},
	{"advertised_kafka_addr", "host:port given to clients in metadata responses; default empty, meaning kafka-addr (must be set when kafka-addr binds all interfaces)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.StringVar(&c.AdvertisedKafkaAddr, n, c.AdvertisedKafkaAddr, u)
		}},
	{"http_addr", "host:port of the HTTP server: /healthz, /readyz, Prometheus /metrics and the admin API",
		func(fs *pflag.FlagSet, c *Config, n, u string) { fs.StringVar(&c.HTTPAddr, n, c.HTTPAddr, u) }},
	{"cluster_id", "Kafka cluster id (22 characters of URL-safe base64); default empty, meaning generated on first start and persisted in data-dir",
		func(fs *pflag.FlagSet, c *Config, n, u string) { fs.StringVar(&c.ClusterID, n, c.ClusterID, u) }},
	{"raft_addr", "host:port of the internal listener: raft traffic of every partition and of the controller, and broker-to-broker requests",
		func(fs *pflag.FlagSet, c *Config, n, u string) { fs.StringVar(&c.RaftAddr, n, c.RaftAddr, u) }},
	{"advertised_raft_addr", "host:port other brokers dial for raft-addr; default empty, meaning raft-addr (must be set when raft-addr binds all interfaces)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.StringVar(&c.AdvertisedRaftAddr, n, c.AdvertisedRaftAddr, u)
		}},
	{"controller_voters", "controller voters as id@raft-host:port, comma-separated, 1, 3 or 5 of them, the same on every broker; brokers not listed join as non-voters; default empty, meaning this broker alone",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.StringVar(&c.ControllerVoters, n, c.ControllerVoters, u)
		}},
	{"raft_heartbeat_timeout", "raft heartbeat and election timeout of every group: a silent leader is replaced after about this long; lower fails over faster, higher costs less idle CPU per partition",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.DurationVar(&c.RaftHeartbeatTimeout, n, c.RaftHeartbeatTimeout, u)
		}},
	{"auto_leader_rebalance", "hand each partition's leadership to its preferred replica (the first listed) once that replica is caught up, periodically and shortly after a leader change, so leaders spread across brokers (Kafka auto.leader.rebalance.enable)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.BoolVar(&c.AutoLeaderRebalance, n, c.AutoLeaderRebalance, u)
		}},
	{"leader_rebalance_interval", "how often a broker checks the partitions it leads for a preferred replica to hand leadership to, as a duration such as 30s, at least 100ms (Kafka leader.imbalance.check.interval.seconds)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.DurationVar(&c.LeaderRebalanceInterval, n, c.LeaderRebalanceInterval, u)
		}},

	{"offsets_topic_partitions", "partitions of the internal __consumer_offsets topic, fixed when it is first created; each is a raft group whose leader coordinates the consumer groups hashed to it (Kafka offsets.topic.num.partitions)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.Int32Var(&c.OffsetsTopicPartitions, n, c.OffsetsTopicPartitions, u)
		}},
	{"offsets_topic_replication_factor", "replicas of each __consumer_offsets partition, lowered to the number of registered brokers when there are fewer (Kafka offsets.topic.replication.factor)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.Int16Var(&c.OffsetsTopicReplicationFactor, n, c.OffsetsTopicReplicationFactor, u)
		}},
	{"offsets_retention", "how long an empty consumer group's committed offsets are kept after its last commit, as a duration such as 168h (Kafka offsets.retention.minutes)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.DurationVar(&c.OffsetsRetention, n, c.OffsetsRetention, u)
		}},
	{"group_min_session_timeout", "smallest session timeout a group member may ask for (Kafka group.min.session.timeout.ms)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.DurationVar(&c.GroupMinSessionTimeout, n, c.GroupMinSessionTimeout, u)
		}},
	{"group_max_session_timeout", "largest session timeout a group member may ask for (Kafka group.max.session.timeout.ms)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.DurationVar(&c.GroupMaxSessionTimeout, n, c.GroupMaxSessionTimeout, u)
		}},
	{"group_initial_rebalance_delay", "how long a new consumer group waits for more members before its first rebalance completes, so a starting fleet is assigned once; 0 for none (Kafka group.initial.rebalance.delay.ms)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.DurationVar(&c.GroupInitialRebalanceDelay, n, c.GroupInitialRebalanceDelay, u)
		}},
	{"group_max_size", "most members one consumer group may have; joins beyond it get GROUP_MAX_SIZE_REACHED (Kafka group.max.size)",
		func(fs *pflag.FlagSet, c *Config, n, u string) { fs.IntVar(&c.GroupMaxSize, n, c.GroupMaxSize, u) }},
	{"lag_interval", "how often a broker recomputes the consumer lag (records and seconds) of the groups it coordinates for /metrics, as a duration such as 15s, at least 100ms",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.DurationVar(&c.LagInterval, n, c.LagInterval, u)
		}},

	{"max_request_bytes", "largest request frame in bytes, checked before the frame is read (Kafka socket.request.max.bytes)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.Int32Var(&c.MaxRequestBytes, n, c.MaxRequestBytes, u)
		}},
	{"max_control_request_bytes", "largest frame in bytes for every request but Produce; the decoder allocates per array element, so this tighter cap bounds what a small request can make the broker allocate",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.Int32Var(&c.MaxControlRequestBytes, n, c.MaxControlRequestBytes, u)
		}},

	{"auto_create_topics", "create a topic when a client first names it (Kafka auto.create.topics.enable); kcat and many tools rely on it in development, production should set --auto-create-topics=false",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.BoolVar(&c.AutoCreateTopics, n, c.AutoCreateTopics, u)
		}},
	{"default_partitions", "partitions of a topic created without a count (Kafka num.partitions)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.Int32Var(&c.DefaultPartitions, n, c.DefaultPartitions, u)
		}},
	{"default_replication_factor", "replicas of a topic created without a replication factor (Kafka default.replication.factor)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.Int16Var(&c.DefaultReplicationFactor, n, c.DefaultReplicationFactor, u)
		}},

	{"retention_ms", "topic default: delete segments older than this many milliseconds, -1 for unlimited (Kafka log.retention.ms / retention.ms; 604800000 is 7 days)",
		func(fs *pflag.FlagSet, c *Config, n, u string) { fs.Int64Var(&c.RetentionMs, n, c.RetentionMs, u) }},
	{"retention_bytes", "topic default: delete the oldest segments while a partition is larger than this many bytes, -1 for unlimited (Kafka log.retention.bytes / retention.bytes)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.Int64Var(&c.RetentionBytes, n, c.RetentionBytes, u)
		}},
	{"segment_bytes", "topic default: roll a segment before it grows past this many bytes, 1024 to 2147483647 (Kafka log.segment.bytes / segment.bytes; 1073741824 is 1 GiB)",
		func(fs *pflag.FlagSet, c *Config, n, u string) { fs.Int64Var(&c.SegmentBytes, n, c.SegmentBytes, u) }},
	{"segment_ms", "topic default: roll a non-empty segment older than this many milliseconds (Kafka log.roll.ms / segment.ms; 604800000 is 7 days)",
		func(fs *pflag.FlagSet, c *Config, n, u string) { fs.Int64Var(&c.SegmentMs, n, c.SegmentMs, u) }},
	{"max_message_bytes", "topic default: largest record batch accepted, in bytes (Kafka message.max.bytes / max.message.bytes)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.Int32Var(&c.MaxMessageBytes, n, c.MaxMessageBytes, u)
		}},
	{"message_timestamp_type", "topic default: CreateTime keeps the producer's timestamps, LogAppendTime stamps the broker's clock (Kafka log.message.timestamp.type / message.timestamp.type)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.StringVar(&c.MessageTimestampType, n, c.MessageTimestampType, u)
		}},
	{"cleanup_policy", "topic default: delete, compact, or compact,delete (Kafka log.cleanup.policy / cleanup.policy)",
		func(fs *pflag.FlagSet, c *Config, n, u string) { fs.StringVar(&c.CleanupPolicy, n, c.CleanupPolicy, u) }},
	{"retention_check_interval", "how often retention runs, as a duration such as 5m (Kafka log.retention.check.interval.ms)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.DurationVar(&c.RetentionCheckInterval, n, c.RetentionCheckInterval, u)
		}},

	{"log_level", "least severe log level written: trace, debug, info, warn or error",
		func(fs *pflag.FlagSet, c *Config, n, u string) { fs.StringVar(&c.LogLevel, n, c.LogLevel, u) }},
	{"log_format", "auto (human-readable when stderr is a terminal, JSON otherwise), json or console",
		func(fs *pflag.FlagSet, c *Config, n, u string) { fs.StringVar(&c.LogFormat, n, c.LogFormat, u) }},

	{"shutdown_timeout", "how long a graceful shutdown may take before connections are cut, as a duration such as 30s",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.DurationVar(&c.ShutdownTimeout, n, c.ShutdownTimeout, u)
		}},
	{"fetch_max_wait_max", "upper bound applied to the max wait a client asks for in a Fetch, as a duration such as 30s",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.DurationVar(&c.FetchMaxWaitMax, n, c.FetchMaxWaitMax, u)
		}},
	{"connections_max_idle", "close a connection idle (or mid-request) this long, as a duration such as 10m (Kafka connections.max.idle.ms)",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.DurationVar(&c.ConnectionsMaxIdle, n, c.ConnectionsMaxIdle, u)
		}},
	{"page_cache_window", "bytes behind each partition log's end kept in the page cache once fsynced; older pages are dropped so the cache reuses them instead of growing (8388608 is 8 MiB); 0 leaves caching to the kernel",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.Int64Var(&c.PageCacheWindow, n, c.PageCacheWindow, u)
		}},
}

func flagName(key string) string { return strings.ReplaceAll(key, "_", "-") }
func envName(key string) string  { return EnvPrefix + strings.ToUpper(key) }

// newFlagSet binds every option to c, using c's current values as the
// flags' defaults, plus --config bound to file and -h/--help to help. It
// never prints.
func newFlagSet(c *Config, file *string, help *bool) *pflag.FlagSet {
	fs := pflag.NewFlagSet("sluiced", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	fs.StringVar(file, configKey, *file, "YAML file of options under their snake_case keys; default empty, meaning none (env "+envName(configKey)+")")
	for _, o := range options {
		o.bind(fs, c, flagName(o.key), o.usage)
	}
	fs.BoolVarP(help, "help", "h", false, "print this help and exit")
	// Hidden from the usage text; a flag only, never a file key or an
	// environment variable, so it cannot be left on by accident.
	fs.BoolVar(&c.DebugFaultFS, debugFaultFSFlag, c.DebugFaultFS,
		"for fault injection only, slower: keep partition logs' unsynced data in process memory (a SIGKILL loses it, like a power loss) and serve POST /debug/fs/{stall,resume,fail,heal} on http-addr")
	_ = fs.MarkHidden(debugFaultFSFlag)
	return fs
}

// debugFaultFSFlag sets Config.DebugFaultFS.
const debugFaultFSFlag = "debug-fault-fs"

// Usage is the help text for the broker's command line: the layering rule
// and every flag with its default.
func Usage() string {
	c, file, help := Default(), "", false
	var b strings.Builder
	b.WriteString("Usage: sluiced [flags]\n\n")
	b.WriteString("Every option is also read from the YAML file named by --config, under its\n")
	b.WriteString("snake_case key (node_id), and from the environment as " + EnvPrefix + "<KEY> (" + envName("node_id") + ").\n")
	b.WriteString("Precedence: flags > environment > file > built-in defaults.\n")
	b.WriteString("Durations are Go durations: 500ms, 30s, 5m, 1h.\n\nFlags:\n")
	b.WriteString(newFlagSet(&c, &file, &help).FlagUsagesWrapped(100))
	return b.String()
}

// Load builds the configuration from, in increasing precedence, Default(),
// the YAML file named by --config or SLUICE_CONFIG (if any), SLUICE_*
// environment variables and the flags in args (the command line without the
// program name). getenv looks a variable up, as os.LookupEnv does; a variable
// that is set but empty counts as set. The result is validated.
//
// Load returns ErrHelp for -h or --help; the caller prints Usage() and exits 0.
// It never prints.
func Load(args []string, getenv func(string) (string, bool)) (Config, error) {
	// Parse once, bound to scratch values, to find --config and to report
	// bad flags before reading anything.
	scratch, flagFile, help := Default(), "", false
	fs := newFlagSet(&scratch, &flagFile, &help)
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if help {
		return Config{}, ErrHelp
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("config: unexpected argument %q (options are flags: --name=value)", fs.Arg(0))
	}

	c := Default()
	file, ok := getenv(envName(configKey))
	if fs.Changed(configKey) {
		file, ok = flagFile, true
	}
	if ok && file != "" {
		if err := loadFile(&c, file); err != nil {
			return Config{}, err
		}
		c.File = file
	}

	if err := applyEnv(&c, getenv); err != nil {
		return Config{}, err
	}

	// Parse the flags again, now bound to c: only flags given in args are
	// set, so they override the layers below and nothing else changes.
	if err := newFlagSet(&c, new(string), new(bool)).Parse(args); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}

	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// loadFile decodes the YAML file at path over c. Keys absent from the file
// keep c's values; an unknown key is an error naming it and its line.
func loadFile(c *Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: reading file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	switch err := dec.Decode(c); {
	case errors.Is(err, io.EOF):
		return nil // an empty file sets nothing
	case err != nil:
		return fmt.Errorf("config: file %s: %w", path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("config: file %s: holds more than one YAML document", path)
	}
	return nil
}

// applyEnv sets every option whose SLUICE_* variable is set, parsing it as
// the flag would.
func applyEnv(c *Config, getenv func(string) (string, bool)) error {
	fs := newFlagSet(c, new(string), new(bool))
	var errs []error
	for _, o := range options {
		name := envName(o.key)
		v, ok := getenv(name)
		if !ok {
			continue
		}
		if err := fs.Lookup(flagName(o.key)).Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("config: environment variable %s=%q: %w", name, v, err))
		}
	}
	return errors.Join(errs...)
}
