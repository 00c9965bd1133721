package funnel

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-cjo/cairn/engine"
)

// This file checks the operator against a brute-force reference written
// straight from the definition in docs/funnels.md, sharing no code with the
// operator: it keeps every accepted event and searches every chain.

type refStep struct {
	name string
	min  int // when >= 0: the step needs props.x > min
}

type refFunnel struct {
	id      string
	window  time.Duration
	steps   []refStep
	groupBy bool
	hourly  bool
	tz      string
}

func (f refFunnel) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kind: funnel\nid: %s\nwindow: %s\ntimezone: %s\n", f.id, f.window, f.tz)
	if f.hourly {
		b.WriteString("bucket: hour\n")
	}
	if f.groupBy {
		b.WriteString("group_by: 'event.props.ch'\n")
	}
	b.WriteString("steps:\n")
	for _, s := range f.steps {
		if s.min >= 0 {
			fmt.Fprintf(&b, "  - {event: %s, when: 'event.props.x > %d'}\n", s.name, s.min)
		} else {
			fmt.Fprintf(&b, "  - {event: %s}\n", s.name)
		}
	}
	return b.String()
}

func (f refFunnel) matches(e engine.Event) []bool {
	m := make([]bool, len(f.steps))
	for i, s := range f.steps {
		x, ok := e.Props["x"].(int)
		m[i] = e.Name == s.name && (s.min < 0 || ok && x > s.min)
	}
	return m
}

// bucket computes the bucket label from the calendar fields of the local
// time, independently of the operator's formatting.
func (f refFunnel) bucket(ts int64) string {
	loc, err := time.LoadLocation(f.tz)
	if err != nil {
		panic(err)
	}
	t := time.UnixMilli(ts).In(loc)
	s := fmt.Sprintf("%04d-%02d-%02d", t.Year(), int(t.Month()), t.Day())
	if f.hourly {
		s += fmt.Sprintf("T%02d", t.Hour())
	}
	return s
}

type refEvent struct {
	ts, off int64
	match   []bool
	group   string
}

// reference returns the counts by "funnel/bucket/group" and the number of
// (event, funnel) pairs dropped as late, for events processed in order with
// offsets 0, 1, 2...
func reference(fs []refFunnel, evs []engine.Event) (map[string][]int64, int64) {
	counts := map[string][]int64{}
	var late int64
	for _, f := range fs {
		users := map[string][]refEvent{}
		latest := map[string]int64{}
		horizon := f.window.Milliseconds() + time.Hour.Milliseconds()*map[bool]int64{true: 1, false: 24}[f.hourly]
		for off, e := range evs {
			m := f.matches(e)
			if !slices.Contains(m, true) {
				continue
			}
			if l, ok := latest[e.UserID]; ok && e.TS < l-horizon {
				late++
				continue
			}
			if l, ok := latest[e.UserID]; !ok || e.TS > l {
				latest[e.UserID] = e.TS
			}
			g, _ := e.Props["ch"].(string)
			if !f.groupBy {
				g = ""
			}
			users[e.UserID] = append(users[e.UserID], refEvent{ts: e.TS, off: int64(off), match: m, group: g})
		}
		for _, rs := range users {
			for key, d := range refDepths(f, rs) {
				c := counts[key]
				if c == nil {
					c = make([]int64, len(f.steps))
					counts[key] = c
				}
				for j := 0; j < d; j++ {
					c[j]++
				}
			}
		}
	}
	return counts, late
}

// refDepths returns the user's largest attempt depth per
// "funnel/bucket/group".
func refDepths(f refFunnel, rs []refEvent) map[string]int {
	slices.SortStableFunc(rs, func(a, b refEvent) int {
		if a.ts != b.ts {
			return int(a.ts - b.ts)
		}
		return int(a.off - b.off)
	})
	best := map[string]int{}
	for i, s := range rs {
		if !s.match[0] {
			continue
		}
		d := 1 + longestChain(f, rs, i, s.ts+f.window.Milliseconds(), 1)
		key := f.id + "/" + f.bucket(s.ts) + "/" + s.group
		best[key] = max(best[key], d)
	}
	return best
}

// longestChain is the largest number of steps step, step+1... that events
// after position pos, in order and no later than limit, can fill.
func longestChain(f refFunnel, rs []refEvent, pos int, limit int64, step int) int {
	if step == len(f.steps) {
		return 0
	}
	best := 0
	for k := pos + 1; k < len(rs) && rs[k].ts <= limit; k++ {
		if rs[k].match[step] {
			best = max(best, 1+longestChain(f, rs, k, limit, step+1))
		}
	}
	return best
}

