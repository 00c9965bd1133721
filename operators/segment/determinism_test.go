package segment

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cairn-cjo/cairn/engine"
)

// TestDeterministic runs the same log twice, on two stores, and requires
// the same outputs, in the same order, and byte-identical state.
func TestDeterministic(t *testing.T) {
	evs := benchEvents(3000, 200)
	run := func() (string, string) {
		op := mustNew(t, benchDefs())
		l, err := engine.NewLocal(1, op)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var outs bytes.Buffer
		for i, ev := range evs {
			got, err := l.Process(ev)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range got {
				fmt.Fprintf(&outs, "%d %s %s %s\n", i, o.Topic, o.Key, o.Value)
			}
		}
		got, err := l.AdvanceTo(evs[len(evs)-1].TS + 30*day)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range got {
			fmt.Fprintf(&outs, "end %s %s %s\n", o.Topic, o.Key, o.Value)
		}
		var st bytes.Buffer
		_ = l.ScanShared(OperatorName, func(k, v []byte) error { fmt.Fprintf(&st, "%x=%x\n", k, v); return nil })
		for u := range 200 {
			user := fmt.Sprintf("user-%d", u)
			_ = l.ScanUser(user, OperatorName, func(k, v []byte) error { fmt.Fprintf(&st, "%s %x=%x\n", user, k, v); return nil })
		}
		return outs.String(), st.String()
	}
	outs1, st1 := run()
	outs2, st2 := run()
	if outs1 != outs2 {
		t.Fatal("outputs differ between two runs of the same log")
	}
	if st1 != st2 {
		t.Fatal("state differs between two runs of the same log")
	}
	if len(outs1) == 0 || len(st1) == 0 {
		t.Fatal("nothing produced")
	}
}
