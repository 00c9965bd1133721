package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/bench/workload"
	"github.com/cairn-cjo/cairn/operators/count"
)

// LatencyResult is one open-loop run at a fixed offered load. Latency is
// from an event's due send time (not its actual send time, so a producer
// that falls behind shows as queueing) to its counter output being read by
// a read_committed consumer.
type LatencyResult struct {
	Load         float64 `json:"load"` // fraction of the measured exactly-once maximum
	OfferedRate  float64 `json:"offered_events_per_s"`
	AchievedRate float64 `json:"achieved_events_per_s"` // records sent over the producing time
	Sent         int64   `json:"sent"`
	Expected     int64   `json:"expected_outputs"` // sent minus malformed and $profile_set (the counter skips $ events)
	Received     int64   `json:"received_outputs"`
	P50ms        float64 `json:"p50_ms"`
	P95ms        float64 `json:"p95_ms"`
	P99ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
	// CDF holds up to 200 (latency ms, fraction) points for plotting.
	CDF [][2]float64 `json:"cdf"`
}

// latencyWait bounds the wait for the last outputs after producing ends.
const latencyWait = time.Minute

// runLatency runs one engine with a counter whose outputs carry each
// event's id, produces open loop at rate for o.LatencyDuration and measures
// each event's time to its output.
func runLatency(ctx context.Context, o Options, load, rate float64) (LatencyResult, error) {
	lr := LatencyResult{Load: load, OfferedRate: rate}
	e, err := newEnv(ctx, o)
	if err != nil {
		return lr, err
	}
	defer e.close()
	out := "bench-latency-" + e.tag
	in, err := startInstance(ctx, o, e, e.app("latency"), ModeCairn, 0, out)
	if err != nil {
		return lr, err
	}
	defer in.close()
	if err := in.waitOwning(ctx, int(o.Partitions)); err != nil {
		return lr, err
	}
	g, err := workload.New(workload.Options{Seed: o.Seed, Users: o.Users, IDPrefix: "lat"})
	if err != nil {
		return lr, err
	}
	dues := make([]atomic.Int64, int(rate*o.LatencyDuration.Seconds())+1)
	c, err := startLatencyReader(ctx, o, e, out, dues)
	if err != nil {
		return lr, err
	}
	start := time.Now()
	counts, err := openLoop(ctx, o, e, g, rate, dues)
	lr.AchievedRate = float64(counts.Records) / time.Since(start).Seconds()
	if err != nil {
		c.stop()
		return lr, err
	}
	lr.Sent, lr.Expected = counts.Records, counts.Records-counts.Malformed-counts.Profile
	lats := c.waitFor(ctx, lr.Expected, latencyWait)
	lr.Received = int64(len(lats))
	fillPercentiles(&lr, lats)
	o.progress(fmt.Sprintf("latency at %.0f%% load (%.0f events/s): p50 %.1f ms, p99 %.1f ms, %d/%d outputs",
		100*load, rate, lr.P50ms, lr.P99ms, lr.Received, lr.Expected))
	return lr, ctx.Err()
}

// openLoop produces from a client of its own without linger, so that the
// producer adds no batching delay of its own.
func openLoop(ctx context.Context, o Options, e *env, g *workload.Generator, rate float64, dues []atomic.Int64) (workload.Counts, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.addrs...), kgo.ProducerLinger(0)}, o.ClientOpts...)...)
	if err != nil {
		return workload.Counts{}, err
	}
	defer cl.Close()
	return workload.OpenLoop(ctx, cl, e.input(), g, rate, o.LatencyDuration, func(r workload.Record, due time.Time) {
		if r.Seq < uint64(len(dues)) {
			dues[r.Seq].Store(due.UnixNano())
		}
	})
}

// waitOwning waits until the instance is ready and owns n partitions.
func (in *instance) waitOwning(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for !in.eng.Ready() || len(in.eng.Owned()) < n {
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for the engine to own %d partitions: %w", n, ctx.Err())
		}
		sleepCtx(ctx, 10*time.Millisecond)
	}
	return nil
}

// latencyReader reads counter outputs read_committed and notes each one's
// latency from its event's due time. lats is owned by its goroutine until
// done is closed.
type latencyReader struct {
	cl     *kgo.Client
	got    atomic.Int64
	lats   []time.Duration
	cancel context.CancelFunc
	done   chan struct{}
}

func startLatencyReader(ctx context.Context, o Options, e *env, topic string, dues []atomic.Int64) (*latencyReader, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.addrs...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(50 * time.Millisecond)}, o.ClientOpts...)...)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	c := &latencyReader{cl: cl, cancel: cancel, done: make(chan struct{})}
	go c.run(rctx, dues)
	return c, nil
}

func (c *latencyReader) run(ctx context.Context, dues []atomic.Int64) {
	defer close(c.done)
	for ctx.Err() == nil {
		fs := c.cl.PollFetches(ctx)
		now := time.Now().UnixNano()
		fs.EachRecord(func(r *kgo.Record) {
			if seq, ok := causeSeq(r.Value); ok && seq < uint64(len(dues)) {
				if due := dues[seq].Load(); due > 0 {
					c.lats = append(c.lats, time.Duration(now-due))
					c.got.Add(1)
				}
			}
		})
	}
}

// causeSeq returns the workload sequence number in a counter output's cause
// ("lat-<seq>").
func causeSeq(v []byte) (uint64, bool) {
	var rec count.Record
	if json.Unmarshal(v, &rec) != nil {
		return 0, false
	}
	s, ok := strings.CutPrefix(rec.Cause, "lat-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// waitFor waits until want outputs arrived (or timeout), stops reading and
// returns the latencies.
func (c *latencyReader) waitFor(ctx context.Context, want int64, timeout time.Duration) []time.Duration {
	deadline := time.Now().Add(timeout)
	for c.got.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		sleepCtx(ctx, 20*time.Millisecond)
	}
	c.stop()
	return c.lats
}

func (c *latencyReader) stop() {
	c.cancel()
	<-c.done
	c.cl.Close()
}

// fillPercentiles sets lr's percentiles and CDF from lats.
func fillPercentiles(lr *LatencyResult, lats []time.Duration) {
	if len(lats) == 0 {
		return
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	ms := func(q float64) float64 {
		i := min(len(lats)-1, int(q*float64(len(lats))))
		return float64(lats[i]) / 1e6
	}
	lr.P50ms, lr.P95ms, lr.P99ms, lr.MaxMs = ms(0.50), ms(0.95), ms(0.99), float64(lats[len(lats)-1])/1e6
	step := max(1, len(lats)/200)
	for i := 0; i < len(lats); i += step {
		lr.CDF = append(lr.CDF, [2]float64{float64(lats[i]) / 1e6, float64(i+1) / float64(len(lats))})
	}
	lr.CDF = append(lr.CDF, [2]float64{lr.MaxMs, 1})
}
