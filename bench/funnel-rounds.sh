#!/usr/bin/env bash
# The funnel ingest cost of issue #5 (bench/RESULTS.md, "Funnel ingest
# cost"): alternating rounds of processor bench through the whole pipeline
# (embedded broker, exactly-once), each baseline beside the same pipeline
# with 50 generated funnels added, then the median of the per-round ratios.
#
#   bench/funnel-rounds.sh            # or: make bench-funnels
#   ROUNDS=3 EVENTS=200000 PROCESSOR=/tmp/old-processor bench/funnel-rounds.sh
set -euo pipefail
bin=${PROCESSOR:-bin/processor}
rounds=${ROUNDS:-5}
events=${EVENTS:-100000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/none" "$tmp/examples"
cp examples/*.yaml "$tmp/examples/"
rm -f "$tmp/examples/funnels.yaml" # the baseline has no funnel

run() {
	local out
	out=$("$bin" bench --events "$events" --only cairn --runs 1 "$@" 2>&1) || { echo "$out" >&2; exit 1; }
	awk '/median/ {print $3, $5}' <<<"$out"
}

for r in $(seq "$rounds"); do
	echo "$r no-definitions $(run --definitions "$tmp/none")"
	echo "$r 1-funnel $(run --generate-funnels 1)"
	echo "$r counter $(run)"
	echo "$r 50-funnels $(run --generate-funnels 50)"
	echo "$r examples $(run --definitions "$tmp/examples")"
	echo "$r examples+50 $(run --definitions "$tmp/examples" --generate-funnels 50)"
done | tee "$tmp/rounds" | awk '{printf "round %s  %-16s %8d events/s  %6.2f CPU s/M\n", $1, $2, $3, $4}'

# Per round, 50 funnels over each baseline; medians over the rounds.
awk '
	{ rate[$1, $2] = $3; n = $1 > n ? $1 : n }
	function median(a, k,   i, j, t) {
		for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	}
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
