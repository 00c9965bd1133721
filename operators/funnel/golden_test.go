package funnel

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

// goldenLog is a short checkout session of two users: u1 converts on web
// across midnight, u2 drops out on app, then a late add_to_cart arrives
// for u2 and an event too old to count.
func goldenLog() []engine.Event {
	hour := 60 * minute
	web, app := map[string]any{"channel": "web"}, map[string]any{"channel": "app"}
	return []engine.Event{
		ev("u1", "app_open", base+20*hour, nil),
		ev("u1", "view_item", base+22*hour, map[string]any{"channel": "web", "sku": "s1"}),
		ev("u2", "view_item", base+23*hour, app),
		ev("u1", "add_to_cart", base+23*hour+30*minute, map[string]any{"sku": "s1"}),
		ev("u1", "purchase", base+25*hour, map[string]any{"amount": 0}),
		ev("u1", "purchase", base+26*hour, map[string]any{"amount": 30}),
		ev("u2", "purchase", base+30*hour, map[string]any{"amount": 12}),
		ev("u2", "add_to_cart", base+24*hour, nil), // late, within the horizon
		ev("u1", "view_item", base+48*hour, web),
		ev("u1", "add_to_cart", base-10*hour, nil), // late, beyond the horizon
	}
}

func TestGoldenUpserts(t *testing.T) {
	op := mustNew(t, checkoutYAML)
	l, err := engine.NewLocal(3, op)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var b strings.Builder
	for i, e := range goldenLog() {
		outs, err := l.Process(e)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "# %d %s %s ts=%d props=%v\n", i, e.UserID, e.Name, e.TS, e.Props)
		for _, o := range outs {
			fmt.Fprintf(&b, "%s %s %s\n", o.Topic, o.Key, o.Value)
		}
	}
	fmt.Fprintf(&b, "# late dropped: %d\n", op.LateDropped())
	checkGolden(t, "checkout.golden", b.String())
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if got != string(want) {
		t.Fatalf("output differs from %s (run with -update if intended):\n%s", path, got)
	}
}
