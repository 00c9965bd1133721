package engine_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/broker"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
	"github.com/cairn-cjo/cairn/operators/count"
	"github.com/cairn-cjo/cairn/state"
)

const (
	input     = "events"
	countsOut = "counts"
)

// instance is one in-process engine with its own state directory.
type instance struct {
	cancel context.CancelFunc
	done   chan error
	store  state.Store
	eng    *engine.Engine
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("CAIRN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startInstance(t *testing.T, addrs []string, id, dir string, mut func(*engine.Config)) *instance {
	t.Helper()
	st, err := state.OpenPebble(dir, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return startInstanceOn(t, addrs, id, st, mut)
}

// startInstanceOn runs an instance of the counting operator on st, stopped
// (and st closed) at the end of the test.
func startInstanceOn(t *testing.T, addrs []string, id string, st state.Store, mut func(*engine.Config)) *instance {
	t.Helper()
	return startInstanceWith(t, addrs, id, st, []engine.Operator{&count.Counter{ID: "c", Topic: countsOut}}, mut)
}

// startInstanceWith runs an instance of ops on st.
func startInstanceWith(t *testing.T, addrs []string, id string, st state.Store, ops []engine.Operator, mut func(*engine.Config)) *instance {
	t.Helper()
	cfg := engine.Config{
		Brokers: addrs, AppID: "test", InputTopic: input, InstanceID: id,
		SessionTimeout: 3 * time.Second, TransactionTimeout: 10 * time.Second,
		Logger: testLogger(t).With("instance", id),
	}
	if mut != nil {
		mut(&cfg)
	}
	eng, err := engine.New(cfg, st, ops)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{cancel: cancel, done: make(chan error, 1), store: st, eng: eng}
	go func() { in.done <- eng.Run(ctx) }()
	t.Cleanup(func() { in.stop(t) })
	return in
}

// stop cancels the instance, waits for a clean exit and closes its store.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	if in.cancel == nil {
		return
	}
	in.cancel()
	in.cancel = nil
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("engine exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("engine did not stop within 30s")
	}
	if err := in.store.Close(); err != nil {
		t.Error(err)
	}
}

// genEvents returns n events over users, in per-user order, with unique ids.
func genEvents(prefix string, users, n int, ts0 int64) []kafkatest.Event {
	evs := make([]kafkatest.Event, n)
	for i := range evs {
		u := fmt.Sprintf("u-%d", (i*7919)%users)
		evs[i] = kafkatest.Event{UserID: u, Event: "view_item", TS: ts0 + int64(i), EventID: fmt.Sprintf("%s-%d", prefix, i)}
	}
	return evs
}

func newBroker(t *testing.T) []string {
	t.Helper()
	b := kafkatest.Start(t, broker.Options{})
	kafkatest.CreateTopic(t, b.Addrs(), input, 6, nil)
	return b.Addrs()
}

func TestEngineCountsExactlyOnce(t *testing.T) {
	addrs := newBroker(t)
	evs := genEvents("a", 40, 2000, 1_700_000_000_000)
	kafkatest.ProduceEvents(t, addrs, input, evs)
	dir := t.TempDir()
	in := startInstance(t, addrs, "one", dir, nil)
	kafkatest.CheckCounts(t, evs, kafkatest.WaitCounts(t, addrs, countsOut, len(evs)))
	in.stop(t)
	checkInputOffsets(t, addrs, dir)
}

