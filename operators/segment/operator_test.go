package segment

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-cjo/cairn/engine"
)

type step struct {
	user, name string
	ts         int64
	props      map[string]any
	advance    bool // AdvanceTo(ts) instead of an event
}

func ev(user, name string, ts int64, props map[string]any) step {
	return step{user: user, name: name, ts: ts, props: props}
}

func adv(ts int64) step { return step{ts: ts, advance: true} }

func TestRules(t *testing.T) {
	const base = int64(1_700_000_000_000)
	amount := func(a int) map[string]any { return map[string]any{"amount": a} }
	tests := []struct {
		name  string
		defs  string
		steps []step
		want  map[string][]string // segment -> members at the end
	}{
		{
			name: "event all time count",
			defs: "kind: segment\nid: s\nrule: {event: {name: purchase, count: '>= 2'}}\n",
			steps: []step{
				ev("a", "purchase", base, nil), ev("b", "purchase", base+1, nil),
				ev("a", "purchase", base+100*day, nil), ev("b", "view_item", base+101*day, nil),
			},
			want: map[string][]string{"s": {"a"}},
		},
		{
			name: "event where filters",
			defs: "kind: segment\nid: s\nrule: {event: {name: purchase, where: 'event.props.amount > 20', count: 2}}\n",
			steps: []step{
				ev("a", "purchase", base, amount(30)), ev("a", "purchase", base+1, amount(10)),
				ev("b", "purchase", base+2, amount(25)), ev("b", "purchase", base+3, amount(21)),
				ev("c", "purchase", base+4, nil), ev("c", "purchase", base+5, amount(99)),
			},
			want: map[string][]string{"s": {"b"}},
		},
		{
			name: "event window counts only recent events",
			defs: "kind: segment\nid: s\nrule: {event: {name: purchase, count: '>= 2', within: 30d}}\n",
			steps: []step{
				ev("a", "purchase", base, nil), ev("a", "purchase", base+31*day, nil),
				ev("b", "purchase", base+20*day, nil), ev("b", "purchase", base+40*day, nil),
				ev("c", "purchase", base+45*day, nil),
			},
			want: map[string][]string{"s": {"b"}},
		},
		{
			name: "late event inside the window counts, outside does not",
			defs: "kind: segment\nid: s\nrule: {event: {name: purchase, count: 2, within: 10d}}\n",
			steps: []step{
				ev("a", "purchase", base+20*day, nil), ev("a", "purchase", base+15*day, nil),
				ev("b", "purchase", base+20*day, nil), ev("b", "purchase", base+9*day, nil),
			},
			want: map[string][]string{"s": {"a"}},
		},
		{
			name: "count equal and less than",
			defs: "kind: segment\nid: two\nrule: {event: {name: app_open, count: '== 2'}}\n---\n" +
				"kind: segment\nid: rare\nrule: {event: {name: app_open, count: '< 2'}}\n",
			steps: []step{
				ev("a", "app_open", base, nil), ev("a", "app_open", base+1, nil),
				ev("b", "app_open", base, nil), ev("c", "view_item", base, nil),
				ev("d", "app_open", base, nil), ev("d", "app_open", base, nil), ev("d", "app_open", base, nil),
			},
			want: map[string][]string{"two": {"a"}, "rare": {"b", "c"}},
		},
		{
			name: "rules with the same counter count each event once",
			defs: "kind: segment\nid: two\nrule: {all: [{event: {name: x, count: '>= 2'}}, {event: {name: x, count: '<= 2'}}]}\n---\n" +
				"kind: segment\nid: dup\nrule: {any: [{event: {name: x, count: 2}}, {not: {event: {name: x, count: 2}}}]}\n",
			steps: []step{
				ev("a", "x", base, nil), ev("a", "x", base+1, nil),
				ev("b", "x", base, nil),
			},
			want: map[string][]string{"two": {"a"}, "dup": {"a", "b"}},
		},
		{
			name: "profile set and unset",
			defs: "kind: segment\nid: gold\nrule: {profile: 'profile.tier == \"gold\"'}\n",
			steps: []step{
				ev("a", "$profile_set", base, map[string]any{"tier": "gold"}),
				ev("b", "$profile_set", base, map[string]any{"tier": "gold"}),
				ev("c", "$profile_set", base, map[string]any{"tier": "silver"}),
				ev("b", "$profile_unset", base+1, map[string]any{"tier": nil}),
			},
			want: map[string][]string{"gold": {"a"}},
		},
		{
			name: "all any not and references",
			defs: exampleDefs + "---\nkind: segment\nid: either\nrule: {any: [{segment: gold}, {segment: vip-list}]}\n",
			steps: []step{
				ev("a", "$profile_set", base, map[string]any{"tier": "gold"}),
				ev("b", "$profile_set", base, map[string]any{"tier": "gold"}),
				ev("b", "purchase", base+1, amount(50)), ev("b", "purchase", base+2, amount(50)),
				ev("c", "$segment_add", base+3, map[string]any{"segment": "vip-list"}),
			},
			want: map[string][]string{
				"gold": {"a", "b"}, "repeat-buyers": {"b"}, "gold-not-repeat": {"a"},
				"vip-list": {"c"}, "either": {"a", "b", "c"},
			},
		},
		{
			name: "list add remove and bad uploads",
			defs: exampleDefs,
			steps: []step{
				ev("a", "$segment_add", base, map[string]any{"segment": "vip-list"}),
				ev("b", "$segment_add", base, map[string]any{"segment": "vip-list"}),
				ev("a", "$segment_remove", base+1, map[string]any{"segment": "vip-list"}),
				ev("c", "$segment_add", base+2, map[string]any{"segment": "gold"}),
				ev("c", "$segment_add", base+2, map[string]any{"segment": "nope"}),
				ev("c", "$segment_add", base+2, nil),
			},
			want: map[string][]string{"vip-list": {"b"}, "gold": nil},
		},
		{
			name: "top-level not admits every user seen",
			defs: "kind: segment\nid: gold\nrule: {profile: 'profile.tier == \"gold\"'}\n---\n" +
				"kind: segment\nid: other\nrule: {not: {segment: gold}}\n",
			steps: []step{
				ev("a", "app_open", base, nil),
				ev("b", "$profile_set", base, map[string]any{"tier": "gold"}),
				ev("c", "$profile_set", base, map[string]any{"tier": "gold"}),
				ev("c", "$profile_set", base+1, map[string]any{"tier": "silver"}),
			},
			want: map[string][]string{"gold": {"b"}, "other": {"a", "c"}},
		},
		{
			name: "window expiry while idle",
			defs: "kind: segment\nid: s\nrule: {event: {name: purchase, count: 2, within: 1d}}\n",
			steps: []step{
				ev("a", "purchase", base, nil), ev("a", "purchase", base+1000, nil),
				ev("b", "purchase", base+day/2, nil), ev("b", "purchase", base+day/2, nil),
				adv(base + day),
			},
			want: map[string][]string{"s": {"b"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.defs)
			for _, s := range tc.steps {
				if s.advance {
					h.advance(s.ts)
				} else {
					h.send(s.user, s.name, s.ts, s.props)
				}
			}
			for seg, want := range tc.want {
				if got := h.members(seg); !reflect.DeepEqual(got, want) {
					t.Errorf("members of %s = %v, want %v", seg, got, want)
				}
			}
		})
	}
}

