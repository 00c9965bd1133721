package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/broker"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
	"github.com/cairn-cjo/cairn/state"
)

// TestEngineCommitPathFaults injects broker errors on the commit path:
// EndTxn, TxnOffsetCommit, AddPartitionsToTxn and Produce failures,
// including a TxnOffsetCommit that is applied but answered with a timeout
// and timeouts of EndTxn, whose outcome the engine cannot know. The engine aborts or rebuilds its
// session, and the committed outputs stay exact.
func TestEngineCommitPathFaults(t *testing.T) {
	cases := []struct {
		name   string
		fault  kfake.Fault
		kafka3 bool // talk as to Kafka 3.x: partitions join a transaction through AddPartitionsToTxn, not implicitly (KIP-890)
	}{
		{"end-txn-unknown-server-error", kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.UnknownServerError, Count: 3}, false},
		{"end-txn-concurrent-transactions", kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.ConcurrentTransactions, Count: 3}, false},
		{"txn-offset-commit-unknown-server-error", kfake.Fault{Keys: []kmsg.Key{kmsg.TxnOffsetCommit}, Err: kerr.UnknownServerError, Count: 3}, false},
		{"txn-offset-commit-timeout-after-apply", kfake.Fault{Keys: []kmsg.Key{kmsg.TxnOffsetCommit}, Err: kerr.RequestTimedOut, Count: 3}, false},
		{"end-txn-timeout", kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.RequestTimedOut, Count: 2}, false},
		{"add-partitions-to-txn-unknown-server-error", kfake.Fault{Keys: []kmsg.Key{kmsg.AddPartitionsToTxn}, Err: kerr.UnknownServerError, Count: 3}, true},
		{"add-partitions-to-txn-concurrent-transactions", kfake.Fault{Keys: []kmsg.Key{kmsg.AddPartitionsToTxn}, Err: kerr.ConcurrentTransactions, Count: 3}, true},
		{"produce-unknown-server-error", kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: countsOut, Err: kerr.UnknownServerError, Count: 2}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := kafkatest.Start(t, broker.Options{})
			addrs := b.Addrs()
			kafkatest.CreateTopic(t, addrs, input, 4, nil)
			first := genEvents("a", 20, 400, 1_700_000_000_000)
			kafkatest.ProduceEvents(t, addrs, input, first)
			mut := func(c *engine.Config) {
				if tc.kafka3 {
					c.ClientOpts = append(c.ClientOpts, kgo.MaxVersions(kversion.V3_7_0()))
				}
				if os.Getenv("CAIRN_KGO_LOG") != "" {
					c.ClientOpts = append(c.ClientOpts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, nil)))
				}
			}
			startInstance(t, addrs, "one", t.TempDir(), mut)
			kafkatest.WaitCounts(t, addrs, countsOut, len(first))
			h := b.Cluster().Fault(tc.fault)
			second := genEvents("b", 20, 400, 1_700_000_010_000)
			kafkatest.ProduceEvents(t, addrs, input, second)
			all := append(first, second...)
			kafkatest.CheckCounts(t, all, kafkatest.WaitCounts(t, addrs, countsOut, len(all)))
			if h.Hits() == 0 {
				t.Fatalf("fault %s never hit: the test exercised nothing", tc.name)
			}
		})
	}
}

func TestEngineSendsBadRecordsToDLQ(t *testing.T) {
	addrs := newBroker(t)
	good := genEvents("g", 5, 50, 1_700_000_000_000)
	kafkatest.ProduceEvents(t, addrs, input, good[:25])
	bad := []*kgo.Record{
		{Topic: input, Key: []byte("u-1"), Value: []byte("not json")},
		{Topic: input, Key: []byte("u-1"), Value: []byte(`{"event":"x","ts":1}`)},
		{Topic: input, Key: []byte("u-2"), Value: []byte(`{"user_id":"u-1","event":"x","ts":1}`)},
		{Topic: input, Key: []byte("u-1"), Value: []byte(`{"user_id":"u-1","event":"x","ts":"yesterday"}`)},
		{Topic: input, Key: []byte("u-1"), Value: []byte(`{"user_id":"u-1","ts":1}`)},
	}
	kafkatest.ProduceRecords(t, addrs, bad)
	kafkatest.ProduceEvents(t, addrs, input, good[25:])
	startInstance(t, addrs, "one", t.TempDir(), nil)
	kafkatest.CheckCounts(t, good, kafkatest.WaitCounts(t, addrs, countsOut, len(good)))
	dlq := kafkatest.WaitRecords(t, addrs, input+".dlq", len(bad))
	reasons := map[string]int{}
	for _, r := range dlq {
		h := headers(r)
		reasons[h["cairn.reason"]]++
		if h["cairn.source.topic"] != input || h["cairn.source.offset"] == "" || h["cairn.source.partition"] == "" {
			t.Errorf("dlq record lacks its source position: %v", h)
		}
	}
	want := map[string]int{engine.ReasonNotDecoded: 1, engine.ReasonNoUser: 1, engine.ReasonKey: 1, engine.ReasonTS: 1, engine.ReasonNoEvent: 1}
	if fmt.Sprint(reasons) != fmt.Sprint(want) {
		t.Fatalf("dlq reasons = %v, want %v", reasons, want)
	}
}

