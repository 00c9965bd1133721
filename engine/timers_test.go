package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
	"github.com/cairn-cjo/cairn/state"
)

// reminder sets a timer an hour after each "start" event and emits when it
// fires; it emits "started" at once so a test knows the timer is set.
type reminder struct{}

func (reminder) Name() string     { return "reminder" }
func (reminder) Events() []string { return []string{"start"} }
func (reminder) OnEvent(ctx *engine.Context, ev *engine.Event) error {
	ctx.Emit(engine.Output{Topic: "reminders", Key: []byte(ev.UserID), Value: []byte(`{"kind":"started"}`)})
	return ctx.SetTimer("remind", ev.TS+time.Hour.Milliseconds(), []byte(ev.EventID))
}
func (reminder) OnTimer(ctx *engine.Context, t *engine.Timer) error {
	v, _ := json.Marshal(map[string]any{"kind": "fired", "user": ctx.UserID(), "due": t.Due, "cause": string(t.Payload)})
	ctx.Emit(engine.Output{Topic: "reminders", Key: []byte(ctx.UserID()), Value: v})
	return nil
}
func (reminder) OutputTopics() []string { return []string{"reminders"} }

func runReminder(t *testing.T, addrs []string, dir string, idle bool) func() {
	t.Helper()
	st, err := state.OpenPebble(dir, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Brokers: addrs, AppID: "timers", InstanceID: "one",
		SessionTimeout: 3 * time.Second, DisableIdleAdvance: !idle, Logger: testLogger(t)}, st, []engine.Operator{reminder{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		st.Close()
	}
}

func kinds(t *testing.T, addrs []string, want int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out = map[string]int{}
		for _, r := range kafkatest.ReadCommitted(t, addrs, "reminders") {
			var v struct{ Kind string }
			_ = json.Unmarshal(r.Value, &v)
			out[v.Kind]++
		}
		if out["started"]+out["fired"] >= want {
			break
		}
	}
	return out
}

// TestEngineTimersSurviveLostStateAndFireOnce sets timers, loses the state
// directory, and checks that a new run restores the timers from the
// changelog and fires each exactly once when the idle partition clock
// passes them.
func TestEngineTimersSurviveLostStateAndFireOnce(t *testing.T) {
	addrs := newBroker(t)
	var evs []kafkatest.Event
	past := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for i := 0; i < 20; i++ {
		evs = append(evs, kafkatest.Event{UserID: fmt.Sprintf("u-%d", i), Event: "start", TS: past + int64(i), EventID: fmt.Sprintf("s-%d", i)})
	}
	kafkatest.ProduceEvents(t, addrs, input, evs)
	dir := t.TempDir()
	stop := runReminder(t, addrs, dir, false)
	if got := kinds(t, addrs, 20); got["started"] != 20 || got["fired"] != 0 {
		t.Fatalf("before restore: %v, want 20 started and none fired", got)
	}
	stop()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	stop = runReminder(t, addrs, dir, true)
	defer stop()
	got := kinds(t, addrs, 40)
	time.Sleep(time.Second) // a duplicate firing would show up by now
	if got = kinds(t, addrs, 40); got["fired"] != 20 {
		t.Fatalf("after restore: %v, want each of 20 timers fired exactly once", got)
	}
}
