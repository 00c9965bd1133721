package journey

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/cairn-cjo/cairn/state"
)

// The reflective layouts of the records with hand-written codecs
// (codec.go): the same fields and tags, without the methods, so msgpack
// encodes and decodes them by reflection, as it did the records before.
type (
	plainRec struct {
		Seq          uint32      `msgpack:"q"`
		Version      int         `msgpack:"v"`
		Entry        plainStored `msgpack:"e"`
		Holdout      bool        `msgpack:"h,omitempty"`
		Active       bool        `msgpack:"a,omitempty"`
		Node         string      `msgpack:"n,omitempty"`
		NodeTS       int64       `msgpack:"nt,omitempty"`
		Due          int64       `msgpack:"d,omitempty"`
		LastExit     int64       `msgpack:"x,omitempty"`
		GoalOpen     bool        `msgpack:"g,omitempty"`
		GoalDeadline int64       `msgpack:"gd,omitempty"`
	}
	plainStored struct {
		Name  string         `msgpack:"n"`
		TS    int64          `msgpack:"t"`
		ID    string         `msgpack:"i,omitempty"`
		Props map[string]any `msgpack:"p,omitempty"`
	}
	plainHist struct {
		TS    int64          `msgpack:"t"`
		Props map[string]any `msgpack:"p,omitempty"`
	}
	plainCaps struct {
		Sent map[string][]int64 `msgpack:"s"`
	}
)

func (p plainStored) real() storedEvent {
	return storedEvent{Name: p.Name, TS: p.TS, ID: p.ID, Props: p.Props}
}

func (p plainRec) real() userRec {
	return userRec{Seq: p.Seq, Version: p.Version, Entry: p.Entry.real(), Holdout: p.Holdout,
		Active: p.Active, Node: p.Node, NodeTS: p.NodeTS, Due: p.Due, LastExit: p.LastExit,
		GoalOpen: p.GoalOpen, GoalDeadline: p.GoalDeadline}
}

// randInt returns 0 or an integer of a random width, negative or not.
func randInt(r *rand.Rand) int64 {
	if r.IntN(3) == 0 {
		return 0
	}
	v := r.Int64N(1 << (r.IntN(62) + 1))
	if r.IntN(2) == 0 {
		v = -v
	}
	return v
}

func randString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return ""
	}
	return fmt.Sprintf("s%d", r.IntN(1000))
}

func randProps(r *rand.Rand, depth int) map[string]any {
	n := r.IntN(4)
	if n == 0 {
		if r.IntN(2) == 0 {
			return nil
		}
		return map[string]any{}
	}
	m := map[string]any{}
	for i := 0; i < n; i++ {
		var v any
		switch r.IntN(6) {
		case 0:
			v = randInt(r)
		case 1:
			v = randString(r)
		case 2:
			v = r.Float64()
		case 3:
			v = r.IntN(2) == 0
		case 4:
			v = nil
		default:
			if depth < 2 {
				v = randProps(r, depth+1)
			}
		}
		m[fmt.Sprintf("k%d", r.IntN(20))] = v
	}
	return m
}

func randStored(r *rand.Rand) plainStored {
	return plainStored{Name: randString(r), TS: randInt(r), ID: randString(r), Props: randProps(r, 0)}
}

func randRec(r *rand.Rand) plainRec {
	b := func() bool { return r.IntN(2) == 0 }
	return plainRec{Seq: uint32(r.Uint64()), Version: int(randInt(r)), Entry: randStored(r), Holdout: b(),
		Active: b(), Node: randString(r), NodeTS: randInt(r), Due: randInt(r), LastExit: randInt(r),
		GoalOpen: b(), GoalDeadline: randInt(r)}
}

func randCaps(r *rand.Rand) plainCaps {
	if r.IntN(5) == 0 {
		return plainCaps{}
	}
	c := plainCaps{Sent: map[string][]int64{}}
	for i := r.IntN(4); i > 0; i-- {
		var times []int64
		for j := r.IntN(4); j > 0; j-- {
			times = append(times, randInt(r))
		}
		c.Sent[randString(r)] = times
	}
	return c
}

