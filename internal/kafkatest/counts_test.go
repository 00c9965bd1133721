package kafkatest

import (
	"fmt"
	"testing"

	"github.com/cairn-cjo/cairn/operators/count"
)

// TestTallyCounts checks the exactly-once checker itself: each way of
// getting the outputs wrong is counted as what it is, and names its user.
func TestTallyCounts(t *testing.T) {
	evs := []Event{{UserID: "a", EventID: "a1"}, {UserID: "b", EventID: "b1"}, {UserID: "a", EventID: "a2"}, {UserID: "b", EventID: "b2"}}
	out := func(u string, n uint64, cause string) count.Record {
		return count.Record{UserID: u, N: n, Cause: cause}
	}
	exact := []count.Record{out("a", 1, "a1"), out("b", 1, "b1"), out("a", 2, "a2"), out("b", 2, "b2")}
	tests := []struct {
		name string
		outs []count.Record
		want string // Tally without Events
	}{
		{"exact", exact, "out 4 lost 0 dup 0 order 0 users []"},
		{"lost", exact[:3], "out 3 lost 1 dup 0 order 0 users [b]"},
		{"duplicated", append(exact[:4:4], out("a", 2, "a2")), "out 5 lost 0 dup 1 order 0 users [a]"},
		// A stale restore: b's second event counted from a state without its first.
		{"stale state", []count.Record{out("a", 1, "a1"), out("b", 1, "b1"), out("a", 2, "a2"), out("b", 1, "b2")}, "out 4 lost 1 dup 1 order 1 users [b]"},
		{"swapped", []count.Record{out("a", 1, "a2"), out("a", 2, "a1"), out("b", 1, "b1"), out("b", 2, "b2")}, "out 4 lost 0 dup 0 order 2 users [a]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := TallyCounts(evs, tt.outs)
			got := fmt.Sprintf("out %d lost %d dup %d order %d users %v", c.Outputs, c.Lost, c.Duplicated, c.OutOfOrder, c.Users)
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if c.Exact() != (tt.name == "exact") {
				t.Errorf("Exact() = %v", c.Exact())
			}
		})
	}
}
