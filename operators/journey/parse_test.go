package journey

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cairn-cjo/cairn/operators/defs"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func load(t *testing.T, src string) (*Operator, error) {
	t.Helper()
	docs, err := defs.Parse("j.yaml", []byte(src))
	if err != nil {
		t.Fatalf("splitting documents: %v", err)
	}
	return New(docs, Options{})
}

const validJourney = `
kind: journey
id: ok
entry: {event: go}
nodes:
  a: {wait: 1m, next: b}
  b: {action: {channel: push, template: t}}
`

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // substrings, one per expected error, in order
	}{
		{"valid", validJourney, nil},
		{"other kinds ignored", validJourney + "---\nkind: segment\nid: Whatever\n", nil},
		{"unknown node", `
kind: journey
id: j
entry: {event: go}
nodes:
  a: {wait: 1m, next: nowhere}
`, []string{`j.yaml:6: nodes.a: unknown node "nowhere"`}},
		{"unknown start", `
kind: journey
id: j
start: zz
entry: {event: go}
nodes:
  a: {exit: true}
`, []string{`j.yaml:4: start: unknown node "zz"`}},
		{"cycle", `
kind: journey
id: j
entry: {event: go}
nodes:
  a: {wait: 1m, next: b}
  b: {wait: 1m, next: a}
`, []string{"nodes.b: cycle: a -> b -> a"}},
		{"unreachable", `
kind: journey
id: j
entry: {event: go}
nodes:
  a: {wait: 1m}
  b: {exit: true}
`, []string{`j.yaml:7: nodes.b: unreachable node`}},
		{"split weights", `
kind: journey
id: j
entry: {event: go}
nodes:
  s:
    split:
      - {weight: 50, next: a}
      - {weight: 40, next: a}
  a: {exit: true}
`, []string{"j.yaml:8: nodes.s.split: weights sum to 90, want 100"}},
		{"bad durations", `
kind: journey
id: j
entry: {event: go, reentry: soon}
exit_on: [{event: x, within: 1h}]
goal: {event: buy, within: 3x, colour: red}
nodes:
  a: {wait: -5s, next: b}
  b: {wait: {for_event: x, timeout: 0s}}
`, []string{"entry.reentry: want never, after_exit or a duration", "exit_on[0].within: unknown field", "goal.colour: unknown field", "goal.within: bad duration", "nodes.a.wait: bad duration", "nodes.b.wait.timeout: bad duration"}},
		{"bad expressions", `
kind: journey
id: j
entry: {event: go, when: "event.props.x >"}
nodes:
  a:
    branch:
      - when: {all: ["1 +", {did: x, within: 1h, where: "(("}]}
        next: b
  b: {action: {channel: push, template: t, params: {p: "{{ 1 + }}"}}}
`, []string{"entry.when: compiling expression", "branch[0].when.all[0]: compiling expression", "branch[0].when.all[1].where: compiling expression", "params.p: compiling template"}},
		{"bad ids", `
kind: journey
id: Bad_Id
entry: {event: go}
nodes:
  Node1: {action: {channel: "Push!", template: t}}
`, []string{"id: bad id \"Bad_Id\"", "nodes.Node1: bad id", "action.channel: bad id"}},
		{"structural", `
kind: journey
id: j
entry: {event: ""}
holdout: 20
colour: blue
nodes:
  a: {wait: 1m, exit: true}
`, []string{"colour: unknown field", "entry.event: must not be empty", "holdout: a holdout needs goal.within", "nodes.a: want exactly one of"}},
		{"did needs a window", `
kind: journey
id: j
entry: {event: go, when: {did: x, count: "about 3"}}
nodes:
  a: {exit: true}
`, []string{"entry.when: a did condition needs exactly one of", "entry.when.count: want a comparison"}},
		{"duplicate version", validJourney + "---\n" + validJourney, []string{`version: journey "ok" version 1 is already defined in j.yaml`}},
		{"bad policy", `
kind: policy
id: p
frequency_caps: [{channel: push, max: 0, per: 1h}, {channel: "*", max: 2, per: forever}]
quiet_hours: {start: "25:00", end: "08:00", then: later}
`, []string{"frequency_caps[0].max: want an integer", "frequency_caps[1].per: bad duration", "quiet_hours[0].start: bad time of day", "quiet_hours[0].then: want defer or drop"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.src)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			errs := unjoin(err)
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i, e := range errs {
				var de *defs.Error
				if !errors.As(e, &de) {
					t.Errorf("error %d is %T, want *defs.Error", i, e)
				}
				if !strings.Contains(e.Error(), tt.want[i]) {
					t.Errorf("error %d = %q, want it to contain %q", i, e, tt.want[i])
				}
			}
		})
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestOperatorIndex(t *testing.T) {
	op, err := load(t, `
kind: journey
id: j1
entry: {event: add_to_cart, when: {did: view_item, within: 1h}}
exit_on: [purchase]
goal: {event: purchase, within: 1d}
nodes:
  w: {wait: {for_event: app_open, timeout: 1h}, next: a}
  a: {action: {channel: push, template: t}, next: b}
  b: {action: {channel: email, template: t}}
---
kind: journey
id: j2
version: 2
status: paused
entry: {event: signup}
nodes:
  b:
    branch:
      - when: {not: {did: review, since: entry}}
        next: a
  a: {action: {channel: sms, template: t}}
`)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(op.Events(), ","), "add_to_cart,app_open,purchase,review,signup,view_item"; got != want {
		t.Errorf("Events() = %s, want %s", got, want)
	}
	if got, want := strings.Join(op.OutputTopics(), ","), "actions.email,actions.push,actions.sms,actions.suppressed"; got != want {
		t.Errorf("OutputTopics() = %s, want %s", got, want)
	}
	if op.Name() != "journey" {
		t.Errorf("Name() = %q", op.Name())
	}
	if op.journeys["j2"].current != nil {
		t.Error("a paused version must not take entries")
	}
	stopped, err := load(t, strings.Replace(validJourney, "id: ok", "id: ok\nstatus: stopped", 1))
	if err != nil {
		t.Fatal(err)
	}
	if stopped.Events() != nil {
		t.Error("with a stopped version, Events() must be nil (every event)")
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{"30s", 30_000, false},
		{"1m30s", 90_000, false},
		{"2h", 7_200_000, false},
		{"30d", 30 * msPerDay, false},
		{"1d12h", msPerDay + 12*3_600_000, false},
		{"0s", 0, true},
		{"-1h", 0, true},
		{"d", 0, true},
		{"5x", 0, true},
		{"", 0, true},
		{"3d-1h", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseDuration(tt.in)
			if (err != nil) != tt.bad || got != tt.want {
				t.Errorf("parseDuration(%q) = %d, %v; want %d, bad=%v", tt.in, got, err, tt.want, tt.bad)
			}
		})
	}
}

