// Package broker runs franz-go's kfake as Cairn's embedded, Kafka-compatible
// broker for development, demos, tests and benchmarks. Nothing else in Cairn
// depends on it: the engine talks the Kafka protocol to whatever brokers it
// is given.
package broker

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Options configures Start. The zero value is a single in-memory broker on a
// random loopback port.
type Options struct {
	// DataDir persists the log there, so that a restart keeps every topic,
	// group and transaction. Default: in memory.
	DataDir string
	// Port to listen on, on 127.0.0.1. Default 0: a random free port.
	Port int
	// Partitions is the default partition count of created topics.
	// Default 6.
	Partitions int
	// Topics are created at start with Partitions partitions.
	Topics []string
	// MinSessionTimeout is the smallest group session timeout accepted.
	// Default 1s (Kafka's is 6s), so that tests can fail over quickly.
	MinSessionTimeout time.Duration
	// Extra are further kfake options, e.g. SASL or TLS.
	Extra []kfake.Opt
}

// Broker is a running embedded broker.
type Broker struct {
	c *kfake.Cluster
}

// Start starts a broker.
func Start(o Options) (*Broker, error) {
	if o.Partitions == 0 {
		o.Partitions = 6
	}
	if o.MinSessionTimeout == 0 {
		o.MinSessionTimeout = time.Second
	}
	opts := []kfake.Opt{
		kfake.Ports(o.Port),
		kfake.DefaultNumPartitions(o.Partitions),
		kfake.GroupMinSessionTimeout(o.MinSessionTimeout),
	}
	if o.DataDir != "" {
		opts = append(opts, kfake.DataDir(o.DataDir))
	}
	if len(o.Topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(o.Partitions), o.Topics...))
	}
	c, err := kfake.NewCluster(append(opts, o.Extra...)...)
	if err != nil {
		return nil, fmt.Errorf("starting embedded broker: %w", err)
	}
	return &Broker{c: c}, nil
}

// Addrs returns the broker's listen addresses (host:port).
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// Cluster exposes the kfake cluster for fault injection in tests.
func (b *Broker) Cluster() *kfake.Cluster { return b.c }

// Close stops the broker, persisting its state if it has a DataDir.
func (b *Broker) Close() { b.c.Close() }
