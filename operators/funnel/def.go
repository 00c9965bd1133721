package funnel

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/cairn-cjo/cairn/operators/defs"
	cexpr "github.com/cairn-cjo/cairn/operators/expr"
)

// Kind is the "kind" of funnel definition documents.
const Kind = "funnel"

// MaxSteps bounds the steps of one funnel: step matches are kept as a bit
// mask per stored event.
const MaxSteps = 32

// Bucket sizes.
const (
	BucketDay  = "day"
	BucketHour = "hour"
)

// maxWindowDays bounds windows so that window arithmetic in ms never
// overflows.
const maxWindowDays = 36500

var idPattern = regexp.MustCompile(`^[a-z0-9-]+$`)

// propPath matches a group_by that reads one event property, the common
// case, which the operator evaluates as a map lookup: the expression
// language gives the same value (the property, nil if missing).
var propPath = regexp.MustCompile(`^\s*event\.props\.([A-Za-z_][A-Za-z0-9_]*)\s*$`)

// exprWords are the words of the expression language that propPath must
// not take for property names.
var exprWords = map[string]bool{"in": true, "not": true, "and": true, "or": true, "matches": true,
	"contains": true, "startsWith": true, "endsWith": true, "nil": true, "true": true, "false": true, "let": true}

// Definition is one parsed and validated funnel. It is immutable after
// parsing and safe for concurrent use.
type Definition struct {
	ID       string
	Window   time.Duration // > 0
	Steps    []Step        // 2..MaxSteps
	GroupBy  string        // expression source, "" for no grouping
	Bucket   string        // BucketDay or BucketHour
	Timezone string        // IANA name; default "UTC"

	loc        *time.Location
	groupProg  *vm.Program
	usesProf   bool // some expression mentions profile: load it
	stepsNamed map[string]uint32
	groupIdx   int      // index of group_by among the operator's distinct expressions
	zoneSlot   int      // index of the zone among the operator's; spreads bucketCache entries
	byName     []uint32 // stepsNamed by the operator's index of the event name
	hasConds   bool     // some step has a when
	hourly     bool     // Bucket == BucketHour
	ord        int      // index among the operator's funnels
	idBytes    []byte   // ID, shared by the new record parts of the funnel: never modified
	groupProp  string   // group_by is event.props.<groupProp>: read it without the VM
	windowMS   int64    // Window in ms
}

// Step is one step of a funnel: an event name and an optional condition.
type Step struct {
	Event string
	When  string // expression source, "" for always

	cond    *cexpr.Program
	exprIdx int // index of When among the operator's distinct expressions
}

// StepNames returns the event names of the steps, in order.
func (d *Definition) StepNames() []string {
	out := make([]string, len(d.Steps))
	for i, s := range d.Steps {
		out[i] = s.Event
	}
	return out
}

