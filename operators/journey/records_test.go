package journey

import (
	"bytes"
	"maps"
	"reflect"
	"testing"
)

// TestCapStateEncodingIsCanonical: the same caps must always encode to the
// same bytes (a restored store must equal the lost one byte for byte), and
// decode back to the same value.
func TestCapStateEncodingIsCanonical(t *testing.T) {
	cs := &capState{Sent: map[string][]int64{
		"push": {1, 2}, "email": {3}, "sms": {4, 5, 6}, "in_app": {7}, "webhook": {8},
	}}
	first, err := encode(cs)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ { // map iteration order is random: 50 tries catch an unsorted encoding
		b, err := encode(&capState{Sent: maps.Clone(cs.Sent)})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, first) {
			t.Fatalf("encoding %d differs:\n%q\n%q", i, b, first)
		}
	}
	var back capState
	if err := decode(first, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Sent, cs.Sent) {
		t.Errorf("decoded %v, want %v", back.Sent, cs.Sent)
	}
	var empty capState
	b, err := encode(&capState{})
	if err != nil {
		t.Fatal(err)
	}
	if err := decode(b, &empty); err != nil || empty.Sent != nil {
		t.Errorf("nil Sent round trip: %v, %v", empty.Sent, err)
	}
}
