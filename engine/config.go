package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config configures an Engine. Fields are documented with their defaults,
// which EnsureDefaults fills in; Validate reports what is wrong.
type Config struct {
	// Brokers are the seed brokers. Required.
	Brokers []string
	// AppID names the consumer group and prefixes the internal topics.
	// Default "cairn".
	AppID string
	// InputTopic is the event log. Default "events".
	InputTopic string
	// InstanceID is unique per process; the transactional id is
	// "<app-id>-<instance-id>". Default hostname-pid.
	InstanceID string
	// CommitInterval is the longest time a transaction stays open.
	// Default 100ms.
	CommitInterval time.Duration
	// Delivery is DeliveryExactlyOnce (the default) or DeliveryAtLeastOnce,
	// which skips transactions and is not exactly-once: it exists to
	// measure the cost of exactly-once.
	Delivery string
	// CommitRecords commits early once this many input records are in the
	// open transaction. Default 10000.
	CommitRecords int
	// MaxPollRecords bounds one poll. Default 20000: a poll drains a
	// buffered fetch partition by partition, and one transaction's records
	// are processed in parallel only across partitions, so a poll must
	// reach past the first partition's records (about 8,000 small events
	// per MiB) for more than one worker to have work. Larger polls made
	// longer transactions and a worse tail: p99 425 ms at half the maximum
	// rate with 50000, 129 ms with 20000.
	MaxPollRecords int
	// FetchMaxPartitionBytes bounds the bytes one fetch returns for a
	// partition (max.partition.fetch.bytes). Default 1 MiB, franz-go's and
	// Kafka's. It must stay above the largest record batch producers
	// write: a broker returns a batch larger than the limit only when its
	// partition comes first in the response, so such a partition advances
	// one batch per rotation at best, and on the embedded broker not at
	// all (64 KiB stalled a partition holding 1 MiB batches).
	FetchMaxPartitionBytes int32
	// IdleAdvance lets the wall clock advance the clock of a caught-up
	// partition so that waits fire on time in live use (design §3).
	// Default true; tests that need replay-identical timer firings with
	// historical timestamps turn it off through DisableIdleAdvance.
	DisableIdleAdvance bool
	// MaxClockSkew is how far ahead of the wall clock an event may move the
	// partition clock. Default 5m.
	MaxClockSkew time.Duration
	// TransactionTimeout is the broker-side transaction timeout. Default 30s.
	TransactionTimeout time.Duration
	// FiringWindow bounds the time a partition spends firing the timers
	// due before one record (or, idle, in one commit cycle). When they
	// have not all fired within it, the record and those after it wait in
	// the partition's backlog (state) for the next transactions, so that
	// no transaction outlives TransactionTimeout however many timers fall
	// due at once (docs/design.md, "Firing window and backlog"). Default:
	// CommitInterval, at least 1s, at most a quarter of
	// TransactionTimeout.
	FiringWindow time.Duration
	// SessionTimeout is the group session timeout. Default 10s.
	SessionTimeout time.Duration
	// RebalanceTimeout is the group rebalance timeout. Default 30s.
	RebalanceTimeout time.Duration
	// MinFreeDisk is the free space, in bytes, below which the engine
	// stops (ErrDiskFull) before the store runs out of disk: Pebble cannot
	// go on from a failed write to its log. Checked at start and about once
	// a second. Default 64 MiB; negative disables the check.
	MinFreeDisk int64
	// AdvertiseHTTP is the address other instances reach this one's HTTP
	// API at, published in its status (StatusTopic). Default: none, and
	// requests for its partitions are not forwarded to it.
	AdvertiseHTTP string
	// StatusInterval is how often the instance publishes its status.
	// Default 5s.
	StatusInterval time.Duration
	// ShadowUntil, if set, runs the engine in shadow mode: outputs emitted
	// (Context.Emit: journey actions, counter outputs) for event times
	// before it are dropped and counted in cairn_outputs_shadowed_total,
	// while state, timers and upserted aggregates are built as usual. It
	// rebuilds state from the input log without resending history (a new
	// app id, more input partitions, disaster recovery without changelogs;
	// docs/operations.md). The cut is by event time, so a replay makes the
	// same decision. Default: zero, no shadow mode.
	ShadowUntil time.Time
	// StandbyReplicas is how many instances besides a partition's owner
	// keep a warm copy of its state by tailing its changelog, so that a
	// failover onto one of them replays only the tail. Placement is
	// StandbyPlacement over the live instances of the status topic.
	// Default 0 (none).
	StandbyReplicas int
	// StateCacheBytes bounds the per-user read cache in front of the store
	// (state.CachedBatch), for the whole instance: each owned partition
	// gets an equal share. It holds whole users (their state and timer
	// index) and is trimmed between transactions. Default 256 MiB;
	// negative disables it.
	StateCacheBytes int64
	// ClientOpts are extra franz-go options (TLS, SASL) applied to every
	// client the engine creates.
	ClientOpts []kgo.Opt
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the engine's metrics. Default: a new registry.
	Registerer prometheus.Registerer
}

