package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/api"
	"github.com/cairn-cjo/cairn/internal/failpoint"
	"github.com/cairn-cjo/cairn/operators"
	"github.com/cairn-cjo/cairn/state"
)

func cmdRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var c Config
	c.bindFlags(fs)
	if err := parseConfig(fs, args); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	return runInstance(ctx, c, newLogger(c.LogLevel), nil)
}

// instance is one running processor: store, engine and HTTP server.
type instance struct {
	eng *engine.Engine
	srv *api.Server
	set *operators.Set
}

// runInstance builds and runs an instance until ctx is canceled. started, if
// not nil, is called once the HTTP server listens.
func runInstance(ctx context.Context, c Config, log *slog.Logger, started func(*instance)) error {
	ecfg, err := c.Engine()
	if err != nil {
		return err
	}
	ecfg.EnsureDefaults()
	aopts, err := c.apiOptions(log)
	if err != nil {
		return err
	}
	set, err := operators.Load(c.Definitions, operators.Options{AggregatesTopic: ecfg.AggregatesTopic()})
	if err != nil {
		return fmt.Errorf("loading definitions:\n%w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerOperatorMetrics(reg, set)
	ecfg.Registerer, ecfg.Logger = reg, log
	st, err := state.OpenPebble(c.StateDir, state.Options{OnFatal: func(msg string) {
		log.Error("state store failed; exiting. Nothing is lost: the next start restores from the changelog. Free space or fix the disk, then restart",
			"error", msg, "state_dir", c.StateDir)
		os.Exit(exitStoreFailed)
	}})
	if err != nil {
		return err
	}
	var runErr error
	defer func() {
		if !errors.Is(runErr, engine.ErrStore) { // Pebble may panic closing after a failed write
			_ = st.Close()
		}
	}()
	var eng *engine.Engine
	srv, err := api.New(aopts, reg, func() bool { return eng != nil && eng.Ready() })
	if err != nil {
		return fmt.Errorf("listening on --http %s: %w", c.HTTP, err)
	}
	ecfg.AdvertiseHTTP = advertised(c.AdvertiseHTTP, srv.Addr())
	if eng, err = engine.New(ecfg, st, set.Operators); err != nil {
		return err
	}
	logHTTPExposure(log, aopts)
	inst := &instance{eng: eng, srv: srv, set: set}
	aggs := engine.NewGlobalTable(ecfg.Brokers, ecfg.AggregatesTopic(), log, ecfg.ClientOpts...)
	go aggs.Run(ctx)
	producer, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(ecfg.Brokers...)}, ecfg.ClientOpts...)...)
	if err != nil {
		return fmt.Errorf("creating API producer: %w", err)
	}
	defer producer.Close()
	statuses := engine.NewGlobalTable(ecfg.Brokers, ecfg.StatusTopic(), log, ecfg.ClientOpts...)
	go statuses.Run(ctx)
	routes(srv, eng, aggs, producer, set, &forwarder{eng: eng, statuses: statuses, self: ecfg.InstanceID})
	go func() { _ = srv.Serve(ctx) }()
	if started != nil {
		started(inst)
	}
	if p, ok := failpoint.Armed(); ok {
		log.Warn("failpoint armed: this process will SIGKILL itself (tests only)", "env", failpoint.EnvVar, "failpoint", p.String())
	}
	log.Info("cairn instance starting", "app_id", ecfg.AppID, "instance", ecfg.InstanceID,
		"input", ecfg.InputTopic, "http", srv.Addr(), "operators", len(set.Operators))
	if runErr = eng.Run(ctx); runErr != nil {
		return runErr
	}
	log.Info("cairn instance stopped cleanly")
	return nil
}

// advertised is the API address other instances reach this one at: flag
// if given, else the bound address, with the hostname for an unspecified
// host (0.0.0.0, ::).
func advertised(flag, bound string) string {
	if flag != "" {
		return flag
	}
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}

// exitStoreFailed is the exit code after the state store failed fatally
// (docs/operations.md).
const exitStoreFailed = 3

// registerOperatorMetrics exposes the operators' own counters.
func registerOperatorMetrics(reg prometheus.Registerer, set *operators.Set) {
	if f := set.Funnels; f != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cairn_funnel_late_events_total",
			Help: "Events older than a funnel's window plus one bucket behind the user's latest event, ignored."},
			func() float64 { return float64(f.LateDropped()) }))
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cairn_funnel_eval_errors_total",
			Help: "Funnel step conditions or group_by expressions that failed at run time."},
			func() float64 { return float64(f.EvalErrors()) }))
	}
}
