package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/kafkasec"
)

// Config is everything `processor run` takes. Each field is a flag; each
// flag has a CAIRN_* environment variable (upper case, '-' → '_') and a key
// of the same name in the --config YAML file. Precedence: flag, then
// environment, then file, then the default. docs/operations.md lists them.
type Config struct {
	Brokers        string           // --brokers: comma-separated seed brokers
	AppID          string           // --app-id: consumer group and internal topic prefix
	InputTopic     string           // --input-topic
	StateDir       string           // --state-dir: Pebble directory
	Definitions    string           // --definitions: directory of YAML definitions
	HTTP           string           // --http: metrics, health and API address
	HTTPToken      secret           // --http-token: bearer token of mutations (and reads); config_http.go
	HTTPTokenFile  string           // --http-token-file: file holding --http-token
	HTTPReadToken  secret           // --http-read-token: if set, reads (but probes and metrics) need it or --http-token
	HTTPReadFile   string           // --http-read-token-file: file holding --http-read-token
	HTTPInsecure   bool             // --http-insecure-mutations: mutations without a token (loopback --http only)
	AdvertiseHTTP  string           // --advertise-http: host:port other instances reach this one's API at
	StatusInterval time.Duration    // --status-interval: how often the instance publishes its status
	CommitInterval time.Duration    // --commit-interval
	Delivery       string           // --delivery: exactly-once, or at-least-once (benchmarks only)
	InstanceID     string           // --instance-id: default hostname-pid
	SessionTimeout time.Duration    // --session-timeout: group session timeout
	RebalanceTime  time.Duration    // --rebalance-timeout: how long a rebalance waits for members to rejoin
	TxnTimeout     time.Duration    // --transaction-timeout: broker-side transaction timeout
	FiringWindow   time.Duration    // --firing-window: most time a partition fires the timers due before one record
	IdleAdvance    bool             // --idle-advance: let the wall clock move idle partitions' clocks
	ShadowUntil    string           // --shadow-until: hold back actions of events before this time (rebuilding state)
	MinFreeDiskMB  int64            // --min-free-disk-mb: stop before the state disk fills up
	Standby        int              // --standby-replicas: warm copies of each partition on other instances
	StateCache     int64            // --state-cache-bytes: per-user read cache in front of the store
	FetchPartition int              // --fetch-partition-bytes: max.partition.fetch.bytes of input fetches
	Kafka          kafkasec.Options // --kafka-tls*, --kafka-sasl-*: how to connect to the brokers
	LogLevel       string           // --log-level: debug, info, warn, error
}

