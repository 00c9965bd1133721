package funnel

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestPackLabel(t *testing.T) {
	for _, l := range []string{"2026-11-22", "2026-11-22T13", "0001-01-01T00", "9999-12-31T23", "2026-01-31"} {
		v, ok := packLabel(l)
		if !ok || string(unpackLabel(nil, v)) != l {
			t.Errorf("packLabel(%q) = %d, %v; unpacks to %q", l, v, ok, unpackLabel(nil, v))
		}
	}
	for _, l := range []string{"", "2026-11-22T1", "2026-13-22", "2026-11-22T25", "2026/11/22", "2026-11-22X13", "+026-11-22"} {
		if v, ok := packLabel(l); ok {
			t.Errorf("packLabel(%q) = %d, want not ok", l, v)
		}
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	groups := []string{"", "web", "app"}
	for i := range 20 {
		g := "g" + string(rune('a'+i))
		groups = append(groups, g)
	}
	st := &userState{Latest: base + 5000}
	for i := range 40 {
		st.Events = append(st.Events, stepEvent{TS: base + int64(i)*100 - int64(i%3), Steps: uint32(1 + i%7), Group: groups[i%len(groups)]})
	}
	st.Counted = []counted{{Bucket: "2026-11-22", Group: "web", Depth: 2, End: base + 99}, {Bucket: "odd label", Group: "gq", Depth: 32, End: base - 7}}
	b, _ := st.appendBinary(nil, nil)
	var got userState
	if _, err := got.decodeBinary(b, nil, &interner{}); err != nil {
		t.Fatal(err)
	}
	if got.Latest != st.Latest || !slices.Equal(got.Events, st.Events) || !slices.Equal(got.Counted, st.Counted) {
		t.Fatalf("round trip changed state:\n%+v\n%+v", st, got)
	}
}

func FuzzDecodeBinaryState(f *testing.F) {
	st := &userState{Latest: 5, Events: []stepEvent{{TS: 1, Steps: 3, Group: "web"}},
		Counted: []counted{{Bucket: "2026-11-22", Group: "web", Depth: 2, End: 99}}}
	b, _ := st.appendBinary(nil, nil)
	f.Add(b)
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var st userState
		if _, err := st.decodeBinary(b, nil, nil); err != nil {
			return
		}
		again, _ := st.appendBinary(nil, nil)
		var st2 userState
		if _, err := st2.decodeBinary(again, nil, nil); err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if st.Latest != st2.Latest || !slices.Equal(st.Events, st2.Events) || !slices.Equal(st.Counted, st2.Counted) {
			t.Fatalf("round trip changed state: %+v vs %+v", st, st2)
		}
	})
}

func TestRowJSONMatchesEncodingJSON(t *testing.T) {
	for _, g := range []string{"", "web", "a/b", `q"uote`, "back\\slash", "<tag>&", "tab\t", "é", "\u2028", "\xff", "ctl\x01"} {
		r := Row{Funnel: "checkout", Bucket: "2026-11-22T13", Group: g, Partition: 12, Steps: []int64{4, 2, 0}}
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.appendJSON(nil)
		if err != nil || string(got) != string(want) {
			t.Errorf("group %q: appendJSON = %s, %v; want %s", g, got, err, want)
		}
	}
}

func TestBucketCacheAgreesWithBucketOf(t *testing.T) {
	op := mustNew(t, "kind: funnel\nid: h\nwindow: 1h\nbucket: hour\ntimezone: Asia/Kolkata\nsteps: [{event: a}, {event: b}]\n"+
		"---\nkind: funnel\nid: d\nwindow: 1h\ntimezone: America/New_York\nsteps: [{event: a}, {event: b}]\n")
	var c bucketCache
	r := rand.New(rand.NewPCG(3, 4))
	start := time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC).UnixMilli() // NY spring forward
	for range 20000 {
		ts := start + r.Int64N(3*24*60)*minute + r.Int64N(minute)
		for _, d := range op.Definitions() {
			label, end := c.of(d, ts)
			wantLabel, wantEnd := d.bucketOf(ts)
			if label != wantLabel || end != wantEnd {
				t.Fatalf("%s at %d: cache %s %d, bucketOf %s %d", d.ID, ts, label, end, wantLabel, wantEnd)
			}
		}
	}
}

func TestLogPartRoundTrip(t *testing.T) {
	st := &userState{Since: 7, Except: []int64{9, 12}}
	for i := range 40 {
		st.Events = append(st.Events, stepEvent{TS: -5000 + int64(i)*100, Steps: uint32(1 + i%7), Group: "g" + string(rune('a'+i%20))})
	}
	st.Counted = []counted{{Bucket: "2026-11-22", Group: "gq", Depth: 2, End: base + 99},
		{Bucket: "odd label", Group: "", Depth: 32, End: base + 3*minute}, {Bucket: "2026-11-22T13", Depth: 1, End: -minute}}
	r := &userRecord{log: []logEntry{{seq: 9}, {seq: 12}}}
	b, _ := st.appendLogPart(nil, r, nil)
	var got userState
	if _, err := got.decodeLogPart(b, nil, &interner{}); err != nil {
		t.Fatal(err)
	}
	if got.Since != st.Since || !slices.Equal(got.Except, st.Except) || !slices.Equal(got.Events, st.Events) || !slices.Equal(got.Counted, st.Counted) {
		t.Fatalf("round trip changed state:\n%+v\n%+v", got, st)
	}
	// Seqs no longer in the log are dropped.
	b, _ = st.appendLogPart(nil, &userRecord{log: []logEntry{{seq: 12}}}, nil)
	got = userState{}
	if _, err := got.decodeLogPart(b, nil, nil); err != nil || !slices.Equal(got.Except, []int64{12}) {
		t.Fatalf("Except = %v, %v; want [12]", got.Except, err)
	}
}

func FuzzDecodeLogPart(f *testing.F) {
	st := &userState{Since: 3, Events: []stepEvent{{TS: 1, Steps: 3, Group: "web"}},
		Counted: []counted{{Bucket: "2026-11-22", Group: "web", Depth: 2, End: 99}}}
	b, _ := st.appendLogPart(nil, &userRecord{}, nil)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var st userState
		if _, err := st.decodeLogPart(b, nil, nil); err != nil {
			return
		}
		again, _ := st.appendLogPart(nil, &userRecord{}, nil)
		var st2 userState
		if _, err := st2.decodeLogPart(again, nil, nil); err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if st.Since != st2.Since || len(st2.Except) != 0 || !slices.Equal(st.Events, st2.Events) || !slices.Equal(st.Counted, st2.Counted) {
			t.Fatalf("round trip changed state: %+v vs %+v", st, st2)
		}
	})
}
