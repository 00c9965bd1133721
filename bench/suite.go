// Package bench is Cairn's benchmark harness: it prepares workloads
// (bench/workload) against a broker — a fresh embedded one per run by
// default — and measures the engine against a ceiling measured in the same
// run: a transactional passthrough. `processor bench` drives it.
package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/internal/broker"
)

// Modes of a throughput run.
const (
	ModePassthrough = "passthrough"   // consume → produce in transactions, no state: the ceiling
	ModeCairn       = "cairn"         // the engine, exactly-once
	ModeAtLeastOnce = "at-least-once" // the engine without transactions
)

// BrokerFunc starts a broker for one run. A function that returns an
// existing cluster (with a no-op Stop) runs the suite against it: every run
// uses topics and a group of its own.
type BrokerFunc func(ctx context.Context, partitions int) (*RunningBroker, error)

// RunningBroker is one run's broker.
type RunningBroker struct {
	Addrs []string
	Stop  func()
	// CPU returns the CPU time the broker has used, where it is a process
	// of its own; nil otherwise.
	CPU func() time.Duration
}

// InProcessBroker starts an embedded broker in this process. Its CPU time
// and memory then count in every figure; a child-process broker
// (`processor bench --broker child`) keeps them apart.
func InProcessBroker(_ context.Context, partitions int) (*RunningBroker, error) {
	b, err := broker.Start(broker.Options{Partitions: partitions})
	if err != nil {
		return nil, err
	}
	return &RunningBroker{Addrs: b.Addrs(), Stop: b.Close}, nil
}

// Options configures Run. Zero fields take the defaults in brackets.
type Options struct {
	Events         int           // events pre-filled per throughput run [200000]
	Partitions     int32         // input partitions [6]
	Users          int           // distinct users of the workload [10000]
	Seed           uint64        // workload seed [1]
	CommitInterval time.Duration // [100ms]
	Runs           int           // throughput runs per mode; medians are reported [3]
	// PrefillEnd is the UTC time of day ("15:04") at which the hour of
	// pre-filled events ends, on the latest day on which that is not in
	// the future; "now" ends it when the run starts. A fixed hour makes
	// runs comparable whenever they start: the example definitions behave
	// differently by the hour of their events (quiet hours defer email and
	// SMS from 22:00 to 08:00, a welcome waits until 09:00): with quiet
	// hours over every event they ran 1.4× faster than with none. ["12:00"]
	PrefillEnd string
	// Definitions is a directory of definitions; empty means one counting
	// operator (a read, a write and an output per event).
	Definitions string
	// Modes are the throughput modes to run, alternating within each run so
	// that machine noise hits them alike [passthrough, cairn, at-least-once].
	Modes []string
	// Latency lists offered loads, as fractions of the median exactly-once
	// rate, for the open-loop latency runs; empty runs none.
	Latency         []float64
	LatencyDuration time.Duration // open-loop time per load [20s]
	// Scaling lists instance counts for exactly-once runs (one each; the
	// instances join before the backlog is produced); empty runs none.
	Scaling []int
	// Broker starts each run's broker [InProcessBroker]; BrokerKind
	// describes it in the report ["embedded kfake, in-process"].
	Broker     BrokerFunc
	BrokerKind string
	// ClientOpts are applied to every client (TLS, SASL for --brokers).
	ClientOpts []kgo.Opt
	// Progress receives a line about once a second during a run; nil is
	// quiet.
	Progress func(string)
	Logger   *slog.Logger
}