// DefaultStateCacheBytes is Config.StateCacheBytes's default.
const DefaultStateCacheBytes = 256 << 20

var appIDRe = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// EnsureDefaults fills in zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.AppID == "" {
		c.AppID = "cairn"
	}
	if c.InputTopic == "" {
		c.InputTopic = "events"
	}
	if c.InstanceID == "" {
		h, _ := os.Hostname()
		c.InstanceID = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	if c.MinFreeDisk == 0 {
		c.MinFreeDisk = 64 << 20
	}
	if c.StateCacheBytes == 0 {
		c.StateCacheBytes = DefaultStateCacheBytes
	}
	if c.Delivery == "" {
		c.Delivery = DeliveryExactlyOnce
	}
	setDur(&c.CommitInterval, 100*time.Millisecond)
	setDur(&c.StatusInterval, 5*time.Second)
	setDur(&c.MaxClockSkew, 5*time.Minute)
	setDur(&c.TransactionTimeout, 30*time.Second)
	setDur(&c.SessionTimeout, 10*time.Second)
	setDur(&c.RebalanceTimeout, 30*time.Second)
	setDur(&c.FiringWindow, min(max(c.CommitInterval, time.Second), c.TransactionTimeout/4))
	if c.CommitRecords == 0 {
		c.CommitRecords = 10000
	}
	if c.MaxPollRecords == 0 {
		c.MaxPollRecords = 20000
	}
	if c.FetchMaxPartitionBytes == 0 {
		c.FetchMaxPartitionBytes = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
}

func setDur(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: at least one seed broker is required"))
	}
	if !appIDRe.MatchString(c.AppID) {
		errs = append(errs, fmt.Errorf("app-id %q: use letters, digits, '.', '_' and '-'", c.AppID))
	}
	if c.InputTopic == "" {
		errs = append(errs, errors.New("input-topic: required"))
	}
	if c.CommitInterval < time.Millisecond {
		errs = append(errs, fmt.Errorf("commit-interval %s: must be at least 1ms", c.CommitInterval))
	}
	if c.Delivery != DeliveryExactlyOnce && c.Delivery != DeliveryAtLeastOnce {
		errs = append(errs, fmt.Errorf("delivery %q: use %s or %s", c.Delivery, DeliveryExactlyOnce, DeliveryAtLeastOnce))
	}
	if c.CommitRecords < 1 || c.MaxPollRecords < 1 {
		errs = append(errs, errors.New("commit-records and max-poll-records must be positive"))
	}
	if c.FetchMaxPartitionBytes < 1 {
		errs = append(errs, fmt.Errorf("fetch-max-partition-bytes %d: must be positive", c.FetchMaxPartitionBytes))
	}
	if c.StandbyReplicas < 0 {
		errs = append(errs, fmt.Errorf("standby-replicas %d: must be 0 or more", c.StandbyReplicas))
	}
	if c.FiringWindow < 0 || c.FiringWindow >= c.TransactionTimeout {
		errs = append(errs, fmt.Errorf("firing-window %s: must be positive and below transaction-timeout %s", c.FiringWindow, c.TransactionTimeout))
	}
	if c.TransactionTimeout <= c.CommitInterval {
		errs = append(errs, fmt.Errorf("transaction-timeout %s must exceed commit-interval %s", c.TransactionTimeout, c.CommitInterval))
	}
	return errors.Join(errs...)
}

// ChangelogTopic is "<app-id>-changelog".
func (c *Config) ChangelogTopic() string { return c.AppID + "-changelog" }

// AggregatesTopic is "<app-id>-aggregates".
func (c *Config) AggregatesTopic() string { return c.AppID + "-aggregates" }

// DLQTopic is "<input>.dlq".
func (c *Config) DLQTopic() string { return c.InputTopic + ".dlq" }

// TransactionalID is "<app-id>-<instance-id>".
func (c *Config) TransactionalID() string { return c.AppID + "-" + c.InstanceID }
