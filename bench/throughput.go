package bench

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/bench/workload"
	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators"
	"github.com/cairn-cjo/cairn/operators/count"
	"github.com/cairn-cjo/cairn/state"
)

// ThroughputRun is one throughput run: a pre-filled backlog processed flat out.
// Rates count from the first record consumed to the commit of the last, so
// start-up and the group join are not included.
type ThroughputRun struct {
	Mode       string  `json:"mode"`
	Instances  int     `json:"instances"`
	Events     int64   `json:"events"`
	Seconds    float64 `json:"seconds"`
	EventsPerS float64 `json:"events_per_s"`
	MBPerS     float64 `json:"mb_per_s"` // input keys and values
	// CPUSecPerMEvents is CPU seconds (user + system, getrusage) of this
	// process per million events; CoresBusy is CPU time over wall time.
	CPUSecPerMEvents float64 `json:"cpu_s_per_million_events"`
	CoresBusy        float64 `json:"cores_busy"`
	// BrokerCPUSecPerMEvents and BrokerCoresBusy are the same for a broker
	// in a process of its own: a broker near one core busy is the
	// bottleneck (kfake serves requests on one goroutine).
	BrokerCPUSecPerMEvents float64 `json:"broker_cpu_s_per_million_events,omitempty"`
	BrokerCoresBusy        float64 `json:"broker_cores_busy,omitempty"`
	RSSPeakMB              float64 `json:"rss_peak_mb"`
	// StateBytesPerUser is the logical size of the stores (keys plus
	// values) over the distinct users of the input.
	StateBytesPerUser      float64 `json:"state_bytes_per_user,omitempty"`
	ChangelogBytesPerEvent float64 `json:"changelog_bytes_per_event,omitempty"`
	Malformed              int64   `json:"malformed_sent"`
	DLQRecords             int64   `json:"dlq_records"`
	Series                 []Point `json:"series,omitempty"`
}

// env is one run's broker and names.
type env struct {
	addrs []string
	stop  func()
	adm   *kadm.Client
	cl    *kgo.Client
	tag   string // makes topic and group names unique on a shared cluster

	brokerCPU func() time.Duration // nil unless the broker is a process of its own
}

func (e *env) input() string { return "bench-events-" + e.tag }
func (e *env) app(mode string) string {
	return "bench-" + mode + "-" + e.tag
}

func newEnv(ctx context.Context, o Options) (*env, error) {
	b, err := o.Broker(ctx, int(o.Partitions))
	if err != nil {
		return nil, fmt.Errorf("starting broker: %w", err)
	}
	addrs, stop := b.Addrs, b.Stop
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.ProducerLinger(5 * time.Millisecond)}, o.ClientOpts...)...)
	if err != nil {
		stop()
		return nil, err
	}
	e := &env{addrs: addrs, stop: stop, brokerCPU: b.CPU, cl: cl, adm: kadm.NewClient(cl), tag: strconv.FormatInt(time.Now().UnixNano(), 36)}
	if _, err := e.adm.CreateTopic(ctx, o.Partitions, -1, nil, e.input()); err != nil {
		e.close()
		return nil, fmt.Errorf("creating %s: %w", e.input(), err)
	}
	return e, nil
}

func (e *env) close() {
	e.cl.Close()
	e.stop()
}

func (o Options) generator() (*workload.Generator, error) {
	return workload.New(workload.Options{Seed: o.Seed, Users: o.Users})
}

// runThroughput measures one mode with k instances over a fresh broker and
// a pre-filled backlog. With joinFirst the engines join the group before
// the backlog is produced, so that the measurement holds no rebalance (the
// scaling runs): they start consuming while the prefill is still going.
func runThroughput(ctx context.Context, o Options, mode string, k int, label string, joinFirst bool) (ThroughputRun, error) {
	e, err := newEnv(ctx, o)
	if err != nil {
		return ThroughputRun{}, err
	}
	defer e.close()
	g, err := o.generator()
	if err != nil {
		return ThroughputRun{}, err
	}
	run := ThroughputRun{Mode: mode, Instances: k, Events: int64(o.Events)}
	var counts workload.Counts
	prefill := func() error {
		end, err := prefillEnd(time.Now(), o.PrefillEnd)
		if err != nil {
			return err
		}
		counts, err = workload.Prefill(ctx, e.cl, e.input(), g, o.Events, end, time.Hour)
		run.Malformed = counts.Malformed
		return err
	}
	if mode == ModePassthrough {
		if err = prefill(); err == nil {
			err = passthrough(ctx, o, e, &run, label)
		}
	} else {
		err = runEngines(ctx, o, e, &run, prefill, joinFirst, label)
	}
	if err != nil {
		return ThroughputRun{}, err
	}
	run.EventsPerS = float64(run.Events) / run.Seconds
	run.MBPerS = float64(counts.Bytes) / run.Seconds / 1e6
	if mode != ModePassthrough {
		run.StateBytesPerUser /= float64(max(counts.Users, 1))
	}
	return run, nil
}

