# Shared by bench/*-rounds.sh (sourced): the settings, one benchmark run,
# and the median the reports take over rounds.
#
#   PROCESSOR  the processor binary (default bin/processor)
#   ROUNDS     rounds (default 5)
#   EVENTS     events per run (default 100000)
bin=${PROCESSOR:-bin/processor}
rounds=${ROUNDS:-5}
events=${EVENTS:-100000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# bench_run MODE [ARGS...] runs processor bench once in MODE and prints its
# events/s and CPU s per million events.
bench_run() {
	local mode=$1 out
	shift
	out=$("$bin" bench --events "$events" --only "$mode" --runs 1 "$@" 2>&1) || { echo "$out" >&2; exit 1; }
	awk '/median/ {print $3, $5}' <<<"$out"
}

# median_awk defines median(a, k) for awk: the median of a[1..k].
median_awk='
	function median(a, k,   i, j, t) {
		for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	}'
