package funnel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

func TestFixLength(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix int // bytes before the placeholder
		n      int // bytes written after it
	}{
		{"empty", 0, 0},
		{"one byte length", 3, 127},
		{"two byte length", 3, 128},
		{"three byte length", 1, 1 << 14},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := make([]byte, tc.n)
			for i := range body {
				body[i] = byte(i*7 + 1)
			}
			b := append(bytes.Repeat([]byte{0xee}, tc.prefix), 0)
			b = fixLength(append(b, body...), tc.prefix)
			want := binary.AppendUvarint(bytes.Repeat([]byte{0xee}, tc.prefix), uint64(tc.n))
			want = append(want, body...)
			if !bytes.Equal(b, want) {
				t.Fatalf("fixLength gave % x…, want % x…", b[:min(len(b), 8)], want[:min(len(want), 8)])
			}
		})
	}
}

// TestInternerLabel checks that the label cache gives back each label,
// also when labels share a cache slot or the interner is nil.
func TestInternerLabel(t *testing.T) {
	var labels []string
	for d := 1; d <= 28; d++ {
		labels = append(labels, fmt.Sprintf("2026-02-%02d", d))
		for h := 0; h < 24; h += 5 {
			labels = append(labels, fmt.Sprintf("2026-02-%02dT%02d", d, h))
		}
	}
	for _, tc := range []struct {
		name string
		in   *interner
	}{{"interner", &interner{}}, {"nil", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			for lap := range 2 {
				for _, l := range labels {
					v, ok := packLabel(l)
					if !ok {
						t.Fatalf("packLabel(%q) failed", l)
					}
					if got := tc.in.label(v); got != l {
						t.Fatalf("lap %d: label(packLabel(%q)) = %q", lap, l, got)
					}
				}
			}
		})
	}
}
