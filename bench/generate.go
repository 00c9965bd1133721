package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-cjo/cairn/operators/funnel"
)

// GenerateFunnels writes n generated funnel definitions
// (funnel.GenerateDefinitions) to a file in dir.
func GenerateFunnels(dir string, n int) error {
	return GenerateDefinitions(dir, Sizes{Funnels: n})
}

// Sizes is how many definitions of each kind GenerateDefinitions writes, so
// that the definition count is a dimension of a benchmark.
type Sizes struct {
	Journeys, Segments, Funnels int
}

// String is "<journeys>/<segments>/<funnels>".
func (s Sizes) String() string { return fmt.Sprintf("%d/%d/%d", s.Journeys, s.Segments, s.Funnels) }

// GenerateDefinitions writes generated definitions over the workload's
// events (app_open, view_item, add_to_cart, purchase, $profile_set) to
// dir, one file per kind. The same sizes always give the same files, and
// they pass `processor validate`.
func GenerateDefinitions(dir string, s Sizes) error {
	files := map[string]string{
		"generated-journeys.yaml": generateJourneys(s.Journeys),
		"generated-segments.yaml": generateSegments(s.Segments),
		"generated-funnels.yaml":  funnel.GenerateDefinitions(s.Funnels),
	}
	for name, text := range files {
		if text == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return fmt.Errorf("writing generated definitions: %w", err)
		}
	}
	return nil
}

var workloadEvents = []string{"app_open", "view_item", "add_to_cart", "purchase"}

// generateJourneys returns n journeys (and a policy if n > 0): entered on
// one of the first three steps, each waits 1–10 minutes, branches on
// whether the user bought in the last hour, sends a push or an email and
// exits on purchase.
func generateJourneys(n int) string {
	if n == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("kind: policy\nid: gen-policy\nfrequency_caps: [{channel: push, max: 5, per: 1h}]\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `---
kind: journey
id: gen-j%03d
entry: {event: %s, when: 'event.props.channel == "%s"', reentry: after_exit}
exit_on: [purchase]
goal: {event: purchase, within: 1d}
nodes:
  w: {wait: %dm, next: b}
  b:
    branch:
      - when: {did: purchase, within: 1h}
        next: mail
      - else: push
  push: {action: {channel: push, template: t%d, params: {sku: "{{ entry.props.sku }}"}}}
  mail: {action: {channel: email, template: t%d}}
`, i, workloadEvents[i%3], []string{"app", "web"}[i%2], 1+i%10, i, i)
	}
	return b.String()
}

// generateSegments returns n segments cycling through windowed event
// rules, all-time event rules with a condition, profile rules and
// composites of the segments before them.
func generateSegments(n int) string {
	tiers := []string{"gold", "silver", "bronze"}
	docs := make([]string, 0, n)
	for i := 0; i < n; i++ {
		var rule string
		switch i % 4 {
		case 0:
			rule = fmt.Sprintf("{event: {name: %s, count: '>= %d', within: %dd}}", workloadEvents[i%4], 1+i%3, 1+i%7)
		case 1:
			rule = fmt.Sprintf("{event: {name: purchase, where: 'event.props.amount > %d', count: '>= %d'}}", 10*(i%5), 1+i%2)
		case 2:
			rule = fmt.Sprintf("{profile: 'profile.tier == \"%s\"'}", tiers[i%3])
		default:
			rule = fmt.Sprintf("{all: [{segment: gen-s%03d}, {not: {segment: gen-s%03d}}]}", i-1, i-3)
		}
		docs = append(docs, fmt.Sprintf("kind: segment\nid: gen-s%03d\nrule: %s\n", i, rule))
	}
	return strings.Join(docs, "---\n")
}
