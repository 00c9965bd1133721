package kafkatest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cairn-cjo/cairn/operators/count"
)

// CheckCounts asserts that the counter outputs hold, for every user, exactly one
// record per input event, numbered 1..k in the user's event order.
func CheckCounts(t testing.TB, evs []Event, outs []count.Record) {
	t.Helper()
	want := map[string][]string{}
	for _, ev := range evs {
		want[ev.UserID] = append(want[ev.UserID], ev.EventID)
	}
	got := map[string]map[uint64]string{}
	dups := 0
	for _, o := range outs {
		if got[o.UserID] == nil {
			got[o.UserID] = map[uint64]string{}
		}
		if _, ok := got[o.UserID][o.N]; ok {
			dups++
		}
		got[o.UserID][o.N] = o.Cause
	}
	lost := 0
	for u, ids := range want {
		for i, id := range ids {
			c, ok := got[u][uint64(i+1)]
			if !ok {
				lost++
				continue
			}
			if c != id {
				t.Errorf("user %s count %d: caused by %s, want %s", u, i+1, c, id)
			}
		}
	}
	if dups > 0 || lost > 0 || len(outs) != len(evs) {
		t.Fatalf("exactly-once violated: %d outputs for %d events, %d duplicated, %d lost", len(outs), len(evs), dups, lost)
	}
}

// WaitCounts waits up to 180s until topic holds want committed counter
// records and returns them decoded.
func WaitCounts(t testing.TB, addrs []string, topic string, want int) []count.Record {
	t.Helper()
	deadline := time.Now().Add(180 * time.Second)
	for {
		rs := ReadCommitted(t, addrs, topic)
		if len(rs) >= want || time.Now().After(deadline) {
			out := make([]count.Record, len(rs))
			for i, r := range rs {
				if err := json.Unmarshal(r.Value, &out[i]); err != nil {
					t.Fatalf("decoding output at %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
				}
			}
			return out
		}
		time.Sleep(200 * time.Millisecond)
	}
}
