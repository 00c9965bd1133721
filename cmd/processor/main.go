// Command processor is Cairn's single binary. It is wiring only: it parses
// flags, environment and config files into configs, builds the engine,
// operators and servers, and runs them.
//
//	processor run       run an instance against Kafka (production)
//	processor dev       embedded broker + instance + examples + demo events
//	processor broker    serve the embedded Kafka-compatible broker
//	processor validate  check definitions and config
//	processor bench     benchmarks (bench/RESULTS.md)
//	processor funnel    a funnel's counts in the terminal
//	processor reset     delete an app's internal topics and group
//	processor status    every instance of an app and its partitions
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cairn-cjo/cairn/internal/failpoint"
)

const usage = `usage: processor <command> [flags]

commands:
  run       run a Cairn instance against Kafka
  dev       start an embedded broker, one instance, the examples and a demo stream
  broker    serve the embedded Kafka-compatible broker
  validate  check definitions (and a config file) and exit
  bench     the benchmark suite (bench/RESULTS.md); bench compare old.json new.json
  funnel    print a funnel's counts: processor funnel <id> [--from D --to D]
  reset     delete an app's internal topics and consumer group (asks first)
  status    every instance of an app: partitions, restores, lag, state size

Run 'processor <command> -h' for the flags of a command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err := failpoint.Check(); err != nil {
		// A typo must not run a crash test without its crash.
		fmt.Fprintf(os.Stderr, "processor: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "run":
		err = cmdRun(ctx, args)
	case "dev":
		err = cmdDev(ctx, args)
	case "broker":
		err = cmdBroker(ctx, args)
	case "validate":
		err = cmdValidate(args)
	case "bench":
		err = cmdBench(ctx, args)
	case "funnel":
		err = cmdFunnel(ctx, args)
	case "reset":
		err = cmdReset(ctx, args, os.Stdin, os.Stdout)
	case "status":
		err = cmdStatus(ctx, args, os.Stdout)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "processor %s: interrupted: %v\n", os.Args[1], err)
		os.Exit(130) // the shell's code for a SIGINT
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "processor %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("--log-level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(level string) *slog.Logger {
	l, _ := parseLevel(level)
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
