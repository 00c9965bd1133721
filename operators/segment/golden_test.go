package segment

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-cjo/cairn/engine"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGolden runs a small demo stream over examples/segments.yaml's
// definitions and compares every output and segment event, in order, with
// testdata/demo.golden.
func TestGolden(t *testing.T) {
	h := newHarness(t, exampleDefs)
	const t0 = int64(1_767_225_600_000) // 2026-01-01T00:00:00Z
	type in struct {
		user, name string
		at         int64
		props      map[string]any
	}
	stream := []in{
		{"ann", "app_open", 0, nil},
		{"ann", "$profile_set", 1, map[string]any{"tier": "gold", "tz": "Europe/Paris"}},
		{"bob", "view_item", 2, map[string]any{"sku": "A1"}},
		{"bob", "purchase", 3 * day, map[string]any{"amount": 25}},
		{"ann", "purchase", 4 * day, map[string]any{"amount": 120}},
		{"ann", "add_to_cart", 5 * day, nil},
		{"ann", "purchase", 10 * day, map[string]any{"amount": 45}},
		{"bob", "purchase", 11 * day, map[string]any{"amount": 5}},
		{"cat", "$segment_add", 12 * day, map[string]any{"segment": "vip-list"}},
		{"bob", "purchase", 20 * day, map[string]any{"amount": 30}},
		{"cat", "$segment_remove", 25 * day, map[string]any{"segment": "vip-list"}},
		{"ann", "$profile_unset", 40 * day, map[string]any{"tier": nil}},
	}
	var b strings.Builder
	line := func(at string, outs []engine.Output) {
		for _, g := range h.rec.got {
			fmt.Fprintf(&b, "%s event %s\n", at, g)
		}
		h.rec.got = nil
		for _, o := range outs {
			fmt.Fprintf(&b, "%s %s %s %s\n", at, o.Topic, o.Key, o.Value)
		}
	}
	for _, e := range stream {
		at := fmt.Sprintf("+%dd%dms %s %s", e.at/day, e.at%day, e.user, e.name)
		line(at, h.send(e.user, e.name, t0+e.at, e.props))
	}
	line("advance +60d", h.advance(t0+60*day))
	for _, id := range h.op.IDs() {
		fmt.Fprintf(&b, "end %s %v\n", id, h.members(id))
	}
	checkGolden(t, filepath.Join("testdata", "demo.golden"), b.String())
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if string(want) != got {
		t.Fatalf("output differs from %s (run with -update if intended):\n%s", path, got)
	}
}