const exampleDefs = `kind: segment
id: repeat-buyers
rule:
  event: {name: purchase, where: 'event.props.amount > 20', count: ">= 2", within: 30d}
---
kind: segment
id: gold
rule: {profile: 'profile.tier == "gold"'}
---
kind: segment
id: gold-not-repeat
rule: {all: [{segment: gold}, {not: {segment: repeat-buyers}}]}
---
kind: segment
id: vip-list
rule: {list: true}
`

// TestWindowExpiryWithoutEvents checks that a user leaves a rolling-window
// segment when the window slides past their second purchase, with no
// further event: only the timer and AdvanceTo.
func TestWindowExpiryWithoutEvents(t *testing.T) {
	const t0 = int64(1_700_000_000_000)
	h := newHarness(t, exampleDefs)
	h.send("u1", "$profile_set", t0, map[string]any{"tier": "gold"})
	h.send("u1", "purchase", t0+day, map[string]any{"amount": 30})
	h.send("u1", "purchase", t0+5*day, map[string]any{"amount": 40})
	if got := h.members("repeat-buyers"); !reflect.DeepEqual(got, []string{"u1"}) {
		t.Fatalf("repeat-buyers = %v after two purchases", got)
	}
	if n, _ := h.l.PendingTimers(); n != 1 {
		t.Fatalf("pending timers = %d, want 1", n)
	}
	if outs := h.advance(t0 + 31*day - 1); len(outs) != 0 {
		t.Fatalf("outputs before expiry: %v", outs)
	}
	outs := h.advance(t0 + 31*day)
	if got := h.members("repeat-buyers"); len(got) != 0 {
		t.Fatalf("repeat-buyers = %v after the window slid past the first purchase", got)
	}
	if got := h.members("gold-not-repeat"); !reflect.DeepEqual(got, []string{"u1"}) {
		t.Fatalf("gold-not-repeat = %v, want the user back", got)
	}
	var keys []string
	for _, o := range outs {
		keys = append(keys, string(o.Key)+"="+string(o.Value))
	}
	want := []string{
		`segment/repeat-buyers/3={"segment":"repeat-buyers","partition":3,"size":0}`,
		`segment/gold-not-repeat/3={"segment":"gold-not-repeat","partition":3,"size":1}`,
	}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("upserts = %v, want %v", keys, want)
	}
	wantEvents := []string{
		"$segment_enter u1 gold", "$segment_enter u1 gold-not-repeat",
		"$segment_enter u1 repeat-buyers", "$segment_exit u1 gold-not-repeat",
		"$segment_exit u1 repeat-buyers", "$segment_enter u1 gold-not-repeat",
	}
	if !reflect.DeepEqual(h.rec.got, wantEvents) {
		t.Fatalf("events = %v, want %v", h.rec.got, wantEvents)
	}
	if n, _ := h.l.PendingTimers(); n != 0 {
		t.Fatalf("pending timers = %d after expiry, want 0", n)
	}
	var userKeys []string
	_ = h.l.ScanUser("u1", OperatorName, func(sub, _ []byte) error { userKeys = append(userKeys, string(sub)); return nil })
	if len(userKeys) != 2 || !strings.HasPrefix(userKeys[0], "c/repeat-buyers/") || userKeys[1] != "u" {
		t.Fatalf("user keys = %q, want the pruned counter and the record", userKeys)
	}
}

