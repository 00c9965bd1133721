package bench

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestCompareRatiosAndVerdicts(t *testing.T) {
	old := &Result{
		Medians: map[string]ThroughputRun{ModeCairn: {EventsPerS: 100, CPUSecPerMEvents: 20}, ModePassthrough: {EventsPerS: 1000}},
		Ratio:   0.1,
		Latency: []LatencyResult{{Load: 0.5, P50ms: 40, P99ms: 200}},
		Scaling: []ThroughputRun{{Instances: 2, EventsPerS: 90}},
	}
	cur := &Result{
		Medians: map[string]ThroughputRun{ModeCairn: {EventsPerS: 150, CPUSecPerMEvents: 30}, ModePassthrough: {EventsPerS: 1000}},
		Ratio:   0.15,
		Latency: []LatencyResult{{Load: 0.5, P50ms: 20, P99ms: 202}, {Load: 0.8, P50ms: 99}},
		Scaling: []ThroughputRun{{Instances: 2, EventsPerS: 45}, {Instances: 3, EventsPerS: 50}},
	}
	dir := t.TempDir()
	for name, r := range map[string]*Result{"old.json": old, "new.json": cur} {
		if err := WriteJSON(filepath.Join(dir, name), r); err != nil {
			t.Fatal(err)
		}
	}
	o, err := ReadResult(filepath.Join(dir, "old.json"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := ReadResult(filepath.Join(dir, "new.json"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := PrintDeltas(&b, Compare(o, n)); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, tc := range []struct{ name, line string }{
		{"faster", "passthrough events/s"},
		{"rate up", "cairn events/s  100.00  150.00  1.500  better"},
		{"cpu up is worse", "cairn CPU s per M events  20.00  30.00  1.500  worse"},
		{"ratio", "cairn / ceiling  0.10  0.15  1.500  better"},
		{"latency down is better", "p50 ms at 50% load  40.00  20.00  0.500  better"},
		{"within 5% has no verdict", "p99 ms at 50% load  200.00  202.00  1.010"},
		{"scaling", "2 instances events/s  90.00  45.00  0.500  worse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(squeeze(got), squeeze(tc.line)) {
				t.Errorf("no line %q in\n%s", tc.line, got)
			}
		})
	}
	if strings.Contains(got, "80% load") || strings.Contains(got, "3 instances") {
		t.Errorf("figures missing from the old result are compared:\n%s", got)
	}
}

// squeeze collapses the padding of table cells to single spaces.
func squeeze(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "\n")
}

func TestReadResultNamesTheFile(t *testing.T) {
	if _, err := ReadResult(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("error %v does not name the file", err)
	}
}