func headers(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

func TestEngineRefusesMisPartitionedInternalTopic(t *testing.T) {
	b := kafkatest.Start(t, broker.Options{})
	addrs := b.Addrs()
	kafkatest.CreateTopic(t, addrs, input, 6, nil)
	kafkatest.CreateTopic(t, addrs, "test-changelog", 3, nil)
	st, err := state.OpenPebble("", state.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err := engine.New(engine.Config{Brokers: addrs, AppID: "test", Logger: testLogger(t)}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = eng.Run(ctx)
	if !errors.Is(err, engine.ErrPartitionMismatch) || !strings.Contains(err.Error(), "test-changelog has 3 partitions") {
		t.Fatalf("Run = %v, want a partition mismatch naming test-changelog", err)
	}
}

func TestEngineRefusesMissingInputTopic(t *testing.T) {
	b := kafkatest.Start(t, broker.Options{})
	st, err := state.OpenPebble("", state.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err := engine.New(engine.Config{Brokers: b.Addrs(), AppID: "test", InputTopic: "nope", Logger: testLogger(t)}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := eng.Run(ctx); !errors.Is(err, engine.ErrNoInputTopic) {
		t.Fatalf("Run = %v, want ErrNoInputTopic", err)
	}
}

// TestEngineCountsRecordsInTheWrongPartition produces every record to
// partition 0 whatever its key, as a producer with another partitioner
// would: the records are processed, and the ones whose key hashes elsewhere
// are counted.
func TestEngineCountsRecordsInTheWrongPartition(t *testing.T) {
	addrs := newBroker(t)
	evs := genEvents("w", 12, 60, 1_700_000_000_000)
	var rs []*kgo.Record
	wrong := 0
	for _, ev := range evs {
		v := fmt.Sprintf(`{"user_id":%q,"event":%q,"ts":%d,"event_id":%q}`, ev.UserID, ev.Event, ev.TS, ev.EventID)
		rs = append(rs, &kgo.Record{Topic: input, Partition: 0, Key: []byte(ev.UserID), Value: []byte(v)})
		if engine.KeyPartition([]byte(ev.UserID), 6) != 0 {
			wrong++
		}
	}
	cl := kafkatest.Client(t, addrs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	startInstance(t, addrs, "one", t.TempDir(), func(c *engine.Config) { c.Registerer = reg })
	kafkatest.CheckCounts(t, evs, kafkatest.WaitCounts(t, addrs, countsOut, len(evs)))
	if got := counterValue(t, reg, "cairn_records_wrong_partition_total"); int(got) != wrong || wrong == 0 {
		t.Fatalf("wrong-partition counter = %v, want %d", got, wrong)
	}
}

func counterValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// lowDiskFS reports free disk space from free instead of the real disk.
type lowDiskFS struct {
	vfs.FS
	free *atomic.Uint64
}

func (f lowDiskFS) GetDiskUsage(path string) (vfs.DiskUsage, error) {
	u, err := f.FS.GetDiskUsage(path)
	u.AvailBytes = f.free.Load()
	return u, err
}

// TestEngineStopsOnDiskFullAndResumes lets the state disk fill up while
// events flow. The instance must stop on its own with an error naming the
// cause, and an instance restarted on the same directory once there is
// space again must end with exact outputs.
func TestEngineStopsOnDiskFullAndResumes(t *testing.T) {
	addrs := newBroker(t)
	dir := t.TempDir()
	free := &atomic.Uint64{}
	free.Store(1 << 40)
	st, err := state.OpenPebble(dir, state.Options{FS: lowDiskFS{vfs.Default, free}})
	if err != nil {
		t.Fatal(err)
	}
	first := genEvents("a", 20, 600, 1_700_000_000_000)
	kafkatest.ProduceEvents(t, addrs, input, first)
	in := startInstanceOn(t, addrs, "one", st, nil)
	kafkatest.WaitCounts(t, addrs, countsOut, len(first))

	free.Store(10 << 20)
	second := genEvents("b", 20, 600, 1_700_000_010_000)
	kafkatest.ProduceEvents(t, addrs, input, second)
	select {
	case err := <-in.done:
		if !errors.Is(err, engine.ErrDiskFull) || !errors.Is(err, engine.ErrFatal) {
			t.Fatalf("engine stopped with %v, want ErrDiskFull", err)
		}
		t.Logf("stopped with: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("engine did not stop within 60s of the disk filling up")
	}
	in.cancel = nil
	if err := st.Close(); err != nil {
		t.Fatalf("closing the store after a disk-full stop: %v", err)
	}

	startInstance(t, addrs, "one", dir, nil)
	all := append(first, second...)
	kafkatest.CheckCounts(t, all, kafkatest.WaitCounts(t, addrs, countsOut, len(all)))
}
