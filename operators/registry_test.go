package operators

import (
	"strings"
	"testing"

	"github.com/cairn-cjo/cairn/operators/defs"
)

func TestBuild(t *testing.T) {
	cases := []struct {
		name    string
		src     string
		ops     int
		wantErr string
	}{
		{"examples-like", "kind: segment\nid: gold\nrule: {profile: 'profile.tier == \"gold\"'}\n---\nkind: journey\nid: j\nentry: {segment: {enter: gold}}\nnodes:\n  a: {action: {channel: push, template: t}}\n---\nkind: funnel\nid: f\nwindow: 1h\nsteps: [{event: a}, {event: b}]\n---\nkind: counter\nid: c\ntopic: t\n", 4, ""},
		{"unknown kind names its line", "kind: counter\nid: c\ntopic: t\n---\nkind: nope\n", 0, "d.yaml:5: kind: unknown kind \"nope\""},
		{"journey referring to an unknown segment", "kind: segment\nid: gold\nrule: {list: true}\n---\nkind: journey\nid: j\nentry: {segment: {enter: silver}}\nnodes:\n  a: {action: {channel: push, template: t}}\n", 0, "silver"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := defs.Parse("d.yaml", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			set, err := Build(docs, Options{AggregatesTopic: "aggs"})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(set.Operators) != tc.ops || set.Segments == nil || set.Journeys == nil || set.Funnels == nil {
				t.Fatalf("%d operators, want %d", len(set.Operators), tc.ops)
			}
		})
	}
}
