package segment

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/state"
)

func TestReadHelpers(t *testing.T) {
	h := newHarness(t, exampleDefs)
	h.send("a", "$profile_set", 10, map[string]any{"tier": "gold"})
	outs := h.send("b", "$profile_set", 11, map[string]any{"tier": "gold"})
	s := h.snapshot()

	t.Run("IsMember", func(t *testing.T) {
		for _, tc := range []struct {
			user, seg string
			want      bool
		}{{"a", "gold", true}, {"a", "vip-list", false}, {"zz", "gold", false}, {"a", "nope", false}} {
			if got, err := IsMember(s.get, tc.user, tc.seg); err != nil || got != tc.want {
				t.Errorf("IsMember(%s, %s) = %v, %v; want %v", tc.user, tc.seg, got, err, tc.want)
			}
		}
	})
	t.Run("InSegment", func(t *testing.T) {
		getUser := func(user string) GetFunc {
			return func(sub []byte) ([]byte, error) {
				var v []byte
				err := h.l.ScanUser(user, OperatorName, func(k, val []byte) error {
					if string(k) == string(sub) {
						v = append([]byte(nil), val...)
					}
					return nil
				})
				return v, err
			}
		}
		if ok, err := InSegment(getUser("a"), "gold-not-repeat"); err != nil || !ok {
			t.Errorf("InSegment(a, gold-not-repeat) = %v, %v", ok, err)
		}
		if ok, err := InSegment(getUser("nobody"), "gold"); err != nil || ok {
			t.Errorf("InSegment(nobody, gold) = %v, %v", ok, err)
		}
		if ids, _ := UserSegments(getUser("b")); !reflect.DeepEqual(ids, []string{"gold", "gold-not-repeat"}) {
			t.Errorf("UserSegments(b) = %v", ids)
		}
	})
	t.Run("DecodeSize", func(t *testing.T) {
		var rows []SizeRow
		for _, o := range outs {
			if o.Topic != DefaultAggregatesTopic {
				t.Fatalf("upsert to %s", o.Topic)
			}
			row, err := DecodeSize(o.Key, o.Value)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, row)
		}
		want := []SizeRow{{"gold", 3, 2}, {"gold-not-repeat", 3, 2}}
		if !reflect.DeepEqual(rows, want) {
			t.Errorf("rows = %+v, want %+v", rows, want)
		}
		if _, err := DecodeSize([]byte("funnel/f/1"), nil); !errors.Is(err, ErrNotSizeRow) {
			t.Errorf("funnel row: %v", err)
		}
		if _, err := DecodeSize([]byte("segment/gold/3"), []byte(`{"segment":"gold","partition":4,"size":1}`)); err == nil {
			t.Error("mismatched row accepted")
		}
		if row, err := DecodeSize([]byte("segment/gold/3"), nil); err != nil || row != (SizeRow{"gold", 3, 0}) {
			t.Errorf("tombstone = %+v, %v", row, err)
		}
	})
}

func TestOptions(t *testing.T) {
	if _, err := New(nil, Options{AggregatesTopic: "bad topic"}); err == nil {
		t.Error("bad topic accepted")
	}
	op, err := New(nil, Options{AggregatesTopic: "aggs"})
	if err != nil || op.OutputTopics()[0] != "aggs" || len(op.IDs()) != 0 {
		t.Errorf("New with no segments: %v", err)
	}
}

// TestStoreReaders copies the harness's committed segment state into a
// Pebble store under the engine's key layout and reads it back the way the
// HTTP layer will.
func TestStoreReaders(t *testing.T) {
	h := newHarness(t, exampleDefs)
	for i, u := range []string{"a", "b", "c"} {
		h.send(u, EventAdd, int64(i), map[string]any{"segment": "vip-list"})
	}
	st, err := state.OpenPebble("", state.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	batch := st.NewBatch()
	defer batch.Close()
	copyKeys := func(key func(sub []byte) []byte) func(sub, v []byte) error {
		return func(sub, v []byte) error { return batch.Set(key(sub), append([]byte(nil), v...)) }
	}
	if err := h.l.ScanShared(OperatorName, copyKeys(func(sub []byte) []byte { return state.SharedKey(3, OperatorName, sub) })); err != nil {
		t.Fatal(err)
	}
	if err := h.l.ScanUser("b", OperatorName, copyKeys(func(sub []byte) []byte { return state.UserKey(3, "b", OperatorName, sub) })); err != nil {
		t.Fatal(err)
	}
	if err := batch.Commit(); err != nil {
		t.Fatal(err)
	}
	get, scan := SharedReaders(st, 3)
	var got []string
	if err := Members(get, scan, "vip-list", func(u string) error { got = append(got, u); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("Members = %v", got)
	}
	if ok, err := IsMember(get, "b", "vip-list"); !ok || err != nil {
		t.Errorf("IsMember(b) = %v, %v", ok, err)
	}
	if ok, err := InSegment(UserReader(st, 3, "b"), "vip-list"); !ok || err != nil {
		t.Errorf("InSegment(b) = %v, %v", ok, err)
	}
	if n, err := Size(get, "vip-list"); n != 3 || err != nil {
		t.Errorf("Size = %d, %v", n, err)
	}
}

// fakeEngine serves one partition's snapshot the way engine.Engine does.
type fakeEngine struct {
	p int32
	s *snapshot
}

func (f *fakeEngine) GetShared(p int32, op string, sub []byte) ([]byte, error) {
	if p != f.p || op != OperatorName {
		return nil, errors.New("not owned")
	}
	return f.s.get(sub)
}

func (f *fakeEngine) ReadShared(p int32, op string, prefix []byte, fn func(sub, value []byte) error) error {
	if p != f.p || op != OperatorName {
		return errors.New("not owned")
	}
	return f.s.scan(prefix, fn)
}

func TestEngineReaders(t *testing.T) {
	h := newHarness(t, exampleDefs)
	h.send("x", EventAdd, 1, map[string]any{"segment": "vip-list"})
	get, scan := EngineReaders(&fakeEngine{p: 3, s: h.snapshot()}, 3)
	var got []string
	if err := Members(get, scan, "vip-list", func(u string) error { got = append(got, u); return nil }); err != nil || !reflect.DeepEqual(got, []string{"x"}) {
		t.Fatalf("Members = %v, %v", got, err)
	}
	get, _ = EngineReaders(&fakeEngine{p: 3, s: h.snapshot()}, 4)
	if _, err := IsMember(get, "x", "vip-list"); err == nil {
		t.Fatal("read of a partition not owned succeeded")
	}
}

var _ PartitionReader = (*engine.Engine)(nil)

func TestMembersFromSlices(t *testing.T) {
	h := newHarness(t, exampleDefs)
	var want []string
	for i := range 25 {
		u := fmt.Sprintf("u%02d", i)
		h.send(u, EventAdd, int64(i), map[string]any{"segment": "vip-list"})
		want = append(want, u)
	}
	s := h.snapshot()
	var got []string
	cursor, slices := uint32(0), 0
	for more := true; more; slices++ {
		var err error
		cursor, more, err = MembersFrom(s.get, s.scan, "vip-list", cursor, 10, func(u string) error { got = append(got, u); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if slices > 5 {
			t.Fatal("no progress")
		}
	}
	if !reflect.DeepEqual(got, want) || slices != 3 {
		t.Fatalf("got %v in %d slices", got, slices)
	}
}
