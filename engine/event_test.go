package engine

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmihailenco/msgpack/v5"
)

func TestDecodeEvent(t *testing.T) {
	mp, _ := msgpack.Marshal(map[string]any{"user_id": "u-1", "event": "buy", "ts": int64(1700000000000), "props": map[string]any{"a": 1}})
	mpNoTS, _ := msgpack.Marshal(map[string]any{"user_id": "u-1", "event": "buy"})
	cases := []struct {
		name   string
		key    string
		value  string
		wantTS int64
		reason string
	}{
		{"json ms", "u-1", `{"user_id":"u-1","event":"add_to_cart","ts":1763800000000,"props":{"sku":"x"},"event_id":"e-1"}`, 1763800000000, ""},
		{"json rfc3339", "u-1", `{"user_id":"u-1","event":"e","ts":"2025-11-22T08:26:40Z"}`, 1763800000000, ""},
		{"json leading space", "u-1", ` {"user_id":"u-1","event":"e","ts":5}`, 5, ""},
		{"json no ts uses record time", "u-1", `{"user_id":"u-1","event":"e"}`, 42, ""},
		{"msgpack", "u-1", string(mp), 1700000000000, ""},
		{"msgpack no ts", "u-1", string(mpNoTS), 42, ""},
		{"not json", "u-1", `hello`, 0, ReasonNotDecoded},
		{"json array", "u-1", `[1,2]`, 0, ReasonNotDecoded},
		{"trailing data", "u-1", `{"user_id":"u-1","event":"e"} {}`, 0, ReasonNotDecoded},
		{"missing user", "u-1", `{"event":"e"}`, 0, ReasonNoUser},
		{"missing event", "u-1", `{"user_id":"u-1"}`, 0, ReasonNoEvent},
		{"key mismatch", "u-2", `{"user_id":"u-1","event":"e"}`, 0, ReasonKey},
		{"no key", "", `{"user_id":"u-1","event":"e"}`, 0, ReasonKey},
		{"bad ts string", "u-1", `{"user_id":"u-1","event":"e","ts":"yesterday"}`, 0, ReasonTS},
		{"fractional ts", "u-1", `{"user_id":"u-1","event":"e","ts":1.5}`, 0, ReasonTS},
		{"bool ts", "u-1", `{"user_id":"u-1","event":"e","ts":true}`, 0, ReasonTS},
		{"too large", "u-1", `{"user_id":"u-1","event":"e","p":"` + strings.Repeat("x", MaxEventBytes) + `"}`, 0, ReasonTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := DecodeEvent([]byte(tc.key), []byte(tc.value), 42)
			if tc.reason != "" {
				var de *DecodeError
				if !errors.As(err, &de) || de.Reason != tc.reason {
					t.Fatalf("err = %v, want reason %s", err, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.TS != tc.wantTS || ev.UserID != "u-1" {
				t.Fatalf("event = %+v, want ts %d", ev, tc.wantTS)
			}
		})
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte("u-1"), []byte(`{"user_id":"u-1","event":"e","ts":1,"props":{"a":[1,{"b":null}]}}`))
	f.Add([]byte("u-1"), []byte{0x82, 0xa7, 'u', 's', 'e', 'r', '_', 'i', 'd', 0xa3, 'u', '-', '1', 0xa5, 'e', 'v', 'e', 'n', 't', 0xa1, 'e'})
	f.Add([]byte(""), []byte(`{"ts":"2025-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		ev, err := DecodeEvent(key, value, 7)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error %v is not a DecodeError with a reason", err)
			}
			return
		}
		if ev.UserID == "" || ev.Name == "" || ev.UserID != string(key) {
			t.Fatalf("accepted an invalid event: %+v", ev)
		}
	})
}

// FuzzJSONAgreesWithTheStandardLibrary: the JSON decoder (goccy/go-json,
// for speed) must accept and reject what encoding/json does, and decode
// the same values, so the input contract (docs/events.md) stays the
// standard library's.
func FuzzJSONAgreesWithTheStandardLibrary(f *testing.F) {
	for _, s := range []string{
		`{"user_id":"u-1","event":"e","ts":1,"props":{"a":[1,{"b":null}],"n":1e400}}`,
		`{"user_id":"u\u00e9","event":"\ud800","ts":"2025-01-01T00:00:00Z","props":{"x":1.5e3,"y":-0}}`,
		`{"user_id":"u","event":"e","props":{"a":1,"a":2}}`,
		`{"user_id":"u","event":"e","EVENT":"f","props":null}`,
		"{\"user_id\":\"\xff\",\"event\":\"e\"}",
		`{"user_id":"u","event":"e"} x`,
		`{"user_id":1,"event":"e"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		var fast, std wireEvent
		ferr := unmarshalJSON(value, &fast)
		serr := json.Unmarshal(value, &std)
		if (ferr == nil) != (serr == nil) {
			t.Fatalf("%q: go-json error %v, encoding/json error %v", value, ferr, serr)
		}
		if ferr == nil && !reflect.DeepEqual(fast, std) {
			t.Fatalf("%q: go-json %#v, encoding/json %#v", value, fast, std)
		}
	})
}

// BenchmarkDecodeEvent decodes a typical JSON event with DecodeEvent, and
// with encoding/json as the baseline of the same run.
func BenchmarkDecodeEvent(b *testing.B) {
	v := []byte(`{"user_id":"u-4711","event":"add_to_cart","ts":1763800000000,"event_id":"e-99","props":{"sku":"sku-12","price":19.9,"channel":"app","qty":2}}`)
	b.Run("cairn", func(b *testing.B) {
		b.SetBytes(int64(len(v)))
		for b.Loop() {
			if _, err := DecodeEvent([]byte("u-4711"), v, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(v)))
		for b.Loop() {
			var w wireEvent
			if err := json.Unmarshal(v, &w); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestKeyPartitionMatchesKafkaDefault(t *testing.T) {
	p := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, n := range []int{1, 3, 6, 12, 64} {
		for i := 0; i < 2000; i++ {
			key := []byte(strings.Repeat("u", i%7) + "-" + string(rune('a'+i%26)) + string(rune(i)))
			want := p.Partition(&kgo.Record{Key: key}, n)
			if got := KeyPartition(key, int32(n)); int(got) != want {
				t.Fatalf("KeyPartition(%q, %d) = %d, franz-go says %d", key, n, got, want)
			}
		}
	}
}
