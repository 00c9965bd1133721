package bench

import (
	"testing"

	"github.com/cairn-cjo/cairn/operators"
)

// TestGeneratedDefinitionsLoad checks that generated definitions pass the
// loader `processor validate` runs, with the counts asked for.
func TestGeneratedDefinitionsLoad(t *testing.T) {
	for _, s := range []Sizes{{Journeys: 100, Segments: 20, Funnels: 20}, {Journeys: 1}, {Segments: 7}, {Funnels: 3}} {
		t.Run(s.String(), func(t *testing.T) {
			dir := t.TempDir()
			if err := GenerateDefinitions(dir, s); err != nil {
				t.Fatal(err)
			}
			set, err := operators.Load(dir, operators.Options{AggregatesTopic: "bench-aggregates"})
			if err != nil {
				t.Fatalf("generated definitions %s do not load: %v", s, err)
			}
			kinds := map[string]int{}
			for _, d := range set.Docs {
				kinds[d.Kind]++
			}
			if kinds["journey"] != s.Journeys || kinds["segment"] != s.Segments || kinds["funnel"] != s.Funnels {
				t.Errorf("loaded %v, want %s journeys/segments/funnels", kinds, s)
			}
		})
	}
}
