package segment

import (
	"bytes"
	"testing"

	"github.com/cairn-cjo/cairn/operators/defs"
	"github.com/cairn-cjo/cairn/state"
)

// FuzzDecodeChunk: the decoder never panics, whatever it accepts
// re-encodes to the same bytes (the format is canonical), and updateChunk
// (with its bitmap fast path) agrees with the decoded operations.
func FuzzDecodeChunk(f *testing.F) {
	small := &chunk{hi: 3}
	small.add(1)
	small.add(700)
	f.Add(small.encode(), uint16(700), false)
	big := &chunk{hi: 9}
	for i := range arrayMax + 2 {
		big.add(uint16(i * 3))
	}
	f.Add(big.encode(), uint16(3), false)
	f.Add(big.encode(), uint16(4), true)
	f.Add([]byte{chunkVersion}, uint16(0), true)
	f.Fuzz(func(t *testing.T, b []byte, lo uint16, in bool) {
		c, err := decodeChunk(b)
		if err != nil {
			if _, _, uerr := updateChunk(b, 0, lo, in); uerr == nil && len(b) > 0 {
				t.Fatalf("updateChunk accepted a chunk decodeChunk rejects: %x", b)
			}
			return
		}
		out, changed, err := updateChunk(b, c.hi, lo, in)
		if err != nil {
			t.Fatalf("updateChunk: %v", err)
		}
		if !bytes.Equal(c.encode(), b) {
			t.Fatalf("accepted a non-canonical chunk %x", b)
		}
		n := 0
		c.each(func(lo uint16) bool { n++; return c.contains(lo) })
		if n != c.n {
			t.Fatalf("cardinality %d, iterated %d", c.n, n)
		}
		var want bool
		if in {
			want = c.add(lo)
		} else {
			want = c.remove(lo)
		}
		switch {
		case changed != want:
			t.Fatalf("updateChunk changed=%v, want %v", changed, want)
		case c.n == 0 && out != nil, c.n > 0 && !bytes.Equal(out, c.encode()):
			t.Fatalf("updateChunk result differs")
		}
	})
}

// FuzzDecodeDictionary covers the dictionary, size and aggregates decoders.
func FuzzDecodeDictionary(f *testing.F) {
	f.Add(encodeU32(7), []byte("segment/gold/3"), encodeSizeRow(SizeRow{Segment: "gold", Partition: 3, Size: 9}))
	f.Add(encodeU64(1<<40), []byte("funnel/x/1"), []byte(`{}`))
	f.Add(append([]byte{state.ValueVersion}, "user-1"...), []byte("segment/a/b/1"), []byte(nil))
	f.Fuzz(func(t *testing.T, v, key, value []byte) {
		if d, err := decodeU32(v); err == nil && !bytes.Equal(encodeU32(d), v) {
			t.Fatalf("decodeU32 accepted %x", v)
		}
		if n, err := decodeU64(v); err == nil && !bytes.Equal(encodeU64(n), v) {
			t.Fatalf("decodeU64 accepted %x", v)
		}
		if u, err := decodeReverse(v); err == nil && !bytes.Equal(append([]byte{state.ValueVersion}, u...), v) {
			t.Fatalf("decodeReverse accepted %x", v)
		}
		row, err := DecodeSize(key, value)
		if err == nil && SizeKey(row.Segment, row.Partition) != string(key) {
			t.Fatalf("DecodeSize(%q) = %+v", key, row)
		}
	})
}

// FuzzDefinitions: the definition parser and compiler never panic, and an
// accepted set of definitions can evaluate a user.
func FuzzDefinitions(f *testing.F) {
	f.Add([]byte(exampleDefs))
	f.Add([]byte(refDefs))
	f.Add([]byte("kind: segment\nid: a\nrule: {all: [{segment: a}]}\n"))
	f.Add([]byte("kind: segment\nid: a\nrule: {event: {name: x, count: '< 3', within: 2w}}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		docs, err := defs.Parse("fuzz.yaml", src)
		if err != nil {
			return
		}
		op, err := New(docs, Options{})
		if err != nil {
			return
		}
		for _, s := range op.segs {
			for _, r := range s.leaves {
				if r.n > MaxCount || r.within < 0 {
					t.Fatalf("accepted rule %+v", r)
				}
			}
		}
	})
}