func TestNextClock(t *testing.T) {
	tests := []struct {
		name, now, loc, clock, want string
	}{
		{"later today", "2026-05-01T06:00:00Z", "UTC", "09:00", "2026-05-01T09:00:00Z"},
		{"tomorrow", "2026-05-01T09:00:00Z", "UTC", "09:00", "2026-05-02T09:00:00Z"},
		{"spring forward day", "2026-03-08T01:00:00Z", "America/New_York", "09:00", "2026-03-08T13:00:00Z"},
		{"day before spring forward", "2026-03-07T01:00:00Z", "America/New_York", "09:00", "2026-03-07T14:00:00Z"},
		{"gap: 02:30 is 03:30 EDT", "2026-03-08T05:00:00Z", "America/New_York", "02:30", "2026-03-08T07:30:00Z"},
		{"fall back: 01:30 twice, first", "2026-11-01T04:00:00Z", "America/New_York", "01:30", "2026-11-01T05:30:00Z"},
		{"east of UTC", "2026-05-01T23:30:00Z", "Asia/Tokyo", "09:00", "2026-05-02T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now, _ := time.Parse(time.RFC3339, tt.now)
			want, _ := time.Parse(time.RFC3339, tt.want)
			m, err := parseClock(tt.clock)
			if err != nil {
				t.Fatal(err)
			}
			got := nextClock(now.UnixMilli(), mustLoc(t, tt.loc), m)
			if got != want.UnixMilli() {
				t.Errorf("nextClock = %s, want %s", time.UnixMilli(got).UTC().Format(time.RFC3339), tt.want)
			}
		})
	}
}

func TestParseCount(t *testing.T) {
	tests := []struct {
		in    string
		op    string
		n     int
		bad   bool
		count int
		holds bool
	}{
		{">= 2", ">=", 2, false, 2, true},
		{"3", ">=", 3, false, 2, false},
		{"== 0", "==", 0, false, 0, true},
		{"!=1", "!=", 1, false, 1, false},
		{"< 2", "<", 2, false, 1, true},
		{"<= 2", "<=", 2, false, 3, false},
		{"> 0", ">", 0, false, 1, true},
		{"lots", ">=", 1, true, 0, false},
		{">= -1", ">=", 1, true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			op, n, err := parseCount(tt.in)
			if op != tt.op || n != tt.n || (err != nil) != tt.bad {
				t.Fatalf("parseCount(%q) = %s %d %v", tt.in, op, n, err)
			}
			if !tt.bad && compareCount(tt.count, op, n) != tt.holds {
				t.Errorf("compareCount(%d, %s, %d) != %v", tt.count, op, n, tt.holds)
			}
		})
	}
}

func TestHashStable(t *testing.T) {
	// Holdout and split assignment must never change across releases or
	// platforms: these values are pinned.
	tests := []struct {
		parts []string
		want  int
	}{
		{[]string{"holdout", "cart-abandon", "u-42", "1"}, 1103},
		{[]string{"split", "flow", "t1", "1", "pick"}, 9208},
		{[]string{""}, 7455},
	}
	for _, tt := range tests {
		if got := hash10000(tt.parts...); got != tt.want {
			t.Errorf("hash10000(%q) = %d, want %d", tt.parts, got, tt.want)
		}
	}
}
