// Package bench is Cairn's benchmark harness: it prepares workloads against
// a broker (the embedded one by default) and measures the engine against a
// ceiling measured in the same run. `processor bench` drives it.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/broker"
	"github.com/cairn-cjo/cairn/internal/demo"
	"github.com/cairn-cjo/cairn/operators"
	"github.com/cairn-cjo/cairn/operators/count"
	"github.com/cairn-cjo/cairn/state"
)

// EOSOptions configures RunEOS. Zero fields take the defaults in brackets.
type EOSOptions struct {
	Events         int           // events pre-filled per run [200000]
	Partitions     int32         // input partitions [6]
	Users          int           // distinct users [10000]
	CommitInterval time.Duration // [100ms]
	Runs           int           // runs per mode; medians are reported [3]
	// Definitions is a directory of definitions for Cairn's run; empty
	// means one counting operator (a read, a write and an output per event).
	Definitions string
	// Only runs one mode ("cairn" or "passthrough"), e.g. for profiling;
	// empty runs both.
	Only   string
	Logger *slog.Logger
}

func (o *EOSOptions) defaults() {
	if o.Events == 0 {
		o.Events = 200_000
	}
	if o.Partitions == 0 {
		o.Partitions = 6
	}
	if o.Users == 0 {
		o.Users = 10_000
	}
	if o.CommitInterval == 0 {
		o.CommitInterval = 100 * time.Millisecond
	}
	if o.Runs == 0 {
		o.Runs = 3
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
}

// EOSResult holds events/s per run for each mode and their medians.
type EOSResult struct {
	Options        EOSOptions `json:"-"`
	Passthrough    []float64  `json:"passthrough_events_per_s"`
	Cairn          []float64  `json:"cairn_events_per_s"`
	MedPassthrough float64    `json:"median_passthrough"`
	MedCairn       float64    `json:"median_cairn"`
	Ratio          float64    `json:"ratio_cairn_to_passthrough"`
}

// RunEOS measures sustained events/s through Cairn's full exactly-once path
// (a counting operator: one state read, one write, one output and one
// changelog record per event) and through a transactional passthrough
// (consume → produce in the same transactions, no state): the ceiling of
// this broker. Each run uses a fresh embedded broker with a pre-filled
// backlog; modes alternate so that machine noise hits both alike.
func RunEOS(ctx context.Context, o EOSOptions) (*EOSResult, error) {
	o.defaults()
	r := &EOSResult{Options: o}
	for i := 0; i < o.Runs; i++ {
		var pt, ca float64
		var err error
		if o.Only != "cairn" {
			if pt, err = oneRun(ctx, o, passthrough); err != nil {
				return nil, fmt.Errorf("passthrough run %d: %w", i, err)
			}
		}
		if o.Only != "passthrough" {
			if ca, err = oneRun(ctx, o, cairn); err != nil {
				return nil, fmt.Errorf("cairn run %d: %w", i, err)
			}
		}
		r.Passthrough, r.Cairn = append(r.Passthrough, pt), append(r.Cairn, ca)
		o.Logger.Warn("bench run", "run", i, "passthrough_eps", int(pt), "cairn_eps", int(ca))
	}
	r.MedPassthrough, r.MedCairn = median(r.Passthrough), median(r.Cairn)
	r.Ratio = r.MedCairn / r.MedPassthrough
	return r, nil
}

// mode processes the whole backlog and returns how long it took from its
// first consumed record to the commit of the last: start-up and the group
// join are not counted, so the figure is the sustained rate.
type mode func(ctx context.Context, addrs []string, o EOSOptions) (time.Duration, error)

func oneRun(ctx context.Context, o EOSOptions, m mode) (float64, error) {
	b, err := broker.Start(broker.Options{Partitions: int(o.Partitions), Topics: []string{"events", "passthrough-out"}})
	if err != nil {
		return 0, err
	}
	defer b.Close()
	if err := prefill(ctx, b.Addrs(), o); err != nil {
		return 0, err
	}
	took, err := m(ctx, b.Addrs(), o)
	if err != nil {
		return 0, err
	}
	return float64(o.Events) / took.Seconds(), nil
}

// prefill produces o.Events events of the demo workload (sessions walking
// the purchase funnel, profile updates) with timestamps over the last hour.
func prefill(ctx context.Context, addrs []string, o EOSOptions) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic("events"), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	g := demo.NewGenerator(1, o.Users)
	ts := time.Now().Add(-time.Hour).UnixMilli()
	step := max(1, time.Hour.Milliseconds()/int64(o.Events))
	var queue []demo.Event
	for i := 0; i < o.Events; i++ {
		if len(queue) == 0 {
			queue = g.Session()
		}
		ev := queue[0]
		queue = queue[1:]
		ev.TS = ts + int64(i)*step
		v, _ := json.Marshal(ev)
		cl.Produce(ctx, &kgo.Record{Key: []byte(ev.UserID), Value: v}, nil)
	}
	return cl.Flush(ctx)
}

