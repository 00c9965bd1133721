package state

import (
	"bytes"
	"maps"
	"reflect"
	"testing"
)

type canonNode struct {
	Entered int64
	Tags    map[string]int64
}

type canonStats struct {
	Name  string
	Exits map[string]int64
	Nodes map[string]*canonNode
	Sent  map[string][]int64
	Props map[string]any
}

// TestEncodeValueIsCanonicalForEveryMap encodes values holding maps msgpack
// does not sort by itself, with fresh maps each time (Go randomizes their
// iteration order): every encoding must be the same bytes, and decode back
// to the same value.
func TestEncodeValueIsCanonicalForEveryMap(t *testing.T) {
	keys := []string{"a", "b", "c", "d", "e", "f", "g"}
	mk := func() *canonStats {
		s := &canonStats{Name: "x", Exits: map[string]int64{}, Nodes: map[string]*canonNode{},
			Sent: map[string][]int64{}, Props: map[string]any{"z": "1", "y": map[string]any{"b": "1", "a": "2"}}}
		for i, k := range keys {
			s.Exits[k] = int64(i)
			s.Nodes[k] = &canonNode{Entered: int64(i), Tags: map[string]int64{"p": 1, "q": 2, "r": 3}}
			s.Sent[k] = []int64{int64(i), 1 << 40}
		}
		return s
	}
	tests := []struct {
		name string
		v    func() any
	}{
		{"struct with generic maps", func() any { return mk() }},
		{"bare map[string]int64", func() any { return maps.Clone(mk().Exits) }},
		{"slice of structs", func() any { return []*canonStats{mk(), mk()} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, err := EncodeValue(tt.v())
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 30; i++ {
				b, err := EncodeValue(tt.v())
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b, first) {
					t.Fatalf("encoding %d differs from the first", i)
				}
			}
			want := tt.v()
			got := reflect.New(reflect.TypeOf(want)).Interface()
			if err := DecodeValue(first, got); err != nil {
				t.Fatal(err)
			}
			if g := reflect.ValueOf(got).Elem().Interface(); !reflect.DeepEqual(g, want) {
				t.Errorf("decoded %#v, want %#v", g, want)
			}
		})
	}
}

func TestNeedsCanonical(t *testing.T) {
	tests := []struct {
		v    any
		want bool
	}{
		{map[string]any{}, false},
		{map[string]string{}, false},
		{struct{ A map[string]bool }{}, false},
		{struct{ A int }{}, false},
		{map[string]int64{}, true},
		{&canonStats{}, true},
		{[]canonNode{}, true},
		{struct{ a map[string]int }{}, false}, // unexported: not encoded
	}
	for _, tt := range tests {
		if got := needsCanonical(reflect.TypeOf(tt.v)); got != tt.want {
			t.Errorf("needsCanonical(%T) = %v, want %v", tt.v, got, tt.want)
		}
	}
}
