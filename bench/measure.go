package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/state"
)

// cpuTime returns the user plus system CPU time this process has used
// (getrusage RUSAGE_SELF): every goroutine of the harness, the engine and,
// with an in-process broker, the broker.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ProcessCPU returns the user plus system CPU time process pid has used,
// from /proc/<pid>/stat (0 where there is no /proc). Linux reports it in
// clock ticks of 10 ms.
func ProcessCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// rssBytes returns this process's resident set size from /proc/self/status
// (0 where there is no /proc).
func rssBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Point is one sample of a throughput series.
type Point struct {
	T          float64 `json:"t_s"`          // seconds since the first record was consumed
	EventsPerS float64 `json:"events_per_s"` // rate over the sample interval
}

// sampler watches a counter (consumed records) while a run goes on: it
// notes when it first moves, samples the rate and the process RSS every
// interval, and calls progress with a one-line summary about once a second.
// Its fields are written by its goroutine and read after stop returns.
type sampler struct {
	count    func() float64
	progress func(string)
	label    string
	total    int

	first  time.Time
	cpu0   time.Duration // CPU time when the counter first moved
	bcpu0  time.Duration // the broker's, if known
	bcpu   func() time.Duration
	series []Point
	rssMax int64

	stopCh chan struct{}
	done   sync.WaitGroup
}

// sampleInterval is the time between points of a throughput series.
const sampleInterval = 250 * time.Millisecond

func startSampler(label string, total int, count func() float64, progress func(string), brokerCPU func() time.Duration) *sampler {
	s := &sampler{count: count, progress: progress, label: label, total: total, bcpu: brokerCPU, stopCh: make(chan struct{})}
	s.done.Add(1)
	go s.run()
	return s
}

func (s *sampler) run() {
	defer s.done.Done()
	var last float64
	var lastT, lastLine time.Time
	for tick := time.NewTicker(time.Millisecond); ; {
		select {
		case <-s.stopCh:
			tick.Stop()
			return
		case now := <-tick.C:
			s.rssMax = max(s.rssMax, rssBytesEvery(now, lastT))
			n := s.count()
			if s.first.IsZero() {
				if n > 0 {
					s.first, lastT, lastLine = now, now, now
					s.cpu0, s.bcpu0 = cpuTime(), s.brokerCPU()
					tick.Reset(sampleInterval)
				}
				continue
			}
			s.series = append(s.series, Point{T: now.Sub(s.first).Seconds(), EventsPerS: (n - last) / now.Sub(lastT).Seconds()})
			last, lastT = n, now
			if s.progress != nil && now.Sub(lastLine) >= time.Second {
				lastLine = now
				s.progress(fmt.Sprintf("%s: %.0f/%d events, %.0f events/s", s.label, n, s.total, n/now.Sub(s.first).Seconds()))
			}
		}
	}
}

// rssBytesEvery reads the RSS unless the last read was under
// sampleInterval ago (the sampler ticks every millisecond until the run
// starts).
func rssBytesEvery(now, last time.Time) int64 {
	if now.Sub(last) < sampleInterval && !last.IsZero() {
		return 0
	}
	return rssBytes()
}

// brokerCPU returns the broker's CPU time, or 0 if unknown.
func (s *sampler) brokerCPU() time.Duration {
	if s.bcpu == nil {
		return 0
	}
	return s.bcpu()
}

// stop stops sampling; the fields may be read after it returns.
func (s *sampler) stop() {
	close(s.stopCh)
	s.done.Wait()
	s.rssMax = max(s.rssMax, rssBytes())
}

// metricSum returns a function summing the counters or gauges name over
// regs.
func metricSum(name string, regs ...*prometheus.Registry) func() float64 {
	return func() float64 {
		var sum float64
		for _, reg := range regs {
			mfs, _ := reg.Gather()
			for _, mf := range mfs {
				if mf.GetName() != name {
					continue
				}
				for _, m := range mf.GetMetric() {
					sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
		return sum
	}
}

// waitCommitted waits until group has committed offsets that add up to
// want, polling every 20 ms.
func waitCommitted(ctx context.Context, adm *kadm.Client, group string, want int64) error {
	for ctx.Err() == nil {
		offs, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			total := int64(0)
			offs.Each(func(o kadm.OffsetResponse) { total += o.At })
			if total >= want {
				return nil
			}
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
	return ctx.Err()
}

// waitNoBacklog waits until no partition of the instances behind regs holds
// records in its backlog (engine/backlog.go): those are consumed, and their
// offsets committed, but not yet processed.
func waitNoBacklog(ctx context.Context, regs ...*prometheus.Registry) error {
	backlog := metricSum("cairn_partition_backlog_records", regs...)
	for ctx.Err() == nil {
		if backlog() == 0 {
			return nil
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
	return ctx.Err()
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// topicTally is what a read_committed consumer sees of a topic.
type topicTally struct {
	Records int64
	Bytes   int64 // keys plus values
}

// tallyTopic reads topic from the start to its end offsets with
// read_committed and counts its records and their key and value bytes. It
// keeps control records to see the end: once no transaction is open, the
// record before a partition's end offset is a commit or abort marker or a
// committed record. Call it when the topic's producers are done.
func tallyTopic(ctx context.Context, addrs []string, opts []kgo.Opt, topic string) (topicTally, error) {
	var t topicTally
	cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(addrs...)}, opts...),
		kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		return t, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return t, fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return t, fmt.Errorf("reading %s: %w", topic, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				t.Records++
				t.Bytes += int64(len(r.Key) + len(r.Value))
			}
			if end, ok := left[r.Partition]; ok && r.Offset >= end-1 {
				delete(left, r.Partition)
			}
		})
	}
	return t, nil
}

// storeBytes returns the logical size of st: the key and value bytes of
// every committed entry.
func storeBytes(st state.Store) (int64, error) {
	var n int64
	err := st.Scan([]byte{0}, []byte{0xff, 0xff, 0xff, 0xff, 0xff}, func(k, v []byte) error {
		n += int64(len(k) + len(v))
		return nil
	})
	return n, err
}