func (o *Options) defaults() {
	defInt(&o.Events, 200_000)
	defInt(&o.Users, 10_000)
	defInt(&o.Runs, 3)
	if o.Partitions == 0 {
		o.Partitions = 6
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.CommitInterval == 0 {
		o.CommitInterval = 100 * time.Millisecond
	}
	if o.PrefillEnd == "" {
		o.PrefillEnd = "12:00"
	}
	if o.LatencyDuration == 0 {
		o.LatencyDuration = 20 * time.Second
	}
	if len(o.Modes) == 0 {
		o.Modes = []string{ModePassthrough, ModeCairn, ModeAtLeastOnce}
	}
	if o.Broker == nil {
		o.Broker, o.BrokerKind = InProcessBroker, "embedded kfake, in-process"
	}
	if o.Logger == nil {
		// The workload's malformed records make the engine warn about each.
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
}

func defInt(p *int, def int) {
	if *p == 0 {
		*p = def
	}
}

// Result is everything one Run measured. It is written as JSON and read
// back by Compare.
type Result struct {
	When     time.Time                  `json:"when"`
	Command  string                     `json:"command,omitempty"`
	Machine  Machine                    `json:"machine"`
	Broker   string                     `json:"broker"`
	Setup    Setup                      `json:"setup"`
	Runs     map[string][]ThroughputRun `json:"runs"`    // per mode
	Medians  map[string]ThroughputRun   `json:"medians"` // per mode, field by field
	Ratio    float64                    `json:"ratio_cairn_to_passthrough,omitempty"`
	EOSvsALO float64                    `json:"ratio_cairn_to_at_least_once,omitempty"`
	Latency  []LatencyResult            `json:"latency,omitempty"`
	Scaling  []ThroughputRun            `json:"scaling,omitempty"`
	options  Options
}

// Setup is the part of Options a reader of the results needs.
type Setup struct {
	Events         int     `json:"events"`
	Partitions     int32   `json:"partitions"`
	Users          int     `json:"users"`
	Seed           uint64  `json:"seed"`
	CommitInterval string  `json:"commit_interval"`
	Definitions    string  `json:"definitions"`
	RunsPerMode    int     `json:"runs_per_mode"`
	PrefillEnd     string  `json:"prefill_end,omitempty"` // UTC, as Options.PrefillEnd
	LatencySeconds float64 `json:"latency_seconds_per_load,omitempty"`
}

// prefillEnd returns when the pre-filled events end (Options.PrefillEnd):
// now for "now", else the latest instant not after now at UTC time of day
// clock.
func prefillEnd(now time.Time, clock string) (time.Time, error) {
	if clock == "now" {
		return now, nil
	}
	t, err := time.Parse("15:04", clock)
	if err != nil {
		return time.Time{}, fmt.Errorf("prefill end %q: want a UTC time of day (HH:MM) or now", clock)
	}
	now = now.UTC()
	end := time.Date(now.Year(), now.Month(), now.Day(), t.Hour(), t.Minute(), 0, 0, time.UTC)
	if end.After(now) {
		end = end.AddDate(0, 0, -1)
	}
	return end, nil
}

// Run measures what o asks for and returns the results; a canceled ctx
// stops it with ctx's error and no results.
func Run(ctx context.Context, o Options) (*Result, error) {
	o.defaults()
	if _, err := prefillEnd(time.Now(), o.PrefillEnd); err != nil {
		return nil, err
	}
	r := &Result{When: time.Now().UTC(), Machine: ThisMachine(), Broker: o.BrokerKind, options: o,
		Runs: map[string][]ThroughputRun{}, Medians: map[string]ThroughputRun{}, Setup: Setup{
			Events: o.Events, Partitions: o.Partitions, Users: o.Users, Seed: o.Seed, Definitions: o.Definitions,
			CommitInterval: o.CommitInterval.String(), RunsPerMode: o.Runs, PrefillEnd: o.PrefillEnd}}
	for i := 0; i < o.Runs; i++ {
		for _, m := range o.Modes {
			run, err := runThroughput(ctx, o, m, 1, fmt.Sprintf("%s run %d/%d", m, i+1, o.Runs), false)
			if err != nil {
				return nil, fmt.Errorf("%s run %d: %w", m, i+1, err)
			}
			r.Runs[m] = append(r.Runs[m], run)
			o.progress(fmt.Sprintf("%s run %d/%d: %.0f events/s", m, i+1, o.Runs, run.EventsPerS))
		}
	}
	for m, runs := range r.Runs {
		r.Medians[m] = medianRun(runs)
	}
	r.Ratio = ratio(r.Medians[ModeCairn].EventsPerS, r.Medians[ModePassthrough].EventsPerS)
	r.EOSvsALO = ratio(r.Medians[ModeCairn].EventsPerS, r.Medians[ModeAtLeastOnce].EventsPerS)
	if err := runLoads(ctx, o, r); err != nil {
		return nil, err
	}
	for _, k := range o.Scaling {
		run, err := runThroughput(ctx, o, ModeCairn, k, fmt.Sprintf("scaling, %d instances", k), true)
		if err != nil {
			return nil, fmt.Errorf("scaling run with %d instances: %w", k, err)
		}
		r.Scaling = append(r.Scaling, run)
		o.progress(fmt.Sprintf("scaling, %d instances: %.0f events/s", k, run.EventsPerS))
	}
	return r, nil
}

// runLoads runs the open-loop latency runs at o.Latency fractions of the
// median exactly-once rate.
func runLoads(ctx context.Context, o Options, r *Result) error {
	maxRate := r.Medians[ModeCairn].EventsPerS
	if len(o.Latency) == 0 {
		return nil
	}
	if maxRate == 0 {
		return fmt.Errorf("latency runs need the exactly-once rate: include mode %s", ModeCairn)
	}
	r.Setup.LatencySeconds = o.LatencyDuration.Seconds()
	for _, f := range o.Latency {
		lr, err := runLatency(ctx, o, f, f*maxRate)
		if err != nil {
			return fmt.Errorf("latency run at %.0f%% load: %w", 100*f, err)
		}
		r.Latency = append(r.Latency, lr)
	}
	return nil
}

func (o Options) progress(line string) {
	if o.Progress != nil {
		o.Progress(line)
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// medianRun returns the field-by-field median of runs (the series of the
// median-rate run).
func medianRun(runs []ThroughputRun) ThroughputRun {
	if len(runs) == 0 {
		return ThroughputRun{}
	}
	med := func(f func(ThroughputRun) float64) float64 {
		xs := make([]float64, len(runs))
		for i, r := range runs {
			xs[i] = f(r)
		}
		return median(xs)
	}
	m := runs[0]
	m.EventsPerS = med(func(r ThroughputRun) float64 { return r.EventsPerS })
	m.Seconds = med(func(r ThroughputRun) float64 { return r.Seconds })
	m.MBPerS = med(func(r ThroughputRun) float64 { return r.MBPerS })
	m.CPUSecPerMEvents = med(func(r ThroughputRun) float64 { return r.CPUSecPerMEvents })
	m.CoresBusy = med(func(r ThroughputRun) float64 { return r.CoresBusy })
	m.BrokerCPUSecPerMEvents = med(func(r ThroughputRun) float64 { return r.BrokerCPUSecPerMEvents })
	m.BrokerCoresBusy = med(func(r ThroughputRun) float64 { return r.BrokerCoresBusy })
	m.RSSPeakMB = med(func(r ThroughputRun) float64 { return r.RSSPeakMB })
	m.StateBytesPerUser = med(func(r ThroughputRun) float64 { return r.StateBytesPerUser })
	m.ChangelogBytesPerEvent = med(func(r ThroughputRun) float64 { return r.ChangelogBytesPerEvent })
	m.Series = nil
	for _, r := range runs {
		if r.EventsPerS == m.EventsPerS {
			m.Series = r.Series
		}
	}
	return m
}
