#!/usr/bin/env bash
# The funnel ingest cost of issue #5 (bench/RESULTS.md, "Funnel ingest
# cost"): alternating rounds of processor bench through the whole pipeline
# (embedded broker, exactly-once), each baseline beside the same pipeline
# with 50 generated funnels added, then the median of the per-round ratios.
#
#   bench/funnel-rounds.sh            # or: make bench-funnels
#   ROUNDS=3 EVENTS=200000 PROCESSOR=/tmp/old-processor bench/funnel-rounds.sh
set -euo pipefail
. "$(dirname "$0")/rounds-lib.sh"
mkdir "$tmp/none" "$tmp/examples"
cp examples/*.yaml "$tmp/examples/"
rm -f "$tmp/examples/funnels.yaml" # the baseline has no funnel

run() { bench_run cairn "$@"; }

for r in $(seq "$rounds"); do
	echo "$r no-definitions $(run --definitions "$tmp/none")"
	echo "$r 1-funnel $(run --generate-funnels 1)"
	echo "$r counter $(run)"
	echo "$r 50-funnels $(run --generate-funnels 50)"
	echo "$r examples $(run --definitions "$tmp/examples")"
	echo "$r examples+50 $(run --definitions "$tmp/examples" --generate-funnels 50)"
done | tee "$tmp/rounds" | awk '{printf "round %s  %-16s %8d events/s  %6.2f CPU s/M\n", $1, $2, $3, $4}'

# Per round, 50 funnels over each baseline; medians over the rounds.
awk "$median_awk"'
	{ rate[$1, $2] = $3; n = $1 > n ? $1 : n }
	function report(num, den, label,   r, x) {
		for (r = 1; r <= n; r++) x[r] = rate[r, num] / rate[r, den]
		printf "%-44s %.2f (", label, median(x, n)
		for (r = 1; r <= n; r++) printf "%s%.2f", (r > 1 ? " " : ""), rate[r, num] / rate[r, den]
		print ")"
	}
	END {
		print ""
		print "median of per-round ratios (issue #5 asks for >= 0.50):"
		report("examples+50", "examples", "examples without funnels -> + 50 funnels")
		report("50-funnels", "counter", "counting operator -> 50 funnels instead")
		report("50-funnels", "no-definitions", "no definitions -> 50 funnels")
		report("1-funnel", "no-definitions", "no definitions -> 1 funnel")
	}' "$tmp/rounds"
