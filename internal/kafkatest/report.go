package kafkatest

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
)

// ChaosRow is one fault scenario run, as reported in bench/CHAOS.md.
type ChaosRow struct {
	Scenario string
	Cycles   int   // faults injected
	Tally    Tally // the committed outputs checked against the inputs
	// Txns are the transactions of the output topics after the run; nil
	// when not measured.
	Txns *TxnStats
	// Recovery is the time from the start of the final, fault-free
	// instance to the last output; 0 when not measured.
	Recovery time.Duration
	// Restarts are, per instance started during the run, the time from its
	// start to processing again (partitions assigned and restored).
	Restarts []time.Duration
	// Seed seeds the run's random choices; 0 when it has none.
	Seed uint64
	// AggMismatches counts the aggregates (funnel rows, journey counters)
	// that differ from a recomputation from the committed input, or from
	// a crash-free run; nil when the scenario has no aggregates.
	AggMismatches *int
	// Failures counts failed checks that have no column, such as restored
	// states whose digest differs from the crash-free run's; the
	// scenario's text says what was checked.
	Failures int
}

// Exact reports whether the run found no failure: outputs exact, no
// aggregate mismatch, no hanging transaction, no other failed check.
func (r ChaosRow) Exact() bool {
	return r.Tally.Exact() && r.Failures == 0 && (r.AggMismatches == nil || *r.AggMismatches == 0) && (r.Txns == nil || r.Txns.Open == 0)
}

// Bound95 is the 95% upper bound on the per-cycle failure rate after
// cycles cycles without a failure: 1 − 0.05^(1/cycles), about 3/cycles
// (the rule of three) for many cycles.
func Bound95(cycles int) float64 { return 1 - math.Pow(0.05, 1/float64(cycles)) }

// chaosHeader is the table header of bench/CHAOS.md; rows have one cell per
// column.
const chaosHeader = "| when (UTC) | scenario | cycles | events | outputs | lost | duplicated | out of order | aggregate mismatches | aborted txns | hanging txns | restart to processing p50 / p99 (n) | final run to all outputs | 95% bound | seed | versions |\n"

// chaosMethod says how the checker's aggregate and state checks work, under
// the title of bench/CHAOS.md.
const chaosMethod = "**Aggregates.** The checker's ticks also drive a funnel (`chk-f`: three steps picked by a prop, hour buckets, a group by user). " +
	"At the end the checker reads the aggregates topic with read_committed, keeps the latest upsert per key, sums the partitions with `funnel.Query` (as the API does) " +
	"and compares every (bucket, group) with a brute-force recomputation of docs/funnels.md from the committed events topic; " +
	"it also sums the journeys' counters (entered, exited, active, actions of chk and chk-wait) and compares them with what the input implies. " +
	"`TestCheckerAggregateCheckCanFail` feeds it wrong aggregates (a count off, a stale upsert last, a row missing or extra, a journey counter off) and sees each.\n\n" +
	"**State after each recovery.** Children run with `CAIRN_RESTORE_DIGEST=1` log, at the end of every restore, the partition, the group's committed input offset " +
	"and a digest of the partition's rebuilt keys but its marker. The checker loses its state dir on every third restart and on the last one, so restores range from a changelog tail to the whole changelog. " +
	"After the run, a fresh broker gets the committed input partition by partition, offset for offset, in rounds: each round feeds every partition up to its next restore offset, " +
	"runs one crash-free processor (same definitions, no idle advance) until it has consumed everything, stops it with SIGTERM and digests those partitions. " +
	"Every restored digest must equal the crash-free one at the same offset (checked as the row's scenario says; a difference fails the row). " +
	"A restore that skips one changelog record in 97 makes it fail.\n\n"

