package journey

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cairn-cjo/cairn/engine"
)

// dailyGold enters every gold member at 09:00 Shanghai time (01:00 UTC).
const dailyGold = `
kind: journey
id: daily
entry:
  schedule: {cron: "0 9 * * *", timezone: Asia/Shanghai, segment: gold}
  reentry: after_exit
nodes:
  hi: {action: {channel: push, template: daily, params: {seg: "{{ entry.props.segment }}"}}}
`

const (
	bcT0    = int64(1_772_409_600_000) // 2026-03-02T00:00:00Z, 08:00 in Shanghai
	bcTick1 = bcT0 + 3_600_000         // 2026-03-02T01:00:00Z, 09:00 in Shanghai
	bcTick2 = bcTick1 + msPerDay
)

// tally counts the daily pushes per user.
type tally map[string]int

func (c tally) add(t *testing.T, outs []engine.Output) {
	t.Helper()
	for _, s := range sends(outs) {
		user, ok := strings.CutPrefix(s, "push daily ")
		if !ok {
			t.Fatalf("unexpected send %q", s)
		}
		c[user]++
	}
}

// check asserts that every user of want was sent exactly n pushes, and
// nobody else any.
func (c tally) check(t *testing.T, want []string, n int) {
	t.Helper()
	bad := 0
	for _, u := range want {
		if c[u] != n && bad < 5 {
			t.Errorf("user %s entered %d times, want %d", u, c[u], n)
			bad++
		}
	}
	if len(c) != len(want) {
		t.Errorf("%d users entered, want %d", len(c), len(want))
	}
}

// goldMembers makes n gold users (and a few silver ones) before bcTick1.
func goldMembers(t testing.TB, l *engine.Local, n int) []string {
	t.Helper()
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("u%05d", i)
		process(t, l, users[i], "$profile_set", bcT0+int64(i), tier("gold"))
		if i%500 == 0 {
			process(t, l, fmt.Sprintf("s%05d", i), "$profile_set", bcT0+int64(i), tier("silver"))
		}
	}
	return users
}

func advance(t testing.TB, l *engine.Local, ts int64) []engine.Output {
	t.Helper()
	outs, err := l.AdvanceTo(ts)
	if err != nil {
		t.Fatalf("advancing to %d: %v", ts, err)
	}
	return outs
}

func TestBroadcastEveryMemberOncePerTick(t *testing.T) {
	l, _ := segLocal(t, dailyGold, Options{BroadcastSlice: 1000})
	users := goldMembers(t, l, 2500)
	got := tally{}
	got.add(t, advance(t, l, bcTick1-1))
	if len(got) != 0 {
		t.Fatalf("%d entries before the tick", len(got))
	}
	got.add(t, advance(t, l, bcTick1))
	got.check(t, users, 1)

	// Between ticks, one member leaves and one joins.
	process(t, l, users[7], "$profile_set", bcTick1+1000, tier("silver"))
	process(t, l, "late", "$profile_set", bcTick1+2000, tier("gold"))
	second := tally{}
	second.add(t, advance(t, l, bcTick2))
	want := append(append([]string(nil), users[:7]...), users[8:]...)
	second.check(t, append(want, "late"), 1)

	rec := committedBroadcast(t, l, "daily")
	if rec.Running || rec.Tick != bcTick2+msPerDay {
		t.Errorf("after the second pass, record = %+v, want idle at the third tick", rec)
	}
	if n, err := l.PendingTimers(); err != nil || n != 1 {
		t.Errorf("pending timers = %d, %v; want the broadcast timer only", n, err)
	}
}

// crashingSplitter stands in for the real engine, which commits between
// firings: after each broadcast firing that leaves its pass running, it
// moves the continuation 1 ms later, so that the next slice runs in a later
// Local call, i.e. a later transaction. With crash set, the next broadcast
// firing fails after doing its work, and Local drops the whole call, as a
// crash before the commit would.
type crashingSplitter struct {
	*Operator
	crash   bool
	firings int
}

var errCrash = errors.New("simulated crash")

func (s *crashingSplitter) OnTimer(ctx *engine.Context, t *engine.Timer) error {
	id, ok := strings.CutPrefix(t.ID, broadcastPrefix)
	if !ok {
		return s.Operator.OnTimer(ctx, t)
	}
	if err := s.Operator.OnTimer(ctx, t); err != nil {
		return err
	}
	s.firings++
	if s.crash {
		s.crash = false
		return errCrash
	}
	rec, err := loadBroadcast(ctx, id)
	if err != nil || rec == nil || !rec.Running {
		return err
	}
	pl, err := encode(broadcastPayload{Tick: rec.Tick})
	if err != nil {
		return err
	}
	return ctx.SetTimer(t.ID, t.Due+1, pl) // replaces the one due now
}