// Parse decodes and validates every document of Kind "funnel" in docs,
// ignoring the others, and returns the definitions sorted by id. It reports
// every problem found, joined, each located as "file:line: field: msg".
func Parse(docs []defs.Doc) ([]*Definition, error) {
	var out []*Definition
	var errs []error
	seen := map[string]string{}
	for i := range docs {
		d := &docs[i]
		if d.Kind != Kind {
			continue
		}
		def, derrs := parseDoc(d)
		errs = append(errs, derrs...)
		if def == nil {
			continue
		}
		if prev, ok := seen[def.ID]; ok {
			errs = append(errs, d.Errorf(defs.Field(d.Node, "id"), "id", "duplicate funnel %q (first in %s)", def.ID, prev))
			continue
		}
		seen[def.ID] = d.File
		out = append(out, def)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, errors.Join(errs...)
}

// parseDoc returns the definition of d, or nil with the problems found.
func parseDoc(d *defs.Doc) (*Definition, []error) {
	def := &Definition{Bucket: BucketDay, Timezone: "UTC"}
	var errs []error
	fail := func(n *yaml.Node, field, format string, args ...any) {
		errs = append(errs, d.Errorf(n, field, format, args...))
	}
	if d.Node == nil || d.Node.Kind != yaml.MappingNode {
		fail(d.Node, "", "a funnel must be a mapping")
		return nil, errs
	}
	var stepsNode *yaml.Node
	for i := 0; i+1 < len(d.Node.Content); i += 2 {
		k, v := d.Node.Content[i], d.Node.Content[i+1]
		if k.Value == "steps" {
			stepsNode = v
			continue
		}
		parseField(def, k.Value, v, fail)
	}
	if def.ID == "" {
		fail(d.Node, "id", "missing")
	}
	if def.Window == 0 {
		fail(d.Node, "window", "missing")
	}
	def.Steps = parseSteps(stepsNode, d.Node, fail)
	if len(errs) > 0 {
		return nil, errs
	}
	def.finish()
	return def, nil
}

// parseField decodes one top-level field other than steps into def.
func parseField(def *Definition, key string, v *yaml.Node, fail func(*yaml.Node, string, string, ...any)) {
	if v.Kind != yaml.ScalarNode {
		fail(v, key, "must be a scalar")
		return
	}
	var err error
	switch key {
	case "kind":
	case "id":
		def.ID = v.Value
		if !idPattern.MatchString(v.Value) {
			fail(v, key, "%q must match [a-z0-9-]+", v.Value)
		}
	case "window":
		def.Window, err = ParseWindow(v.Value)
	case "bucket":
		def.Bucket = v.Value
		if v.Value != BucketDay && v.Value != BucketHour {
			err = fmt.Errorf("%q must be day or hour", v.Value)
		}
	case "timezone":
		def.Timezone = v.Value
		def.loc, err = time.LoadLocation(v.Value)
		if err == nil && (v.Value == "" || v.Value == "Local") {
			err = errors.New("must name an IANA zone (Local depends on the machine)")
		}
	case "group_by":
		def.GroupBy = v.Value
		def.groupProg, err = expr.Compile(v.Value, expr.AllowUndefinedVariables())
	default:
		err = errors.New("unknown field")
	}
	if err != nil {
		fail(v, key, "%v", err)
	}
}

// parseSteps decodes the steps sequence; parent locates a missing one.
func parseSteps(n, parent *yaml.Node, fail func(*yaml.Node, string, string, ...any)) []Step {
	if n == nil {
		fail(parent, "steps", "missing")
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		fail(n, "steps", "must be a list")
		return nil
	}
	if len(n.Content) < 2 || len(n.Content) > MaxSteps {
		fail(n, "steps", "a funnel has 2 to %d steps, not %d", MaxSteps, len(n.Content))
	}
	steps := make([]Step, 0, len(n.Content))
	for i, sn := range n.Content {
		field := "steps[" + strconv.Itoa(i) + "]"
		if sn.Kind != yaml.MappingNode {
			fail(sn, field, "must be a mapping with event and when")
			continue
		}
		steps = append(steps, parseStep(sn, field, fail))
	}
	return steps
}

func parseStep(sn *yaml.Node, field string, fail func(*yaml.Node, string, string, ...any)) Step {
	var s Step
	for i := 0; i+1 < len(sn.Content); i += 2 {
		k, v := sn.Content[i], sn.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			fail(v, field+"."+k.Value, "must be a scalar")
			continue
		}
		switch k.Value {
		case "event":
			s.Event = v.Value
		case "when":
			s.When = v.Value
			p, err := cexpr.Compile(v.Value)
			if err != nil {
				fail(v, field+".when", "%v", err)
			}
			s.cond = p
		default:
			fail(k, field+"."+k.Value, "unknown field")
		}
	}
	if s.Event == "" {
		fail(sn, field+".event", "missing")
	}
	return s
}

// finish fills the derived fields of a valid definition.
func (d *Definition) finish() {
	if d.loc == nil {
		d.loc = time.UTC
	}
	d.hourly, d.windowMS = d.Bucket == BucketHour, d.Window.Milliseconds()
	if m := propPath.FindStringSubmatch(d.GroupBy); m != nil && !exprWords[m[1]] {
		d.groupProp = m[1]
	}
	d.usesProf = strings.Contains(d.GroupBy, "profile")
	d.stepsNamed = map[string]uint32{}
	for i, s := range d.Steps {
		d.stepsNamed[s.Event] |= 1 << i
		d.usesProf = d.usesProf || strings.Contains(s.When, "profile")
	}
}

// ParseWindow parses a window such as "24h", "90m" or "7d": a Go duration,
// optionally preceded by a whole number of days ("1d12h"). It must be > 0.
func ParseWindow(s string) (time.Duration, error) {
	rest, days := s, int64(0)
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseInt(s[:i], 10, 32)
		if err != nil || n < 0 || n > maxWindowDays {
			return 0, fmt.Errorf("parsing window %q: bad day count", s)
		}
		days, rest = n, s[i+1:]
	}
	var d time.Duration
	if rest != "" {
		var err error
		if d, err = time.ParseDuration(rest); err != nil {
			return 0, fmt.Errorf("parsing window %q: %w", s, err)
		}
	}
	d += time.Duration(days) * 24 * time.Hour
	if d <= 0 || d > maxWindowDays*24*time.Hour {
		return 0, fmt.Errorf("parsing window %q: must be positive", s)
	}
	return d, nil
}
