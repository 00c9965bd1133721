package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/broker"
)

// ClusterOptions configures RunCluster. Zero fields take the defaults in
// brackets.
type ClusterOptions struct {
	// Binary is the processor binary; instances run as child processes of
	// it, so that a failover is a real SIGKILL. Required.
	Binary     string
	Users      int   // users of state: each has a profile and a count [100000]
	Partitions int32 // input partitions [4]
	Runs       int   // runs per standby setting; medians are reported [3]
	// SessionTimeout and TransactionTimeout are the instances' group
	// session and transaction timeouts: a killed owner's partitions move
	// after the first, and its pending offsets are readable after the
	// second, so both bound the failover pause from below [3s, 5s].
	SessionTimeout     time.Duration
	TransactionTimeout time.Duration
	Logger             *slog.Logger
}

func (o *ClusterOptions) defaults() {
	if o.Users == 0 {
		o.Users = 100_000
	}
	if o.Partitions == 0 {
		o.Partitions = 4
	}
	if o.Runs == 0 {
		o.Runs = 3
	}
	setDefault(&o.SessionTimeout, 3*time.Second)
	setDefault(&o.TransactionTimeout, 5*time.Second)
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d == 0 {
		*d = v
	}
}

// ClusterRun is one run's figures.
type ClusterRun struct {
	Replicas int `json:"standby_replicas"`
	// JoinPause is from the second instance's start to every partition
	// processing a record produced after the group settled on both.
	JoinPause float64 `json:"join_pause_s"`
	// FailoverPause is from the SIGKILL of the first instance to every one
	// of its partitions processing on the second.
	FailoverPause float64 `json:"failover_pause_s"`
	// FailoverReplayed is the changelog records the takeover restored, and
	// FailoverRestore how long those restores took.
	FailoverReplayed int64   `json:"failover_replayed_records"`
	FailoverRestore  float64 `json:"failover_restore_s"`
	// Restore* are a full restore of every partition into an empty state
	// directory (a third instance, started alone).
	RestoreRecords   int64   `json:"restore_records"`
	RestoreBytes     int64   `json:"restore_bytes"`
	RestoreSeconds   float64 `json:"restore_s"`
	RestoreEventsPS  float64 `json:"restore_records_per_s"`
	RestoreMBPS      float64 `json:"restore_mb_per_s"`
	ChangelogRecords int64   `json:"changelog_records"`
}

// ClusterSummary holds the medians of the runs of one standby setting.
type ClusterSummary struct {
	Replicas         int     `json:"standby_replicas"`
	Runs             int     `json:"runs"`
	JoinPause        float64 `json:"join_pause_s"`
	FailoverPause    float64 `json:"failover_pause_s"`
	FailoverReplayed float64 `json:"failover_replayed_records"`
	FailoverRestore  float64 `json:"failover_restore_s"`
	RestoreEventsPS  float64 `json:"restore_records_per_s"`
	RestoreMBPS      float64 `json:"restore_mb_per_s"`
}

// ClusterResult is every run and the medians per standby setting.
type ClusterResult struct {
	Options ClusterOptions   `json:"-"`
	Runs    []ClusterRun     `json:"runs"`
	Summary []ClusterSummary `json:"summary"`
}

// RunCluster measures, against a fresh embedded broker per run, with
// processor instances as child processes: the pause when a second instance
// joins; the pause when the first is SIGKILLed and its partitions move to
// the second, without standbys and with one standby replica; and the rate
// of a full restore into an empty state directory. Settings alternate run
// by run so that machine noise hits both alike.
func RunCluster(ctx context.Context, o ClusterOptions) (*ClusterResult, error) {
	o.defaults()
	if o.Binary == "" {
		return nil, errors.New("cluster bench: the processor binary is required")
	}
	r := &ClusterResult{Options: o}
	for i := 0; i < o.Runs; i++ {
		for _, replicas := range []int{0, 1} {
			run, err := oneClusterRun(ctx, o, replicas)
			if err != nil {
				return nil, fmt.Errorf("cluster run %d with %d standby replicas: %w", i, replicas, err)
			}
			o.Logger.Warn("cluster bench run", "run", i, "replicas", replicas, "join_s", run.JoinPause,
				"failover_s", run.FailoverPause, "replayed", run.FailoverReplayed, "restore_rps", int(run.RestoreEventsPS))
			r.Runs = append(r.Runs, *run)
		}
	}
	for _, replicas := range []int{0, 1} {
		r.Summary = append(r.Summary, summarize(r.Runs, replicas))
	}
	return r, nil
}

