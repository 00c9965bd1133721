package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// Machine describes where a benchmark ran.
type Machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Memory string `json:"memory"`
	Go     string `json:"go"`
	OS     string `json:"os"`
}

// ThisMachine reads the machine's description from /proc where available.
func ThisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	m.CPU = procField("/proc/cpuinfo", "model name")
	m.Memory = procField("/proc/meminfo", "MemTotal")
	return m
}

func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// modeTitles name the modes in the tables, in table order.
var modeTitles = []struct{ mode, title string }{
	{ModePassthrough, "transactional passthrough (ceiling)"},
	{ModeCairn, "Cairn, exactly-once"},
	{ModeAtLeastOnce, "Cairn, at-least-once (not exactly-once)"},
}

// WriteSection replaces the section named name of the markdown file at
// path (between its markers) with r's tables, creating the file if needed.
// plots are file names next to it.
func WriteSection(path, name, title string, r *Result, plots []string) error {
	start, end := "<!-- "+name+":start -->", "<!-- "+name+":end -->"
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## %s\n\n", start, title)
	writeSetup(&b, r)
	writeThroughput(&b, r)
	writeLatency(&b, r)
	writeScaling(&b, r)
	for _, p := range plots {
		fmt.Fprintf(&b, "![%s](%s)\n", strings.TrimSuffix(p, ".svg"), p)
	}
	b.WriteString(end + "\n")
	return replaceSection(path, start, end, b.String())
}

func writeSetup(b *strings.Builder, r *Result) {
	m, s := r.Machine, r.Setup
	fmt.Fprintf(b, "Measured %s with `%s`.\n\n", r.When.Format("2006-01-02 15:04 MST"), r.Command)
	fmt.Fprintf(b, "Machine: %s, %d cores, %s, %s, %s. Broker: %s.\n\n", m.CPU, m.Cores, m.Memory, m.Go, m.OS, r.Broker)
	defs := "one counting operator"
	if s.Definitions != "" {
		defs = "definitions `" + s.Definitions + "`"
	}
	fmt.Fprintf(b, "Workload (`bench/workload`, seed %d): %d pre-filled events per run from %d users (Zipf activity), "+
		"sessions app_open → view_item → add_to_cart → purchase, 1%% profile updates, 0.1%% malformed (checked in the DLQ), "+
		"1%% late by up to 1 h; %s; %d partitions; %s; commit interval %s; %d runs per mode, modes alternating, medians. "+
		"Rates run from the first record consumed to the commit of the last.\n\n",
		s.Seed, s.Events, s.Users, prefillText(s.PrefillEnd), s.Partitions, defs, s.CommitInterval, s.RunsPerMode)
}

// prefillText says when the pre-filled events happen.
func prefillText(end string) string {
	switch end {
	case "", "now":
		return "pre-filled events over the hour before the run"
	default:
		return "pre-filled events over the hour before " + end + " UTC (the latest before the run)"
	}
}

func writeThroughput(b *strings.Builder, r *Result) {
	if len(r.Runs) == 0 {
		return
	}
	b.WriteString("| mode | events/s per run | median events/s | MB/s | CPU s per M events | cores busy | broker CPU s per M events | broker cores busy | RSS peak MB | state B/user | changelog B/event | DLQ = malformed |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, mt := range modeTitles {
		runs, ok := r.Runs[mt.mode]
		if !ok {
			continue
		}
		m := r.Medians[mt.mode]
		rates := make([]float64, len(runs))
		for i, run := range runs {
			rates[i] = run.EventsPerS
		}
		st, cl, dlq := "—", "—", "—"
		if mt.mode != ModePassthrough {
			st, cl = fmt.Sprintf("%.0f", m.StateBytesPerUser), fmt.Sprintf("%.1f", m.ChangelogBytesPerEvent)
			dlq = fmt.Sprintf("%d = %d", m.DLQRecords, m.Malformed)
		}
		fmt.Fprintf(b, "| %s | %s | %.0f | %.1f | %.2f | %.2f | %.2f | %.2f | %.0f | %s | %s | %s |\n", mt.title, join(rates), m.EventsPerS,
			m.MBPerS, m.CPUSecPerMEvents, m.CoresBusy, m.BrokerCPUSecPerMEvents, m.BrokerCoresBusy, m.RSSPeakMB, st, cl, dlq)
	}
	if r.Ratio > 0 {
		fmt.Fprintf(b, "\n**Cairn / ceiling = %.2f** (ratio of medians).", r.Ratio)
	}
	if r.EOSvsALO > 0 {
		fmt.Fprintf(b, " Exactly-once / at-least-once = %.2f.", r.EOSvsALO)
	}
	b.WriteString("\n\n")
}

func writeLatency(b *strings.Builder, r *Result) {
	if len(r.Latency) == 0 {
		return
	}
	fmt.Fprintf(b, "End-to-end latency, open loop for %.0f s per load (due send time → counter output read with read_committed):\n\n", r.Setup.LatencySeconds)
	b.WriteString("| load | offered events/s | achieved events/s | p50 ms | p95 ms | p99 ms | max ms | outputs read / expected |\n|---|---|---|---|---|---|---|---|\n")
	for _, l := range r.Latency {
		fmt.Fprintf(b, "| %.0f%% | %.0f | %.0f | %.1f | %.1f | %.1f | %.1f | %d / %d |\n",
			100*l.Load, l.OfferedRate, l.AchievedRate, l.P50ms, l.P95ms, l.P99ms, l.MaxMs, l.Received, l.Expected)
	}
	b.WriteString("\n")
}

func writeScaling(b *strings.Builder, r *Result) {
	if len(r.Scaling) == 0 {
		return
	}
	b.WriteString("Scaling, exactly-once, one run each. All instances share this machine's cores, so this shows the overhead of more instances more than any speed-up:\n\n")
	b.WriteString("| instances | events/s | vs 1 instance | CPU s per M events | RSS peak MB |\n|---|---|---|---|---|\n")
	for _, s := range r.Scaling {
		fmt.Fprintf(b, "| %d | %.0f | %.2f | %.2f | %.0f |\n", s.Instances, s.EventsPerS, ratio(s.EventsPerS, r.Scaling[0].EventsPerS), s.CPUSecPerMEvents, s.RSSPeakMB)
	}
	b.WriteString("\n")
}

func join(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(s, ", ")
}

func replaceSection(path, start, end, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	s := string(old)
	if s == "" {
		s = "# Benchmark results\n\nEvery figure here comes from a command you can run; see each section.\n\n"
	}
	i, j := strings.Index(s, start), strings.Index(s, end)
	if i >= 0 && j > i {
		s = s[:i] + strings.TrimSuffix(section, "\n") + s[j+len(end):]
	} else {
		s += "\n" + section
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// WriteJSON writes v as indented JSON to path.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
