package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-cjo/cairn/bench"
)

// TestBenchSmoke runs the whole suite once with tiny sizes through the
// binary (child-process brokers, generated definitions) and checks what it
// wrote, then compares the results with themselves.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs seven benchmark runs")
	}
	dir := t.TempDir()
	md, js := filepath.Join(dir, "RESULTS.md"), filepath.Join(dir, "r.json")
	out, err := exec.Command(processorBin, "bench", "--events", "3000", "--runs", "1", "--latency", "0.5",
		"--latency-duration", "2s", "--scaling", "2", "--generate", "3/3/3", "--out", md, "--json", js).CombinedOutput()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	r, err := bench.ReadResult(js)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{bench.ModePassthrough, bench.ModeCairn, bench.ModeAtLeastOnce} {
		if got := r.Medians[m]; got.EventsPerS <= 0 || got.Events != 3000 || got.CPUSecPerMEvents <= 0 {
			t.Errorf("%s: %+v", m, got)
		}
	}
	if c := r.Medians[bench.ModeCairn]; c.StateBytesPerUser <= 0 || c.ChangelogBytesPerEvent <= 0 || c.DLQRecords != c.Malformed {
		t.Errorf("exactly-once sizes: state %v B/user, changelog %v B/event, DLQ %d for %d malformed",
			c.StateBytesPerUser, c.ChangelogBytesPerEvent, c.DLQRecords, c.Malformed)
	}
	if len(r.Latency) != 1 || r.Latency[0].Received != r.Latency[0].Expected || r.Latency[0].P99ms <= 0 {
		t.Errorf("latency: %+v", r.Latency)
	}
	if len(r.Scaling) != 1 || r.Scaling[0].Instances != 2 || r.Scaling[0].EventsPerS <= 0 {
		t.Errorf("scaling: %+v", r.Scaling)
	}
	text, _ := os.ReadFile(md)
	for _, want := range []string{"<!-- suite:start -->", "generated 3/3/3", "| 50% |", "suite-latency-cdf.svg", "| 2 |"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("RESULTS.md lacks %q:\n%s", want, text)
		}
	}
	// Runs this short end before the first throughput sample: no such plot.
	for _, p := range []string{"suite-latency-cdf.svg", "suite-scaling.svg"} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || !strings.Contains(string(b), "<svg") {
			t.Errorf("plot %s: %v", p, err)
		}
	}
	cmp, err := exec.Command(processorBin, "bench", "compare", js, js).CombinedOutput()
	if err != nil || !strings.Contains(string(cmp), "1.000") || !json.Valid(mustRead(t, js)) {
		t.Errorf("compare: %v\n%s", err, cmp)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBenchInterruptWritesNothing interrupts a long run and checks the
// exit code (130) and that no partial result was written.
func TestBenchInterruptWritesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a long benchmark")
	}
	dir := t.TempDir()
	cmd := exec.Command(processorBin, "bench", "--events", "2000000", "--out", filepath.Join(dir, "R.md"), "--json", filepath.Join(dir, "r.json"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // well inside the prefill of two million events
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("interrupted bench exited with %v, want code 130", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("an interrupted bench wrote %v", entries)
	}
}

// TestBenchGeneratedAddsToDefinitions checks that generated definitions
// join the files of --definitions when both are given.
func TestBenchGeneratedAddsToDefinitions(t *testing.T) {
	src := t.TempDir()
	for name, text := range map[string]string{"a.yaml": "kind: counter\n", "b.yml": "kind: segment\n", "notes.txt": "x"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := &benchFlags{genFunnels: 2}
	o := &bench.Options{Definitions: src}
	cleanup, err := f.generated(o)
	defer cleanup()
	if err != nil {
		t.Fatal(err)
	}
	if o.Definitions == src || f.base != src {
		t.Fatalf("definitions %q, base %q: want a new directory and base %q", o.Definitions, f.base, src)
	}
	ents, err := os.ReadDir(o.Definitions)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "a.yaml b.yml generated-funnels.yaml" {
		t.Errorf("files %q, want the two definitions and the generated funnels", got)
	}
	if b := mustRead(t, filepath.Join(o.Definitions, "a.yaml")); string(b) != "kind: counter\n" {
		t.Errorf("a.yaml copied as %q", b)
	}

	f, o = &benchFlags{genFunnels: 1}, &bench.Options{Definitions: filepath.Join(src, "missing")}
	cleanup, err = f.generated(o)
	defer cleanup()
	if err == nil || !strings.Contains(err.Error(), "--definitions") {
		t.Errorf("a missing --definitions directory: error %v, want one naming --definitions", err)
	}
}
