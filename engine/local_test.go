package engine

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// probe is a test operator: on "set:<id>:<delay>" it sets a timer, on
// "cancel:<id>" it cancels one, on "ping" it emits the user's profile tier,
// on "chain" it emits an internal event, and on "agg" it upserts a counter.
type probe struct{}

func (probe) Name() string     { return "probe" }
func (probe) Events() []string { return nil }

func (probe) OnEvent(ctx *Context, ev *Event) error {
	parts := strings.Split(ev.Name, ":")
	switch parts[0] {
	case "set":
		d, _ := strconv.ParseInt(parts[2], 10, 64)
		return ctx.SetTimer(parts[1], ev.TS+d, []byte(parts[1]))
	case "cancel":
		return ctx.CancelTimer(parts[1])
	case "ping":
		p, err := ctx.Profile()
		if err != nil {
			return err
		}
		ctx.Emit(Output{Topic: "out", Value: []byte(fmt.Sprintf("tier=%v", p["tier"]))})
	case "chain":
		return ctx.EmitEvent(Event{Name: "$chained", TS: ev.TS})
	case "$chained":
		ctx.Emit(Output{Topic: "out", Value: []byte("chained")})
	case "agg":
		v, _ := ctx.GetShared([]byte("n"))
		n, _ := strconv.Atoi(string(v))
		n++
		if err := ctx.SetShared([]byte("n"), []byte(strconv.Itoa(n))); err != nil {
			return err
		}
		ctx.Upsert(Output{Topic: "agg", Key: []byte("n"), Value: []byte(strconv.Itoa(n))})
		ctx.Upsert(Output{Topic: "agg", Key: []byte("n"), Value: []byte(strconv.Itoa(n))})
	}
	return nil
}

func (probe) OnTimer(ctx *Context, t *Timer) error {
	ctx.Emit(Output{Topic: "out", Value: []byte(fmt.Sprintf("fired %s@%d user %s now %d", t.Payload, t.Due, ctx.UserID(), ctx.Now()))})
	return nil
}

func values(outs []Output) []string {
	var s []string
	for _, o := range outs {
		s = append(s, string(o.Value))
	}
	return s
}

