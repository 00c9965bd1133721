package engine_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
)

func TestStandbyPlacement(t *testing.T) {
	three := []string{"a", "b", "c"}
	for _, tc := range []struct {
		name      string
		instances []string
		owners    map[int32]string
		replicas  int
		check     func(t *testing.T, got map[int32][]string)
	}{
		{"no replicas, no standbys", three, map[int32]string{0: "a"}, 0, func(t *testing.T, got map[int32][]string) {
			if len(got) != 0 {
				t.Errorf("got %v, want none", got)
			}
		}},
		{"replicas cover every other instance", three, map[int32]string{0: "a", 1: "b", 2: "c", 3: "a"}, 2, func(t *testing.T, got map[int32][]string) {
			want := map[int32][]string{0: {"b", "c"}, 1: {"a", "c"}, 2: {"a", "b"}, 3: {"b", "c"}}
			for p, ids := range got {
				if !sameMembers(ids, want[p]) {
					t.Errorf("partition %d: standbys %v, want %v", p, ids, want[p])
				}
			}
		}},
		{"more replicas than instances", three, map[int32]string{0: "c"}, 5, func(t *testing.T, got map[int32][]string) {
			if !sameMembers(got[0], []string{"a", "b"}) {
				t.Errorf("partition 0: standbys %v, want a and b", got[0])
			}
		}},
		{"one replica never the owner", []string{"a", "b", "c", "d", "e"}, map[int32]string{0: "a", 1: "b", 2: "c", 3: "d", 4: "e", 5: "a"}, 1, func(t *testing.T, got map[int32][]string) {
			owners := map[int32]string{0: "a", 1: "b", 2: "c", 3: "d", 4: "e", 5: "a"}
			for p := int32(0); p < 6; p++ {
				if len(got[p]) != 1 || got[p][0] == owners[p] {
					t.Errorf("partition %d (owner %s): standbys %v", p, owners[p], got[p])
				}
			}
		}},
		{"unknown owner still gets standbys", three, nil, 1, func(t *testing.T, got map[int32][]string) {
			if len(got[0]) != 1 {
				t.Errorf("partition 0: standbys %v, want one", got[0])
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := int32(len(tc.owners))
			if n == 0 {
				n = 1
			}
			got := engine.StandbyPlacement(n, tc.owners, tc.instances, tc.replicas)
			tc.check(t, got)
			// Deterministic: the same input in another order gives the same placement.
			rev := append([]string(nil), tc.instances...)
			for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
				rev[i], rev[j] = rev[j], rev[i]
			}
			if again := engine.StandbyPlacement(n, tc.owners, rev, tc.replicas); !reflect.DeepEqual(got, again) {
				t.Errorf("placement depends on the order of instances: %v vs %v", got, again)
			}
		})
	}
}

// TestStandbyPlacementMovesLittle: an instance joining takes standbys only
// from the partitions it ranks first for; the others keep theirs.
func TestStandbyPlacementMovesLittle(t *testing.T) {
	owners := map[int32]string{}
	for p := int32(0); p < 64; p++ {
		owners[p] = "owner"
	}
	before := engine.StandbyPlacement(64, owners, []string{"owner", "a", "b", "c"}, 1)
	after := engine.StandbyPlacement(64, owners, []string{"owner", "a", "b", "c", "d"}, 1)
	moved := 0
	for p := int32(0); p < 64; p++ {
		if after[p][0] != before[p][0] {
			moved++
			if after[p][0] != "d" {
				t.Errorf("partition %d moved from %s to %s, not to the new instance", p, before[p][0], after[p][0])
			}
		}
	}
	if moved == 0 || moved == 64 {
		t.Errorf("%d of 64 standbys moved to the new instance, want some but not all", moved)
	}
}

// sameMembers reports whether a and b hold the same instance ids.
func sameMembers(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestStandbyFailoverReplaysOnlyTheTail runs two instances; the first
// leaves, and the second takes its partitions. Without standbys it
// restores their whole changelog; with one standby replica it has tailed
// them all along and replays only what its standby had not applied. Counts
// stay exact either way.
func TestStandbyFailoverReplaysOnlyTheTail(t *testing.T) {
	for _, replicas := range []int{0, 1} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) {
			addrs := newBroker(t)
			cfg := func(reg prometheus.Registerer) func(*engine.Config) {
				return func(c *engine.Config) {
					c.StandbyReplicas, c.StatusInterval, c.Registerer = replicas, 200*time.Millisecond, reg
				}
			}
			a := startInstance(t, addrs, "a", t.TempDir(), cfg(nil))
			regB := prometheus.NewRegistry()
			b := startInstance(t, addrs, "b", t.TempDir(), cfg(regB))
			first := genEvents("first", 3000, 6000, 1_700_000_000_000)
			kafkatest.ProduceEvents(t, addrs, input, first)
			kafkatest.WaitCounts(t, addrs, countsOut, len(first))
			moved := waitSplit(t, a, b)
			if replicas > 0 {
				waitStandbysCaughtUp(t, b, moved)
			}
			before := counterValue(t, regB, "cairn_restore_records_total")
			size := changelogSize(t, addrs, moved)
			a.stop(t)
			second := genEvents("second", 600, 600, 1_700_000_100_000)
			kafkatest.ProduceEvents(t, addrs, input, second)
			all := append(first, second...)
			kafkatest.CheckCounts(t, all, kafkatest.WaitCounts(t, addrs, countsOut, len(all)))
			replayed := counterValue(t, regB, "cairn_restore_records_total") - before
			t.Logf("partitions %v moved: %d changelog records, %.0f replayed", moved, size, replayed)
			if size < 1000 {
				t.Fatalf("moved partitions' changelog holds %d records; the test needs a real one", size)
			}
			switch {
			case replicas == 0 && replayed*2 < float64(size): // size counts commit markers too
				t.Errorf("without standbys %.0f records replayed, want the whole changelog (%d offsets)", replayed, size)
			case replicas > 0 && replayed*20 > float64(size):
				t.Errorf("with a standby %.0f of %d records replayed, want only the tail (< 5%%)", replayed, size)
			}
		})
	}
}

// waitSplit waits until a and b each own partitions and returns a's.
func waitSplit(t *testing.T, a, b *instance) []int32 {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		pa, pb := a.eng.Owned(), b.eng.Owned()
		if len(pa) > 0 && len(pb) > 0 && len(pa)+len(pb) == 6 && a.eng.Ready() && b.eng.Ready() {
			return pa
		}
	}
	t.Fatalf("partitions never split between the instances: %v and %v", a.eng.Owned(), b.eng.Owned())
	return nil
}

// waitStandbysCaughtUp waits until in keeps a standby of every partition
// in ps, each with no changelog lag.
func waitStandbysCaughtUp(t *testing.T, in *instance, ps []int32) {
	t.Helper()
	var st engine.InstanceStatus
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		st = in.eng.Status()
		ok := true
		for _, p := range ps {
			if lag, has := st.Standby[p]; !has || lag != 0 {
				ok = false
			}
		}
		if ok {
			return
		}
	}
	t.Fatalf("standbys of %v never caught up: %v", ps, st.Standby)
}

// changelogSize is the number of offsets in the changelog partitions ps.
func changelogSize(t *testing.T, addrs []string, ps []int32) int64 {
	t.Helper()
	adm := kadm.NewClient(kafkatest.Client(t, addrs))
	ends, err := adm.ListEndOffsets(context.Background(), "test-changelog")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range ps {
		o, _ := ends.Lookup("test-changelog", p)
		n += o.Offset
	}
	return n
}
