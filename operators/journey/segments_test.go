package journey

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/defs"
	"github.com/cairn-cjo/cairn/operators/segment"
)

// testSegments are the segments of the tests that run both operators.
const testSegments = `
kind: segment
id: gold
rule: {profile: 'profile.tier == "gold"'}
---
kind: segment
id: vip
rule: {list: true}
`

// segOperator returns a segment operator over testSegments.
func segOperator(t testing.TB) *segment.Operator {
	t.Helper()
	docs, err := defs.Parse("segments.yaml", []byte(testSegments))
	if err != nil {
		t.Fatal(err)
	}
	sg, err := segment.New(docs, segment.Options{})
	if err != nil {
		t.Fatalf("loading segments: %v", err)
	}
	return sg
}

// journeyOp loads journeys with testSegments as the known segments.
func journeyOp(t testing.TB, journeys string, opts Options) *Operator {
	t.Helper()
	docs, err := defs.Parse("j.yaml", []byte(journeys))
	if err != nil {
		t.Fatal(err)
	}
	opts.Segments = segOperator(t).IDs()
	op, err := New(docs, opts)
	if err != nil {
		t.Fatalf("loading journeys: %v", err)
	}
	return op
}

// localWith runs a segment operator over testSegments and op, registered
// in the registry's order (segment first).
func localWith(t testing.TB, op engine.Operator) *engine.Local {
	t.Helper()
	l, err := engine.NewLocal(1, segOperator(t), op)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// segLocal runs testSegments and journeys.
func segLocal(t testing.TB, journeys string, opts Options) (*engine.Local, *Operator) {
	t.Helper()
	op := journeyOp(t, journeys, opts)
	return localWith(t, op), op
}

// sends returns "channel template user" for every action in outs.
func sends(outs []engine.Output) []string {
	var got []string
	for _, o := range outs {
		if ch, ok := strings.CutPrefix(o.Topic, "actions."); ok && ch != "suppressed" {
			var a Action
			if err := json.Unmarshal(o.Value, &a); err == nil {
				got = append(got, ch+" "+a.Template+" "+a.UserID)
			}
		}
	}
	return got
}

func process(t testing.TB, l *engine.Local, user, name string, ts int64, props map[string]any) []engine.Output {
	t.Helper()
	outs, err := l.Process(engine.Event{UserID: user, Name: name, TS: ts, Props: props})
	if err != nil {
		t.Fatalf("processing %s of %s: %v", name, user, err)
	}
	return outs
}

func tier(v string) map[string]any { return map[string]any{"tier": v} }

func TestSegmentValidation(t *testing.T) {
	head := "kind: journey\nid: j\n"
	node := "nodes:\n  a: {action: {channel: push, template: t}}\n"
	tests := []struct {
		name  string
		src   string
		known []string // Options.Segments
		want  []string // substrings, one per expected error, in order
	}{
		{"every form valid", head + `entry: {segment: {enter: gold}, when: {all: [{in_segment: gold}, {not: {in_segment: vip}}]}}
nodes:
  w: {wait: {for_event: buy, where: {in_segment: vip}, timeout: 1h}, next: b}
  b:
    branch:
      - when: {any: [{in_segment: gold}, {did: buy, since: entry}]}
        next: a
  a: {action: {channel: push, template: t}}
`, []string{"gold", "vip"}, nil},
		{"exit form and schedule valid", head + "entry: {segment: {exit: vip}}\n" + node + "---\n" + strings.Replace(head, "id: j", "id: k", 1) +
			"entry: {schedule: {cron: '0 9 * * *', timezone: Asia/Shanghai, segment: gold}, reentry: after_exit}\n" + node,
			[]string{"gold", "vip"}, nil},
		{"unknown ids unchecked without a list", head + "entry: {segment: {enter: anything}, when: {in_segment: other}}\n" + node, nil, nil},
		{"unknown segment on entry", head + "entry: {segment: {enter: gld}}\n" + node, []string{"gold"},
			[]string{`j.yaml:3: entry.segment.enter: unknown segment "gld"`}},
		{"unknown segment in nested conditions", head + `entry: {event: go, when: {all: [{in_segment: gold}, {not: {in_segment: silver}}]}}
nodes:
  w: {wait: {for_event: buy, where: {in_segment: bronze}}, next: b}
  b:
    branch:
      - when: {in_segment: platinum}
        next: a
  a: {action: {channel: push, template: t}}
`, []string{"gold"}, []string{
			`j.yaml:3: entry.when.all[1].not.in_segment: unknown segment "silver"`,
			`j.yaml:5: nodes.w.wait.where.in_segment: unknown segment "bronze"`,
			`j.yaml:8: nodes.b.branch[0].when.in_segment: unknown segment "platinum"`}},
		{"bad segment id", head + "entry: {segment: {exit: 'no spaces'}}\n" + node, nil,
			[]string{`entry.segment.exit: bad segment id "no spaces"`}},
		{"two entry forms", head + "entry: {event: go, segment: {enter: gold}}\n" + node, nil,
			[]string{"j.yaml:3: entry: want exactly one of event, segment or schedule"}},
		{"no entry form", head + "entry: {reentry: never}\n" + node, nil,
			[]string{"entry: want exactly one of event, segment or schedule"}},
		{"enter and exit", head + "entry: {segment: {enter: gold, exit: gold}}\n" + node, nil,
			[]string{"entry.segment: want exactly one of enter or exit"}},
		{"segment entry not a mapping", head + "entry: {segment: gold}\n" + node, nil,
			[]string{"entry.segment: must be a mapping"}},
		{"unknown segment entry field", head + "entry: {segment: {join: gold}}\n" + node, nil,
			[]string{"entry.segment.join: unknown field", "entry.segment: want exactly one of enter or exit"}},
		{"in_segment with did fields", head + "entry: {event: go, when: {in_segment: gold, within: 1h}}\n" + node, nil,
			[]string{"entry.when.within: only for did conditions"}},
		{"in_segment with did", head + "entry: {event: go, when: {in_segment: gold, did: x, since: entry}}\n" + node, nil,
			[]string{"entry.when: want exactly one of did, all, any, not or in_segment"}},
		{"bad cron", head + "entry: {schedule: {cron: '0 25 * * *', segment: gold}}\n" + node, nil,
			[]string{`j.yaml:3: entry.schedule.cron: bad cron expression "0 25 * * *"`}},
		{"unknown zone", head + "entry: {schedule: {cron: '0 9 * * *', timezone: Mars/Base, segment: gold}}\n" + node, nil,
			[]string{`entry.schedule.timezone: unknown time zone "Mars/Base"`}},
		{"local zone", head + "entry: {schedule: {cron: '0 9 * * *', timezone: Local, segment: gold}}\n" + node, nil,
			[]string{`entry.schedule.timezone: unknown time zone "Local"`}},
		{"every", head + "entry: {schedule: {cron: '@every 1h', segment: gold}}\n" + node, nil,
			[]string{"entry.schedule.cron: @every is not supported"}},
		{"zone in cron", head + "entry: {schedule: {cron: 'CRON_TZ=Asia/Tokyo 0 9 * * *', segment: gold}}\n" + node, nil,
			[]string{"entry.schedule.cron: put the time zone in timezone"}},
		{"never fires", head + "entry: {schedule: {cron: '0 0 30 2 *', segment: gold}}\n" + node, nil,
			[]string{"entry.schedule.cron: the schedule has no tick"}},
		{"schedule without segment or cron", head + "entry: {schedule: {timezone: UTC}}\n" + node, nil,
			[]string{"entry.schedule.cron: missing", "entry.schedule.segment: missing"}},
		{"unknown schedule segment and field", head + "entry: {schedule: {cron: '@daily', segment: gld, every: 1d}}\n" + node,
			[]string{"gold"}, []string{"entry.schedule.every: unknown field", `entry.schedule.segment: unknown segment "gld"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := defs.Parse("j.yaml", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			_, err = New(docs, Options{Segments: tt.known})
			checkErrors(t, err, tt.want)
		})
	}
}

// checkErrors checks that err holds one *defs.Error per want, in order,
// each containing its want.
func checkErrors(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	errs := err.(interface{ Unwrap() []error }).Unwrap()
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, e := range errs {
		var de *defs.Error
		if !errors.As(e, &de) {
			t.Errorf("error %d is %T, want *defs.Error", i, e)
		}
		if !strings.Contains(e.Error(), want[i]) {
			t.Errorf("error %d = %q, want it to contain %q", i, e, want[i])
		}
	}
}

func TestSegmentEntryIndex(t *testing.T) {
	_, op := segLocal(t, `
kind: journey
id: hello
entry: {segment: {enter: gold}}
exit_on: [purchase]
nodes:
  a: {action: {channel: push, template: t}}
---
kind: journey
id: bye
entry: {segment: {exit: gold}}
nodes:
  a: {action: {channel: push, template: t}}
`, Options{})
	if got, want := strings.Join(op.Events(), ","), "$segment_enter,$segment_exit,purchase"; got != want {
		t.Errorf("Events() = %s, want %s", got, want)
	}
	gold := &engine.Event{Name: segment.EventEnter, Props: map[string]any{"segment": "gold"}}
	vip := &engine.Event{Name: segment.EventEnter, Props: map[string]any{"segment": "vip"}}
	if got := op.journeysFor(gold); !slices.Equal(got, []string{"hello"}) {
		t.Errorf("journeys for entering gold = %v, want [hello]", got)
	}
	if got := op.journeysFor(vip); len(got) != 0 {
		t.Errorf("journeys for entering vip = %v, want none: its enter event must cost no record read", got)
	}
}

func TestSegmentEntry(t *testing.T) {
	l, _ := segLocal(t, `
kind: journey
id: hello-gold
entry: {segment: {enter: gold}, reentry: after_exit}
nodes:
  hi: {action: {channel: push, template: "hi", params: {seg: "{{ event.props.segment }}"}}}
---
kind: journey
id: bye-gold
entry: {segment: {exit: gold}, reentry: after_exit}
nodes:
  bye: {action: {channel: email, template: bye}}
---
kind: journey
id: listed
entry: {segment: {enter: vip}}
nodes:
  hey: {action: {channel: push, template: listed}}
`, Options{})
	const t0 = int64(1_772_409_600_000)
	steps := []struct {
		user, event string
		props       map[string]any
		want        []string
	}{
		{"a", "$profile_set", tier("gold"), []string{"push hi a"}},
		{"a", "$profile_set", map[string]any{"city": "x"}, nil}, // still gold: no new entry
		{"b", "$profile_set", tier("silver"), nil},
		{"a", "$profile_set", tier("silver"), []string{"email bye a"}},
		{"a", "$profile_set", tier("gold"), []string{"push hi a"}},
		{"b", "$segment_add", map[string]any{"segment": "vip"}, []string{"push listed b"}},
		{"b", "$segment_remove", map[string]any{"segment": "vip"}, nil},
	}
	for i, s := range steps {
		got := sends(process(t, l, s.user, s.event, t0+int64(i)*1000, s.props))
		if !slices.Equal(got, s.want) {
			t.Errorf("step %d (%s %s %v): sends %q, want %q", i+1, s.user, s.event, s.props, got, s.want)
		}
	}
}

func TestInSegmentBranch(t *testing.T) {
	l, _ := segLocal(t, `
kind: journey
id: offer
entry: {event: add_to_cart}
nodes:
  check:
    branch:
      - when: {in_segment: gold}
        next: gold
      - when: {all: [{not: {in_segment: gold}}, {in_segment: vip}]}
        next: listed
      - else: plain
  gold: {action: {channel: push, template: gold}}
  listed: {action: {channel: push, template: listed}}
  plain: {action: {channel: push, template: plain}}
---
kind: journey
id: same-event
entry: {event: $profile_set, when: {in_segment: gold}}
nodes:
  hi: {action: {channel: push, template: now-gold}}
`, Options{})
	const t0 = int64(1_772_409_600_000)
	// The segment operator runs first: the entry condition sees the
	// membership that this very event created.
	if got := sends(process(t, l, "a", "$profile_set", t0, tier("gold"))); !slices.Equal(got, []string{"push now-gold a"}) {
		t.Errorf("entry on the event that made a gold: %q", got)
	}
	process(t, l, "b", "$segment_add", t0+1, map[string]any{"segment": "vip"})
	process(t, l, "c", "$profile_set", t0+2, tier("silver"))
	for i, u := range []string{"a", "b", "c", "d"} {
		got := sends(process(t, l, u, "add_to_cart", t0+10+int64(i), nil))
		want := []string{"push " + map[string]string{"a": "gold", "b": "listed", "c": "plain", "d": "plain"}[u] + " " + u}
		if !slices.Equal(got, want) {
			t.Errorf("user %s: sends %q, want %q", u, got, want)
		}
	}
}

// TestExampleSegmentJourney runs examples/journeys.yaml with the demo's
// segments: a user who becomes gold gets the gold-welcome push.
func TestExampleSegmentJourney(t *testing.T) {
	var sdocs, jdocs []defs.Doc
	for _, f := range []string{"../../examples/segments.yaml", "../../examples/journeys.yaml", "../../examples/policy.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d, err := defs.Parse(f, b)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(f, "segments") {
			sdocs = append(sdocs, d...)
		} else {
			jdocs = append(jdocs, d...)
		}
	}
	sg, err := segment.New(sdocs, segment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	op, err := New(jdocs, Options{Segments: sg.IDs()})
	if err != nil {
		t.Fatalf("examples do not load against the example segments: %v", err)
	}
	l, err := engine.NewLocal(0, sg, op)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const noon = int64(1_772_452_800_000) // 2026-03-02T12:00:00Z: outside quiet hours in UTC
	got := sends(process(t, l, "demo-1", "$profile_set", noon, map[string]any{"tier": "gold", "tz": "UTC"}))
	if !slices.Contains(got, "push gold-welcome demo-1") {
		t.Errorf("becoming gold sent %q, want the gold-welcome push", got)
	}
}
