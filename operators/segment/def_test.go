package segment

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestValidation(t *testing.T) {
	tests := []struct {
		name string
		defs string
		want []string // substrings of the joined error, in any order
		not  []string // substrings it must not contain
	}{
		{
			name: "reference to a segment with a bad rule",
			defs: "kind: segment\nid: a\nrule: {event: {name: x, count: '>> 1'}}\n---\nkind: segment\nid: b\nrule: {segment: a}\n---\nkind: segment\nid: c\n",
			want: []string{"test.yaml:3: rule.event.count: bad count \">> 1\"", "test.yaml:9: rule: missing"},
			not:  []string{"unknown segment"},
		},
		{
			name: "unknown reference",
			defs: "kind: segment\nid: a\nrule: {segment: nope}\n",
			want: []string{`test.yaml:3: rule.segment: unknown segment "nope"`},
		},
		{
			name: "self reference",
			defs: "kind: segment\nid: a\nrule:\n  all:\n    - {profile: 'profile.x == 1'}\n    - {not: {segment: a}}\n",
			want: []string{`test.yaml:6: rule.all[1].not.segment: segment "a" refers to itself`},
		},
		{
			name: "cycle",
			defs: "kind: segment\nid: a\nrule: {segment: b}\n---\nkind: segment\nid: b\nrule: {any: [{segment: c}]}\n---\nkind: segment\nid: c\nrule: {segment: a}\n",
			want: []string{"rule.segment: segment cycle: a -> b -> c -> a"},
		},
		{
			name: "bad duration count expression and name",
			defs: "kind: segment\nid: a\nrule:\n  event:\n    name: purchase\n    where: 'event.props.amount >'\n    count: '>> 2'\n    within: 30y\n",
			want: []string{
				"test.yaml:6: rule.event.where: compiling expression",
				`test.yaml:7: rule.event.count: bad count`,
				`test.yaml:8: rule.event.within: bad duration "30y"`,
			},
		},
		{
			name: "count too large and zero window",
			defs: "kind: segment\nid: a\nrule: {event: {name: x, count: '>= 5000', within: 0d}}\n",
			want: []string{"rule.event.count: bad count", "rule.event.within: bad duration"},
		},
		{
			name: "bad ids and duplicates",
			defs: "kind: segment\nid: 'a/b'\nrule: {list: true}\n---\nkind: segment\nrule: {list: true}\n---\n" +
				"kind: segment\nid: x\nrule: {list: true}\n---\nkind: segment\nid: x\nrule: {list: true}\n",
			want: []string{
				`test.yaml:2: id: invalid segment id "a/b"`,
				"test.yaml:5: id: missing",
				`test.yaml:13: id: duplicate segment "x" (first defined at test.yaml:9)`,
			},
		},
		{
			name: "bad rule shapes",
			defs: "kind: segment\nid: a\nrule: {all: []}\n---\nkind: segment\nid: b\nrule: {list: false}\n---\n" +
				"kind: segment\nid: c\nrule: {bogus: 1}\n---\nkind: segment\nid: d\nrule: {event: {count: 2}}\n---\n" +
				"kind: segment\nid: e\nrule: {profile: 'x', list: true}\n---\nkind: segment\nid: f\nrule: {list: true}\ncolour: red\n",
			want: []string{
				"test.yaml:3: rule.all: want a non-empty list of rules",
				"test.yaml:7: rule.list: want true",
				"test.yaml:11: rule.bogus: unknown rule",
				"test.yaml:15: rule.event.name: missing",
				"test.yaml:19: rule: a rule is a mapping with exactly one of",
				"test.yaml:24: colour: unknown field",
			},
		},
		{
			name: "event on own output",
			defs: "kind: segment\nid: a\nrule: {event: {name: $segment_enter}}\n",
			want: []string{"rule.event.name: want an event name"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(mustDocs(t, tc.defs), Options{})
			if err == nil {
				t.Fatalf("New succeeded, want errors %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error has %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestNewOrderAndEvents(t *testing.T) {
	op := mustNew(t, exampleDefs+"---\nkind: journey\nid: ignored\n")
	if got, want := op.IDs(), []string{"gold", "repeat-buyers", "gold-not-repeat", "vip-list"}; !reflect.DeepEqual(got, want) {
		t.Errorf("IDs() = %v, want %v", got, want)
	}
	want := []string{"$profile_set", "$profile_unset", "$segment_add", "$segment_remove", "purchase"}
	if got := op.Events(); !reflect.DeepEqual(got, want) {
		t.Errorf("Events() = %v, want %v", got, want)
	}
	if op.Name() != "segment" || !op.Has("gold") || op.Has("silver") {
		t.Errorf("Name/Has wrong")
	}
	if got := op.OutputTopics(); !reflect.DeepEqual(got, []string{DefaultAggregatesTopic}) {
		t.Errorf("OutputTopics() = %v", got)
	}
}

func TestParseCountAndWithin(t *testing.T) {
	counts := map[string]string{"2": ">= 2", ">=2": ">= 2", "> 1": "> 1", "== 0": "== 0", "<3": "< 3", "!= 4": "!= 4", "<= 9": "<= 9"}
	for in, want := range counts {
		op, n, err := parseCount(in)
		if err != nil || op+" "+strconv.Itoa(n) != want {
			t.Errorf("parseCount(%q) = %s %d, %v; want %s", in, op, n, err, want)
		}
	}
	withins := map[string]int64{"30d": 30 * day, "2w": 14 * day, "36h": 36 * 3600 * 1000, "500ms": 500}
	for in, want := range withins {
		if got, err := parseWithin(in); err != nil || got != want {
			t.Errorf("parseWithin(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "-1d", "0s", "1y", "99999w", "1.5d"} {
		if _, err := parseWithin(bad); err == nil {
			t.Errorf("parseWithin(%q) succeeded", bad)
		}
	}
}
