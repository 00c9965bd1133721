package kafkatest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// ReportChaos appends a row for a fault scenario to the markdown file named
// by $CAIRN_CHAOS_REPORT (make chaos sets it to bench/CHAOS.md), writing the
// table header first if the file is new. Without the variable it does
// nothing.
func ReportChaos(t testing.TB, scenario string, cycles int, c Tally, recovery time.Duration) {
	t.Helper()
	path := os.Getenv("CAIRN_CHAOS_REPORT")
	if path == "" {
		return
	}
	bound := "—"
	if cycles >= 3 && c.Exact() {
		bound = fmt.Sprintf("%.1f%%", 300/float64(cycles)) // rule of three: 0 failures in N trials
	}
	row := fmt.Sprintf("| %s | %s | %d | %d | %d | %d | %d | %d | %s | %s |\n",
		time.Now().UTC().Format("2006-01-02 15:04"), scenario, cycles, c.Events, c.Outputs,
		c.Lost, c.Duplicated, c.OutOfOrder, recovery.Round(100*time.Millisecond), bound)
	header := ""
	if _, err := os.Stat(path); os.IsNotExist(err) {
		header = "# Fault campaign results\n\nWritten by `make chaos`; each row is one scenario run. " +
			"The last column is the 95% upper bound on the per-cycle failure rate when no cycle failed (≈ 3/N).\n\n" +
			"| when (UTC) | scenario | cycles | events | outputs | lost | duplicated | out of order | final run to all outputs | 95% bound |\n" +
			"|" + strings.Repeat("---|", 10) + "\n"
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("writing chaos report: %v", err)
		return
	}
	defer f.Close()
	if _, err := f.WriteString(header + row); err != nil {
		t.Errorf("writing chaos report: %v", err)
	}
}