// measured is the part of a run between its first consumed record and the
// commit of its last.
type measured struct {
	s *sampler
}

func startMeasure(e *env, label string, total int64, count func() float64, progress func(string)) *measured {
	m := &measured{}
	m.s = startSampler(label, int(total), count, progress, e.brokerCPU)
	return m
}

// finish stops the measurement and fills run's time, CPU and memory.
func (m *measured) finish(run *ThroughputRun) {
	cpu1, bcpu1 := cpuTime(), m.s.brokerCPU()
	end := time.Now()
	m.s.stop()
	run.Seconds = end.Sub(m.s.first).Seconds()
	cpu := (cpu1 - m.s.cpu0).Seconds()
	run.CPUSecPerMEvents = cpu / float64(run.Events) * 1e6
	run.CoresBusy = cpu / run.Seconds
	run.RSSPeakMB = float64(m.s.rssMax) / (1 << 20)
	if bcpu := (bcpu1 - m.s.bcpu0).Seconds(); bcpu > 0 {
		run.BrokerCPUSecPerMEvents = bcpu / float64(run.Events) * 1e6
		run.BrokerCoresBusy = bcpu / run.Seconds
	}
	run.Series = m.s.series
}

// instance is one engine of a run with its own store and metrics.
type instance struct {
	dir    string
	store  state.Store
	reg    *prometheus.Registry
	eng    *engine.Engine
	cancel context.CancelFunc
	done   chan error
}

// runEngines runs run.Instances engines over the backlog until their
// group committed every input offset, then sizes their state, changelog
// and DLQ. prefill produces the backlog: before the engines start, or once
// they own every partition if joinFirst.
func runEngines(ctx context.Context, o Options, e *env, run *ThroughputRun, prefill func() error, joinFirst bool, label string) error {
	if !joinFirst {
		if err := prefill(); err != nil {
			return err
		}
	}
	app := e.app(run.Mode)
	var ins []*instance
	defer func() {
		for _, in := range ins {
			in.close()
		}
	}()
	regs := make([]*prometheus.Registry, 0, run.Instances)
	for i := 0; i < run.Instances; i++ {
		in, err := startInstance(ctx, o, e, app, run.Mode, i, "")
		if err != nil {
			return err
		}
		ins, regs = append(ins, in), append(regs, in.reg)
	}
	m := startMeasure(e, label, run.Events, metricSum("cairn_records_consumed_total", regs...), o.Progress)
	werr := waitJoined(ctx, ins, joinFirst, int(o.Partitions))
	if werr == nil && joinFirst {
		werr = prefill()
	}
	if werr == nil {
		werr = waitCommitted(ctx, e.adm, app, run.Events)
	}
	if werr == nil {
		werr = waitNoBacklog(ctx, regs...)
	}
	m.finish(run)
	if werr != nil {
		return werr
	}
	if err := stopAll(ins); err != nil {
		return err
	}
	return sizeUp(ctx, o, e, app, run, ins)
}

// waitJoined waits, if wait, until every instance is ready and owns a
// partition, and together they own all n.
func waitJoined(ctx context.Context, ins []*instance, wait bool, n int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for wait {
		owned, all := 0, true
		for _, in := range ins {
			k := len(in.eng.Owned())
			owned, all = owned+k, all && k > 0 && in.eng.Ready()
		}
		if all && owned == n {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for %d instances to own %d partitions: %w", len(ins), n, ctx.Err())
		}
		sleepCtx(ctx, 10*time.Millisecond)
	}
	return nil
}

// sizeUp fills run's state, changelog and DLQ figures.
// StateBytesPerUser is left as the total: the caller knows the users.
func sizeUp(ctx context.Context, o Options, e *env, app string, run *ThroughputRun, ins []*instance) error {
	var stateBytes int64
	for _, in := range ins {
		n, err := storeBytes(in.store)
		if err != nil {
			return fmt.Errorf("sizing the state: %w", err)
		}
		stateBytes += n
	}
	run.StateBytesPerUser = float64(stateBytes)
	cfg := engine.Config{AppID: app, InputTopic: e.input()}
	cl, err := tallyTopic(ctx, e.addrs, o.ClientOpts, cfg.ChangelogTopic())
	if err != nil {
		return err
	}
	run.ChangelogBytesPerEvent = float64(cl.Bytes) / float64(run.Events)
	dlq, err := tallyTopic(ctx, e.addrs, o.ClientOpts, cfg.DLQTopic())
	if err != nil {
		return err
	}
	run.DLQRecords = dlq.Records
	if run.DLQRecords != run.Malformed {
		return fmt.Errorf("the DLQ holds %d records, %d malformed were sent", dlq.Records, run.Malformed)
	}
	return nil
}

