package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

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
	cfg := engine.Config{
		Brokers: addrs, AppID: "test", InputTopic: input, InstanceID: id,
		SessionTimeout: 3 * time.Second, TransactionTimeout: 10 * time.Second,
		Logger: testLogger(t).With("instance", id),
	}
	if mut != nil {
		mut(&cfg)
	}
	eng, err := engine.New(cfg, st, []engine.Operator{&count.Counter{ID: "c", Topic: countsOut}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{cancel: cancel, done: make(chan error, 1), store: st}
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

// waitCounts waits until topic holds want committed records and returns them.
func waitCounts(t *testing.T, addrs []string, want int) []count.Record {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		rs := kafkatest.ReadCommitted(t, addrs, countsOut)
		if len(rs) >= want || time.Now().After(deadline) {
			out := make([]count.Record, len(rs))
			for i, r := range rs {
				if err := json.Unmarshal(r.Value, &out[i]); err != nil {
					t.Fatalf("decoding output at %d: %v", r.Offset, err)
				}
			}
			return out
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkExactlyOnce asserts that outputs hold, for every user, exactly one
// record per input event, numbered 1..k in the user's event order.
func checkExactlyOnce(t *testing.T, evs []kafkatest.Event, outs []count.Record) {
	t.Helper()
	want := map[string][]string{}
	for _, ev := range evs {
		want[ev.UserID] = append(want[ev.UserID], ev.EventID)
	}
	got := map[string]map[uint64]string{}
	dups := 0
	for _, o := range outs {
		if got[o.UserID] == nil {
			got[o.UserID] = map[uint64]string{}
		}
		if _, ok := got[o.UserID][o.N]; ok {
			dups++
		}
		got[o.UserID][o.N] = o.Cause
	}
	lost := 0
	for u, ids := range want {
		for i, id := range ids {
			c, ok := got[u][uint64(i+1)]
			if !ok {
				lost++
				continue
			}
			if c != id {
				t.Errorf("user %s count %d: caused by %s, want %s", u, i+1, c, id)
			}
		}
	}
	if dups > 0 || lost > 0 || len(outs) != len(evs) {
		t.Fatalf("exactly-once violated: %d outputs for %d events, %d duplicated, %d lost", len(outs), len(evs), dups, lost)
	}
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
	startInstance(t, addrs, "one", t.TempDir(), nil)
	checkExactlyOnce(t, evs, waitCounts(t, addrs, len(evs)))
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
	checkExactlyOnce(t, all, waitCounts(t, addrs, len(all)))
}

func TestEngineRestoresWipedStateFromChangelog(t *testing.T) {
	addrs := newBroker(t)
	dir := t.TempDir()
	first := genEvents("first", 30, 900, 1_700_000_000_000)
	kafkatest.ProduceEvents(t, addrs, input, first)
	a := startInstance(t, addrs, "a", dir, nil)
	waitCounts(t, addrs, len(first))
	a.stop(t)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	// Counts continue from the restored state only if the changelog rebuilt it.
	second := genEvents("second", 30, 900, 1_700_000_100_000)
	kafkatest.ProduceEvents(t, addrs, input, second)
	startInstance(t, addrs, "a", dir, nil)
	all := append(first, second...)
	checkExactlyOnce(t, all, waitCounts(t, addrs, len(all)))
}
