package segment

import (
	"math/rand/v2"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/cairn-cjo/cairn/state"
)

// TestTenMillionMemberSegmentPersistsIncrementally writes a segment of about
// 10,000,000 members to a Pebble store one chunk at a time, under the
// operator's chunk keys, then applies random membership changes with
// updateChunk, the operator's write path. It checks that the stored chunks
// always read back (through the roaring library) as exactly the reference
// bitmap, that no chunk is bigger than one roaring container (8,209 bytes),
// and that each change rewrites exactly one chunk: the cost of a change
// does not depend on the size of the segment.
func TestTenMillionMemberSegmentPersistsIncrementally(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 10M-member segment")
	}
	const ids, maxChunk = 10_250_000, 1 + chunkHeaderLen + 8192 // ids: 2% are holes, so about 10.05M members
	st, err := state.OpenPebble(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key := func(hi uint16) []byte { return state.SharedKey(0, OperatorName, chunkKey("big", hi)) }
	rng := rand.New(rand.NewPCG(10, 7))
	ref := roaring.New()
	b := st.NewBatch()
	for hi := uint16(0); uint32(hi)<<16 < ids; hi++ {
		c := &chunk{hi: hi}
		for lo := 0; lo < 1<<16 && uint32(hi)<<16|uint32(lo) < ids; lo++ {
			if rng.IntN(50) != 0 { // holes keep chunks from being full
				c.add(uint16(lo))
				ref.Add(uint32(hi)<<16 | uint32(lo))
			}
		}
		if err := b.Set(key(hi), c.encode()); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil { // one chunk per commit: never the whole bitmap at once
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		got, chunks := roaring.New(), 0
		pre := state.SharedKey(0, OperatorName, chunkPrefix("big"))
		err := st.Scan(pre, state.PrefixEnd(pre), func(_, v []byte) error {
			chunks++
			if len(v) > maxChunk {
				t.Fatalf("%s: a chunk of %d bytes", when, len(v))
			}
			c := roaring.New()
			if _, err := c.FromBuffer(v[1:]); err != nil {
				return err
			}
			got.Or(c)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equals(ref) {
			t.Fatalf("%s: stored members (%d) differ from the reference (%d)", when, got.GetCardinality(), ref.GetCardinality())
		}
		t.Logf("%s: %d members in %d chunks", when, got.GetCardinality(), chunks)
	}
	check("after the initial write")
	if ref.GetCardinality() < 10_000_000 {
		t.Fatalf("only %d members", ref.GetCardinality())
	}
	for i := 0; i < 2000; i++ {
		id, in := uint32(rng.IntN(ids)), rng.IntN(2) == 0
		hi, lo := uint16(id>>16), uint16(id)
		v, err := st.Get(key(hi))
		if err != nil {
			t.Fatal(err)
		}
		out, changed, err := updateChunk(v, hi, lo, in)
		if err != nil {
			t.Fatal(err)
		}
		if changed != (in != ref.Contains(id)) {
			t.Fatalf("change %d: updateChunk says changed=%v for %d in=%v", i, changed, id, in)
		}
		if in {
			ref.Add(id)
		} else {
			ref.Remove(id)
		}
		if !changed {
			continue
		}
		if len(out) > maxChunk {
			t.Fatalf("change %d rewrote %d bytes", i, len(out))
		}
		if err := b.Set(key(hi), out); err != nil {
			t.Fatal(err)
		}
		written := 0
		_ = b.Changes(func(_, _ []byte) error { written++; return nil })
		if written != 1 {
			t.Fatalf("change %d wrote %d keys, want one chunk", i, written)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	check("after 2,000 random changes")
}
