package engine_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
	"github.com/cairn-cjo/cairn/operators/count"
	"github.com/cairn-cjo/cairn/state"
)

const firedOut = "fired"

// touchy fails on events whose props.fail is "always", and on the first
// try of those whose props.fail is "once"; on an "arm" event it sets a
// timer whose payload is props.timer, and fails every firing of a "bad"
// one. Good firings produce a record to firedOut.
type touchy struct {
	mu    sync.Mutex
	tried map[string]bool
}

func (o *touchy) Name() string     { return "touchy" }
func (o *touchy) Events() []string { return nil }

func (o *touchy) OnEvent(ctx *engine.Context, ev *engine.Event) error {
	switch ev.Props["fail"] {
	case "always":
		return errors.New("cannot handle this event")
	case "once":
		o.mu.Lock()
		first := !o.tried[ev.EventID]
		o.tried[ev.EventID] = true
		o.mu.Unlock()
		if first {
			return errors.New("passing trouble")
		}
	}
	if ev.Name == "arm" {
		return ctx.SetTimer(ev.EventID, ev.TS+1000, []byte(fmt.Sprint(ev.Props["timer"])))
	}
	return nil
}

func (o *touchy) OnTimer(ctx *engine.Context, t *engine.Timer) error {
	if string(t.Payload) == "bad" {
		return errors.New("cannot handle this timer")
	}
	ctx.Emit(engine.Output{Topic: firedOut, Key: []byte(ctx.UserID()), Value: []byte(t.ID)})
	return nil
}

// TestOperatorFailuresAreDeadLetteredAndThePartitionGoesOn: an operator
// error aborts the transaction; the record (or timer) is tried once more
// and, failing again, goes to the DLQ with reason operator_error (or
// timer_error), exactly once, while everything else is processed exactly
// once, in order. A failure that passes is retried and processed.
func TestOperatorFailuresAreDeadLetteredAndThePartitionGoesOn(t *testing.T) {
	addrs := newBroker(t)
	kafkatest.CreateTopic(t, addrs, firedOut, 1, nil)
	evs := genEvents("p", 30, 600, 1_700_000_000_000)
	var poison, armedGood, armedBad []string
	for i := range evs {
		switch i % 50 {
		case 7:
			evs[i].Props = map[string]any{"fail": "always"}
			poison = append(poison, evs[i].EventID)
		case 19:
			evs[i].Props = map[string]any{"fail": "once"}
		case 23:
			evs[i].Event, evs[i].Props = "arm", map[string]any{"timer": "good"}
			armedGood = append(armedGood, evs[i].EventID)
		case 31:
			evs[i].Event, evs[i].Props = "arm", map[string]any{"timer": "bad"}
			armedBad = append(armedBad, evs[i].EventID)
		}
	}
	kafkatest.ProduceEvents(t, addrs, input, evs)
	st, err := state.OpenPebble(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ops := []engine.Operator{&touchy{tried: map[string]bool{}}, &count.Counter{ID: "c", Topic: countsOut}}
	startInstanceWith(t, addrs, "one", st, ops, nil)

	var counted []kafkatest.Event
	for _, ev := range evs {
		if ev.Props["fail"] != "always" {
			counted = append(counted, ev)
		}
	}
	kafkatest.CheckCounts(t, counted, kafkatest.WaitCounts(t, addrs, countsOut, len(counted)))

	dlq := kafkatest.WaitRecords(t, addrs, input+".dlq", len(poison)+len(armedBad))
	got := map[string][]string{} // reason -> event ids or timer ids
	for _, r := range dlq {
		h := headers(r)
		switch h["cairn.reason"] {
		case engine.ReasonOperator:
			var ev kafkatest.Event
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				t.Fatalf("dead letter value %q: %v", r.Value, err)
			}
			got[engine.ReasonOperator] = append(got[engine.ReasonOperator], ev.EventID)
			if !strings.Contains(h["cairn.error"], "cannot handle this event") || h["cairn.source.offset"] == "" {
				t.Errorf("operator dead letter headers %v", h)
			}
		case engine.ReasonTimer:
			got[engine.ReasonTimer] = append(got[engine.ReasonTimer], h["cairn.timer.id"])
			if h["cairn.timer.operator"] != "touchy" || string(r.Value) != "bad" || !strings.Contains(h["cairn.error"], "cannot handle this timer") {
				t.Errorf("timer dead letter %q headers %v", r.Value, h)
			}
		default:
			t.Errorf("dead letter with reason %q", h["cairn.reason"])
		}
	}
	sameSet(t, "events dead-lettered", got[engine.ReasonOperator], poison)
	sameSet(t, "timers dead-lettered", got[engine.ReasonTimer], armedBad)
	var fired []string
	for _, r := range kafkatest.WaitRecords(t, addrs, firedOut, len(armedGood)) {
		fired = append(fired, string(r.Value))
	}
	sameSet(t, "timers fired", fired, armedGood)
}

func sameSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	for _, w := range want {
		if seen[w] != 1 {
			t.Errorf("%s: %s seen %d times, want once", what, w, seen[w])
		}
		delete(seen, w)
	}
	for g := range seen {
		t.Errorf("%s: unexpected %s", what, g)
	}
	if len(want) == 0 {
		t.Fatalf("%s: the test wants none", what)
	}
}
