package kafkatest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestChaosRowHasOneCellPerColumn(t *testing.T) {
	cols := strings.Count(chaosHeader, "|")
	now := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	cases := []struct {
		name string
		row  ChaosRow
		want string
	}{
		{"measured", ChaosRow{Scenario: "s", Cycles: 100, Tally: Tally{Events: 5, Outputs: 5},
			Txns: &TxnStats{Aborted: 7, Open: 0}, Recovery: 1234 * time.Millisecond, Seed: 42,
			Restarts: []time.Duration{3 * time.Second, time.Second, 2 * time.Second}},
			"| 2026-01-02 03:04 | s | 100 | 5 | 5 | 0 | 0 | 0 | — | 7 | 0 | 2s / 3s (3) | 1.2s | 3.0% | 42 | " + versions() + " |\n"},
		{"txns not measured", ChaosRow{Scenario: "s", Cycles: 1, Tally: Tally{Events: 5, Outputs: 5}},
			"| 2026-01-02 03:04 | s | 1 | 5 | 5 | 0 | 0 | 0 | — | — | — | — | 0s | 95.0% | — | " + versions() + " |\n"},
		{"not exact: no bound", ChaosRow{Scenario: "s", Cycles: 10, Tally: Tally{Events: 5, Outputs: 6, Duplicated: 1}},
			"| 2026-01-02 03:04 | s | 10 | 5 | 6 | 0 | 1 | 0 | — | — | — | — | 0s | — | — | " + versions() + " |\n"},
		{"aggregates checked", ChaosRow{Scenario: "s", Cycles: 30, Tally: Tally{Events: 5, Outputs: 5}, AggMismatches: ptr(0)},
			"| 2026-01-02 03:04 | s | 30 | 5 | 5 | 0 | 0 | 0 | 0 | — | — | — | 0s | 9.5% | — | " + versions() + " |\n"},
		{"aggregate mismatch: no bound", ChaosRow{Scenario: "s", Cycles: 30, Tally: Tally{Events: 5, Outputs: 5}, AggMismatches: ptr(2)},
			"| 2026-01-02 03:04 | s | 30 | 5 | 5 | 0 | 0 | 0 | 2 | — | — | — | 0s | — | — | " + versions() + " |\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.row.markdown(now)
			if got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
			if n := strings.Count(got, "|"); n != cols {
				t.Fatalf("%d separators, header has %d", n, cols)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestBound95 checks the bound against the rule of three (3/N for large N)
// and the exact value for one trial (95%).
func TestBound95(t *testing.T) {
	for _, tc := range []struct {
		n      int
		lo, hi float64
	}{{1, 0.9499, 0.9501}, {5, 0.45, 0.46}, {100, 0.0295, 0.0300}, {1000, 0.00299, 0.00300}} {
		if b := Bound95(tc.n); b < tc.lo || b > tc.hi {
			t.Errorf("Bound95(%d) = %v, want in [%v, %v]", tc.n, b, tc.lo, tc.hi)
		}
	}
}

func TestReportChaosWritesHeaderOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "CHAOS.md")
	t.Setenv("CAIRN_CHAOS_REPORT", path)
	for i := 0; i < 2; i++ {
		ReportChaos(t, ChaosRow{Scenario: "x", Cycles: 3, Tally: Tally{Events: 1, Outputs: 1}})
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), chaosHeader); n != 1 {
		t.Fatalf("header written %d times:\n%s", n, b)
	}
	if n := strings.Count(string(b), "| x | 3 |"); n != 2 {
		t.Fatalf("%d rows, want 2:\n%s", n, b)
	}
}