// swappable lets a test change the definitions over the same store, as a
// redeploy does.
type swappable struct{ *Operator }

func (s *swappable) Events() []string { return nil }
func (s *swappable) OnEvent(ctx *engine.Context, ev *engine.Event) error {
	names := s.Operator.Events()
	if names != nil && !slices.Contains(names, ev.Name) {
		return nil
	}
	return s.Operator.OnEvent(ctx, ev)
}

func TestRedeployEvaluatesNewSegments(t *testing.T) {
	h := newHarness(t, exampleDefs)
	sw := &swappable{Operator: h.op}
	l, err := engine.NewLocal(3, sw, h.rec)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h.l = l
	h.send("a", "$profile_set", 1, map[string]any{"tier": "gold"})
	h.send("a", EventAdd, 2, map[string]any{"segment": "vip-list"})
	h.send("b", "purchase", 3, map[string]any{"amount": 30})
	sw.Operator = mustNew(t, exampleDefs+`---
kind: segment
id: gold-vip
rule: {all: [{segment: gold}, {segment: vip-list}]}
---
kind: segment
id: bought
rule: {event: {name: purchase, count: 1}}
`)
	h.send("a", "$profile_set", 4, map[string]any{"tz": "UTC"})
	h.send("b", "$profile_set", 5, map[string]any{"tz": "UTC"})
	if got := h.members("gold-vip"); !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("gold-vip = %v after redeploy, want [a]", got)
	}
	// No backfill: b's purchase predates the rule.
	if got := h.members("bought"); len(got) != 0 {
		t.Errorf("bought = %v, want none", got)
	}
}
