package segment

import (
	"bytes"
	"sort"
	"testing"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/defs"
)

const day = int64(24 * 3600 * 1000)

// recorder is a test operator that records the segment events it sees.
type recorder struct{ got []string }

func (r *recorder) Name() string     { return "recorder" }
func (r *recorder) Events() []string { return []string{EventEnter, EventExit} }
func (r *recorder) OnEvent(ctx *engine.Context, ev *engine.Event) error {
	r.got = append(r.got, ev.Name+" "+ctx.UserID()+" "+ev.Props["segment"].(string))
	return nil
}
func (r *recorder) OnTimer(*engine.Context, *engine.Timer) error { return nil }

func mustDocs(t testing.TB, src string) []defs.Doc {
	t.Helper()
	docs, err := defs.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parsing definitions: %v", err)
	}
	return docs
}

func mustNew(t testing.TB, src string) *Operator {
	t.Helper()
	op, err := New(mustDocs(t, src), Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return op
}

type harness struct {
	t   testing.TB
	op  *Operator
	l   *engine.Local
	rec *recorder
}

func newHarness(t testing.TB, src string) *harness {
	t.Helper()
	h := &harness{t: t, op: mustNew(t, src), rec: &recorder{}}
	l, err := engine.NewLocal(3, h.op, h.rec)
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	h.l = l
	return h
}

func (h *harness) send(user, name string, ts int64, props map[string]any) []engine.Output {
	h.t.Helper()
	outs, err := h.l.Process(engine.Event{UserID: user, Name: name, TS: ts, Props: props})
	if err != nil {
		h.t.Fatalf("processing %s of %s at %d: %v", name, user, ts, err)
	}
	return outs
}

func (h *harness) advance(ts int64) []engine.Output {
	h.t.Helper()
	outs, err := h.l.AdvanceTo(ts)
	if err != nil {
		h.t.Fatalf("advancing to %d: %v", ts, err)
	}
	return outs
}

// snapshot is the committed partition-wide state of the operator, with
// GetFunc and ScanFunc views as the HTTP layer would have.
type snapshot struct {
	keys []string
	vals map[string][]byte
}

func (h *harness) snapshot() *snapshot {
	h.t.Helper()
	s := &snapshot{vals: map[string][]byte{}}
	err := h.l.ScanShared(OperatorName, func(sub, v []byte) error {
		s.keys = append(s.keys, string(sub))
		s.vals[string(sub)] = append([]byte(nil), v...)
		return nil
	})
	if err != nil {
		h.t.Fatalf("scanning shared state: %v", err)
	}
	sort.Strings(s.keys)
	return s
}

func (s *snapshot) get(sub []byte) ([]byte, error) { return s.vals[string(sub)], nil }

func (s *snapshot) scan(prefix []byte, fn func(sub, v []byte) error) error {
	for _, k := range s.keys {
		if bytes.HasPrefix([]byte(k), prefix) {
			if err := fn([]byte(k), s.vals[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

// members returns the sorted members of seg from the bitmaps, checking the
// partition size against them.
func (h *harness) members(seg string) []string {
	h.t.Helper()
	s := h.snapshot()
	var got []string
	if err := Members(s.get, s.scan, seg, func(u string) error { got = append(got, u); return nil }); err != nil {
		h.t.Fatalf("Members(%s): %v", seg, err)
	}
	n, err := Size(s.get, seg)
	if err != nil || n != uint64(len(got)) {
		h.t.Fatalf("Size(%s) = %d, %v; bitmap has %d", seg, n, err, len(got))
	}
	for _, u := range got {
		if ok, err := IsMember(s.get, u, seg); err != nil || !ok {
			h.t.Fatalf("IsMember(%s, %s) = %v, %v; want true", u, seg, ok, err)
		}
	}
	sort.Strings(got)
	return got
}
