package segment

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"

	"github.com/cairn-cjo/cairn/engine"
)

func randomChunk(rng *rand.Rand, n int) (*chunk, []uint16) {
	c := &chunk{hi: uint16(rng.IntN(1 << 16))}
	set := map[uint16]bool{}
	for len(set) < n {
		v := uint16(rng.IntN(1 << 16))
		set[v] = true
		c.add(v)
	}
	var want []uint16
	for v := range set {
		want = append(want, v)
	}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	return c, want
}

func chunkMembers(c *chunk) []uint16 {
	var got []uint16
	c.each(func(lo uint16) bool { got = append(got, lo); return true })
	return got
}

func TestChunkRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 100, arrayMax - 1, arrayMax, arrayMax + 1, 30000, 1 << 16} {
		c, want := randomChunk(rng, n)
		if got := chunkMembers(c); !reflect.DeepEqual(got, want) {
			t.Fatalf("n=%d: members differ after adds", n)
		}
		if (c.bits != nil) != (n > arrayMax) {
			t.Fatalf("n=%d: bitmap form = %v", n, c.bits != nil)
		}
		b := c.encode()
		if len(b) > 1+chunkHeaderLen+8*bitmapWords {
			t.Fatalf("n=%d: chunk of %d bytes", n, len(b))
		}
		d, err := decodeChunk(b)
		if err != nil {
			t.Fatalf("n=%d: decoding: %v", n, err)
		}
		if d.hi != c.hi || d.n != n || !reflect.DeepEqual(chunkMembers(d), want) {
			t.Fatalf("n=%d: round trip differs", n)
		}
		if !bytes.Equal(d.encode(), b) {
			t.Fatalf("n=%d: encoding not canonical", n)
		}
	}
}

func TestChunkAddRemove(t *testing.T) {
	c := &chunk{}
	for i := range arrayMax + 1 {
		if !c.add(uint16(i * 7)) {
			t.Fatalf("add(%d) reported present", i*7)
		}
	}
	if c.bits == nil || c.add(7) || !c.contains(7) || c.contains(8) {
		t.Fatalf("bitmap form wrong: bits=%v", c.bits != nil)
	}
	if !c.remove(0) || c.remove(0) || c.bits != nil || c.n != arrayMax {
		t.Fatalf("remove back to array form failed: n=%d bits=%v", c.n, c.bits != nil)
	}
	if !c.contains(7) || c.contains(0) {
		t.Fatal("array form lost members")
	}
}

// seeder shares the segment operator's namespace to start the dense ids
// just below a chunk boundary, so a test can span two chunks cheaply.
type seeder struct{ next uint32 }

func (s *seeder) Name() string     { return OperatorName }
func (s *seeder) Events() []string { return []string{"$test_seed"} }
func (s *seeder) OnEvent(ctx *engine.Context, _ *engine.Event) error {
	return ctx.SetShared(keyNext, encodeU32(s.next))
}
func (s *seeder) OnTimer(*engine.Context, *engine.Timer) error { return nil }

func TestOneChangeRewritesOneChunk(t *testing.T) {
	op := mustNew(t, exampleDefs)
	l, err := engine.NewLocal(0, &seeder{next: 1<<16 - 3}, op)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h := &harness{t: t, op: op, l: l, rec: &recorder{}}
	h.send("seed", "$test_seed", 1, nil)
	users := []string{"a", "b", "c", "d", "e", "f"}
	for _, u := range users {
		h.send(u, EventAdd, 2, map[string]any{"segment": "vip-list"})
	}
	sort.Strings(users)
	if got := h.members("vip-list"); !reflect.DeepEqual(got, users) {
		t.Fatalf("members = %v", got)
	}
	before := h.snapshot()
	chunks := 0
	_ = before.scan(chunkPrefix("vip-list"), func(_, _ []byte) error { chunks++; return nil })
	if chunks != 2 {
		t.Fatalf("vip-list has %d chunks, want 2 (ids straddle 65536)", chunks)
	}
	h.send("e", EventRemove, 3, map[string]any{"segment": "vip-list"})
	after := h.snapshot()
	changed := diffKeys(before, after)
	want := []string{string(chunkKey("vip-list", 1)), string(sizeKey("vip-list"))}
	if !reflect.DeepEqual(changed, want) {
		t.Fatalf("changed shared keys = %q, want %q", changed, want)
	}
}

func diffKeys(a, b *snapshot) []string {
	var out []string
	for k, v := range b.vals {
		if !bytes.Equal(a.vals[k], v) {
			out = append(out, k)
		}
	}
	for k := range a.vals {
		if _, ok := b.vals[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// TestUpdateChunk checks updateChunk, fast path included, against the
// decoded chunk operations, across the array/bitmap boundary.
func TestUpdateChunk(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{0, 5, arrayMax - 2, arrayMax + 2, 20000} {
		ref, _ := randomChunk(rng, n)
		ref.hi = 4
		var v []byte
		if n > 0 {
			v = ref.encode()
		}
		for i := range 3000 {
			lo, in := uint16(rng.IntN(1<<16)), rng.IntN(2) == 0
			if i%2 == 0 && ref.n > 0 { // hit members too
				lo, in = chunkMembers(ref)[rng.IntN(ref.n)], false
			}
			var want bool
			if in {
				want = ref.add(lo)
			} else {
				want = ref.remove(lo)
			}
			out, changed, err := updateChunk(v, 4, lo, in)
			if err != nil || changed != want {
				t.Fatalf("n=%d step %d: changed=%v err=%v, want %v", n, i, changed, err, want)
			}
			if ref.n == 0 {
				if out != nil {
					t.Fatalf("n=%d step %d: empty chunk not deleted", n, i)
				}
			} else if !bytes.Equal(out, ref.encode()) {
				t.Fatalf("n=%d step %d: chunk bytes differ from the reference", n, i)
			}
			v = out
		}
	}
	if _, _, err := updateChunk([]byte{9}, 0, 1, true); err == nil {
		t.Error("bad chunk accepted")
	}
}

// TestChunkFormsEndToEnd grows a list past arrayMax members (bitmap chunk)
// and shrinks it back (array chunk) through the operator.
func TestChunkFormsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("4,400 events")
	}
	h := newHarness(t, exampleDefs)
	const n = arrayMax + 200
	for i := range n {
		h.send(fmt.Sprintf("u%05d", i), EventAdd, int64(i), map[string]any{"segment": "vip-list"})
	}
	chunkLen := func() int {
		v, _ := h.snapshot().get(chunkKey("vip-list", 0))
		return len(v)
	}
	if got := len(h.members("vip-list")); got != n || chunkLen() != 1+chunkHeaderLen+8*bitmapWords {
		t.Fatalf("%d members in a chunk of %d bytes", got, chunkLen())
	}
	for i := range 300 {
		h.send(fmt.Sprintf("u%05d", i*3), EventRemove, n, map[string]any{"segment": "vip-list"})
	}
	if got := len(h.members("vip-list")); got != n-300 || chunkLen() != 1+chunkHeaderLen+2*(n-300) {
		t.Fatalf("%d members in a chunk of %d bytes", got, chunkLen())
	}
}
