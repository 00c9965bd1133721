package funnel

import (
	"reflect"
	"testing"
	"time"

	"github.com/expr-lang/expr"

	"github.com/cairn-cjo/cairn/engine"
	cexpr "github.com/cairn-cjo/cairn/operators/expr"
)

const checkoutYAML = `
kind: funnel
id: checkout
window: 24h
steps:
  - {event: view_item}
  - {event: add_to_cart}
  - {event: purchase, when: 'event.props.amount > 0'}
group_by: 'event.props.channel'
bucket: day
timezone: UTC
`

func TestFunnelCounts(t *testing.T) {
	hour := 60 * minute
	web := map[string]any{"channel": "web"}
	paid := map[string]any{"amount": 10}
	tests := []struct {
		name string
		def  string
		evs  []engine.Event
		want map[string][]int64
		late int64
	}{
		{
			name: "full conversion",
			evs: []engine.Event{
				ev("u1", "view_item", base+hour, web), ev("u1", "add_to_cart", base+2*hour, nil),
				ev("u1", "purchase", base+3*hour, paid),
			},
			want: map[string][]int64{"checkout/2026-11-22/web": {1, 1, 1}},
		},
		{
			name: "step outside the window",
			evs: []engine.Event{
				ev("u1", "view_item", base, web), ev("u1", "add_to_cart", base+hour, nil),
				ev("u1", "purchase", base+24*hour+1, paid),
			},
			want: map[string][]int64{"checkout/2026-11-22/web": {1, 1, 0}},
		},
		{
			name: "window bound is inclusive",
			evs: []engine.Event{
				ev("u1", "view_item", base, web), ev("u1", "add_to_cart", base+24*hour, nil),
			},
			want: map[string][]int64{"checkout/2026-11-22/web": {1, 1, 0}},
		},
		{
			name: "steps out of order",
			evs: []engine.Event{
				ev("u1", "add_to_cart", base, nil), ev("u1", "view_item", base+hour, web),
			},
			want: map[string][]int64{"checkout/2026-11-22/web": {1, 0, 0}},
		},
		{
			name: "tie broken by log order, step 2 first",
			evs: []engine.Event{
				ev("u1", "add_to_cart", base, nil), ev("u1", "view_item", base, web),
			},
			want: map[string][]int64{"checkout/2026-11-22/web": {1, 0, 0}},
		},
		{
			name: "tie broken by log order, step 1 first",
			evs: []engine.Event{
				ev("u1", "view_item", base, web), ev("u1", "add_to_cart", base, nil),
			},
			want: map[string][]int64{"checkout/2026-11-22/web": {1, 1, 0}},
		},
		{
			name: "distinct users, not attempts",
			evs: []engine.Event{
				ev("u1", "view_item", base, web), ev("u1", "add_to_cart", base+hour, nil),
				ev("u1", "view_item", base+2*hour, web), ev("u1", "add_to_cart", base+3*hour, nil),
				ev("u2", "view_item", base+hour, web),
			},
			want: map[string][]int64{"checkout/2026-11-22/web": {2, 1, 0}},
		},
		{
			name: "a later attempt completes where the first expired",
			evs: []engine.Event{
				ev("u1", "view_item", base, web), ev("u1", "view_item", base+20*hour, web),
				ev("u1", "add_to_cart", base+25*hour, nil), ev("u1", "purchase", base+26*hour, paid),
			},
			want: map[string][]int64{"checkout/2026-11-22/web": {1, 1, 1}},
		},
		{
			name: "condition not met",
			evs: []engine.Event{
				ev("u1", "view_item", base, web), ev("u1", "add_to_cart", base+hour, nil),
				ev("u1", "purchase", base+2*hour, map[string]any{"amount": 0}),
			},
			want: map[string][]int64{"checkout/2026-11-22/web": {1, 1, 0}},
		},
		{
			name: "groups from the step-1 event",
			evs: []engine.Event{
				ev("u1", "view_item", base, web), ev("u1", "add_to_cart", base+hour, map[string]any{"channel": "app"}),
				ev("u2", "view_item", base, nil),
			},
			want: map[string][]int64{"checkout/2026-11-22/web": {1, 1, 0}, "checkout/2026-11-22/": {1, 0, 0}},
		},
		{
			name: "attempt stays in the bucket of its first step",
			evs: []engine.Event{
				ev("u1", "view_item", base-30*minute, web), ev("u1", "add_to_cart", base+30*minute, nil),
			},
			want: map[string][]int64{"checkout/2026-11-21/web": {1, 1, 0}},
		},
		{
			name: "late event within the horizon counts",
			evs: []engine.Event{
				ev("u1", "add_to_cart", base+40*hour, nil), ev("u1", "view_item", base+30*hour, web),
				ev("u1", "view_item", base, web), ev("u1", "add_to_cart", base+hour, nil),
			},
			want: map[string][]int64{"checkout/2026-11-23/web": {1, 1, 0}, "checkout/2026-11-22/web": {1, 1, 0}},
		},
		{
			name: "late event beyond the horizon is dropped",
			evs: []engine.Event{
				ev("u1", "add_to_cart", base+49*hour, nil), ev("u1", "view_item", base, web),
				ev("u2", "view_item", base, web),
			},
			want: map[string][]int64{"checkout/2026-11-22/web": {1, 0, 0}},
			late: 1,
		},
		{
			name: "one event fills one step",
			def:  "kind: funnel\nid: rep\nwindow: 1h\nsteps: [{event: a}, {event: a}, {event: a}]\n",
			evs: []engine.Event{
				ev("u1", "a", base, nil), ev("u2", "a", base, nil), ev("u2", "a", base+minute, nil),
				ev("u3", "a", base, nil), ev("u3", "a", base, nil), ev("u3", "a", base, nil),
			},
			want: map[string][]int64{"rep/2026-11-22/": {3, 2, 1}},
		},
		{
			name: "profile condition and numeric group",
			def: "kind: funnel\nid: pro\nwindow: 1h\ngroup_by: 'event.props.n'\n" +
				"steps: [{event: a}, {event: b, when: 'profile.tier == \"gold\"'}]\n",
			evs: []engine.Event{
				ev("u1", "a", base, map[string]any{"n": 7}), ev("u1", "b", base+minute, nil),
				ev("u1", engine.EventProfileSet, base+2*minute, map[string]any{"tier": "gold"}),
				ev("u1", "b", base+3*minute, nil),
				ev("u2", "a", base, map[string]any{"n": 7}), ev("u2", "b", base+minute, nil),
			},
			want: map[string][]int64{"pro/2026-11-22/7": {2, 1}},
		},
		{
			name: "time zone sets the day",
			def:  "kind: funnel\nid: tz\nwindow: 1h\ntimezone: America/New_York\nsteps: [{event: a}, {event: b}]\n",
			evs:  []engine.Event{ev("u1", "a", base+3*hour, nil), ev("u1", "b", base+6*hour, nil)},
			want: map[string][]int64{"tz/2026-11-21/": {1, 0}},
		},
		{
			name: "repeated hour of a fall-back change is one bucket",
			def:  "kind: funnel\nid: dst\nwindow: 1h\nbucket: hour\ntimezone: America/New_York\nsteps: [{event: a}, {event: b}]\n",
			evs: []engine.Event{
				ev("u1", "a", dst(5, 30), nil), ev("u1", "a", dst(6, 30), nil), ev("u1", "b", dst(6, 40), nil),
				ev("u2", "a", dst(7, 0), nil),
			},
			want: map[string][]int64{"dst/2026-11-01T01/": {1, 1}, "dst/2026-11-01T02/": {1, 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def := tt.def
			if def == "" {
				def = checkoutYAML
			}
			op := mustNew(t, def)
			rows, _ := run(t, op, tt.evs)
			if got := countsOf(rows); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("counts = %v, want %v", got, tt.want)
			}
			if got := op.LateDropped(); got != tt.late {
				t.Errorf("LateDropped = %d, want %d", got, tt.late)
			}
		})
	}
}

