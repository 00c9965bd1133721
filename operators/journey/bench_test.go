package journey

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/cairn-cjo/cairn/state"
)

// BenchmarkBroadcast measures one broadcast pass over a segment of 20,000
// members through engine.Local (one commit per pass), slices of 1,000:
// members/s is the rate at which members enter and get their action.
// BenchmarkBroadcast enters every member of a segment by a scheduled
// journey: 20,000 members, or CAIRN_BROADCAST_MEMBERS (the figure
// is for 1,000,000: run it with -benchtime 1x).
func BenchmarkBroadcast(b *testing.B) {
	members := 20_000
	if n, err := strconv.Atoi(os.Getenv("CAIRN_BROADCAST_MEMBERS")); err == nil && n > 0 {
		members = n
	}
	l, _ := segLocal(b, dailyGold, Options{})
	for i := range members {
		process(b, l, fmt.Sprintf("u%06d", i), "$profile_set", bcT0+int64(i), tier("gold"))
	}
	outputs := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		outs := advance(b, l, bcTick1+int64(i)*msPerDay)
		outputs += len(outs)
	}
	if outputs < b.N*members {
		b.Fatalf("%d outputs for %d passes of %d members", outputs, b.N, members)
	}
	b.ReportMetric(float64(b.N*members)/b.Elapsed().Seconds(), "members/s")
}

// BenchmarkRecordRoundTrip reads and writes back a journey record whose
// entry event has props, as every event that touches an instance does
// without reading the entry (the props stay undecoded).
func BenchmarkRecordRoundTrip(b *testing.B) {
	rec := userRec{Seq: 3, Version: 2, Active: true, Node: "wait_1", NodeTS: 1763800000000, Due: 1763803600000,
		Entry: storedEvent{Name: "add_to_cart", TS: 1763800000000, ID: "e-12345",
			Props: map[string]any{"sku": "sku-12", "price": 19.9, "channel": "app", "qty": int64(2)}}}
	v, err := state.EncodeValue(&rec)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var r userRec
		if err := state.DecodeValue(v, &r); err != nil {
			b.Fatal(err)
		}
		if _, err := state.EncodeValue(&r); err != nil {
			b.Fatal(err)
		}
	}
}
