package journey

import (
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cairn-cjo/cairn/operators/defs"
)

// FuzzParseDefinition checks that no definition text makes New panic, and
// that every accepted definition has a consistent index.
func FuzzParseDefinition(f *testing.F) {
	for _, p := range []string{"../../examples/journeys.yaml", "../../examples/policy.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	scenarios, _ := filepath.Glob("testdata/golden/*.yaml")
	for _, p := range scenarios {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		var sc scenario
		if err := yaml.Unmarshal(b, &sc); err == nil {
			f.Add([]byte(sc.Defs))
		}
	}
	f.Add([]byte("kind: journey\nid: j\nentry: {event: go}\nnodes:\n  a: {wait: {until: \"09:00\"}}\n"))
	f.Add([]byte("kind: journey\nnodes: [1, 2]\nentry: [x]\nexit_on: {event: 3}\n"))
	f.Add([]byte(dailyGold))
	f.Add([]byte("kind: journey\nid: j\nentry: {segment: {exit: gold}, when: {not: {in_segment: vip}}}\nnodes:\n  a: {exit: true}\n"))
	f.Add([]byte("kind: journey\nid: j\nentry: {schedule: {cron: '@every 1h', timezone: 3, segment: [x]}}\nnodes: {a: {exit: true}}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		docs, _ := defs.Parse("fuzz.yaml", b)
		op, err := New(docs, Options{})
		if err != nil {
			return
		}
		for _, id := range op.ids {
			for _, j := range op.journeys[id].versions {
				if _, ok := j.nodes[j.start]; !ok {
					t.Fatalf("accepted journey %s has no start node", id)
				}
			}
		}
		for _, id := range op.scheduled {
			if op.scheduledDef(id) == nil {
				t.Fatalf("journey %s is listed as scheduled without a schedule", id)
			}
		}
		_ = op.Events()
		_ = op.OutputTopics()
	})
}