// TestCodecsMatchReflection checks, on random records, that each
// hand-written codec writes the bytes state.EncodeValue wrote by
// reflection, and reads back what reflection reads.
func TestCodecsMatchReflection(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		p := randRec(r)
		real := p.real()
		checkCodec(t, "userRec", &p, &real, &plainRec{}, &userRec{}, func(a, b any) bool {
			return reflect.DeepEqual(a.(*plainRec).real(), decodedProps(t, *b.(*userRec)))
		})

		hs := []plainHist{{TS: randInt(r), Props: randProps(r, 0)}, {TS: randInt(r)}}
		realHs := []histEvent{histEvent(hs[0]), histEvent(hs[1])}
		checkCodec(t, "history", &hs, &realHs, &[]plainHist{}, &[]histEvent{}, func(a, b any) bool {
			pa, rb := *a.(*[]plainHist), *b.(*[]histEvent)
			if len(pa) != len(rb) {
				return false
			}
			for i := range pa {
				if !reflect.DeepEqual(histEvent(pa[i]), rb[i]) {
					return false
				}
			}
			return true
		})

		c := randCaps(r)
		realC := capState(c)
		checkCodec(t, "capState", &c, &realC, &plainCaps{}, &capState{}, func(a, b any) bool {
			return reflect.DeepEqual(capState(*a.(*plainCaps)), *b.(*capState))
		})
	}
}

// checkCodec encodes plain (by reflection) and real (by its codec) with
// state.EncodeValue, wants equal bytes, decodes them into plainOut and
// realOut and wants same(plainOut, realOut).
func checkCodec(t *testing.T, what string, plain, real, plainOut, realOut any, same func(a, b any) bool) {
	t.Helper()
	want, err := state.EncodeValue(plain)
	if err != nil {
		t.Fatal(err)
	}
	got, err := state.EncodeValue(real)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: codec wrote\n%x\nreflection wrote\n%x\nfor %+v", what, got, want, real)
	}
	if err := state.DecodeValue(want, plainOut); err != nil {
		t.Fatal(err)
	}
	if err := state.DecodeValue(want, realOut); err != nil {
		t.Fatalf("%s: decoding %x: %v", what, want, err)
	}
	// What was read, written again untouched (an entry's props still
	// undecoded), is what was read.
	if again, err := state.EncodeValue(realOut); err != nil || !bytes.Equal(again, want) {
		t.Fatalf("%s: read and written again: %x, %v; want %x", what, again, err, want)
	}
	if !same(plainOut, realOut) {
		t.Fatalf("%s: codec read %+v, reflection read %+v", what, realOut, plainOut)
	}
}

// decodedProps returns r with its entry's props decoded, as reflection
// decodes them.
func decodedProps(t *testing.T, r userRec) userRec {
	t.Helper()
	if _, err := r.Entry.props(); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCodecsReadWhatReflectionReads(t *testing.T) {
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want userRec
	}{
		{"nil is the zero record", enc(nil), userRec{}},
		{"unknown keys are skipped", enc(map[string]any{"q": 3, "zz": []any{1, "x"}, "a-much-longer-key-than-ours": 1, "a": true}),
			userRec{Seq: 3, Active: true}},
		{"compact and wide integers", enc(map[string]any{"v": int8(-3), "nt": uint16(500), "d": int64(-1) << 40}),
			userRec{Version: -3, NodeTS: 500, Due: -1 << 40}},
		{"nil entry", enc(map[string]any{"e": nil, "n": "wait"}), userRec{Node: "wait"}},
		{"entry with props", enc(map[string]any{"e": map[string]any{"n": "buy", "t": 7, "p": map[string]any{"x": "y"}}}),
			userRec{Entry: storedEvent{Name: "buy", TS: 7, Props: map[string]any{"x": "y"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := userRec{Node: "stale"}
			if err := msgpack.Unmarshal(tc.b, &got); err != nil {
				t.Fatal(err)
			}
			if got = decodedProps(t, got); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	for _, bad := range [][]byte{{0x81}, {0x81, 0xa1, 'q'}, {0x81, 0xa1, 'a', 0x01}, {0x92, 0x01, 0x02}} {
		var rec userRec
		if err := msgpack.Unmarshal(bad, &rec); err == nil {
			t.Errorf("decoding %x: no error", bad)
		}
	}
}