// ReportChaos appends row to the markdown file named by $CAIRN_CHAOS_REPORT
// (make chaos sets it to bench/CHAOS.md), writing the title and table
// header first if the file is new. Without the variable it does nothing.
func ReportChaos(t testing.TB, row ChaosRow) {
	t.Helper()
	path := os.Getenv("CAIRN_CHAOS_REPORT")
	if path == "" {
		return
	}
	header := ""
	if _, err := os.Stat(path); os.IsNotExist(err) {
		header = "# Fault campaign results\n\nWritten by `make chaos`; each row is one scenario run. " +
			"\"aborted txns\" counts abort markers on the output topics (one per partition an aborted transaction wrote to), " +
			"read with read_uncommitted: above zero, faults struck while transactions were open. " +
			"\"hanging txns\" counts output partitions whose last stable offset is below the high watermark at the end (must be 0). " +
			"\"restart to processing\" is, over the instances started during the run, the time from a start to its partitions being assigned and restored (the group's wait for a dead member included). " +
			"\"aggregate mismatches\" counts the funnel rows and journey counters of the aggregates topic (read_committed, latest upsert per key, partitions summed as the query API does) that differ from a recomputation from the committed input, or from the crash-free run; — when the scenario has no aggregates. " +
			"\"95% bound\": with 0 failures in N cycles, the failure rate per cycle is below 1 − 0.05^(1/N) (≈ 3/N, the rule of three) with 95% confidence; — when a cycle failed. " +
			"make chaos also runs, pass or fail without a row: the broker-error cases of TestEngineCommitPathFaults, TestEngineStopsOnDiskFullAndResumes, " +
			"and make stress (the commit-path faults in four processes at once, five times each). " +
			"The bug make stress found (outputs lost to a commit chosen before every produce was answered) is reproduced deterministically in make test by TestEngineCommitWaitsForEveryProduce.\n\n" + chaosMethod +
			chaosHeader + "|" + strings.Repeat("---|", strings.Count(chaosHeader, "|")-1) + "\n"
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("writing chaos report: %v", err)
		return
	}
	defer f.Close()
	if _, err := f.WriteString(header + row.markdown(time.Now())); err != nil {
		t.Errorf("writing chaos report: %v", err)
	}
}

// markdown formats the row as a table line of chaosHeader's columns.
func (r ChaosRow) markdown(now time.Time) string {
	c := r.Tally
	bound, aggs := "—", "—"
	if r.Cycles >= 1 && r.Exact() {
		bound = fmt.Sprintf("%.1f%%", 100*Bound95(r.Cycles))
	}
	if r.AggMismatches != nil {
		aggs = fmt.Sprint(*r.AggMismatches)
	}
	aborted, open := "—", "—"
	if r.Txns != nil {
		aborted, open = fmt.Sprint(r.Txns.Aborted), fmt.Sprint(r.Txns.Open)
	}
	restarts, seed := "—", "—"
	if len(r.Restarts) > 0 {
		d := slices.Clone(r.Restarts)
		slices.Sort(d)
		pct := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
		restarts = fmt.Sprintf("%s / %s (%d)", pct(0.5).Round(10*time.Millisecond), pct(0.99).Round(10*time.Millisecond), len(d))
	}
	if r.Seed != 0 {
		seed = fmt.Sprint(r.Seed)
	}
	return fmt.Sprintf("| %s | %s | %d | %d | %d | %d | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n",
		now.UTC().Format("2006-01-02 15:04"), r.Scenario, r.Cycles, c.Events, c.Outputs,
		c.Lost, c.Duplicated, c.OutOfOrder, aggs, aborted, open, restarts, r.Recovery.Round(100*time.Millisecond), bound, seed, versions())
}

// versions names the Go toolchain and the versions of franz-go, kfake and
// Pebble the test binary was built with.
func versions() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return runtime.Version()
	}
	out := []string{bi.GoVersion}
	for _, m := range bi.Deps {
		switch m.Path {
		case "github.com/twmb/franz-go", "github.com/twmb/franz-go/pkg/kfake", "github.com/cockroachdb/pebble/v2":
			v := m.Version
			if i := strings.LastIndexByte(v, '-'); strings.HasPrefix(v, "v0.0.0-") && i > 0 {
				v = v[i+1:][:7] // a pseudo-version: its commit
			}
			out = append(out, strings.TrimPrefix(m.Path, "github.com/")+" "+v)
		}
	}
	return strings.Join(out, ", ")
}
