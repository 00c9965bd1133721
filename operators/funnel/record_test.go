package funnel

import (
	"bytes"
	"encoding/binary"
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
