package journey

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/defs"
)

func exampleOperator(t *testing.T) *Operator {
	t.Helper()
	var docs []defs.Doc
	for _, f := range []string{"../../examples/journeys.yaml", "../../examples/policy.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d, err := defs.Parse(f, b)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d...)
	}
	op, err := New(docs, Options{})
	if err != nil {
		t.Fatalf("examples do not load: %v", err)
	}
	return op
}

func TestExamplesLoad(t *testing.T) {
	op := exampleOperator(t)
	for _, want := range []string{"add_to_cart", "app_open", "purchase", "view_item"} {
		if !strings.Contains(strings.Join(op.Events(), ","), want) {
			t.Errorf("Events() = %v, missing %s", op.Events(), want)
		}
	}
}

func TestSumStats(t *testing.T) {
	mk := func(j string, v int, p int32, entered, current int64) []byte {
		b, _ := json.Marshal(Stats{Journey: j, Version: v, Partition: p, Entered: entered,
			Exits: map[string]int64{"goal": entered}, Goals: GoalStats{Treatment: 1, Holdout: 2},
			Nodes: map[string]*NodeStats{"a": {Entered: entered, Current: current}}})
		return b
	}
	tests := []struct {
		name   string
		values [][]byte
		want   string
		bad    bool
	}{
		{"empty", nil, "", false},
		{"two partitions of one version", [][]byte{mk("j", 1, 0, 3, 1), mk("j", 1, 1, 4, 2)},
			"j/1 parts=2 entered=7 goals={2 4} exits=7 node.a=7/3;", false},
		{"versions and journeys sorted", [][]byte{mk("k", 1, 0, 1, 0), mk("j", 2, 0, 1, 0), mk("j", 1, 0, 1, 0)},
			"j/1 parts=1 entered=1 goals={1 2} exits=1 node.a=1/0;j/2 parts=1 entered=1 goals={1 2} exits=1 node.a=1/0;k/1 parts=1 entered=1 goals={1 2} exits=1 node.a=1/0;", false},
		{"bad value", [][]byte{[]byte("{")}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SumStats(tt.values)
			if (err != nil) != tt.bad {
				t.Fatalf("err = %v", err)
			}
			var b strings.Builder
			for _, s := range got {
				fmt.Fprintf(&b, "%s/%d parts=%d entered=%d goals=%v exits=%d node.a=%d/%d;", s.Journey, s.Version,
					s.Partitions, s.Entered, s.Goals, s.Exits["goal"], s.Nodes["a"].Entered, s.Nodes["a"].Current)
			}
			if b.String() != tt.want {
				t.Errorf("got  %s\nwant %s", b.String(), tt.want)
			}
		})
	}
	if got := StatsKey("cart-abandon", 2, 7); got != "journey/cart-abandon/2/7" {
		t.Errorf("StatsKey = %s", got)
	}
}

// TestStateBounded checks that the did-history and the cap state of a user
// stay bounded however many events the user sends.
func TestStateBounded(t *testing.T) {
	docs, err := defs.Parse("b.yaml", []byte(`
kind: policy
id: p
frequency_caps: [{channel: push, max: 3, per: 1h}]
---
kind: journey
id: j
entry: {event: go, reentry: after_exit, when: {did: view, within: 10m, count: ">= 0"}}
nodes:
  a: {action: {channel: push, template: t}}
`))
	if err != nil {
		t.Fatal(err)
	}
	op, err := New(docs, Options{MaxHistory: 5})
	if err != nil {
		t.Fatal(err)
	}
	l, err := engine.NewLocal(0, op)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ts := int64(1_700_000_000_000)
	for i := 0; i < 200; i++ {
		ts += 1000
		for _, name := range []string{"view", "go"} {
			if _, err := l.Process(engine.Event{UserID: "u", Name: name, TS: ts}); err != nil {
				t.Fatal(err)
			}
		}
	}
	v, err := DescribeUser(func(fn func(sub, value []byte) error) error { return l.ScanUser("u", OperatorName, fn) })
	if err != nil {
		t.Fatal(err)
	}
	if n := v.History["view"]; n != 5 {
		t.Errorf("history of view holds %d events, want MaxHistory=5", n)
	}
	if n := len(v.RecentSends["push"]); n != 3 {
		t.Errorf("cap state holds %d sends, want the cap's max 3", n)
	}
	if len(v.Journeys) != 1 || v.Journeys[0].EntrySeq != 200 {
		t.Errorf("journeys = %+v, want one with 200 entries", v.Journeys)
	}
}

// TestExamplesDemo checks the promise of examples/journeys.yaml: with the
// demo's events, actions appear within 30 seconds of event time.
func TestExamplesDemo(t *testing.T) {
	l, err := engine.NewLocal(0, exampleOperator(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t0 := int64(1_772_409_600_000) // 2026-03-02T00:00:00Z: inside quiet hours in UTC
	var actions []string
	collect := func(outs []engine.Output, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range outs {
			if strings.HasPrefix(o.Topic, "actions.") {
				actions = append(actions, o.Topic)
			}
		}
	}
	for i := 0; i < 10; i++ {
		u := fmt.Sprintf("demo-%d", i)
		collect(l.Process(engine.Event{UserID: u, Name: "$profile_set", TS: t0, Props: map[string]any{"tier": "gold"}}))
		collect(l.Process(engine.Event{UserID: u, Name: "app_open", TS: t0 + 1000}))
		collect(l.Process(engine.Event{UserID: u, Name: "add_to_cart", TS: t0 + 2000, Props: map[string]any{"sku": "A"}}))
		collect(l.Process(engine.Event{UserID: u, Name: "view_item", TS: t0 + 3000}))
	}
	collect(l.AdvanceTo(t0 + 30_000))
	pushes := 0
	for _, a := range actions {
		if a == "actions.push" {
			pushes++
		}
	}
	if pushes == 0 {
		t.Fatalf("no push action within 30 s of the demo's events; got %v", actions)
	}
}