// benchOperators returns the operators of Cairn's run.
func benchOperators(o EOSOptions, aggregates string) ([]engine.Operator, error) {
	if o.Definitions == "" {
		return []engine.Operator{&count.Counter{ID: "c", Topic: "counts"}}, nil
	}
	set, err := operators.Load(o.Definitions, operators.Options{AggregatesTopic: aggregates})
	if err != nil {
		return nil, err
	}
	return set.Operators, nil
}

// cairn runs one engine with the benchmark's operators until the group has
// committed every input offset. The clock starts when the engine's
// consumed-records counter first moves.
func cairn(ctx context.Context, addrs []string, o EOSOptions) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "cairn-bench")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	st, err := state.OpenPebble(dir, state.Options{})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	cfg := engine.Config{Brokers: addrs, AppID: "bench", CommitInterval: o.CommitInterval, DisableIdleAdvance: true,
		Logger: o.Logger, Registerer: reg}
	ops, err := benchOperators(o, cfg.AggregatesTopic())
	if err != nil {
		return 0, err
	}
	eng, err := engine.New(cfg, st, ops)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- eng.Run(rctx) }()
	start := waitFirstConsumed(reg)
	werr := waitCommitted(ctx, addrs, "bench", o.Events)
	took := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		return 0, err
	}
	return took, werr
}

// waitFirstConsumed polls reg until cairn_records_consumed_total is above
// zero and returns when it saw that.
func waitFirstConsumed(reg prometheus.Gatherer) time.Time {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "cairn_records_consumed_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if m.GetCounter().GetValue() > 0 {
					return time.Now()
				}
			}
		}
	}
	return time.Now()
}

// passthrough consumes the input in a group transactional session and
// produces every record to another topic in the same transaction.
func passthrough(ctx context.Context, addrs []string, o EOSOptions) (time.Duration, error) {
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(addrs...), kgo.TransactionalID("bench-passthrough"),
		kgo.ConsumerGroup("passthrough"), kgo.ConsumeTopics("events"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.RequireStableFetchOffsets(), kgo.DisableAutoCommit())
	if err != nil {
		return 0, err
	}
	defer sess.Close()
	seen := 0
	var start time.Time
	for seen < o.Events {
		if err := sess.Begin(); err != nil {
			return 0, err
		}
		deadline := time.Now().Add(o.CommitInterval)
		for time.Now().Before(deadline) && seen < o.Events {
			pctx, cancel := context.WithDeadline(ctx, deadline)
			fs := sess.PollRecords(pctx, 2000)
			cancel()
			fs.EachRecord(func(r *kgo.Record) {
				if seen == 0 {
					start = time.Now()
				}
				seen++
				sess.Produce(ctx, &kgo.Record{Topic: "passthrough-out", Key: r.Key, Value: r.Value}, nil)
			})
		}
		if _, err := sess.End(ctx, kgo.TryCommit); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func waitCommitted(ctx context.Context, addrs []string, group string, want int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		offs, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			total := int64(0)
			offs.Each(func(o kadm.OffsetResponse) { total += o.At })
			if total >= int64(want) {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("group %s did not commit %d offsets in time", group, want)
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