func TestLocalTimersFireInDueOrderBeforeLaterEvents(t *testing.T) {
	l, err := NewLocal(0, probe{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	steps := []struct {
		ev   Event
		want string
	}{
		{Event{UserID: "a", Name: "set:t1:100", TS: 1000}, "[]"},
		{Event{UserID: "b", Name: "set:t2:50", TS: 1010}, "[]"},
		{Event{UserID: "a", Name: "set:t3:500", TS: 1020}, "[]"},
		{Event{UserID: "a", Name: "cancel:t3", TS: 1030}, "[]"},
		{Event{UserID: "c", Name: "ping", TS: 1200}, "[fired t2@1060 user b now 1060 fired t1@1100 user a now 1100 tier=<nil>]"},
		{Event{UserID: "c", Name: "set:t1:10", TS: 1300}, "[]"},
		{Event{UserID: "c", Name: "set:t1:20", TS: 1301}, "[]"}, // replaces the first
	}
	for i, s := range steps {
		outs, err := l.Process(s.ev)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(values(outs)); got != s.want {
			t.Fatalf("step %d (%s): outputs %s, want %s", i, s.ev.Name, got, s.want)
		}
	}
	outs, err := l.AdvanceTo(2000)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(values(outs)); got != "[fired t1@1321 user c now 1321]" {
		t.Fatalf("AdvanceTo outputs %s", got)
	}
	if n, _ := l.PendingTimers(); n != 0 {
		t.Fatalf("%d timers left", n)
	}
}

func TestLocalLateEventDoesNotRewindClock(t *testing.T) {
	l, _ := NewLocal(0, probe{})
	defer l.Close()
	if _, err := l.Process(Event{UserID: "a", Name: "x", TS: 5000}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Process(Event{UserID: "a", Name: "x", TS: 10}); err != nil {
		t.Fatal(err)
	}
	if l.Clock() != 5000 {
		t.Fatalf("clock = %d, want 5000", l.Clock())
	}
}

func TestLocalProfilesInternalEventsAndUpserts(t *testing.T) {
	l, _ := NewLocal(0, probe{})
	defer l.Close()
	run := func(ev Event) []string {
		t.Helper()
		outs, err := l.Process(ev)
		if err != nil {
			t.Fatal(err)
		}
		return values(outs)
	}
	run(Event{UserID: "a", Name: EventProfileSet, TS: 1, Props: map[string]any{"tier": "gold", "tz": "UTC"}})
	if got := fmt.Sprint(run(Event{UserID: "a", Name: "ping", TS: 2})); got != "[tier=gold]" {
		t.Fatalf("ping = %s", got)
	}
	run(Event{UserID: "a", Name: EventProfileUnset, TS: 3, Props: map[string]any{"tier": nil}})
	if p, _ := l.Profile("a"); p["tier"] != nil || p["tz"] != "UTC" {
		t.Fatalf("profile after unset = %v", p)
	}
	if got := fmt.Sprint(run(Event{UserID: "a", Name: "chain", TS: 4})); got != "[chained]" {
		t.Fatalf("chain = %s", got)
	}
	if got := fmt.Sprint(run(Event{UserID: "a", Name: "agg", TS: 5})); got != "[1]" {
		t.Fatalf("one upsert per key per commit expected, got %s", got)
	}
}

type looper struct{ probe }

func (looper) OnEvent(ctx *Context, ev *Event) error {
	return ctx.EmitEvent(Event{Name: "$again", TS: ev.TS})
}

func TestLocalInternalEventLoopIsAnError(t *testing.T) {
	l, _ := NewLocal(0, looper{})
	defer l.Close()
	if _, err := l.Process(Event{UserID: "a", Name: "x", TS: 1}); err == nil || !strings.Contains(err.Error(), "loop") {
		t.Fatalf("err = %v, want a loop error", err)
	}
}

func TestInternalEventNeedsDollarName(t *testing.T) {
	ctx := &Context{core: &partitionCore{}}
	if err := ctx.EmitEvent(Event{Name: "purchase"}); err == nil {
		t.Fatal("EmitEvent accepted a name without $")
	}
}

// crossReader reads probe's state through GetOf/GetSharedOf/ScanSharedOf
// and acts for another user through ForUser.
type crossReader struct{ probe }

func (crossReader) Name() string     { return "cross" }
func (crossReader) Events() []string { return []string{"read"} }
func (crossReader) OnEvent(ctx *Context, ev *Event) error {
	v, err := ctx.GetSharedOf("probe", []byte("n"))
	if err != nil {
		return err
	}
	n := 0
	if err := ctx.ScanSharedOf("probe", nil, func(_, _ []byte) error { n++; return nil }); err != nil {
		return err
	}
	ctx.Emit(Output{Topic: "out", Value: []byte(fmt.Sprintf("shared n=%s keys=%d", v, n))})
	other := ctx.ForUser("someone-else")
	if err := other.Set([]byte("k"), []byte("v")); err != nil {
		return err
	}
	got, err := ctx.GetOf("cross", []byte("k"))
	ctx.Emit(Output{Topic: "out", Value: []byte(fmt.Sprintf("own=%q for %s", got, other.UserID()))})
	return err
}

func TestContextCrossReads(t *testing.T) {
	l, _ := NewLocal(0, probe{}, crossReader{})
	defer l.Close()
	if _, err := l.Process(Event{UserID: "a", Name: "agg", TS: 1}); err != nil {
		t.Fatal(err)
	}
	outs, err := l.Process(Event{UserID: "a", Name: "read", TS: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(values(outs)); got != `[shared n=1 keys=1 own="" for someone-else]` {
		t.Fatalf("outputs = %s", got)
	}
	found := false
	_ = l.ScanUser("someone-else", "cross", func(sub, v []byte) error { found = string(v) == "v"; return nil })
	if !found {
		t.Fatal("ForUser did not write under the other user")
	}
}

// firings returns a fireDueWhile budget of n firings; nil (no bound) if n
// is negative.
func firings(n int) func() bool {
	if n < 0 {
		return nil
	}
	return func() bool { n--; return n >= 0 }
}

func TestFireDueWhileSpreadsOverdueTimers(t *testing.T) {
	l, _ := NewLocal(0, probe{})
	defer l.Close()
	for i := 0; i < 5; i++ {
		if _, err := l.Process(Event{UserID: fmt.Sprintf("u%d", i), Name: fmt.Sprintf("set:t:%d", 10*(i+1)), TS: 100}); err != nil {
			t.Fatal(err)
		}
	}
	c := l.core
	last, done, err := c.fireDueWhile(1000, firings(2))
	if err != nil || done || last != 120 {
		t.Fatalf("fireDueWhile = %d, %v, %v; want 120, not done", last, done, err)
	}
	last, done, err = c.fireDueWhile(1000, firings(10))
	if err != nil || !done || last != 150 {
		t.Fatalf("fireDueWhile = %d, %v, %v; want 150, done", last, done, err)
	}
	if n, _ := c.pendingTimers(); n != 0 {
		t.Fatalf("%d timers left", n)
	}
}

// buffered counts events in its transaction buffer and adds the count to a
// shared total in Flush; an event named "fail" fails after buffering.
type buffered struct{}

func (buffered) Name() string                   { return "buffered" }
func (buffered) Events() []string               { return nil }
func (buffered) OnTimer(*Context, *Timer) error { return nil }
func newCount() any                             { return new(int) }
func (buffered) OnEvent(ctx *Context, ev *Event) error {
	*ctx.TxnBuffer(newCount).(*int)++
	if ev.Name == "fail" {
		return fmt.Errorf("failing on purpose")
	}
	return nil
}

func (buffered) Flush(ctx *Context, buf any) error {
	if ctx.UserID() != "" {
		return fmt.Errorf("flush bound to user %q", ctx.UserID())
	}
	v, err := ctx.GetShared([]byte("total"))
	if err != nil {
		return err
	}
	total, _ := strconv.Atoi(string(v))
	total += *buf.(*int)
	ctx.Upsert(Output{Topic: "agg", Key: []byte("total"), Value: []byte(strconv.Itoa(total))})
	return ctx.SetShared([]byte("total"), []byte(strconv.Itoa(total)))
}

func TestTxnBufferIsFlushedOncePerTransactionAndDroppedOnAbort(t *testing.T) {
	l, err := NewLocal(0, buffered{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	steps := []struct {
		name    string
		want    string
		wantErr bool
	}{
		{"a", "[1]", false},
		{"b", "[2]", false},
		{"fail", "[]", true}, // its buffered count must not reach the total
		{"c", "[3]", false},
	}
	for i, s := range steps {
		outs, err := l.Process(Event{UserID: "u", Name: s.name, TS: int64(1000 + i)})
		if (err != nil) != s.wantErr {
			t.Fatalf("step %d: error %v, want error %v", i, err, s.wantErr)
		}
		if got := fmt.Sprint(values(outs)); got != s.want {
			t.Errorf("step %d (%s): outputs %s, want %s", i, s.name, got, s.want)
		}
	}
}

// unflushed uses TxnBuffer without implementing Flusher.
type unflushed struct{ probe }

func (unflushed) OnEvent(ctx *Context, ev *Event) error {
	ctx.TxnBuffer(newCount)
	return nil
}

func TestTxnBufferNeedsFlusher(t *testing.T) {
	l, err := NewLocal(0, unflushed{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "Flusher") {
			t.Errorf("recovered %v, want a panic naming Flusher", r)
		}
	}()
	_, _ = l.Process(Event{UserID: "u", Name: "x", TS: 1})
}

// writer listens to everything and records each event's name in shared
// state; reader lists only "x" and emits what it reads there.
type writer struct{}

func (writer) Name() string                   { return "writer" }
func (writer) Events() []string               { return nil }
func (writer) OnTimer(*Context, *Timer) error { return nil }
func (writer) OnEvent(ctx *Context, ev *Event) error {
	return ctx.SetShared([]byte("last"), []byte(ev.Name))
}

type reader struct{}

func (reader) Name() string                   { return "reader" }
func (reader) Events() []string               { return []string{"x"} }
func (reader) OnTimer(*Context, *Timer) error { return nil }
func (reader) OnEvent(ctx *Context, ev *Event) error {
	v, err := ctx.GetSharedOf("writer", []byte("last"))
	ctx.Emit(Output{Topic: "out", Value: v})
	return err
}

// TestOperatorsRunInTheOrderGiven: an operator given first runs first on
// every event, even when it listens to everything and the next one lists
// the event (segments before journeys, docs/segments.md).
func TestOperatorsRunInTheOrderGiven(t *testing.T) {
	for _, tt := range []struct {
		name string
		ops  []Operator
		want string
	}{
		{"listen-to-all first", []Operator{writer{}, reader{}}, "[x x]"}, // reader sees this event's write
		{"listed first", []Operator{reader{}, writer{}}, "[y y]"},        // reader runs before the write
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewLocal(0, tt.ops...)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var got []string
			for i, name := range []string{"y", "x", "z", "y", "x"} {
				outs, err := l.Process(Event{UserID: "u", Name: name, TS: int64(i)})
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range outs {
					got = append(got, string(o.Value))
				}
			}
			if fmt.Sprint(got) != tt.want {
				t.Errorf("reader saw %v, want %s", got, tt.want)
			}
		})
	}
}

// TestLocalReadsUsersThroughTheCache checks the partition core's wiring of
// the state cache: the first read of a user loads it, later events of the
// same user read it from memory, across commits, and give the same answers.
func TestLocalReadsUsersThroughTheCache(t *testing.T) {
	l, _ := NewLocal(0, probe{})
	defer l.Close()
	if _, err := l.Process(Event{UserID: "a", Name: EventProfileSet, TS: 1, Props: map[string]any{"tier": "gold"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		outs, err := l.Process(Event{UserID: "a", Name: "ping", TS: int64(2 + i)})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(values(outs)); got != "[tier=gold]" {
			t.Fatalf("ping %d = %s, want [tier=gold]", i, got)
		}
	}
	if s := l.core.cache.Stats(); s.Misses != 1 || s.Hits < 3 || s.Bytes == 0 {
		t.Errorf("cache stats %+v, want 1 miss (the first read of a) and at least 3 hits", s)
	}
}
