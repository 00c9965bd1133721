package journey

import (
	"fmt"
	"os"
	"strconv"
	"testing"
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