// bindFlags registers c's flags with their defaults on fs.
func (c *Config) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Brokers, "brokers", "127.0.0.1:9092", "comma-separated seed brokers")
	fs.StringVar(&c.AppID, "app-id", "cairn", "consumer group id and prefix of internal topics")
	fs.StringVar(&c.InputTopic, "input-topic", "events", "input event topic")
	fs.StringVar(&c.StateDir, "state-dir", "./cairn-state", "directory of the local state store")
	fs.StringVar(&c.Definitions, "definitions", "", "directory of journey, segment and funnel definitions (YAML)")
	fs.StringVar(&c.HTTP, "http", "127.0.0.1:8080", "address of the metrics, health and API server")
	fs.Var(&c.HTTPToken, "http-token", "bearer `token` required by every API mutation (POST, PUT, DELETE, ...); prefer CAIRN_HTTP_TOKEN or --http-token-file: a flag shows in ps")
	fs.StringVar(&c.HTTPTokenFile, "http-token-file", "", "file holding --http-token (read once at start; surrounding whitespace ignored)")
	fs.Var(&c.HTTPReadToken, "http-read-token", "if set, bearer `token` required by every API read except /healthz, /readyz and /metrics (--http-token is accepted too)")
	fs.StringVar(&c.HTTPReadFile, "http-read-token-file", "", "file holding --http-read-token")
	fs.BoolVar(&c.HTTPInsecure, "http-insecure-mutations", false, "accept API mutations without a token; only with a loopback --http (local development)")
	fs.StringVar(&c.AdvertiseHTTP, "advertise-http", "", "host:port other instances reach this one's API at, to forward requests for its partitions (default: the --http address, with the hostname for an unspecified host)")
	fs.DurationVar(&c.StatusInterval, "status-interval", 5*time.Second, "how often the instance publishes its status to <app-id>-status (processor status, forwarding)")
	fs.DurationVar(&c.CommitInterval, "commit-interval", 100*time.Millisecond, "longest time a transaction stays open")
	fs.StringVar(&c.Delivery, "delivery", engine.DeliveryExactlyOnce, "exactly-once, or at-least-once: no transactions, NOT exactly-once (outputs and state updates may repeat after a failure); for measuring what exactly-once costs")
	fs.StringVar(&c.InstanceID, "instance-id", "", "unique, stable id of this instance (default hostname-pid)")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", 10*time.Second, "consumer group session timeout")
	fs.DurationVar(&c.RebalanceTime, "rebalance-timeout", 30*time.Second, "how long a rebalance waits for every member to rejoin")
	fs.DurationVar(&c.TxnTimeout, "transaction-timeout", 30*time.Second, "broker-side transaction timeout")
	fs.DurationVar(&c.FiringWindow, "firing-window", 0, "most time a partition spends firing the timers due before one record; that record and the ones after it then wait in the partition's backlog for the next transactions (default: commit-interval, at least 1s, at most a quarter of transaction-timeout)")
	fs.BoolVar(&c.IdleAdvance, "idle-advance", true, "advance idle partitions' clocks with the wall clock (false: pure event time, for replays)")
	fs.StringVar(&c.ShadowUntil, "shadow-until", "", "rebuild state from the input log without sending actions for events before this `time` (RFC 3339 or YYYY-MM-DD, UTC)")
	fs.Int64Var(&c.MinFreeDiskMB, "min-free-disk-mb", 64, "stop cleanly when the state directory's disk has less free space than this (MiB; -1: never)")
	fs.IntVar(&c.Standby, "standby-replicas", 0, "instances besides a partition's owner that keep a warm copy of its state by tailing its changelog, so a failover replays only the tail (costs disk and changelog reads)")
	fs.Int64Var(&c.StateCache, "state-cache-bytes", engine.DefaultStateCacheBytes, "bytes of users' state kept in memory in front of the store, shared by the owned partitions (0: no cache)")
	fs.IntVar(&c.FetchPartition, "fetch-partition-bytes", 1<<20, "most bytes one input fetch returns per partition (Kafka's max.partition.fetch.bytes); keep it above the largest record batch producers write")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	bindKafkaFlags(fs, &c.Kafka)
}