// TestBroadcastCrashMidPass drops uncommitted work in the middle of a pass
// and checks that the pass resumes at the committed cursor: every member
// still enters exactly once per tick.
func TestBroadcastCrashMidPass(t *testing.T) {
	sp := &crashingSplitter{Operator: journeyOp(t, dailyGold, Options{BroadcastSlice: 1000})}
	l := localWith(t, sp)
	users := goldMembers(t, l, 2500)
	got := tally{}
	run := func(ts int64, crash bool) {
		t.Helper()
		sp.crash = crash
		outs, err := l.AdvanceTo(ts)
		switch {
		case crash && !errors.Is(err, errCrash):
			t.Fatalf("advancing to %d: %v, want the simulated crash", ts, err)
		case !crash && err != nil:
			t.Fatalf("advancing to %d: %v", ts, err)
		}
		got.add(t, outs)
	}
	// Tick 1: slices at tick, tick+1, tick+2; a crash after the second
	// slice's work, before its commit.
	run(bcTick1, false)
	if n := len(got); n != 1000 {
		t.Fatalf("first slice entered %d, want 1000", n)
	}
	if rec := committedBroadcast(t, l, "daily"); !rec.Running || rec.Cursor == 0 {
		t.Fatalf("after the first slice, record = %+v, want a running pass with a cursor", rec)
	}
	run(bcTick1+1, true)
	run(bcTick1+1, false)
	run(bcTick1+2, false)
	got.check(t, users, 1)
	if sp.firings != 4 {
		t.Errorf("firings = %d, want 4 (3 slices and 1 replayed)", sp.firings)
	}
	// Tick 2: a crash in the very first slice, then a crash in the last.
	run(bcTick2, true)
	run(bcTick2, false)
	run(bcTick2+1, false)
	run(bcTick2+2, true)
	run(bcTick2+2, false)
	got.check(t, users, 2)
	st := committedStats(t, l, "daily")
	if st.Entered != 5000 || st.Actions != 5000 {
		t.Errorf("stats entered %d, actions %d; want 5000 each", st.Entered, st.Actions)
	}
}

func committedBroadcast(t *testing.T, l *engine.Local, id string) broadcastRec {
	t.Helper()
	var rec broadcastRec
	found := false
	err := l.ScanShared(OperatorName, func(sub, value []byte) error {
		if string(sub) == broadcastPrefix+id {
			found = true
			return decode(value, &rec)
		}
		return nil
	})
	if err != nil || !found {
		t.Fatalf("reading broadcast record: found %v, %v", found, err)
	}
	return rec
}

