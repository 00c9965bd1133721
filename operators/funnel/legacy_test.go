package funnel

import (
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/state"
)

// seeder writes state in the msgpack layout of earlier versions on the
// event "seed", and is the funnel operator otherwise.
type seeder struct {
	*Operator
	user []byte // the record value
	sub  []byte // a counts key and its value
	val  []byte
}

func (s *seeder) Events() []string { return append([]string{"seed"}, s.Operator.Events()...) }

func (s *seeder) OnEvent(ctx *engine.Context, ev *engine.Event) error {
	if ev.Name != "seed" {
		return s.Operator.OnEvent(ctx, ev)
	}
	if err := ctx.Set(recordSub, s.user); err != nil {
		return err
	}
	return ctx.SetShared(s.sub, s.val)
}

func TestReadsLegacyState(t *testing.T) {
	op := mustNew(t, "kind: funnel\nid: p\nwindow: 1h\nsteps: [{event: a}, {event: b}]\n")
	d := op.byID["p"]
	label, end := d.bucketOf(base)
	st := &userState{Latest: base, Events: []stepEvent{{TS: base, Steps: 1}},
		Counted: []counted{{Bucket: label, Depth: 1, End: end}}}
	raw, err := msgpack.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	user, err := state.EncodeValue(legacyRecord{Funnels: []legacyRaw{{ID: "p", State: raw}}})
	if err != nil {
		t.Fatal(err)
	}
	val, err := state.EncodeValue([]int64{1, 0})
	if err != nil {
		t.Fatal(err)
	}
	s := &seeder{Operator: op, user: user, sub: countSub("p", label, ""), val: val}
	l, err := engine.NewLocal(0, s)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Process(ev("u1", "seed", base, nil)); err != nil {
		t.Fatal(err)
	}
	outs, err := l.Process(ev("u1", "b", base+10*minute, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || string(outs[0].Value) != `{"funnel":"p","bucket":"2026-11-22","group":"","partition":0,"steps":[1,1]}` {
		t.Fatalf("outputs %q", outs)
	}
	// The record is now binary and the counts in a page.
	outs, err = l.Process(ev("u2", "a", base+20*minute, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || string(outs[0].Value) != `{"funnel":"p","bucket":"2026-11-22","group":"","partition":0,"steps":[2,1]}` {
		t.Fatalf("outputs %q", outs)
	}
	err = l.ScanUser("u1", OperatorName, func(_, v []byte) error {
		if len(v) < 2 || v[1] != binaryMark {
			t.Errorf("record not rewritten in the binary layout: %x", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