// checkInputOffsets checks that every partition's state records, under its
// "input" meta key (the changelogged input offset a restore checks), the
// offset the group committed for it. It opens the store in dir, which must
// be stopped.
func checkInputOffsets(t *testing.T, addrs []string, dir string) {
	t.Helper()
	st, err := state.OpenPebble(dir, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	adm := kadm.NewClient(kafkatest.Client(t, addrs))
	offs, err := adm.FetchOffsets(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	offs.Each(func(o kadm.OffsetResponse) {
		v, err := st.Get(state.MetaKey(o.Partition, "input"))
		if err != nil || len(v) != 8 {
			t.Errorf("partition %d: input key %x (%v)", o.Partition, v, err)
			return
		}
		if got := int64(binary.BigEndian.Uint64(v)); got != o.At {
			t.Errorf("partition %d: state stands at input offset %d, the group committed %d", o.Partition, got, o.At)
		}
		n++
	})
	if n == 0 {
		t.Fatal("no committed offsets")
	}
}

func TestEngineRebalanceKeepsOutputsExact(t *testing.T) {
	addrs := newBroker(t)
	var all []kafkatest.Event
	wave := func(i int) {
		evs := genEvents(fmt.Sprintf("w%d", i), 60, 1500, 1_700_000_000_000+int64(i)*10_000)
		kafkatest.ProduceEvents(t, addrs, input, evs)
		all = append(all, evs...)
	}
	a := startInstance(t, addrs, "a", t.TempDir(), nil)
	wave(0)
	b := startInstance(t, addrs, "b", t.TempDir(), nil)
	wave(1)
	time.Sleep(2 * time.Second)
	a.stop(t)
	startInstance(t, addrs, "c", t.TempDir(), nil)
	wave(2)
	time.Sleep(2 * time.Second)
	b.stop(t)
	wave(3)
	kafkatest.CheckCounts(t, all, kafkatest.WaitCounts(t, addrs, countsOut, len(all)))
}

func TestEngineRestoresWipedStateFromChangelog(t *testing.T) {
	addrs := newBroker(t)
	dir := t.TempDir()
	first := genEvents("first", 30, 900, 1_700_000_000_000)
	kafkatest.ProduceEvents(t, addrs, input, first)
	a := startInstance(t, addrs, "a", dir, nil)
	kafkatest.WaitCounts(t, addrs, countsOut, len(first))
	a.stop(t)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	// Counts continue from the restored state only if the changelog rebuilt it.
	second := genEvents("second", 30, 900, 1_700_000_100_000)
	kafkatest.ProduceEvents(t, addrs, input, second)
	startInstance(t, addrs, "a", dir, nil)
	all := append(first, second...)
	kafkatest.CheckCounts(t, all, kafkatest.WaitCounts(t, addrs, countsOut, len(all)))
}

// TestEngineRestartsCleanAfterReset resets the app (internal topics and
// group deleted) and restarts it on the same state directory: the input is
// read again from the start, and the counts must start again from 1, not
// continue from the state of the old history.
func TestEngineRestartsCleanAfterReset(t *testing.T) {
	addrs := newBroker(t)
	dir := t.TempDir()
	evs := genEvents("e", 10, 300, 1_700_000_000_000)
	kafkatest.ProduceEvents(t, addrs, input, evs)
	a := startInstance(t, addrs, "a", dir, nil)
	kafkatest.WaitCounts(t, addrs, countsOut, len(evs))
	a.stop(t)

	adm := kadm.NewClient(kafkatest.Client(t, addrs))
	ctx := context.Background()
	plan, err := engine.PlanReset(ctx, adm, engine.Config{Brokers: addrs, AppID: "test", InputTopic: input})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Topics) != 3 || !plan.GroupExists {
		t.Fatalf("reset plan %+v", plan)
	}
	if err := engine.Reset(ctx, adm, plan); err != nil {
		t.Fatal(err)
	}
	startInstance(t, addrs, "a", dir, nil)
	outs := kafkatest.WaitCounts(t, addrs, countsOut, 2*len(evs))
	perUser := map[string]uint64{}
	for _, o := range outs {
		perUser[o.UserID] = max(perUser[o.UserID], o.N)
	}
	for u, n := range perUser {
		if n != 30 {
			t.Errorf("user %s counted to %d, want 30 in each history", u, n)
		}
	}
}

// TestEngineStoppedWhileStartingExitsCleanly: a SIGTERM that arrives
// before the engine has joined (while it checks its topics) is a clean
// stop, not an error (processor run exits 0 either way).
func TestEngineStoppedWhileStartingExitsCleanly(t *testing.T) {
	addrs := newBroker(t)
	st, err := state.OpenPebble(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err := engine.New(engine.Config{Brokers: addrs, AppID: "test", InputTopic: input, InstanceID: "early",
		Logger: testLogger(t)}, st, []engine.Operator{&count.Counter{ID: "c", Topic: countsOut}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := eng.Run(ctx); err != nil {
		t.Fatalf("Run with a canceled context: %v, want nil", err)
	}
}

// TestEngineAtLeastOnceProcessesAndCommits runs the at-least-once mode
// against the broker: every event is counted once in a crash-free run, the
// outputs are not transactional, and the group's committed offsets cover
// the whole input, so a restart reprocesses nothing.
func TestEngineAtLeastOnceProcessesAndCommits(t *testing.T) {
	addrs := newBroker(t)
	evs := genEvents("alo", 40, 2000, 1_700_000_000_000)
	kafkatest.ProduceEvents(t, addrs, input, evs)
	atLeastOnce := func(c *engine.Config) { c.Delivery = engine.DeliveryAtLeastOnce }
	in := startInstance(t, addrs, "alo", t.TempDir(), atLeastOnce)
	kafkatest.CheckCounts(t, evs, kafkatest.WaitCounts(t, addrs, countsOut, len(evs)))
	if st := kafkatest.Transactions(t, addrs, countsOut); st.Committed != 0 {
		t.Errorf("at-least-once outputs carry %d transaction commit markers, want none", st.Committed)
	}
	in.stop(t)
	adm := kadm.NewClient(kafkatest.Client(t, addrs))
	offs, err := adm.FetchOffsets(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	offs.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != int64(len(evs)) {
		t.Errorf("committed offsets sum to %d, want %d", total, len(evs))
	}
}

func TestConfigRejectsUnknownDelivery(t *testing.T) {
	cfg := engine.Config{Brokers: []string{"x:9092"}, Delivery: "at-most-once"}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err == nil {
		t.Error("Validate accepted delivery at-most-once")
	}
}

func TestConfigFiringWindow(t *testing.T) {
	tests := []struct {
		name                string
		commit, txn, window time.Duration
		wantWindow          time.Duration
		wantErr             bool
	}{
		{"default: at least 1s", 100 * time.Millisecond, 30 * time.Second, 0, time.Second, false},
		{"default: the commit interval if longer", 3 * time.Second, 30 * time.Second, 0, 3 * time.Second, false},
		{"default: at most a quarter of the transaction timeout", 100 * time.Millisecond, 2 * time.Second, 0, 500 * time.Millisecond, false},
		{"set", 100 * time.Millisecond, 30 * time.Second, 10 * time.Millisecond, 10 * time.Millisecond, false},
		{"not below the transaction timeout", 100 * time.Millisecond, 10 * time.Second, 10 * time.Second, 10 * time.Second, true},
		{"negative", 100 * time.Millisecond, 10 * time.Second, -time.Second, -time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := engine.Config{Brokers: []string{"x:9092"}, CommitInterval: tc.commit, TransactionTimeout: tc.txn, FiringWindow: tc.window}
			cfg.EnsureDefaults()
			err := cfg.Validate()
			if cfg.FiringWindow != tc.wantWindow || (err != nil) != tc.wantErr {
				t.Errorf("FiringWindow %s, Validate: %v; want %s, error %v", cfg.FiringWindow, err, tc.wantWindow, tc.wantErr)
			}
		})
	}
}
