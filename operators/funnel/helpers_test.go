package funnel

import (
	"testing"
	"time"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/defs"
)

// base is 2026-11-22T00:00:00Z in ms.
var base = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC).UnixMilli()

const minute = int64(time.Minute / time.Millisecond)

func mustNew(t testing.TB, src string) *Operator {
	t.Helper()
	docs, err := defs.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parsing docs: %v", err)
	}
	op, err := New(docs, Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return op
}

// run processes evs in order on partition 0 and returns the final row of
// each aggregates key and every output in order.
func run(t testing.TB, op *Operator, evs []engine.Event) (map[string]Row, []engine.Output) {
	t.Helper()
	l, err := engine.NewLocal(0, op)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rows := map[string]Row{}
	var all []engine.Output
	for _, ev := range evs {
		outs, err := l.Process(ev)
		if err != nil {
			t.Fatalf("processing %+v: %v", ev, err)
		}
		for _, o := range outs {
			r, err := DecodeRow(o.Key, o.Value)
			if err != nil {
				t.Fatalf("decoding output: %v", err)
			}
			rows[string(o.Key)] = r
		}
		all = append(all, outs...)
	}
	return rows, all
}

// countsOf maps "funnel/bucket/group" to the counts of rows.
func countsOf(rows map[string]Row) map[string][]int64 {
	out := map[string][]int64{}
	for _, r := range rows {
		out[r.Funnel+"/"+r.Bucket+"/"+r.Group] = r.Steps
	}
	return out
}

func ev(user, name string, ts int64, props map[string]any) engine.Event {
	return engine.Event{UserID: user, Name: name, TS: ts, Props: props}
}

// processInto processes e and records the last row of each aggregates key
// it upserts in rows.
func processInto(t testing.TB, l *engine.Local, e engine.Event, rows map[string]Row) error {
	t.Helper()
	outs, err := l.Process(e)
	if err != nil {
		return err
	}
	for _, o := range outs {
		row, err := DecodeRow(o.Key, o.Value)
		if err != nil {
			t.Fatalf("decoding output %s: %v", o.Key, err)
		}
		rows[string(o.Key)] = row
	}
	return nil
}

// processAll processes evs of the case seed and returns the last row of
// each aggregates key.
func processAll(t testing.TB, seed int, l *engine.Local, evs []engine.Event) map[string]Row {
	t.Helper()
	rows := map[string]Row{}
	for i, e := range evs {
		if err := processInto(t, l, e, rows); err != nil {
			t.Fatalf("seed %d: processing event %d: %v", seed, i, err)
		}
	}
	return rows
}
