package state

import "testing"

// benchRec is shaped like a journey's per-user record: scalars, a nested
// struct and a small map[string]any of event props.
type benchRec struct {
	Seq   uint32 `msgpack:"q"`
	Ver   int    `msgpack:"v"`
	Entry struct {
		Name  string         `msgpack:"n"`
		TS    int64          `msgpack:"t"`
		Props map[string]any `msgpack:"p,omitempty"`
	} `msgpack:"e"`
	Active bool   `msgpack:"a,omitempty"`
	Node   string `msgpack:"n,omitempty"`
	Due    int64  `msgpack:"d,omitempty"`
}

func newBenchRec() benchRec {
	var r benchRec
	r.Seq, r.Ver, r.Active, r.Node, r.Due = 3, 2, true, "wait-1", 1_700_000_000_000
	r.Entry.Name, r.Entry.TS = "add_to_cart", 1_700_000_000_000
	r.Entry.Props = map[string]any{"sku": "sku-42", "amount": 19.5, "channel": "app"}
	return r
}

// BenchmarkEncodeValue measures EncodeValue on a journey-record-shaped value.
func BenchmarkEncodeValue(b *testing.B) {
	r := newBenchRec()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeValue(&r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeValue measures DecodeValue on a journey-record-shaped value.
func BenchmarkDecodeValue(b *testing.B) {
	r := newBenchRec()
	v, err := EncodeValue(&r)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var out benchRec
		if err := DecodeValue(v, &out); err != nil {
			b.Fatal(err)
		}
	}
}
