package segment

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"
)

// TestChunkIsRoaring checks that a chunk value minus its version byte is
// the portable roaring serialization of the chunk's members, byte for byte,
// so exports can hand chunks to any roaring implementation.
func TestChunkIsRoaring(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 17, arrayMax, arrayMax + 1, 50000} {
		c, want := randomChunk(rng, n)
		rb := roaring.New()
		for _, lo := range want {
			rb.Add(uint32(c.hi)<<16 | uint32(lo))
		}
		ref, err := rb.ToBytes()
		if err != nil {
			t.Fatal(err)
		}
		b := c.encode()
		if !bytes.Equal(b[1:], ref) {
			t.Fatalf("n=%d: chunk differs from roaring serialization (%d vs %d bytes)", n, len(b)-1, len(ref))
		}
		back := roaring.New()
		if _, err := back.FromBuffer(b[1:]); err != nil || !back.Equals(rb) {
			t.Fatalf("n=%d: roaring cannot read the chunk: %v", n, err)
		}
	}
}
