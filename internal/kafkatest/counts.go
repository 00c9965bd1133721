package kafkatest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/operators/count"
)

// Tally is the comparison of counter outputs with the events that caused
// them.
type Tally struct {
	Events, Outputs int
	Lost            int      // events without their output
	Duplicated      int      // outputs whose (user, n) appeared before
	OutOfOrder      int      // outputs numbered n whose cause is not the user's n-th event
	Users           []string // users with a lost, duplicated or misplaced output: the first 10 in event order
}

// noteUser adds u to c.Users unless the list is full.
func (c *Tally) noteUser(u string) {
	if len(c.Users) < 10 {
		c.Users = append(c.Users, u)
	}
}

// Exact reports whether every event has exactly one output, in order.
func (c Tally) Exact() bool {
	return c.Lost == 0 && c.Duplicated == 0 && c.OutOfOrder == 0 && c.Outputs == c.Events
}

// TallyCounts compares counter outputs with evs: for every user there must
// be exactly one record per input event, numbered 1..k in the user's event
// order.
func TallyCounts(evs []Event, outs []count.Record) Tally {
	want := map[string][]string{}
	for _, ev := range evs {
		want[ev.UserID] = append(want[ev.UserID], ev.EventID)
	}
	c := Tally{Events: len(evs), Outputs: len(outs)}
	got := map[string]map[uint64]string{}
	dup := map[string]bool{}
	for _, o := range outs {
		if got[o.UserID] == nil {
			got[o.UserID] = map[uint64]string{}
		}
		if _, ok := got[o.UserID][o.N]; ok {
			c.Duplicated++
			dup[o.UserID] = true
		}
		got[o.UserID][o.N] = o.Cause
	}
	for _, ev := range evs {
		u := ev.UserID
		ids := want[u]
		if ids == nil {
			continue // the user was checked at its first event
		}
		delete(want, u)
		bad := dup[u]
		for i, id := range ids {
			cause, ok := got[u][uint64(i+1)]
			switch {
			case !ok:
				c.Lost++
				bad = true
			case cause != id:
				c.OutOfOrder++
				bad = true
			}
		}
		if bad {
			c.noteUser(u)
		}
	}
	return c
}

// CheckCounts fails the test unless TallyCounts finds the outputs exact.
func CheckCounts(t testing.TB, evs []Event, outs []count.Record) Tally {
	t.Helper()
	c := TallyCounts(evs, outs)
	if !c.Exact() {
		t.Fatalf("exactly-once violated: %d outputs for %d events, %d duplicated, %d lost, %d out of order; users %v",
			c.Outputs, c.Events, c.Duplicated, c.Lost, c.OutOfOrder, c.Users)
	}
	return c
}

// WaitCounts waits up to 180s until topic holds want committed counter
// records and returns them decoded.
func WaitCounts(t testing.TB, addrs []string, topic string, want int) []count.Record {
	t.Helper()
	rs := WaitRecords(t, addrs, topic, want)
	out := make([]count.Record, len(rs))
	for i, r := range rs {
		if err := json.Unmarshal(r.Value, &out[i]); err != nil {
			t.Fatalf("decoding output at %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
		}
	}
	return out
}

// WaitRecords waits up to 180s until topic holds want committed records
// and returns them all (fewer if it times out: the caller's check fails).
func WaitRecords(t testing.TB, addrs []string, topic string, want int) []*kgo.Record {
	t.Helper()
	deadline := time.Now().Add(180 * time.Second)
	for {
		rs := ReadCommitted(t, addrs, topic)
		if len(rs) >= want || time.Now().After(deadline) {
			return rs
		}
		time.Sleep(200 * time.Millisecond)
	}
}
