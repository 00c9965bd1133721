package engine

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the engine's Prometheus series. Every name is listed in
// docs/operations.md; deploy/ dashboards and alerts refer to them.
type metrics struct {
	consumed            *prometheus.CounterVec // by partition
	processed           prometheus.Counter
	dlq                 *prometheus.CounterVec // by reason
	outputs             *prometheus.CounterVec // by topic
	shadowed            *prometheus.CounterVec // by topic
	commitDuration      prometheus.Histogram
	commits             prometheus.Counter
	aborted             prometheus.Counter
	reinits             prometheus.Counter
	lag                 *prometheus.GaugeVec // by partition
	restoreRecords      *prometheus.CounterVec
	restoreRemain       *prometheus.GaugeVec // by partition
	timersPending       *prometheus.GaugeVec // by partition
	timersFired         prometheus.Counter
	backlog             *prometheus.GaugeVec // by partition
	clockSkew           *prometheus.GaugeVec // by partition: wall - partition clock, seconds
	wrongPartition      prometheus.Counter
	wrongPartitionCount atomic.Int64 // for rate-limited warnings
	owned               prometheus.Gauge
	standbys            prometheus.Gauge
	standbyLag          *prometheus.GaugeVec // by partition
	standbyRecords      prometheus.Counter
	cacheHits           prometheus.Counter
	cacheMisses         prometheus.Counter
	cacheEvictions      prometheus.Counter
	cacheBytes          *prometheus.GaugeVec // by partition
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_records_consumed_total",
			Help: "Input records consumed, by partition."}, []string{"partition"}),
		processed: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_records_processed_total",
			Help: "Input records processed by operators (committed or not)."}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_records_dlq_total",
			Help: "Input records sent to the dead-letter topic, by reason."}, []string{"reason"}),
		outputs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_outputs_total",
			Help: "Output records produced (before commit), by topic."}, []string{"topic"}),
		shadowed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_outputs_shadowed_total",
			Help: "Outputs held back in shadow mode (event time before --shadow-until), by topic."}, []string{"topic"}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cairn_commit_duration_seconds",
			Help: "Time to end a transaction and apply its state.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_transactions_committed_total",
			Help: "Transactions committed."}),
		aborted: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_transactions_aborted_total",
			Help: "Transactions aborted (rebalance, produce error, unknown outcome)."}),
		reinits: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_session_reinits_total",
			Help: "Transactional sessions torn down and rebuilt after an error."}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cairn_partition_lag_records",
			Help: "Records between the last consumed offset and the last stable offset, plus the partition's backlog (consumed, not yet processed)."}, []string{"partition"}),
		restoreRecords: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_restore_records_total",
			Help: "Changelog records applied during restores."}, []string{"partition"}),
		restoreRemain: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cairn_restore_remaining_records",
			Help: "Changelog records left to restore; 0 when done."}, []string{"partition"}),
		timersPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cairn_timers_pending",
			Help: "Durable timers waiting, by partition (sampled at restore and commit)."}, []string{"partition"}),
		timersFired: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_timers_fired_total",
			Help: "Timers fired (committed or not)."}),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cairn_partition_backlog_records",
			Help: "Input records taken in but waiting behind timers still due (see --firing-window), by partition (sampled at assignment and commit)."}, []string{"partition"}),
		clockSkew: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cairn_partition_clock_skew_seconds",
			Help: "Wall clock minus partition clock."}, []string{"partition"}),
		wrongPartition: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_records_wrong_partition_total",
			Help: "Records whose key murmur2-hashes to another partition (producer uses another partitioner)."}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cairn_partitions_owned",
			Help: "Input partitions this instance owns."}),
		standbys: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cairn_standby_partitions",
			Help: "Partitions this instance keeps a standby copy of."}),
		standbyLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cairn_standby_lag_records",
			Help: "Changelog records a standby copy is behind, by partition."}, []string{"partition"}),
		standbyRecords: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_standby_records_total",
			Help: "Changelog records applied by standby tasks."}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_state_cache_hits_total",
			Help: "State reads of a user's keys answered from the read cache."}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_state_cache_misses_total",
			Help: "State reads of a user's keys that loaded the user from the store."}),
		cacheEvictions: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_state_cache_evictions_total",
			Help: "Users' keys dropped from the read cache to stay within --state-cache-bytes."}),
		cacheBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cairn_state_cache_bytes",
			Help: "Bytes held by the read cache after the last commit, by partition."}, []string{"partition"}),
	}
	for _, c := range []prometheus.Collector{m.consumed, m.processed, m.dlq, m.outputs, m.shadowed, m.commitDuration,
		m.commits, m.aborted, m.reinits, m.lag, m.restoreRecords, m.restoreRemain, m.timersPending,
		m.timersFired, m.backlog, m.clockSkew, m.wrongPartition, m.owned, m.standbys, m.standbyLag, m.standbyRecords,
		m.cacheHits, m.cacheMisses, m.cacheEvictions, m.cacheBytes} {
		f(c)
	}
	return m
}
