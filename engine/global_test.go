package engine

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

func TestGlobalTableScan(t *testing.T) {
	g := NewGlobalTable(nil, "t", nil)
	for _, k := range []string{"segment/gold/0", "segment/gold/1", "segment/golden/0", "funnel/f/2026-11-22//0", "x", "a/b"} {
		g.put(k, []byte(k))
	}
	g.put("segment/gold/1", nil) // a tombstone deletes
	tests := []struct {
		prefix string
		want   string
	}{
		{"segment/gold/", "[segment/gold/0]"},
		{"segment/gol", "[segment/gold/0 segment/golden/0]"},
		{"segment/", "[segment/gold/0 segment/golden/0]"},
		{"funnel/f/2026-11-22/", "[funnel/f/2026-11-22//0]"},
		{"", "[a/b funnel/f/2026-11-22//0 segment/gold/0 segment/golden/0 x]"},
		{"nothing/", "[]"},
	}
	for _, tt := range tests {
		var got []string
		g.Scan(tt.prefix, func(k string, v []byte) {
			if k != string(v) {
				t.Errorf("row %s holds %s", k, v)
			}
			got = append(got, k)
		})
		sort.Strings(got)
		if fmt.Sprint(got) != tt.want {
			t.Errorf("Scan(%q) = %v, want %s", tt.prefix, got, tt.want)
		}
	}
}

// BenchmarkGlobalTableSegmentSize is the read behind GET
// /v1/segments/{id}: the per-partition sizes of one segment, in a table
// that also holds 20 segments' and 100,000 funnel rows, 64 partitions.
func BenchmarkGlobalTableSegmentSize(b *testing.B) {
	g := NewGlobalTable(nil, "t", nil)
	for p := 0; p < 64; p++ {
		for s := 0; s < 20; s++ {
			g.put(fmt.Sprintf("segment/s%d/%d", s, p), []byte(`{"segment":"s","partition":0,"size":123456}`))
		}
	}
	for i := 0; i < 100_000; i++ {
		g.put(fmt.Sprintf("funnel/f%d/2026-11-%02dT%02d/web/%d", i%50, i%28+1, i%24, i%64), []byte(`{}`))
	}
	b.Run("indexed", func(b *testing.B) {
		for b.Loop() {
			n := 0
			g.Scan("segment/s7/", func(string, []byte) { n++ })
			if n != 64 {
				b.Fatalf("%d rows", n)
			}
		}
	})
	b.Run("full-scan", func(b *testing.B) { // the cost before the index: every row
		for b.Loop() {
			n := 0
			g.Scan("", func(k string, _ []byte) {
				if strings.HasPrefix(k, "segment/s7/") {
					n++
				}
			})
			if n != 64 {
				b.Fatalf("%d rows", n)
			}
		}
	})
}