// bindKafkaFlags registers the Kafka TLS and SASL flags.
func bindKafkaFlags(fs *flag.FlagSet, k *kafkasec.Options) {
	fs.BoolVar(&k.TLS, "kafka-tls", false, "connect to the brokers over TLS, trusting the system's roots")
	fs.StringVar(&k.CAFile, "kafka-tls-ca", "", "PEM file of the roots to trust instead of the system's (implies --kafka-tls)")
	fs.StringVar(&k.CertFile, "kafka-tls-cert", "", "PEM client certificate for mutual TLS (with --kafka-tls-key)")
	fs.StringVar(&k.KeyFile, "kafka-tls-key", "", "PEM private key of --kafka-tls-cert")
	fs.StringVar(&k.ServerName, "kafka-tls-server-name", "", "name to verify in the brokers' certificates (default: the host dialed)")
	fs.StringVar(&k.Mechanism, "kafka-sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default: no SASL)")
	fs.StringVar(&k.User, "kafka-sasl-user", "", "SASL user")
	fs.StringVar(&k.Password, "kafka-sasl-password", "", "SASL password; prefer CAIRN_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file to keep it off the command line")
	fs.StringVar(&k.PasswordFile, "kafka-sasl-password-file", "", "file holding the SASL password")
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if c.Definitions == "" {
		errs = append(errs, errors.New("--definitions: required"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("--state-dir: required"))
	}
	if c.StateCache < 0 {
		errs = append(errs, fmt.Errorf("--state-cache-bytes %d: must be 0 (off) or more", c.StateCache))
	}
	if c.FetchPartition != 0 && (c.FetchPartition < 1024 || c.FetchPartition > 1<<30) { // 0: the engine's default
		errs = append(errs, fmt.Errorf("--fetch-partition-bytes %d: must be between 1024 and 1073741824", c.FetchPartition))
	}
	if c.Standby < 0 {
		errs = append(errs, fmt.Errorf("--standby-replicas %d: must be 0 or more", c.Standby))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.apiOptions(nil); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseShadowUntil(c.ShadowUntil); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Engine returns the engine configuration, with the Kafka security options
// applied to every client; errors name the flags at fault.
func (c *Config) Engine() (engine.Config, error) {
	opts, err := c.Kafka.ClientOpts()
	if err != nil {
		return engine.Config{}, err
	}
	shadow, err := parseShadowUntil(c.ShadowUntil)
	if err != nil {
		return engine.Config{}, err
	}
	return engine.Config{
		ShadowUntil:        shadow,
		ClientOpts:         opts,
		Brokers:            splitList(c.Brokers),
		AppID:              c.AppID,
		InputTopic:         c.InputTopic,
		InstanceID:         c.InstanceID,
		CommitInterval:     c.CommitInterval,
		Delivery:           c.Delivery,
		SessionTimeout:     c.SessionTimeout,
		RebalanceTimeout:   c.RebalanceTime,
		TransactionTimeout: c.TxnTimeout,
		FiringWindow:       c.FiringWindow,
		DisableIdleAdvance: !c.IdleAdvance,
		MinFreeDisk:        minFreeDisk(c.MinFreeDiskMB),
		StatusInterval:     c.StatusInterval,
		StandbyReplicas:    c.Standby,
		StateCacheBytes:    stateCacheBytes(c.StateCache),
		// Validate bounds it to int32.
		FetchMaxPartitionBytes: int32(c.FetchPartition),
	}, nil
}

// parseConfig parses args into fs, then fills every flag not given on the
// command line from CAIRN_* variables and then from the --config file.
func parseConfig(fs *flag.FlagSet, args []string) error {
	file := fs.String("config", "", "YAML file with options (keys are flag names)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fileVals, err := readConfigFile(*file)
	if err != nil {
		return err
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "config" {
			return
		}
		env := "CAIRN_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", env, err))
			}
			return
		}
		if v, ok := fileVals[f.Name]; ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %w", *file, f.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

func readConfigFile(path string) (map[string]string, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("parsing config file %s: %w", path, err)
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		if l, ok := v.([]any); ok {
			parts := make([]string, len(l))
			for i, x := range l {
				parts[i] = fmt.Sprint(x)
			}
			out[k] = strings.Join(parts, ",")
			continue
		}
		out[k] = fmt.Sprint(v)
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseShadowUntil reads --shadow-until: an RFC 3339 time or a UTC date.
// An empty value is the zero time (no shadow mode). "now" and other
// relative times are refused on purpose: the cut must be the same on every
// restart, or the events between two restarts' "now" would lose their
// actions.
func parseShadowUntil(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--shadow-until %q: want an absolute time, RFC 3339 (2026-11-01T00:00:00Z) or a UTC date (2026-11-01)", s)
}

// minFreeDisk converts --min-free-disk-mb to engine.Config.MinFreeDisk:
// 0 and negative values disable the check.
func minFreeDisk(mb int64) int64 {
	if mb <= 0 {
		return -1
	}
	return mb << 20
}

// stateCacheBytes converts --state-cache-bytes to
// engine.Config.StateCacheBytes, where 0 means the default: 0 (off)
// becomes -1.
func stateCacheBytes(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}
