package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/cairn-cjo/cairn/bench"
)

func cmdBench(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "cluster" {
		return cmdBenchCluster(ctx, args[1:])
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o bench.EOSOptions
	fs.IntVar(&o.Events, "events", 200_000, "pre-filled events per run")
	fs.IntVar(&o.Runs, "runs", 3, "runs per mode (medians are reported)")
	fs.IntVar(&o.Users, "users", 10_000, "distinct users")
	fs.DurationVar(&o.CommitInterval, "commit-interval", 0, "commit interval (default 100ms)")
	fs.StringVar(&o.Definitions, "definitions", "", "definitions for Cairn's run (default: one counting operator)")
	fs.StringVar(&o.Only, "only", "", "run only cairn or passthrough (for profiling; results are not written)")
	out := fs.String("out", "bench/RESULTS.md", "markdown file whose section is rewritten")
	section := fs.String("section", "eos", "name of the section of --out to rewrite")
	title := fs.String("title", "Exactly-once path vs transactional passthrough", "title of the section")
	js := fs.String("json", "bench/eos.json", "machine-readable results")
	prof := fs.String("cpuprofile", "", "write a CPU profile of the whole run here")
	genFunnels := fs.Int("generate-funnels", 0, "run Cairn with this many generated funnels (instead of --definitions)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *genFunnels > 0 {
		dir, err := os.MkdirTemp("", "cairn-funnels")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := bench.GenerateFunnels(dir, *genFunnels); err != nil {
			return err
		}
		o.Definitions = dir
	}
	r, err := bench.RunEOS(ctx, o)
	if err != nil {
		return err
	}
	fmt.Printf("passthrough median %.0f events/s, cairn median %.0f events/s, ratio %.2f\n", r.MedPassthrough, r.MedCairn, r.Ratio)
	if o.Only != "" {
		return nil
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = a
		if strings.ContainsAny(a, " ()'") {
			quoted[i] = strconv.Quote(a)
		}
	}
	cmd := "processor bench " + strings.Join(quoted, " ")
	if err := bench.WriteEOSSection(*out, *section, *title, strings.TrimSpace(cmd), r); err != nil {
		return err
	}
	return bench.WriteJSON(*js, r)
}