// dst returns 2026-11-01 at h:m UTC: the New York fall-back day (EDT until
// 06:00 UTC, EST after).
func dst(h, m int) int64 {
	return time.Date(2026, 11, 1, h, m, 0, 0, time.UTC).UnixMilli()
}

func TestNoFunnelsListsNoEvents(t *testing.T) {
	op := mustNew(t, "kind: segment\nid: x\n")
	if ev := op.Events(); ev == nil || len(ev) != 0 {
		t.Fatalf("Events() = %#v, want an empty non-nil slice", ev)
	}
}

func TestStateIsPruned(t *testing.T) {
	op := mustNew(t, "kind: funnel\nid: p\nwindow: 1h\nbucket: hour\nsteps: [{event: a}, {event: b}]\n")
	l, err := engine.NewLocal(0, op)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var sizes []int
	for i := range 500 {
		if _, err := l.Process(ev("u1", "a", base+int64(i)*10*minute, nil)); err != nil {
			t.Fatal(err)
		}
		if i == 249 || i == 499 {
			sizes = append(sizes, userBytes(t, l, "u1"))
		}
	}
	// Offsets and timestamps take a few more bytes as they grow; the event
	// count must not.
	if sizes[1] > sizes[0]+64 {
		t.Fatalf("user state grew from %d to %d bytes between events 250 and 500", sizes[0], sizes[1])
	}
}

func userBytes(t testing.TB, l *engine.Local, user string) int {
	t.Helper()
	n := 0
	err := l.ScanUser(user, OperatorName, func(sub, v []byte) error { n += len(sub) + len(v); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestGroupPropAgreesWithExpr checks that a group_by read as a property
// lookup (Definition.groupProp) gives what the expression gives.
func TestGroupPropAgreesWithExpr(t *testing.T) {
	op := mustNew(t, "kind: funnel\nid: p\nwindow: 1h\ngroup_by: ' event.props.ch '\nsteps: [{event: a}, {event: b}]\n")
	d := op.byID["p"]
	if d.groupProp != "ch" {
		t.Fatalf("groupProp = %q, want ch", d.groupProp)
	}
	for _, v := range []any{nil, "web", "", 3, 2.5, true, []any{1, "x"}, map[string]any{"k": 1}, int64(-7)} {
		for _, props := range []map[string]any{{"ch": v}, {"other": v}, nil} {
			e := &engine.Event{Name: "a", Props: props}
			want, err := expr.Run(d.groupProg, cexpr.Env(e, nil, nil))
			if err != nil {
				t.Fatal(err)
			}
			m := matcher{ev: e, vals: make([]exprVal, op.nExprs)}
			if got, _ := op.group(d, &m); got != groupText(want) {
				t.Errorf("props %v: group %q, expression %q", props, got, groupText(want))
			}
		}
	}
	for _, src := range []string{"event.props.in", "event.props.ch + 'x'", "event.name", "profile.ch"} {
		op := mustNew(t, "kind: funnel\nid: p\nwindow: 1h\ngroup_by: \""+src+"\"\nsteps: [{event: a}, {event: b}]\n")
		if g := op.byID["p"].groupProp; g != "" {
			t.Errorf("group_by %s read as property %q", src, g)
		}
	}
}