func summarize(runs []ClusterRun, replicas int) ClusterSummary {
	var join, fail, replayed, restore, eps, mbps []float64
	for _, r := range runs {
		if r.Replicas != replicas {
			continue
		}
		join, fail = append(join, r.JoinPause), append(fail, r.FailoverPause)
		replayed, restore = append(replayed, float64(r.FailoverReplayed)), append(restore, r.FailoverRestore)
		eps, mbps = append(eps, r.RestoreEventsPS), append(mbps, r.RestoreMBPS)
	}
	return ClusterSummary{Replicas: replicas, Runs: len(join), JoinPause: median(join), FailoverPause: median(fail),
		FailoverReplayed: median(replayed), FailoverRestore: median(restore), RestoreEventsPS: median(eps), RestoreMBPS: median(mbps)}
}

// cluster is one run's broker, working directory and probes.
type cluster struct {
	o        ClusterOptions
	replicas int
	addrs    []string
	dir      string
	defs     string
	adm      *kadm.Client
	cl       *kgo.Client
	probe    map[int32][]byte // a key of each partition
}

const clusterApp = "cluster"

func oneClusterRun(ctx context.Context, o ClusterOptions, replicas int) (*ClusterRun, error) {
	b, err := broker.Start(broker.Options{Partitions: int(o.Partitions), Topics: []string{"events"}})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	c, err := newCluster(o, replicas, b.Addrs())
	if err != nil {
		return nil, err
	}
	defer c.close()
	events, err := c.prefill(ctx)
	if err != nil {
		return nil, err
	}
	run := &ClusterRun{Replicas: replicas}
	a, err := c.start("a")
	if err != nil {
		return nil, err
	}
	defer a.kill()
	if err := waitCommitted(ctx, c.adm, clusterApp, int64(events)); err != nil {
		return nil, err
	}
	if err := c.measureJoinAndFailover(ctx, a, run); err != nil {
		return nil, err
	}
	return run, c.measureRestore(ctx, run)
}

func newCluster(o ClusterOptions, replicas int, addrs []string) (*cluster, error) {
	dir, err := os.MkdirTemp("", "cairn-cluster-bench")
	if err != nil {
		return nil, err
	}
	c := &cluster{o: o, replicas: replicas, addrs: addrs, dir: dir, defs: filepath.Join(dir, "defs"), probe: map[int32][]byte{}}
	if err := os.MkdirAll(c.defs, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(c.defs, "counter.yaml"), []byte("kind: counter\nid: c\ntopic: counts\n"), 0o644); err != nil {
		return nil, err
	}
	if c.cl, err = kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic("events"),
		kgo.ProducerLinger(5*time.Millisecond), kgo.RecordPartitioner(kgo.ManualPartitioner())); err != nil {
		return nil, err
	}
	c.adm = kadm.NewClient(c.cl)
	for i := 0; len(c.probe) < int(o.Partitions); i++ {
		k := []byte("probe-" + strconv.Itoa(i))
		if p := engine.KeyPartition(k, o.Partitions); c.probe[p] == nil {
			c.probe[p] = k
		}
	}
	return c, nil
}

// close releases the run's client and removes its directory, unless
// CAIRN_BENCH_KEEP is set (to read the instances' logs).
func (c *cluster) close() {
	c.cl.Close()
	if os.Getenv("CAIRN_BENCH_KEEP") == "" {
		os.RemoveAll(c.dir)
	}
}

// prefill produces, for every user, a profile update with five properties
// and one counted event: two keys of state per user. It returns the number
// of events.
func (c *cluster) prefill(ctx context.Context) (int, error) {
	ts := time.Now().Add(-time.Hour).UnixMilli()
	n := 0
	for _, name := range []string{"$profile_set", "view_item"} {
		for u := 0; u < c.o.Users; u++ {
			user := "user-" + strconv.Itoa(u)
			ev := map[string]any{"user_id": user, "event": name, "ts": ts + int64(n), "event_id": "e" + strconv.Itoa(n)}
			if name == "$profile_set" {
				ev["props"] = map[string]any{"plan": "pro", "country": "FR", "age": 20 + u%50, "email": user + "@example.com", "score": u % 1000}
			}
			v, _ := json.Marshal(ev)
			key := []byte(user)
			c.cl.Produce(ctx, &kgo.Record{Key: key, Value: v, Partition: engine.KeyPartition(key, c.o.Partitions)}, nil)
			n++
		}
	}
	return n, c.cl.Flush(ctx)
}