// randomCase draws funnels and an event log around a DST change, with ties
// (5-minute ts grid), repeated and multi-step events, and arrival jitter
// that puts events out of order, some beyond the late horizon.
func randomCase(r *rand.Rand) ([]refFunnel, []engine.Event) {
	names := []string{"a", "b", "c"}
	zones := []string{"America/New_York", "UTC", "Asia/Kolkata"}
	windows := []time.Duration{5 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour}
	var fs []refFunnel
	for i := range 1 + r.IntN(3) {
		f := refFunnel{id: fmt.Sprintf("f%d", i), window: windows[r.IntN(len(windows))],
			groupBy: r.IntN(2) == 0, hourly: r.IntN(2) == 0, tz: zones[r.IntN(len(zones))]}
		for range 2 + r.IntN(3) {
			s := refStep{name: names[r.IntN(len(names))], min: -1}
			if r.IntN(4) == 0 {
				s.min = r.IntN(3)
			}
			f.steps = append(f.steps, s)
		}
		fs = append(fs, f)
	}
	starts := []time.Time{
		time.Date(2026, 3, 8, 4, 0, 0, 0, time.UTC),  // NY spring forward at 07:00Z
		time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC), // NY fall back at 06:00Z
		time.Date(2026, 11, 21, 20, 0, 0, 0, time.UTC),
	}
	start := starts[r.IntN(len(starts))].UnixMilli()
	span, jitter := int64(1+r.IntN(8))*60, int64(r.IntN(200))
	type arr struct {
		at int64
		ev engine.Event
	}
	var log []arr
	for range 20 + r.IntN(60) {
		ts := start + int64(r.Int64N(span/5+1))*5*minute
		e := engine.Event{UserID: fmt.Sprintf("u%d", r.IntN(4)), Name: names[r.IntN(len(names))], TS: ts,
			Props: map[string]any{}}
		if r.IntN(3) > 0 {
			e.Props["x"] = r.IntN(4)
		}
		if r.IntN(3) > 0 {
			e.Props["ch"] = []string{"web", "app"}[r.IntN(2)]
		}
		log = append(log, arr{at: ts + (r.Int64N(2*jitter+1)-jitter)*minute, ev: e})
	}
	slices.SortStableFunc(log, func(a, b arr) int { return int(a.at - b.at) })
	evs := make([]engine.Event, len(log))
	for i, a := range log {
		evs[i] = a.ev
	}
	return fs, evs
}

func TestMatchesReference(t *testing.T) {
	trials := 400
	if testing.Short() {
		trials = 50
	}
	for seed := range trials {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		fs, evs := randomCase(r)
		var src []string
		for _, f := range fs {
			src = append(src, f.yaml())
		}
		op := mustNew(t, strings.Join(src, "---\n"))
		checkAgainstReference(t, seed, op, fs, evs)
	}
}

// checkAgainstReference processes evs and compares the counts with the
// reference after a third, two thirds and all of them.
func checkAgainstReference(t *testing.T, seed int, op *Operator, fs []refFunnel, evs []engine.Event) {
	t.Helper()
	l, err := engine.NewLocal(0, op)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rows := map[string]Row{}
	for i, e := range evs {
		if err := processInto(t, l, e, rows); err != nil {
			t.Fatalf("seed %d: processing event %d: %v", seed, i, err)
		}
		if n := i + 1; n == len(evs) || n == len(evs)/3 || n == 2*len(evs)/3 {
			want, _ := reference(fs, evs[:n])
			if got := countsOf(rows); !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d after %d events:\n got  %v\n want %v\nfunnels %+v", seed, n, got, want, fs)
			}
		}
	}
	if _, late := reference(fs, evs); op.LateDropped() != late {
		t.Fatalf("seed %d: LateDropped = %d, want %d", seed, op.LateDropped(), late)
	}
}

// TestQuietFunnelMatchesReference has one funnel go quiet while another
// stays busy for many of its retentions, then sends the quiet one late
// events that are still within its horizon: the shared log drops the quiet
// funnel's events long before the funnel may, so they must move into its
// part (log.go), in order with the late ones, ties included.
func TestQuietFunnelMatchesReference(t *testing.T) {
	for seed := range 60 {
		fs, evs := quietCase(rand.New(rand.NewPCG(uint64(seed), 17)), 40, 10)
		var src []string
		for _, f := range fs {
			src = append(src, f.yaml())
		}
		checkAgainstReference(t, seed, mustNew(t, strings.Join(src, "---\n")), fs, evs)
	}
}

// quietCase returns a funnel that goes quiet, one that stays busy for busy
// events 45 minutes apart, then late events of the quiet one.
func quietCase(r *rand.Rand, busy, late int) ([]refFunnel, []engine.Event) {
	quiet := refFunnel{id: "quiet", window: []time.Duration{5 * time.Minute, 30 * time.Minute}[r.IntN(2)],
		groupBy: r.IntN(2) == 0, hourly: true, tz: "UTC",
		steps: []refStep{{name: "a", min: -1}, {name: "b", min: -1}, {name: "a", min: r.IntN(3) - 1}}}
	other := refFunnel{id: "busy", window: 3 * time.Hour, tz: "UTC", hourly: true,
		steps: []refStep{{name: "c", min: -1}, {name: "c", min: -1}}}
	start := time.Date(2026, 11, 21, 20, 0, 0, 0, time.UTC).UnixMilli()
	event := func(name string, ts int64) engine.Event {
		e := engine.Event{UserID: fmt.Sprintf("u%d", r.IntN(3)), Name: name, TS: ts, Props: map[string]any{"x": r.IntN(4)}}
		if r.IntN(2) == 0 {
			e.Props["ch"] = []string{"web", "app"}[r.IntN(2)]
		}
		return e
	}
	var evs []engine.Event
	for i := range 30 {
		evs = append(evs, event([]string{"a", "b"}[r.IntN(2)], start+int64(i/3)*5*minute))
	}
	for i := range busy {
		evs = append(evs, event("c", start+int64(i)*45*minute))
	}
	for range late {
		// Up to a bucket and a window behind the quiet funnel's latest,
		// on the 5-minute grid: ties with the moved events.
		evs = append(evs, event([]string{"a", "b"}[r.IntN(2)], start+int64(r.IntN(20))*5*minute))
	}
	return []refFunnel{quiet, other}, evs
}
