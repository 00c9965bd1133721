package funnel

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/state"
)

// downgrader is the funnel operator that, from event `from` on, rewrites
// each user's record once in an earlier layout (every funnel's events in
// its own part, as before the shared log) before the operator reads it.
type downgrader struct {
	*Operator
	from, seen int
	msgpack    bool // the msgpack layout, else the binary one
	done       map[string]bool
	t          *testing.T
}

func (d *downgrader) OnEvent(ctx *engine.Context, ev *engine.Event) error {
	d.seen++
	if d.seen > d.from && !d.done[ctx.UserID()] {
		d.done[ctx.UserID()] = true
		b, err := ctx.Get(recordSub)
		if err != nil {
			return err
		}
		if b != nil {
			if err := ctx.Set(recordSub, d.downgrade(b)); err != nil {
				return err
			}
		}
	}
	return d.Operator.OnEvent(ctx, ev)
}

// downgrade returns the record b in the earlier layout.
func (d *downgrader) downgrade(b []byte) []byte {
	d.t.Helper()
	var rec userRecord
	if err := rec.decode(b, d.Operator); err != nil {
		d.t.Fatalf("decoding record: %v", err)
	}
	var s scratch
	var old legacyRecord
	out := []byte{state.ValueVersion, binaryMark}
	out = binary.AppendUvarint(out, uint64(len(rec.parts)))
	for i := range rec.parts {
		p := &rec.parts[i]
		st := &userState{}
		if err := st.decodePart(p, &s); err != nil {
			d.t.Fatalf("decoding part: %v", err)
		}
		st.Latest = rec.latestOf(p.def, st)
		evs, _ := rec.view(p.def, st, -1, math.MinInt64, math.MaxInt64, nil)
		flat := &userState{Latest: st.Latest, Events: evs, Counted: st.Counted}
		raw, _ := flat.appendBinary(nil, nil)
		out = binary.AppendUvarint(out, uint64(len(p.id)))
		out = append(out, p.id...)
		out = binary.AppendUvarint(out, uint64(len(raw)))
		out = append(out, raw...)
		mp, err := msgpack.Marshal(flat)
		if err != nil {
			d.t.Fatal(err)
		}
		old.Funnels = append(old.Funnels, legacyRaw{ID: string(p.id), State: mp})
	}
	if !d.msgpack {
		return out
	}
	v, err := state.EncodeValue(old)
	if err != nil {
		d.t.Fatal(err)
	}
	return v
}

// TestEarlierLayoutsMatchReference rewrites every user's record in one of
// the layouts before the shared log a third of the way through random
// logs: the counts must go on as if nothing happened.
func TestEarlierLayoutsMatchReference(t *testing.T) {
	for seed := range 120 {
		fs, evs := randomCase(rand.New(rand.NewPCG(uint64(seed), 7)))
		var src []string
		for _, f := range fs {
			src = append(src, f.yaml())
		}
		d := &downgrader{Operator: mustNew(t, strings.Join(src, "---\n")), from: len(evs) / 3,
			msgpack: seed%2 == 1, done: map[string]bool{}, t: t}
		l, err := engine.NewLocal(0, d)
		if err != nil {
			t.Fatal(err)
		}
		rows := processAll(t, seed, l, evs)
		l.Close()
		if want, _ := reference(fs, evs); !reflect.DeepEqual(countsOf(rows), want) {
			t.Fatalf("seed %d (msgpack %v):\n got  %v\n want %v", seed, d.msgpack, countsOf(rows), want)
		}
	}
}

// FuzzDecodeRecord decodes arbitrary records: a record that decodes must
// encode, and decode again to the same log and parts.
func FuzzDecodeRecord(f *testing.F) {
	op := mustNew(f, "kind: funnel\nid: p\nwindow: 1h\ngroup_by: event.props.ch\nsteps: [{event: a}, {event: b, when: 'event.props.x > 1'}]\n")
	l, err := engine.NewLocal(0, op)
	if err != nil {
		f.Fatal(err)
	}
	for i, name := range []string{"a", "b", "a", "b"} {
		if _, err := l.Process(ev("u", name, base+int64(i)*minute, map[string]any{"ch": "web", "x": i})); err != nil {
			f.Fatal(err)
		}
	}
	err = l.ScanUser("u", OperatorName, func(_, v []byte) error { f.Add(append([]byte(nil), v...)); return nil })
	l.Close()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{state.ValueVersion, binaryMark, 0, logLayout, 5, 0, 0, 0, 1, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var rec userRecord
		if err := rec.decode(b, op); err != nil {
			return
		}
		var s scratch
		again, err := rec.encode(op, txnPool.Get().(*txnState), &s)
		if err != nil {
			return // a part that does not decode
		}
		var rec2 userRecord
		if err := rec2.decode(again, op); err != nil {
			t.Fatalf("re-decoding %x: %v", again, err)
		}
		if !reflect.DeepEqual(rec.log, rec2.log) && (len(rec.log) > 0 || len(rec2.log) > 0) {
			t.Fatalf("log changed: %+v vs %+v", rec.log, rec2.log)
		}
		if len(rec2.parts) > len(rec.parts) {
			t.Fatalf("parts grew from %d to %d", len(rec.parts), len(rec2.parts))
		}
	})
}
