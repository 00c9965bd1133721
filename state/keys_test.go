package state

import (
	"bytes"
	"testing"
)

func TestKeyRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		key  []byte
		want Key
	}{
		{"meta", MetaKey(3, "marker"), Key{Partition: 3, Tag: TagMeta, Name: "marker"}},
		{"user", UserKey(7, "u-42", "journey", []byte("x")), Key{Partition: 7, Tag: TagUser, User: "u-42", Operator: "journey", Sub: []byte("x")}},
		{"user with NUL and empty sub", UserKey(0, "a\x00b", "op", nil), Key{Tag: TagUser, User: "a\x00b", Operator: "op", Sub: []byte{}}},
		{"shared", SharedKey(1, "segment", []byte{0, 1}), Key{Partition: 1, Tag: TagShared, Operator: "segment", Sub: []byte{0, 1}}},
		{"timer", TimerKey(2, 1700000000000, "journey", "u-1", "t1"), Key{Partition: 2, Tag: TagTimer, Due: 1700000000000, Operator: "journey", User: "u-1", ID: "t1"}},
		{"negative due", TimerKey(2, -5, "j", "u", "i"), Key{Partition: 2, Tag: TagTimer, Due: -5, Operator: "j", User: "u", ID: "i"}},
		{"timer index", TimerIndexKey(2, "u-1", "journey", "t1"), Key{Partition: 2, Tag: TagTimerIdx, User: "u-1", Operator: "journey", ID: "t1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeKey(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if got.Partition != tc.want.Partition || got.Tag != tc.want.Tag || got.Name != tc.want.Name ||
				got.User != tc.want.User || got.Operator != tc.want.Operator || got.ID != tc.want.ID ||
				got.Due != tc.want.Due || !bytes.Equal(got.Sub, tc.want.Sub) {
				t.Fatalf("DecodeKey = %+v, want %+v", got, tc.want)
			}
			if re := got.Encode(); !bytes.Equal(re, tc.key) {
				t.Fatalf("Encode = %x, want %x", re, tc.key)
			}
		})
	}
}

func TestTimerKeysSortByDue(t *testing.T) {
	dues := []int64{-1 << 40, -1, 0, 1, 1700000000000, 1 << 60}
	for i := 1; i < len(dues); i++ {
		a := TimerKey(0, dues[i-1], "z", "z", "z")
		b := TimerKey(0, dues[i], "a", "a", "a")
		if bytes.Compare(a, b) >= 0 {
			t.Fatalf("timer due %d does not sort before %d", dues[i-1], dues[i])
		}
	}
}

func TestPartitionsDoNotInterleave(t *testing.T) {
	a := UserKey(1, "\xff\xff", "\xff", []byte{0xff})
	b := MetaKey(2, "")
	if bytes.Compare(a, b) >= 0 || bytes.Compare(PrefixEnd(PartitionPrefix(1)), b) > 0 {
		t.Fatal("keys of partition 1 must sort before partition 2")
	}
}

func TestPrefixEnd(t *testing.T) {
	cases := []struct{ in, want []byte }{
		{[]byte{1, 2}, []byte{1, 3}},
		{[]byte{1, 0xff}, []byte{2}},
		{[]byte{0xff, 0xff}, nil},
	}
	for _, tc := range cases {
		if got := PrefixEnd(tc.in); !bytes.Equal(got, tc.want) {
			t.Errorf("PrefixEnd(%x) = %x, want %x", tc.in, got, tc.want)
		}
	}
}

func FuzzDecodeKey(f *testing.F) {
	f.Add(MetaKey(1, "clock"))
	f.Add(UserKey(1, "u", "op", []byte("s")))
	f.Add(TimerKey(1, 99, "op", "u", "id"))
	f.Add(TimerIndexKey(1, "u", "op", "id"))
	f.Add(SharedKey(1, "op", nil))
	f.Add([]byte{0, 0, 0, 1, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := DecodeKey(b)
		if err != nil {
			return
		}
		if re := k.Encode(); !bytes.Equal(re, b) {
			t.Fatalf("round trip of %x gave %x", b, re)
		}
	})
}

func TestValueRoundTripAndVersion(t *testing.T) {
	type v struct{ A int }
	b, err := EncodeValue(v{A: 7})
	if err != nil {
		t.Fatal(err)
	}
	var out v
	if err := DecodeValue(b, &out); err != nil || out.A != 7 {
		t.Fatalf("DecodeValue = %+v, %v", out, err)
	}
	b[0] = 99
	if err := DecodeValue(b, &out); err == nil {
		t.Fatal("DecodeValue accepted an unknown version")
	}
}

func TestEncodeValueIsDeterministic(t *testing.T) {
	m := map[string]any{}
	for i := 0; i < 50; i++ {
		m[string(rune('a'+i%26))+string(rune('A'+i))] = i
	}
	first, err := EncodeValue(m)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		b, _ := EncodeValue(m)
		if !bytes.Equal(b, first) {
			t.Fatal("EncodeValue of the same map gave different bytes")
		}
	}
}
