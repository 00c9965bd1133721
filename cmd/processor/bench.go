package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-cjo/cairn/bench"
	"github.com/cairn-cjo/cairn/internal/kafkasec"
	"github.com/cairn-cjo/cairn/operators/defs"
)

func cmdBench(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "cluster" {
		return cmdBenchCluster(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "compare" {
		return cmdBenchCompare(args[1:])
	}
	return cmdBenchSuite(ctx, args)
}

// benchFlags are the flags of `processor bench` beyond bench.Options.
type benchFlags struct {
	out, section, title, js, plots, prof string
	only, modes, latency, scaling        string
	generate, brokerKind, brokers        string
	base                                 string // --definitions when generated ones are added to it
	genFunnels                           int
	kafka                                kafkasec.Options
}

func (f *benchFlags) bind(fs *flag.FlagSet, o *bench.Options) {
	fs.IntVar(&o.Events, "events", 200_000, "pre-filled events per throughput run")
	fs.IntVar(&o.Runs, "runs", 3, "throughput runs per mode (medians are reported)")
	fs.IntVar(&o.Users, "users", 10_000, "distinct users of the workload")
	fs.Uint64Var(&o.Seed, "seed", 1, "workload seed")
	fs.DurationVar(&o.CommitInterval, "commit-interval", 100*time.Millisecond, "commit interval")
	fs.DurationVar(&o.LatencyDuration, "latency-duration", 20*time.Second, "open-loop time per latency load")
	fs.StringVar(&o.Definitions, "definitions", "", "definitions directory (default: one counting operator)")
	fs.StringVar(&o.PrefillEnd, "prefill-end", "12:00", "UTC time of day at which the hour of pre-filled events ends (the latest such time before the run), so that runs started at any hour are comparable; now: the start of the run")
	fs.StringVar(&f.generate, "generate", "", "run generated definitions, `J/S/F` journeys/segments/funnels (e.g. 100/20/20), added to --definitions if given")
	fs.IntVar(&f.genFunnels, "generate-funnels", 0, "run this many generated funnels (same as --generate 0/0/N), added to --definitions if given")
	fs.StringVar(&f.modes, "modes", "passthrough,cairn,at-least-once", "throughput modes, alternating in each run")
	fs.StringVar(&f.only, "only", "", "run one mode once, e.g. for profiling; results are not written")
	fs.StringVar(&f.latency, "latency", "0.25,0.5,0.8", "open-loop loads as fractions of the exactly-once maximum; empty: none")
	fs.StringVar(&f.scaling, "scaling", "", "instance counts for exactly-once scaling runs, e.g. 1,2,3; empty: none")
	fs.StringVar(&f.brokerKind, "broker", "child", "embedded broker per run: child (a `processor broker` process, kept out of CPU and RSS figures) or inprocess")
	fs.StringVar(&f.brokers, "brokers", "", "run against this Kafka cluster instead (comma-separated seed brokers)")
	fs.StringVar(&f.out, "out", "bench/RESULTS.md", "markdown file whose section is rewritten")
	fs.StringVar(&f.section, "section", "suite", "name of the section of --out to rewrite")
	fs.StringVar(&f.title, "title", "Standard suite: throughput, cost of exactly-once, latency", "title of the section")
	fs.StringVar(&f.js, "json", "bench/suite.json", "machine-readable results")
	fs.StringVar(&f.plots, "plots", "", "directory for the SVG plots (default: --out's directory; \"none\" to skip)")
	fs.StringVar(&f.prof, "cpuprofile", "", "write a CPU profile of the whole run here")
	bindKafkaFlags(fs, &f.kafka)
}

func cmdBenchSuite(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o bench.Options
	var f benchFlags
	f.bind(fs, &o)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cleanup, err := f.apply(&o)
	defer cleanup()
	if err != nil {
		return err
	}
	stopProf, err := startProfile(f.prof)
	if err != nil {
		return err
	}
	defer stopProf()
	r, err := bench.Run(ctx, o)
	if err != nil {
		return fmt.Errorf("running the benchmark (nothing written): %w", err)
	}
	printSummary(r)
	if f.only != "" {
		return nil
	}
	r.Command = benchCommand(args)
	return f.write(r)
}

// apply turns the flags into o's fields; cleanup removes generated files.
func (f *benchFlags) apply(o *bench.Options) (cleanup func(), err error) {
	cleanup = func() {}
	var errs []error
	if o.Modes = splitList(f.modes); f.only != "" {
		o.Modes, o.Runs, f.latency, f.scaling = []string{f.only}, 1, "", ""
	}
	if o.Latency, err = parseFloats(f.latency); err != nil {
		errs = append(errs, fmt.Errorf("--latency: %w", err))
	}
	if o.Scaling, err = parseInts(f.scaling); err != nil {
		errs = append(errs, fmt.Errorf("--scaling: %w", err))
	}
	if o.ClientOpts, err = f.kafka.ClientOpts(); err != nil {
		errs = append(errs, err)
	}
	if err := f.broker(o); err != nil {
		errs = append(errs, err)
	}
	o.Progress = func(line string) { fmt.Fprintln(os.Stderr, line) }
	if f.generate != "" || f.genFunnels > 0 {
		cleanup, err = f.generated(o)
		errs = append(errs, err)
	}
	return cleanup, errors.Join(errs...)
}

// broker sets o's broker from --broker and --brokers.
func (f *benchFlags) broker(o *bench.Options) error {
	switch {
	case f.brokers != "":
		addrs := splitList(f.brokers)
		o.Broker = func(context.Context, int) (*bench.RunningBroker, error) {
			return &bench.RunningBroker{Addrs: addrs, Stop: func() {}}, nil
		}
		o.BrokerKind = "Kafka at " + f.brokers
	case f.brokerKind == "child":
		o.Broker, o.BrokerKind = childBroker, "embedded kfake in a child process (`processor broker`), not counted in CPU or RSS"
	case f.brokerKind == "inprocess":
		o.Broker, o.BrokerKind = bench.InProcessBroker, "embedded kfake, in-process (counted in CPU and RSS)"
	default:
		return fmt.Errorf("--broker %q: use child or inprocess", f.brokerKind)
	}
	return nil
}

// generated writes the generated definitions to a temporary directory.
func (f *benchFlags) generated(o *bench.Options) (func(), error) {
	s := bench.Sizes{Funnels: f.genFunnels}
	if f.generate != "" {
		if _, err := fmt.Sscanf(f.generate, "%d/%d/%d", &s.Journeys, &s.Segments, &s.Funnels); err != nil {
			return func() {}, fmt.Errorf("--generate %q: want journeys/segments/funnels, e.g. 100/20/20", f.generate)
		}
	}
	dir, err := os.MkdirTemp("", "cairn-generated")
	if err != nil {
		return func() {}, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if f.base = o.Definitions; f.base != "" {
		if err := copyDefinitions(f.base, dir); err != nil {
			return cleanup, err
		}
	}
	if err := bench.GenerateDefinitions(dir, s); err != nil {
		return cleanup, err
	}
	o.Definitions = dir
	return cleanup, nil
}

// copyDefinitions copies the definition files of src (defs.Files) into
// dst, so that generated definitions can be added to them.
func copyDefinitions(src, dst string) error {
	names, err := defs.Files(src)
	if err != nil {
		return fmt.Errorf("--definitions: %w", err)
	}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return fmt.Errorf("--definitions: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
			return fmt.Errorf("copying definitions: %w", err)
		}
	}
	return nil
}

// write writes r's JSON, plots and markdown section.
func (f *benchFlags) write(r *bench.Result) error {
	if f.generate != "" || f.genFunnels > 0 {
		r.Setup.Definitions = "generated " + cmpOr(f.generate, fmt.Sprintf("0/0/%d", f.genFunnels)) + " (journeys/segments/funnels)"
		if f.base != "" {
			r.Setup.Definitions = f.base + " + " + r.Setup.Definitions
		}
	}
	if err := bench.WriteJSON(f.js, r); err != nil {
		return err
	}
	var plots []string
	if f.plots != "none" {
		dir := cmpOr(f.plots, filepath.Dir(f.out))
		var err error
		if plots, err = bench.WritePlots(dir, f.section, r); err != nil {
			return err
		}
	}
	return bench.WriteSection(f.out, f.section, f.title, r, plots)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func printSummary(r *bench.Result) {
	for _, m := range []string{bench.ModePassthrough, bench.ModeCairn, bench.ModeAtLeastOnce} {
		if x, ok := r.Medians[m]; ok {
			fmt.Printf("%-14s median %9.0f events/s  %6.2f CPU s/M events  RSS peak %5.0f MB\n", m, x.EventsPerS, x.CPUSecPerMEvents, x.RSSPeakMB)
		}
	}
	if r.Ratio > 0 {
		fmt.Printf("cairn / ceiling %.2f\n", r.Ratio)
	}
	for _, l := range r.Latency {
		fmt.Printf("latency at %3.0f%% load (%.0f events/s): p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", 100*l.Load, l.OfferedRate, l.P50ms, l.P99ms, l.MaxMs)
	}
	for _, s := range r.Scaling {
		fmt.Printf("%d instance(s): %.0f events/s\n", s.Instances, s.EventsPerS)
	}
}

func benchCommand(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = a
		if a == "" || strings.ContainsAny(a, " ()'\"") {
			quoted[i] = strconv.Quote(a)
		}
	}
	return strings.TrimSpace("processor bench " + strings.Join(quoted, " "))
}

func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, p := range splitList(s) {
		x, err := strconv.ParseFloat(p, 64)
		if err != nil || x <= 0 || x > 1 {
			return nil, fmt.Errorf("%q is not a fraction in (0, 1]", p)
		}
		out = append(out, x)
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range splitList(s) {
		x, err := strconv.Atoi(p)
		if err != nil || x < 1 {
			return nil, fmt.Errorf("%q is not a positive count", p)
		}
		out = append(out, x)
	}
	return out, nil
}

// childBroker starts `processor broker` on a free port as a child process,
// so that the broker's CPU time and memory stay out of the harness's
// getrusage and RSS figures. It returns once the broker says it listens.
func childBroker(_ context.Context, partitions int) (*bench.RunningBroker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "broker", "--port", strconv.Itoa(port), "--partitions", strconv.Itoa(partitions))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the harness
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the broker process: %w", err)
	}
	stop := func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }
	br := bufio.NewReader(out)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "listening") {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("starting the broker process: it said %q: %v", line, err)
	}
	go func() { _, _ = br.WriteTo(io.Discard) }()
	return &bench.RunningBroker{Addrs: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}, Stop: stop,
		CPU: func() time.Duration { return bench.ProcessCPU(cmd.Process.Pid) }}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func cmdBenchCompare(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: processor bench compare old.json new.json")
	}
	old, err := bench.ReadResult(args[0])
	if err != nil {
		return err
	}
	cur, err := bench.ReadResult(args[1])
	if err != nil {
		return err
	}
	return bench.PrintDeltas(os.Stdout, bench.Compare(old, cur))
}
