package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
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

// WriteEOSSection replaces the section named name of the markdown file at
// path (between its markers) with r, creating the file if needed.
func WriteEOSSection(path, name, title, command string, r *EOSResult) error {
	m := ThisMachine()
	start, end := "<!-- "+name+":start -->", "<!-- "+name+":end -->"
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## %s\n\n", start, title)
	fmt.Fprintf(&b, "Measured %s with `%s`.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), command)
	fmt.Fprintf(&b, "Machine: %s, %d cores, %s, %s, %s. Broker: embedded kfake, in-process.\n\n", m.CPU, m.Cores, m.Memory, m.Go, m.OS)
	defsText := "one counting operator"
	if r.Options.Definitions != "" {
		defsText = "definitions in `" + r.Options.Definitions + "`"
		if strings.Contains(r.Options.Definitions, "cairn-funnels") {
			defsText = "generated funnels (see the command)"
		}
	}
	fmt.Fprintf(&b, "Workload: %d pre-filled demo events (sessions app_open → view_item → add_to_cart → purchase, profile updates), %d partitions, %d users, %s, commit interval %s, %d runs per mode (modes alternate; medians). Each rate is events divided by the time from the first record consumed to the commit of the last, so start-up and the group join are not counted.\n\n",
		r.Options.Events, r.Options.Partitions, r.Options.Users, defsText, r.Options.CommitInterval, r.Options.Runs)
	b.WriteString("| mode | events/s per run | median events/s |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| transactional passthrough (ceiling) | %s | %.0f |\n", join(r.Passthrough), r.MedPassthrough)
	fmt.Fprintf(&b, "| Cairn, exactly-once | %s | %.0f |\n\n", join(r.Cairn), r.MedCairn)
	fmt.Fprintf(&b, "**Cairn / ceiling = %.2f** (ratio of medians).\n%s\n", r.Ratio, end)
	return replaceSection(path, start, end, b.String())
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
