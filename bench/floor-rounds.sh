#!/usr/bin/env bash
# Where the throughput target of issue #6 (Cairn >= 0.5 of the transactional
# passthrough) stands against what Cairn costs with nothing to do
# (bench/RESULTS.md, "The floor"): alternating rounds of processor bench
# through the whole pipeline (embedded broker, exactly-once) of the
# passthrough, Cairn with no definitions (decode, clock, offsets, no
# operator), the counting operator and the example definitions; then the
# median of the per-round ratios to the passthrough, and CPU per event.
#
#   bench/floor-rounds.sh            # or: make bench-floor
#   ROUNDS=5 EVENTS=100000 PROCESSOR=/tmp/old-processor bench/floor-rounds.sh
#
# 500,000 events by default, as the standard suite: at 100,000 the
# passthrough runs for a tenth of a second and its rate is mostly start-up.
set -euo pipefail
: "${ROUNDS:=3}" "${EVENTS:=500000}"
. "$(dirname "$0")/rounds-lib.sh"
mkdir "$tmp/none"

for r in $(seq "$rounds"); do
	echo "$r passthrough $(bench_run passthrough)"
	echo "$r no-definitions $(bench_run cairn --definitions "$tmp/none")"
	echo "$r counter $(bench_run cairn)"
	echo "$r examples $(bench_run cairn --definitions examples)"
done | tee "$tmp/rounds" | awk '{printf "round %s  %-16s %8d events/s  %6.2f CPU s/M\n", $1, $2, $3, $4}'

awk "$median_awk"'
	{ rate[$1, $2] = $3; cpu[$1, $2] = $4; n = $1 > n ? $1 : n }
	function report(what,   r, x, c) {
		for (r = 1; r <= n; r++) { x[r] = rate[r, what] / rate[r, "passthrough"]; c[r] = cpu[r, what] }
		printf "%-16s %5.2f of the passthrough (", what, median(x, n)
		for (r = 1; r <= n; r++) printf "%s%.2f", (r > 1 ? " " : ""), rate[r, what] / rate[r, "passthrough"]
		printf "), %5.1f CPU us per event\n", median(c, n)
	}
	END {
		print ""
		print "median of per-round ratios (issue #6 asks for >= 0.50 with the standard definitions):"
		report("passthrough"); report("no-definitions"); report("counter"); report("examples")
	}' "$tmp/rounds"
