package funnel

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/broker"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
	"github.com/cairn-cjo/cairn/state"
)

// TestManyEventsPerTransactionMatchReference runs random logs through the
// engine and the embedded broker, where a transaction holds many events of
// a user (the record is read once, kept decoded in the transaction's
// buffer and written by Flush), and compares the committed aggregates with
// the brute-force reference. engine.Local, which the other tests use, makes
// every event its own transaction.
func TestManyEventsPerTransactionMatchReference(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and an engine")
	}
	fs, evs := combinedCases(12)
	var src []string
	for _, f := range fs {
		src = append(src, f.yaml())
	}
	op := mustNew(t, strings.Join(src, "---\n"))
	addrs := runThroughEngine(t, op, evs, 0)

	rows := map[string]Row{}
	for _, r := range kafkatest.ReadCommitted(t, addrs, DefaultAggregatesTopic) {
		row, err := DecodeRow(r.Key, r.Value)
		if err != nil {
			t.Fatal(err)
		}
		rows[string(r.Key)] = row
	}
	want, late := reference(fs, evs)
	if got := countsOf(rows); !reflect.DeepEqual(got, want) {
		t.Fatalf("engine counts differ from the reference:\n got  %v\n want %v", got, want)
	}
	if op.LateDropped() != late {
		t.Fatalf("LateDropped = %d, want %d", op.LateDropped(), late)
	}
	checkRecordsAsLocal(t, addrs, strings.Join(src, "---\n"), evs)
}

// TestRecordsDoNotDependOnTransactions runs, through the engine with
// transactions of a few events, logs where the users' shared logs are
// pruned and a quiet funnel's events move into its part, and compares the
// records with those of one-event transactions. The logs end with busy
// events: a late event at the end would prune every record the same way.
func TestRecordsDoNotDependOnTransactions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and an engine")
	}
	fs, evs := combine(8, func(seed int) ([]refFunnel, []engine.Event) {
		return quietCase(rand.New(rand.NewPCG(uint64(seed), 19)), 60, 0)
	})
	var src []string
	for _, f := range fs {
		src = append(src, f.yaml())
	}
	addrs := runThroughEngine(t, mustNew(t, strings.Join(src, "---\n")), evs, 5)
	checkRecordsAsLocal(t, addrs, strings.Join(src, "---\n"), evs)
}

// runThroughEngine starts a broker, produces evs to "events" and runs op in
// an engine until all are committed (runEngineUntilCommitted); it returns
// the broker's addresses.
func runThroughEngine(t *testing.T, op *Operator, evs []engine.Event, commitRecords int) []string {
	t.Helper()
	b := kafkatest.Start(t, broker.Options{})
	addrs := b.Addrs()
	kafkatest.CreateTopic(t, addrs, "events", 1, nil)
	wire := make([]kafkatest.Event, len(evs))
	for i, e := range evs {
		wire[i] = kafkatest.Event{UserID: e.UserID, Event: e.Name, TS: e.TS, Props: e.Props, EventID: fmt.Sprint(i)}
	}
	kafkatest.ProduceEvents(t, addrs, "events", wire)
	runEngineUntilCommitted(t, addrs, op, int64(len(evs)), commitRecords)
	return addrs
}

// checkRecordsAsLocal compares the users' records in the changelog, written
// once per transaction of many events, with those of engine.Local, where
// every event is its own transaction: a record must be a function of the
// user's events, wherever transactions end (restore digests rely on it).
func checkRecordsAsLocal(t *testing.T, addrs []string, defs string, evs []engine.Event) {
	t.Helper()
	got := map[string]string{}
	for _, r := range kafkatest.ReadCommitted(t, addrs, "funnels-changelog") {
		k, err := state.DecodeKey(r.Key)
		if err != nil {
			t.Fatal(err)
		}
		if k.Tag == state.TagUser && k.Operator == OperatorName {
			got[k.User+"/"+string(k.Sub)] = string(r.Value)
		}
	}
	l, err := engine.NewLocal(0, mustNew(t, defs))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	users := map[string]bool{}
	for _, e := range evs {
		if _, err := l.Process(e); err != nil {
			t.Fatal(err)
		}
		users[e.UserID] = true
	}
	want := map[string]string{}
	for u := range users {
		err := l.ScanUser(u, OperatorName, func(sub, v []byte) error { want[u+"/"+string(sub)] = string(v); return nil })
		if err != nil {
			t.Fatal(err)
		}
	}
	differ := 0
	for k, v := range want {
		if got[k] != v {
			differ++
		}
	}
	if len(want) == 0 || len(got) != len(want) || differ > 0 {
		t.Fatalf("%d of %d records differ from one-event transactions (%d in the changelog)", differ, len(want), len(got))
	}
}

// combinedCases joins n random reference cases into one: funnel ids and
// users get the case's number, so every funnel sees every case's events.
func combinedCases(n int) ([]refFunnel, []engine.Event) {
	return combine(n, func(seed int) ([]refFunnel, []engine.Event) {
		return randomCase(rand.New(rand.NewPCG(uint64(seed), 11)))
	})
}

// combine joins the n cases gen returns for seeds 0..n-1 (combinedCases).
func combine(n int, gen func(seed int) ([]refFunnel, []engine.Event)) ([]refFunnel, []engine.Event) {
	var fs []refFunnel
	var evs []engine.Event
	for seed := range n {
		cfs, cevs := gen(seed)
		for _, f := range cfs {
			f.id = fmt.Sprintf("s%d-%s", seed, f.id)
			fs = append(fs, f)
		}
		for _, e := range cevs {
			e.UserID = fmt.Sprintf("s%d-%s", seed, e.UserID)
			evs = append(evs, e)
		}
	}
	return fs, evs
}

// runEngineUntilCommitted runs op in an engine until the group has committed
// offset n of partition 0 of "events", then stops it. commitRecords, if
// not 0, is the engine's CommitRecords and MaxPollRecords.
func runEngineUntilCommitted(t *testing.T, addrs []string, op *Operator, n int64, commitRecords int) {
	t.Helper()
	st, err := state.OpenPebble(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := engine.Config{Brokers: addrs, AppID: "funnels", InputTopic: "events", InstanceID: "one",
		SessionTimeout: 3 * time.Second, TransactionTimeout: 10 * time.Second,
		CommitRecords: commitRecords, MaxPollRecords: commitRecords,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	eng, err := engine.New(cfg, st, []engine.Operator{op})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine: %v", err)
		}
	}()
	adm := kadm.NewClient(kafkatest.Client(t, addrs))
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		offs, err := adm.FetchOffsets(context.Background(), "funnels")
		if o, ok := offs.Lookup("events", 0); err == nil && ok && o.At == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the engine did not commit offset %d of events within a minute", n)
		}
	}
}
