package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/cairn-cjo/cairn/bench"
)

// cmdBenchCluster runs `processor bench cluster`: join, failover (with and
// without standby replicas) and restore figures, with this binary's `run`
// as the instances.
func cmdBenchCluster(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench cluster", flag.ContinueOnError)
	var o bench.ClusterOptions
	fs.IntVar(&o.Users, "users", 100_000, "users of state (two state keys each)")
	fs.IntVar(&o.Runs, "runs", 3, "runs per standby setting (medians are reported)")
	fs.DurationVar(&o.SessionTimeout, "session-timeout", 0, "instances' group session timeout (default 3s)")
	fs.DurationVar(&o.TransactionTimeout, "transaction-timeout", 0, "instances' transaction timeout (default 5s)")
	out := fs.String("out", "bench/RESULTS.md", "markdown file whose section is rewritten")
	section := fs.String("section", "cluster", "name of the section of --out to rewrite")
	js := fs.String("json", "bench/cluster.json", "machine-readable results")
	if err := fs.Parse(args); err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the processor binary: %w", err)
	}
	o.Binary = bin
	r, err := bench.RunCluster(ctx, o)
	if err != nil {
		return err
	}
	for _, s := range r.Summary {
		fmt.Printf("standby %d: join %.2fs, failover %.2fs (replayed %.0f records), full restore %.0f records/s, %.1f MB/s\n",
			s.Replicas, s.JoinPause, s.FailoverPause, s.FailoverReplayed, s.RestoreEventsPS, s.RestoreMBPS)
	}
	cmd := strings.TrimSpace("processor bench cluster " + strings.Join(args, " "))
	if err := bench.WriteClusterSection(*out, *section, cmd, r); err != nil {
		return err
	}
	return bench.WriteJSON(*js, r)
}