func committedStats(t *testing.T, l *engine.Local, id string) Stats {
	t.Helper()
	var st Stats
	err := l.ScanShared(OperatorName, func(sub, value []byte) error {
		if strings.HasPrefix(string(sub), statPrefix+id+"/") {
			return decode(value, &st)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestBroadcastRules checks the rules around a pass: reentry and
// holdouts apply, members already in the journey are not restarted,
// missed ticks are caught up in order, and the broadcast follows
// definition changes (a new cron re-arms; a pause drops it; a resume arms
// it again at the next tick after the clock).
func TestBroadcastRules(t *testing.T) {
	src := func(cron, status, reentry string) string {
		return fmt.Sprintf(`
kind: journey
id: weekly
status: %s
entry: {schedule: {cron: %q, segment: gold}, reentry: %s}
nodes:
  hi: {action: {channel: push, template: daily}, next: wait}
  wait: {wait: 36h}
`, status, cron, reentry)
	}
	sw := &swappable{op: journeyOp(t, src("0 9 * * *", "active", "after_exit"), Options{})}
	l := localWith(t, sw)
	const day0 = int64(1_772_409_600_000) // 2026-03-02T00:00:00Z, cron in UTC
	process(t, l, "a", "$profile_set", day0, tier("gold"))
	process(t, l, "b", "$profile_set", day0, tier("gold"))
	got := tally{}
	steps := []struct {
		name string
		do   func()
		want map[string]int // cumulative pushes
	}{
		{"first tick", func() { got.add(t, advance(t, l, day0+9*3_600_000)) }, map[string]int{"a": 1, "b": 1}},
		// Day 1 09:00: both still wait (36 h): no new entry. Day 2 09:00:
		// they exited at day 1 21:00, so they enter again. Catch-up fires
		// both ticks, in order, within one advance.
		{"caught-up ticks, active instances kept", func() { got.add(t, advance(t, l, day0+2*msPerDay+9*3_600_000)) },
			map[string]int{"a": 2, "b": 2}},
		{"new cron re-armed by the next event", func() {
			sw.op = journeyOp(t, src("0 10 * * *", "active", "after_exit"), Options{})
			process(t, l, "c", "$profile_set", day0+2*msPerDay+12*3_600_000, tier("gold"))
			got.add(t, advance(t, l, day0+3*msPerDay+9*3_600_000))
		}, map[string]int{"a": 2, "b": 2}},
		{"new cron's tick", func() { got.add(t, advance(t, l, day0+3*msPerDay+10*3_600_000)) },
			map[string]int{"a": 2, "b": 2, "c": 1}}, // a and b still wait until 21:00
		{"new cron re-armed by the old tick", func() {
			// No event: the 10:00 timer fires, then arms 11:00 the same day.
			sw.op = journeyOp(t, src("0 11 * * *", "active", "after_exit"), Options{})
			got.add(t, advance(t, l, day0+5*msPerDay+11*3_600_000))
		}, map[string]int{"a": 3, "b": 3, "c": 2}}, // day 4 a and b, day 5 c
		{"paused: the tick drops the broadcast", func() {
			sw.op = journeyOp(t, src("0 11 * * *", "paused", "after_exit"), Options{})
			got.add(t, advance(t, l, day0+8*msPerDay))
		}, map[string]int{"a": 3, "b": 3, "c": 2}},
		{"resumed: armed at the next tick after the clock", func() {
			sw.op = journeyOp(t, src("0 11 * * *", "active", "never"), Options{})
			process(t, l, "d", "$profile_set", day0+8*msPerDay+1, tier("gold"))
			got.add(t, advance(t, l, day0+8*msPerDay+11*3_600_000))
		}, map[string]int{"a": 3, "b": 3, "c": 2, "d": 1}}, // reentry never: only d is new
	}
	for _, s := range steps {
		s.do()
		if fmt.Sprint(got) != fmt.Sprint(tally(s.want)) {
			t.Fatalf("%s: pushes %v, want %v", s.name, got, s.want)
		}
	}
}

func TestScheduleNext(t *testing.T) {
	tests := []struct {
		name, cron, zone, after string
		want                    []string // successive ticks
	}{
		{"shanghai morning", "0 9 * * *", "Asia/Shanghai", "2026-03-02T00:00:00Z",
			[]string{"2026-03-02T01:00:00Z", "2026-03-03T01:00:00Z"}},
		{"strictly after", "0 9 * * *", "", "2026-03-02T09:00:00Z", []string{"2026-03-03T09:00:00Z"}},
		{"inside the minute", "0 9 * * *", "", "2026-03-02T08:59:59.999Z", []string{"2026-03-02T09:00:00Z"}},
		{"weekdays", "30 8 * * 1-5", "Europe/Paris", "2026-03-06T08:00:00Z", // a Friday
			[]string{"2026-03-09T07:30:00Z", "2026-03-10T07:30:00Z"}},
		{"descriptor", "@weekly", "", "2026-03-02T00:00:00Z", []string{"2026-03-08T00:00:00Z"}},
		// New York: 2026-03-08 02:30 does not exist; 2026-11-01 01:30
		// happens twice and fires once.
		{"spring forward gap skipped", "30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z",
			[]string{"2026-03-09T06:30:00Z"}},
		{"fall back repeat fires once", "30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z",
			[]string{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc, err := loadZone(tt.zone)
			if err != nil {
				t.Fatal(err)
			}
			s, err := parseSchedule(tt.cron, tt.zone, loc, "gold")
			if err != nil {
				t.Fatal(err)
			}
			at, _ := time.Parse(time.RFC3339Nano, tt.after)
			cur := at.UnixMilli()
			var got []string
			for range tt.want {
				next, ok := s.next(cur)
				if !ok {
					t.Fatal("no next tick")
				}
				got = append(got, time.UnixMilli(next).UTC().Format(time.RFC3339))
				cur = next
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("ticks %v, want %v", got, tt.want)
			}
		})
	}
}

// TestBroadcastReplayIdentical runs the same stream twice, once with the
// passes split over many calls, and compares the actions.
func TestBroadcastReplayIdentical(t *testing.T) {
	runOnce := func(slice int) []string {
		l, _ := segLocal(t, dailyGold, Options{BroadcastSlice: slice})
		goldMembers(t, l, 300)
		var out []string
		for _, o := range advance(t, l, bcTick2) {
			if strings.HasPrefix(o.Topic, "actions.") {
				out = append(out, string(o.Value))
			}
		}
		sort.Strings(out)
		return out
	}
	a, b := runOnce(1000), runOnce(7)
	if len(a) != 600 || strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("slices of 1000 and 7 give %d and %d different actions", len(a), len(b))
	}
}
