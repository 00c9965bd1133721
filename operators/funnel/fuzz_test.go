package funnel

import (
	"slices"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/cairn-cjo/cairn/operators/defs"
)

func FuzzDecodeRow(f *testing.F) {
	f.Add([]byte("funnel/checkout/2026-11-22/web/3"),
		[]byte(`{"funnel":"checkout","bucket":"2026-11-22","group":"web","partition":3,"steps":[4,2,1]}`))
	f.Add([]byte("funnel/x/2026-11-22T13/a%2Fb/0"),
		[]byte(`{"funnel":"x","bucket":"2026-11-22T13","group":"a/b","partition":0,"steps":[1,0]}`))
	f.Add([]byte("k"), []byte(`{}`))
	f.Add([]byte(""), []byte(nil))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		r, err := DecodeRow(key, value)
		if err != nil {
			return
		}
		if r.Key() != string(key) {
			t.Fatalf("decoded row key %q from key %q", r.Key(), key)
		}
		_ = Query([]Row{r}, r.Funnel, "", "", "")
	})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(checkoutYAML))
	f.Add([]byte("kind: funnel\nid: a\nwindow: 1d2h\nbucket: hour\ntimezone: Asia/Kolkata\nsteps: [{event: a}, {event: a, when: 'profile.x == 1'}]\n"))
	f.Add([]byte("kind: funnel\nsteps: 3\n---\nkind: funnel\nid: [1]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		docs, err := defs.Parse("fuzz.yaml", src)
		if err != nil {
			return
		}
		op, err := New(docs, Options{})
		if err != nil {
			return
		}
		for _, d := range op.Definitions() {
			if len(d.Steps) < 2 || len(d.Steps) > MaxSteps || d.Window <= 0 || d.loc == nil {
				t.Fatalf("invalid definition accepted: %+v", d)
			}
			d.bucketOf(0)
		}
	})
}

func FuzzDecodeUserState(f *testing.F) {
	st := &userState{Latest: 5, Events: []stepEvent{{TS: 1, Steps: 3, Group: "web"}},
		Counted: []counted{{Bucket: "2026-11-22", Group: "web", Depth: 2, End: 99}}}
	b, err := msgpack.Marshal(st)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{0x93, 0x00, 0x90, 0x90})
	f.Add([]byte{0x93, 0x00, 0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var st userState
		if err := msgpack.Unmarshal(b, &st); err != nil {
			return
		}
		again, err := msgpack.Marshal(&st)
		if err != nil {
			t.Fatal(err)
		}
		var st2 userState
		if err := msgpack.Unmarshal(again, &st2); err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		// A msgpack nil decodes to nil slices, an empty array to empty
		// ones: compare contents.
		if st.Latest != st2.Latest || !slices.Equal(st.Events, st2.Events) || !slices.Equal(st.Counted, st2.Counted) {
			t.Fatalf("round trip changed state: %+v vs %+v", st, st2)
		}
	})
}
