package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"github.com/sluicemq/sluice/client"
)

// Defaults: the addresses make run listens on.
const (
	defaultBrokers  = "127.0.0.1:9092"
	defaultAdminURL = "http://127.0.0.1:9644"
	envBrokers      = "SLUICE_BROKERS"
	envAdminURL     = "SLUICE_ADMIN_URL"
)

// settings are the resolved addresses and where each came from.
type settings struct {
	Brokers       []string `json:"brokers"`
	BrokersFrom   string   `json:"brokers_from"`
	AdminURLs     []string `json:"admin_url"`
	AdminURLsFrom string   `json:"admin_url_from"`
	ConfigFile    string   `json:"config_file,omitempty"` // the file read, if any
}

// fileConfig is sluicectl.yaml.
type fileConfig struct {
	Brokers  stringList `yaml:"brokers"`
	AdminURL stringList `yaml:"admin_url"`
}

// stringList reads a YAML list or a comma-separated string.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = splitList(n.Value)
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// defaultConfigPath is ~/.config/sluice/sluicectl.yaml, or under
// $XDG_CONFIG_HOME when set; the same path on every OS, as kubectl's.
func defaultConfigPath() string {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "sluice", "sluicectl.yaml")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".config", "sluice", "sluicectl.yaml")
}

// resolve fills a.set: flag, then environment, then file, then default.
func (a *app) resolve(cmd *cobra.Command) error {
	a.timeout = a.flags.timeout
	if a.timeout <= 0 {
		return usagef("--timeout %v: want a positive duration", a.timeout)
	}
	var file fileConfig
	path, explicit := a.flags.configFile, a.flags.configFile != ""
	if !explicit {
		path = defaultConfigPath()
	}
	if path != "" {
		raw, err := os.ReadFile(path)
		switch {
		case err == nil:
			dec := yaml.NewDecoder(bytes.NewReader(raw))
			dec.KnownFields(true)
			if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
				return usagef("config file %s: %v (want keys brokers and admin_url)", path, err)
			}
			a.set.ConfigFile = path
		case explicit || !errors.Is(err, fs.ErrNotExist):
			return usagef("config file: %v", err)
		}
	}
	flags := cmd.Flags()
	pick := func(flag, env string, fromFile []string, def string) ([]string, string) {
		if f := flags.Lookup(flag); f != nil && f.Changed {
			return splitList(f.Value.String()), "flag --" + flag
		}
		if v := splitList(os.Getenv(env)); len(v) > 0 {
			return v, "env " + env
		}
		if len(fromFile) > 0 {
			return fromFile, "file " + a.set.ConfigFile
		}
		return []string{def}, "default"
	}
	a.set.Brokers, a.set.BrokersFrom = pick("brokers", envBrokers, file.Brokers, defaultBrokers)
	a.set.AdminURLs, a.set.AdminURLsFrom = pick("admin-url", envAdminURL, file.AdminURL, defaultAdminURL)
	return nil
}

// client returns the shared client, made on first use.
func (a *app) client() (*client.Client, error) {
	if a.cl != nil {
		return a.cl, nil
	}
	c, err := a.newClient()
	if err != nil {
		return nil, err
	}
	a.cl = c
	return c, nil
}

// newClient makes a client on the resolved addresses with extra options
// (produce brings its own acks and compression). The caller closes it.
func (a *app) newClient(extra ...client.Option) (*client.Client, error) {
	opts := []client.Option{
		client.Brokers(a.set.Brokers...),
		client.AdminAddr(a.set.AdminURLs...),
		client.ClientID("sluicectl"),
		client.KgoOptions(
			// Fail fast on a dead address instead of retrying for minutes.
			kgo.DialTimeout(min(a.timeout, 5*time.Second)),
			kgo.RetryTimeout(a.timeout),
		),
	}
	c, err := client.New(append(opts, extra...)...)
	if err != nil {
		return nil, usagef("%v (brokers from %s, admin URL from %s)", err, a.set.BrokersFrom, a.set.AdminURLsFrom)
	}
	return c, nil
}

func (a *app) close() {
	if a.cl != nil {
		a.cl.Close()
		a.cl = nil
	}
}

// reqCtx bounds one command's requests by --timeout.
// connect returns the client and a request context bounded by --timeout,
// the start of almost every command.
func (a *app) connect(cmd *cobra.Command) (*client.Client, context.Context, context.CancelFunc, error) {
	c, err := a.client()
	if err != nil {
		return nil, nil, func() {}, err
	}
	ctx, cancel := a.reqCtx(cmd)
	return c, ctx, cancel, nil
}

func (a *app) reqCtx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), a.timeout)
}

func (a *app) newConfigCmd() *cobra.Command {
	view := &cobra.Command{
		Use:   "view",
		Short: "Show the addresses sluicectl uses and where each comes from",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.flags.json {
				return printJSON(cmd.OutOrStdout(), a.set)
			}
			t := newTable(cmd.OutOrStdout(), "SETTING", "VALUE", "FROM")
			t.row("brokers", strings.Join(a.set.Brokers, ","), a.set.BrokersFrom)
			t.row("admin-url", strings.Join(a.set.AdminURLs, ","), a.set.AdminURLsFrom)
			cf := a.set.ConfigFile
			if cf == "" {
				cf = fmt.Sprintf("none (looked for %s)", defaultConfigPath())
			}
			t.row("config file", cf, "")
			return t.flush()
		},
	}
	return parent("config", "Show sluicectl's own settings", view)
}
