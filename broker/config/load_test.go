package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// layerValues holds, per option, three distinct valid values (as flag or
// environment text, and also valid as plain YAML scalars) for the file, the
// environment and the flags.
var layerValues = map[string][3]string{
	"node_id":                          {"2", "3", "4"},
	"data_dir":                         {"/var/lib/a", "/var/lib/b", "/var/lib/c"},
	"kafka_addr":                       {"127.0.0.1:19092", "127.0.0.1:29092", "127.0.0.1:39092"},
	"advertised_kafka_addr":            {"a.example:9092", "b.example:9092", "c.example:9092"},
	"http_addr":                        {"127.0.0.1:19644", "127.0.0.1:29644", "127.0.0.1:39644"},
	"cluster_id":                       {"MkU3OEVBNTcwNTJENDM2Qg", "AAAAAAAAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBBBBBBBA"},
	"raft_addr":                        {"127.0.0.1:19093", "127.0.0.1:29093", "127.0.0.1:39093"},
	"advertised_raft_addr":             {"a.example:9093", "b.example:9093", "c.example:9093"},
	"controller_voters":                {"1@a.example:9093", "1@a:9093,2@b:9093,3@c:9093", "5@e.example:9093"},
	"raft_heartbeat_timeout":           {"500ms", "2s", "3s"},
	"auto_leader_rebalance":            {"false", "true", "false"},
	"leader_rebalance_interval":        {"10s", "1m", "5m"},
	"offsets_topic_partitions":         {"1", "3", "50"},
	"offsets_topic_replication_factor": {"1", "2", "5"},
	"offsets_retention":                {"1h", "24h", "720h"},
	"group_min_session_timeout":        {"1s", "2s", "3s"},
	"group_max_session_timeout":        {"1m", "10m", "1h"},
	"group_initial_rebalance_delay":    {"0s", "1s", "5s"},
	"group_max_size":                   {"10", "100", "5000"},
	"lag_interval":                     {"1s", "30s", "2m"},
	"max_request_bytes":                {"2097152", "4194304", "8388608"},
	"max_control_request_bytes":        {"4096", "8192", "16384"},
	"auto_create_topics":               {"false", "true", "false"},
	"default_partitions":               {"2", "3", "4"},
	"default_replication_factor":       {"2", "3", "4"},
	"retention_ms":                     {"-1", "1000", "2000"},
	"retention_bytes":                  {"1024", "2048", "-1"},
	"segment_bytes":                    {"2097152", "4194304", "8388608"},
	"segment_ms":                       {"1000", "2000", "3000"},
	"max_message_bytes":                {"1000", "2000", "3000"},
	"message_timestamp_type":           {"LogAppendTime", "CreateTime", "LogAppendTime"},
	"cleanup_policy":                   {"compact", "compact,delete", "delete,compact"},
	"retention_check_interval":         {"1m", "2m", "90s"},
	"log_level":                        {"debug", "warn", "error"},
	"log_format":                       {"json", "console", "json"},
	"shutdown_timeout":                 {"10s", "20s", "1m"},
	"fetch_max_wait_max":               {"1s", "2s", "3s"},
	"connections_max_idle":             {"1m", "2m", "3m"},
	"page_cache_window":                {"0", "1048576", "67108864"},
}

// with returns Default() with option key set from text as a flag would.
func with(t *testing.T, key, text string) Config {
	t.Helper()
	c := Default()
	if err := newFlagSet(&c, new(string), new(bool)).Set(flagName(key), text); err != nil {
		t.Fatalf("setting %s=%q: %v", key, text, err)
	}
	return c
}

// TestLayering checks, for every option, that each layer overrides the one
// below it and leaves every other option at its default.
func TestLayering(t *testing.T) {
	for _, o := range options {
		vals, ok := layerValues[o.key]
		if !ok {
			t.Errorf("no layer values for %s", o.key)
			continue
		}
		yamlText := o.key + ": " + vals[0] + "\n"
		envVar := map[string]string{envName(o.key): vals[1]}
		flag := []string{"--" + flagName(o.key) + "=" + vals[2]}

		tests := []struct {
			name string
			file bool
			env  map[string]string
			args []string
			want string // "" for the default
		}{
			{"default", false, nil, nil, ""},
			{"file", true, nil, nil, vals[0]},
			{"env", false, envVar, nil, vals[1]},
			{"flag", false, nil, flag, vals[2]},
			{"env over file", true, envVar, nil, vals[1]},
			{"flag over file", true, nil, flag, vals[2]},
			{"flag over env", false, envVar, flag, vals[2]},
			{"flag over env over file", true, envVar, flag, vals[2]},
		}
		for _, tt := range tests {
			t.Run(o.key+"/"+tt.name, func(t *testing.T) {
				e := map[string]string{}
				for k, v := range tt.env {
					e[k] = v
				}
				if tt.file {
					e["SLUICE_CONFIG"] = writeFile(t, yamlText)
				}
				got, err := Load(tt.args, env(e))
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				want := Default()
				if tt.want != "" {
					want = with(t, o.key, tt.want)
				}
				want.File = e["SLUICE_CONFIG"]
				if got != want {
					t.Errorf("Load =\n%+v\nwant\n%+v", got, want)
				}
			})
		}
	}
}

