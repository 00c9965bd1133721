package main

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/broker"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
	"github.com/cairn-cjo/cairn/state"
)

// restoreDigestEnv is the environment that makes a child log a digest of
// every partition it restores (engine.RestoreDigestEnv).
var restoreDigestEnv = []string{engine.RestoreDigestEnv + "=1"}

// restorePoint is where a restored partition stood: its input offset.
type restorePoint struct {
	partition int32
	offset    int64
}

// restoreDigests reads the "restore digest" lines of the logs of the
// children t started: the digest of each partition's state as rebuilt by
// a restore, by partition and input offset. Two restores at the same point
// with different digests are returned in conflicts.
func restoreDigests(t *testing.T) (digests map[restorePoint]string, restores, conflicts int) {
	t.Helper()
	childrenOf.mu.Lock()
	cs := slices.Clone(childrenOf.m[t.Name()])
	childrenOf.mu.Unlock()
	digests = map[restorePoint]string{}
	for _, c := range cs {
		b, _ := os.ReadFile(c.log.Name())
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, `msg="restore digest"`) {
				continue
			}
			f := logFields(line)
			p, err1 := strconv.ParseInt(f["partition"], 10, 32)
			o, err2 := strconv.ParseInt(f["input_offset"], 10, 64)
			if err1 != nil || err2 != nil || f["digest"] == "" {
				t.Fatalf("malformed restore digest line in %s: %q", c.log.Name(), line)
			}
			restores++
			pt := restorePoint{int32(p), o}
			if d, ok := digests[pt]; ok && d != f["digest"] {
				conflicts++
				t.Errorf("two restores of partition %d at offset %d: digests %s and %s", p, o, d, f["digest"])
			}
			digests[pt] = f["digest"]
		}
	}
	return digests, restores, conflicts
}

// logFields splits a slog text line into its key=value fields (values
// without spaces only, which is all restoreDigests reads).
func logFields(line string) map[string]string {
	f := map[string]string{}
	for _, kv := range strings.Fields(line) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			f[k] = v
		}
	}
	return f
}

// checkRestoreDigests checks the state each restore of the run rebuilt
// against a crash-free run: a fresh broker gets the run's committed input,
// partition by partition and offset for offset, in rounds; each round
// feeds every partition up to its next restore point, runs one processor
// (defs, no idle advance) until it has consumed everything, stops it with
// SIGTERM and digests the partitions that reached a point. A restored
// state that differs from the crash-free one at the same input offset is a
// mismatch. It returns the number of restores checked and of mismatches.
func checkRestoreDigests(t *testing.T, input []*kgo.Record, partitions int32, defs string) (restores, mismatches int) {
	t.Helper()
	digests, restores, mismatches := restoreDigests(t)
	points := map[int32][]int64{}
	for pt := range digests {
		points[pt.partition] = append(points[pt.partition], pt.offset)
	}
	for _, offs := range points {
		slices.Sort(offs)
	}
	t.Logf("%d restores at input offsets (by partition) %v", restores, points)
	byPartition := map[int32][]*kgo.Record{}
	for _, r := range input {
		byPartition[r.Partition] = append(byPartition[r.Partition], r)
	}
	b := kafkatest.Start(t, broker.Options{})
	addrs := b.Addrs()
	kafkatest.CreateTopic(t, addrs, "events", partitions, nil)
	dir := t.TempDir()
	fed := map[int32]int64{}
	for round := 0; ; round++ {
		targets := map[int32]int64{}
		for p, offs := range points {
			if round < len(offs) {
				targets[p] = offs[round]
			}
		}
		if len(targets) == 0 {
			return restores, mismatches
		}
		feedPartitions(t, addrs, byPartition, fed, targets)
		c := startChild(t, "run", "--brokers", addrs[0], "--app-id", "ref", "--definitions", defs,
			"--state-dir", dir, "--http", "127.0.0.1:0", "--instance-id", "ref", "--idle-advance=false",
			"--commit-interval", "30ms", "--session-timeout", "2s", "--log-level", "info")
		c.waitLog(t, "partitions assigned")
		kafkatest.WaitConsumed(t, addrs, "ref", "events")
		if code := c.term(t); code != 0 {
			t.Fatalf("reference processor exited %d after SIGTERM", code)
		}
		for p, o := range targets {
			if got, want := digests[restorePoint{p, o}], partitionDigest(t, dir, p); got != want {
				mismatches++
				t.Errorf("partition %d restored at input offset %d has digest %s, the crash-free run's %s", p, o, got, want)
			}
		}
	}
}

// feedPartitions produces the records of each partition of targets from
// fed[p] up to (not including) offset targets[p], to the same partition,
// so that offsets are the same as in the run checked; it advances fed.
func feedPartitions(t *testing.T, addrs []string, byPartition map[int32][]*kgo.Record, fed, targets map[int32]int64) {
	t.Helper()
	var rs []*kgo.Record
	for p, end := range targets {
		for _, r := range byPartition[p] {
			if r.Offset >= fed[p] && r.Offset < end {
				rs = append(rs, &kgo.Record{Topic: r.Topic, Partition: p, Key: r.Key, Value: r.Value})
			}
		}
		fed[p] = max(fed[p], end)
	}
	cl := kafkatest.Client(t, addrs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := cl.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		t.Fatalf("feeding the reference run: %v", err)
	}
}

// partitionDigest is the digest of partition p's state in the store in
// dir, as engine.RestoreDigestEnv logs it.
func partitionDigest(t *testing.T, dir string, p int32) string {
	t.Helper()
	st, err := state.OpenPebble(dir, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	return partitionDigestOf(t, st, p)
}

// partitionDigestOf digests every key of partition p in st but its marker.
func partitionDigestOf(t *testing.T, st state.Store, p int32) string {
	t.Helper()
	pre, marker := state.PartitionPrefix(p), state.MetaKey(p, "marker")
	d, _, err := state.Digest(st, pre, state.PrefixEnd(pre), func(k, _ []byte) bool { return string(k) == string(marker) })
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRestoreDigestCheckCanFail checks what checkRestoreDigests compares:
// the digest of a partition changes with any of its values and keys, and
// not with its marker (whose changelog offset differs between runs) nor
// with another partition.
func TestRestoreDigestCheckCanFail(t *testing.T) {
	st, err := state.OpenPebble("", state.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	set := func(k []byte, v string) {
		b := st.NewBatch()
		defer b.Close()
		if err := b.Set(k, []byte(v)); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	key := func(p int32, s string) []byte { return append(state.PartitionPrefix(p), s...) }
	set(key(1, "a"), "v")
	set(key(1, "b"), "v")
	set(state.MetaKey(1, "marker"), "m1")
	base := partitionDigestOf(t, st, 1)
	cases := []struct {
		name   string
		key    []byte
		value  string
		differ bool
	}{
		{"marker", state.MetaKey(1, "marker"), "m2", false},
		{"another partition", key(2, "a"), "x", false},
		{"a value", key(1, "b"), "w", true},
		{"a new key", key(1, "c"), "v", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set(tc.key, tc.value)
			got := partitionDigestOf(t, st, 1)
			if (got != base) != tc.differ {
				t.Fatalf("digest %s, was %s: want differ=%v", got, base, tc.differ)
			}
			base = got
		})
	}
}
