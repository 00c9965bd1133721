package journey

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/defs"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// scenario is a golden test: definitions, then steps (events or clock
// advances) run through engine.Local.
type scenario struct {
	Defs        string `yaml:"defs"`
	ShadowUntil string `yaml:"shadow_until"` // RFC 3339; runs in shadow mode (engine.Config.ShadowUntil)
	Steps       []step `yaml:"steps"`
}

type step struct {
	At      string         `yaml:"at"` // RFC 3339; for events
	User    string         `yaml:"user"`
	Event   string         `yaml:"event"`
	Props   map[string]any `yaml:"props"`
	ID      string         `yaml:"id"`
	Advance string         `yaml:"advance"` // RFC 3339; moves the clock
	Reload  string         `yaml:"reload"`  // new definitions from now on
}

// swappable lets a scenario replace the definitions between steps over the
// same state, as a restart with new definition files does. It listens to
// every event, since the definitions' event names change.
type swappable struct{ op *Operator }

func (s *swappable) Name() string     { return s.op.Name() }
func (s *swappable) Events() []string { return nil }
func (s *swappable) OnEvent(ctx *engine.Context, ev *engine.Event) error {
	if !s.listens(ev.Name) {
		return nil
	}
	return s.op.OnEvent(ctx, ev)
}
func (s *swappable) OnTimer(ctx *engine.Context, t *engine.Timer) error { return s.op.OnTimer(ctx, t) }
func (s *swappable) Flush(ctx *engine.Context, b any) error             { return s.op.Flush(ctx, b) }

func (s *swappable) listens(name string) bool {
	ev := s.op.Events()
	return ev == nil || contains(ev, name)
}

func loadDefs(t *testing.T, file, src string, opts Options) *Operator {
	t.Helper()
	docs, err := defs.Parse(file, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	op, err := New(docs, opts)
	if err != nil {
		t.Fatalf("loading definitions: %v", err)
	}
	return op
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden scenarios: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			got := runScenarioFile(t, f, Options{})
			if again := runScenarioFile(t, f, Options{}); again != got {
				t.Fatalf("two runs of the same scenario differ: not deterministic")
			}
			// Reading the user's state with one Scan per event, or with a
			// Get per key, must not change anything.
			for _, min := range []int{-1, math.MaxInt} {
				if other := runScenarioFile(t, f, Options{preloadMin: min}); other != got {
					t.Fatalf("preloadMin %d changes the output:\n%s", min, diffLines(got, other))
				}
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (run with -update after checking):\n%s", golden, diffLines(string(want), got))
			}
		})
	}
}

func runScenarioFile(t *testing.T, file string, opts Options) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var sc scenario
	if err := yaml.Unmarshal(b, &sc); err != nil {
		t.Fatalf("parsing scenario: %v", err)
	}
	return runScenario(t, file, loadDefs(t, file, sc.Defs, opts), sc.Steps, sc.ShadowUntil)
}

func runScenario(t *testing.T, file string, op *Operator, steps []step, shadowUntil string) string {
	t.Helper()
	sw := &swappable{op: op}
	l, err := engine.NewLocal(3, sw)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if shadowUntil != "" {
		l.SetShadowUntil(time.UnixMilli(parseTS(t, shadowUntil)))
	}
	var out strings.Builder
	aggs := map[string][]byte{}
	users := map[string]bool{}
	for i, s := range steps {
		var outs []engine.Output
		switch {
		case s.Reload != "":
			fmt.Fprintf(&out, "# %d reload\n", i+1)
			sw.op = loadDefs(t, file, s.Reload, op.opts)
			continue
		case s.Advance != "":
			fmt.Fprintf(&out, "# %d advance %s\n", i+1, s.Advance)
			outs, err = l.AdvanceTo(parseTS(t, s.Advance))
		default:
			users[s.User] = true
			fmt.Fprintf(&out, "# %d %s %s %s %s\n", i+1, s.At, s.User, s.Event, compactJSON(t, s.Props))
			outs, err = l.Process(engine.Event{UserID: s.User, Name: s.Event, TS: parseTS(t, s.At), Props: s.Props, EventID: s.ID})
		}
		if err != nil {
			t.Fatalf("step %d: %v", i+1, err)
		}
		for _, o := range outs {
			if o.Topic == "cairn-aggregates" {
				aggs[string(o.Key)] = o.Value
				continue
			}
			fmt.Fprintf(&out, "%s %s %s\n", o.Topic, o.Key, o.Value)
		}
	}
	writeFinalState(t, &out, l, users, aggs)
	return out.String()
}

func writeFinalState(t *testing.T, out *strings.Builder, l *engine.Local, users map[string]bool, aggs map[string][]byte) {
	t.Helper()
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	for _, u := range names {
		v, err := DescribeUser(func(fn func(sub, value []byte) error) error { return l.ScanUser(u, OperatorName, fn) })
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(out, "## user %s\n%s\n", u, indentJSON(t, v))
	}
	var vals [][]byte
	keys := make([]string, 0, len(aggs))
	for k := range aggs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vals = append(vals, aggs[k])
	}
	st, err := SumStats(vals)
	if err != nil {
		t.Fatal(err)
	}
	n, err := l.PendingTimers()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(out, "## stats %v\n%s\n## pending timers %d\n", keys, indentJSON(t, st), n)
}

func parseTS(t *testing.T, s string) int64 {
	t.Helper()
	ts, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("bad time %q: %v", s, err)
	}
	return ts.UnixMilli()
}

func compactJSON(t *testing.T, v any) string {
	t.Helper()
	if v == nil {
		return "{}"
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func indentJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// diffLines shows the first differing lines of two texts.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b bytes.Buffer
	for i := 0; i < max(len(w), len(g)) && b.Len() < 4000; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n- %s\n+ %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}