// benchOperators returns the operators of an engine run: the definitions,
// or one counter writing to "counts" without them. A latency run passes the
// topic of a counter whose outputs name each event; it replaces the
// default counter, or runs after the definitions' operators.
func benchOperators(o Options, aggregates, latencyTopic string) ([]engine.Operator, error) {
	if o.Definitions == "" {
		return []engine.Operator{&count.Counter{ID: "c", Topic: cmp.Or(latencyTopic, "counts")}}, nil
	}
	set, err := operators.Load(o.Definitions, operators.Options{AggregatesTopic: aggregates})
	if err != nil {
		return nil, err
	}
	if latencyTopic != "" {
		return append(set.Operators, &count.Counter{ID: "latency", Topic: latencyTopic}), nil
	}
	return set.Operators, nil
}

// startInstance starts engine i of app in mode with its own temporary
// store; latencyTopic is benchOperators'.
func startInstance(ctx context.Context, o Options, e *env, app, mode string, i int, latencyTopic string) (*instance, error) {
	dir, err := os.MkdirTemp("", "cairn-bench")
	if err != nil {
		return nil, err
	}
	in := &instance{dir: dir, reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	if in.store, err = state.OpenPebble(dir, state.Options{}); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cfg := engine.Config{Brokers: e.addrs, AppID: app, InputTopic: e.input(), InstanceID: strconv.Itoa(i),
		CommitInterval: o.CommitInterval, DisableIdleAdvance: true, Logger: o.Logger, Registerer: in.reg,
		ClientOpts: o.ClientOpts, Delivery: engine.DeliveryExactlyOnce}
	if mode == ModeAtLeastOnce {
		cfg.Delivery = engine.DeliveryAtLeastOnce
	}
	ops, err := benchOperators(o, cfg.AggregatesTopic(), latencyTopic)
	if err == nil {
		in.eng, err = engine.New(cfg, in.store, ops)
	}
	if err != nil {
		in.store.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	in.cancel = cancel
	go func() { in.done <- in.eng.Run(rctx) }()
	return in, nil
}

// stop stops the engine (once) and returns its error.
func (in *instance) stop() error {
	if in.cancel == nil {
		return nil
	}
	in.cancel()
	in.cancel = nil
	return <-in.done
}

// stopAll stops every engine; their stores stay open until close.
func stopAll(ins []*instance) error {
	var first error
	for _, in := range ins {
		if err := in.stop(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// close stops the engine, closes the store and removes its directory.
func (in *instance) close() {
	in.stop()
	in.store.Close()
	os.RemoveAll(in.dir)
}

// passthrough consumes the input in a group transactional session and
// produces every record to another topic in the same transaction: the
// ceiling of any consume-transform-produce loop on this broker.
func passthrough(ctx context.Context, o Options, e *env, run *ThroughputRun, label string) error {
	out := "bench-passthrough-out-" + e.tag
	if _, err := e.adm.CreateTopic(ctx, o.Partitions, -1, nil, out); err != nil {
		return fmt.Errorf("creating %s: %w", out, err)
	}
	sess, err := kgo.NewGroupTransactSession(append([]kgo.Opt{kgo.SeedBrokers(e.addrs...), kgo.TransactionalID("bench-passthrough-" + e.tag),
		kgo.ConsumerGroup(e.app(ModePassthrough)), kgo.ConsumeTopics(e.input()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.RequireStableFetchOffsets(), kgo.DisableAutoCommit()}, o.ClientOpts...)...)
	if err != nil {
		return err
	}
	defer sess.Close()
	var seen atomic.Int64
	m := startMeasure(e, label, run.Events, func() float64 { return float64(seen.Load()) }, o.Progress)
	for seen.Load() < run.Events && ctx.Err() == nil {
		if err := passthroughTxn(ctx, o, sess, out, &seen, run.Events); err != nil {
			m.finish(run)
			return err
		}
	}
	m.finish(run)
	return ctx.Err()
}

// passthroughTxn runs one transaction of the passthrough: polls for a
// commit interval, producing each record, then commits.
func passthroughTxn(ctx context.Context, o Options, sess *kgo.GroupTransactSession, out string, seen *atomic.Int64, want int64) error {
	if err := sess.Begin(); err != nil {
		return err
	}
	deadline := time.Now().Add(o.CommitInterval)
	for time.Now().Before(deadline) && seen.Load() < want {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		fs := sess.PollRecords(pctx, 2000)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			seen.Add(1)
			sess.Produce(ctx, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value}, nil)
		})
	}
	_, err := sess.End(ctx, kgo.TryCommit)
	return err
}