func TestLayeringMixed(t *testing.T) {
	path := writeFile(t, `
# a comment
node_id: 7
data_dir: /srv/sluice
retention_check_interval: 10m
log_level: debug
`)
	got, err := Load(
		[]string{"--log-level", "warn", "--shutdown-timeout=5s"},
		env(map[string]string{"SLUICE_CONFIG": path, "SLUICE_DATA_DIR": "/env/dir", "SLUICE_LOG_LEVEL": "error"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.File = path
	want.NodeID = 7                                // file
	want.DataDir = "/env/dir"                      // env over file
	want.RetentionCheckInterval = 10 * time.Minute // file
	want.LogLevel = "warn"                         // flag over env over file
	want.ShutdownTimeout = 5 * time.Second         // flag
	if got != want {
		t.Errorf("Load =\n%+v\nwant\n%+v", got, want)
	}
}

func TestConfigFileFlagOverridesEnv(t *testing.T) {
	envFile := writeFile(t, "node_id: 2\n")
	flagFile := writeFile(t, "node_id: 3\n")
	got, err := Load([]string{"--config", flagFile}, env(map[string]string{"SLUICE_CONFIG": envFile}))
	if err != nil {
		t.Fatal(err)
	}
	if got.NodeID != 3 || got.File != flagFile {
		t.Errorf("node_id %d from %q, want 3 from %q", got.NodeID, got.File, flagFile)
	}
	// An empty --config means no file, even when SLUICE_CONFIG names one.
	got, err = Load([]string{"--config="}, env(map[string]string{"SLUICE_CONFIG": envFile}))
	if err != nil {
		t.Fatal(err)
	}
	if got.NodeID != 1 || got.File != "" {
		t.Errorf("node_id %d from %q, want the default and no file", got.NodeID, got.File)
	}
}

func TestFileErrors(t *testing.T) {
	tests := []struct {
		name, content string
		want          []string // substrings of the error
	}{
		{"unknown key", "node_id: 2\nnod_id: 3\n", []string{"line 2", "nod_id"}},
		{"config key", "config: other.yaml\n", []string{"config"}},
		{"File field", "file: other.yaml\n", []string{"file"}},
		{"wrong type", "node_id: two\n", []string{"line 1", "two"}},
		{"overflow", "default_replication_factor: 40000\n", []string{"40000"}},
		{"duration without unit", "shutdown_timeout: 30\n", []string{"30"}},
		{"bad duration", "shutdown_timeout: soon\n", []string{"soon"}},
		{"two documents", "node_id: 2\n---\nnode_id: 3\n", []string{"more than one YAML document"}},
		{"syntax", "node_id: [2\n", []string{"yaml"}},
		{"invalid value", "log_level: loud\n", []string{`log_level = "loud"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.content)
			_, err := Load([]string{"--config", path}, env(nil))
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestFileEmptyOrMissing(t *testing.T) {
	for _, content := range []string{"", "# nothing set\n"} {
		path := writeFile(t, content)
		got, err := Load([]string{"--config", path}, env(nil))
		if err != nil {
			t.Fatalf("empty file %q: %v", content, err)
		}
		want := Default()
		want.File = path
		if got != want {
			t.Errorf("empty file: Load = %+v", got)
		}
	}
	missing := filepath.Join(t.TempDir(), "absent.yaml")
	if _, err := Load(nil, env(map[string]string{"SLUICE_CONFIG": missing})); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want os.ErrNotExist", err)
	}
}

func TestEnvErrors(t *testing.T) {
	tests := map[string]string{
		"SLUICE_NODE_ID":            "abc",
		"SLUICE_DEFAULT_PARTITIONS": "",
		"SLUICE_AUTO_CREATE_TOPICS": "yes please",
		"SLUICE_SHUTDOWN_TIMEOUT":   "30",
		"SLUICE_MAX_REQUEST_BYTES":  "4294967296", // overflows int32
	}
	for name, value := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Load(nil, env(map[string]string{name: value}))
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if want := fmt.Sprintf("%s=%q", name, value); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		})
	}
	// Every bad variable is reported, not only the first.
	_, err := Load(nil, env(map[string]string{"SLUICE_NODE_ID": "x", "SLUICE_SEGMENT_MS": "y"}))
	if err == nil || !strings.Contains(err.Error(), "SLUICE_NODE_ID") || !strings.Contains(err.Error(), "SLUICE_SEGMENT_MS") {
		t.Errorf("err = %v, want both variables named", err)
	}
	// A valid value that fails validation names the field.
	_, err = Load(nil, env(map[string]string{"SLUICE_NODE_ID": "-5"}))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "node_id = -5") {
		t.Errorf("err = %v, want node_id = -5 invalid", err)
	}
}

func TestEnvSetButEmpty(t *testing.T) {
	got, err := Load(nil, env(map[string]string{"SLUICE_ADVERTISED_KAFKA_ADDR": "", "SLUICE_CONFIG": ""}))
	if err != nil {
		t.Fatal(err)
	}
	if got != Default() {
		t.Errorf("Load = %+v, want defaults", got)
	}
}

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"--node-id=abc"}, "node-id"},
		{[]string{"--node-id"}, "node-id"},
		{[]string{"--fetch-max-wait-max=5"}, "fetch-max-wait-max"},
		{[]string{"serve"}, `unexpected argument "serve"`},
		{[]string{"--segment-ms=0"}, "segment_ms = 0"},
	}
	for _, tt := range tests {
		_, err := Load(tt.args, env(nil))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%q) err = %v, want one containing %q", tt.args, err, tt.want)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"--node-id=2", "--help"}} {
		if _, err := Load(args, env(nil)); !errors.Is(err, ErrHelp) {
			t.Errorf("Load(%q) err = %v, want ErrHelp", args, err)
		}
	}

	usage := Usage()
	c, file, help := Default(), "", false
	fs := newFlagSet(&c, &file, &help)
	n := 0
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			if strings.Contains(usage, "--"+f.Name) {
				t.Errorf("Usage() lists the hidden --%s", f.Name)
			}
			return
		}
		n++
		if strings.TrimSpace(f.Usage) == "" {
			t.Errorf("--%s has no usage text", f.Name)
		}
		if !strings.Contains(usage, "--"+f.Name+" ") {
			t.Errorf("Usage() does not list --%s", f.Name)
		}
		if f.Name == "help" {
			return
		}
		// Each flag's help states its default: pflag appends it unless it is
		// the type's zero value, in which case the text must say it.
		one := pflag.NewFlagSet("one", pflag.ContinueOnError)
		one.AddFlag(f)
		if !strings.Contains(one.FlagUsages(), "default") {
			t.Errorf("--%s help does not state its default: %s", f.Name, one.FlagUsages())
		}
	})
	if want := len(options) + 2; n != want { // options, --config, --help
		t.Errorf("flag set has %d flags, want %d", n, want)
	}
	for _, s := range []string{"SLUICE_CONFIG", "SLUICE_NODE_ID", "Precedence"} {
		if !strings.Contains(usage, s) {
			t.Errorf("Usage() does not mention %s", s)
		}
	}
}

func TestNames(t *testing.T) {
	if got := flagName("max_control_request_bytes"); got != "max-control-request-bytes" {
		t.Errorf("flagName = %q", got)
	}
	if got := envName("max_control_request_bytes"); got != "SLUICE_MAX_CONTROL_REQUEST_BYTES" {
		t.Errorf("envName = %q", got)
	}
	// Load must not read anything outside SLUICE_*.
	_, err := Load(nil, func(k string) (string, bool) {
		if !strings.HasPrefix(k, EnvPrefix) {
			t.Errorf("Load looked up %q", k)
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestYAMLKeysAreTags checks that a file naming every option by its key
// loads (the keys the usage text promises are the ones the decoder knows).
func TestYAMLKeysAreTags(t *testing.T) {
	var b strings.Builder
	for _, o := range options {
		fmt.Fprintf(&b, "%s: %s\n", o.key, layerValues[o.key][0])
	}
	got, err := Load([]string{"--config", writeFile(t, b.String())}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	// Every field moved off its default.
	def := reflect.ValueOf(Default())
	v := reflect.ValueOf(got)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if v.Type().Field(i).Tag.Get("yaml") == "-" { // File, DebugFaultFS
			continue
		}
		if v.Field(i).Interface() == def.Field(i).Interface() {
			t.Errorf("%s still has its default %v", name, v.Field(i))
		}
	}
}

// TestDebugFaultFS: only the hidden flag turns the fault filesystem on;
// neither the file nor the environment can.
func TestDebugFaultFS(t *testing.T) {
	c, err := Load(nil, env(nil))
	if err != nil || c.DebugFaultFS {
		t.Fatalf("default: %v %v", c.DebugFaultFS, err)
	}
	c, err = Load([]string{"--" + debugFaultFSFlag}, env(nil))
	if err != nil || !c.DebugFaultFS {
		t.Fatalf("--%s: %v %v", debugFaultFSFlag, c.DebugFaultFS, err)
	}
	c, err = Load(nil, env(map[string]string{"SLUICE_DEBUG_FAULT_FS": "true"}))
	if err != nil || c.DebugFaultFS {
		t.Fatalf("environment: %v %v", c.DebugFaultFS, err)
	}
	if _, err := Load([]string{"--config", writeFile(t, "debug_fault_fs: true\n")}, env(nil)); err == nil {
		t.Fatal("the YAML key debug_fault_fs was accepted")
	}
}
