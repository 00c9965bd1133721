package state_test

import (
	"fmt"
	"testing"

	"github.com/cairn-cjo/cairn/state"
)

// BenchmarkGetMiss reads keys that do not exist from a store whose 200,000
// keys are flushed to tables, as an operator does for each journey an event
// may enter: the cost of a miss below the memtable.
func BenchmarkGetMiss(b *testing.B) {
	st := openFilled(b)
	keys := make([][]byte, 4096)
	for i := range keys {
		keys[i] = state.UserKey(0, fmt.Sprintf("u-%d", i*37), "journey", []byte(fmt.Sprintf("j%d", 2+i%50)))
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		v, err := st.Get(keys[i%len(keys)])
		if err != nil || v != nil {
			b.Fatalf("Get = %q, %v; want a miss", v, err)
		}
	}
}

// openFilled returns a store with 200,000 users' keys u-N/journey/j1,
// flushed to four tables.
func openFilled(b *testing.B) state.Store {
	b.Helper()
	st, err := state.OpenPebble(b.TempDir(), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	for chunk := 0; chunk < 4; chunk++ {
		bt := st.NewBatch()
		for i := 0; i < 50_000; i++ {
			u := fmt.Sprintf("u-%d", chunk*50_000+i)
			if err := bt.Set(state.UserKey(0, u, "journey", []byte("j1")), []byte("some state value")); err != nil {
				b.Fatal(err)
			}
		}
		if err := bt.Commit(); err != nil {
			b.Fatal(err)
		}
		bt.Close()
		if err := st.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

// BenchmarkBatchGet reads through a batch, as operators do, with and
// without the read cache (state.CachedBatch), keys that exist (hit) and
// keys that do not (miss) of 4,096 users that come back, out of 200,000 in
// four tables; the batch holds writes of 1,000 other users. Every key is
// read once before the timer starts, so the cached figures are those of a
// warm cache. Compare the cached and uncached ns/op of one run:
// go test -run X -bench BatchGet ./state
func BenchmarkBatchGet(b *testing.B) {
	st := openFilled(b)
	for _, cached := range []bool{false, true} {
		for _, hit := range []bool{true, false} {
			name := fmt.Sprintf("cached=%v/hit=%v", cached, hit)
			b.Run(name, func(b *testing.B) {
				var bt state.Batch = st.NewBatch()
				if cached {
					bt = state.NewCachedBatch(bt, 256<<20)
				}
				defer bt.Close()
				for i := range 1000 {
					if err := bt.Set(state.UserKey(0, fmt.Sprintf("w-%d", i), "journey", []byte("j1")), []byte("v")); err != nil {
						b.Fatal(err)
					}
				}
				sub := "j1"
				if !hit {
					sub = "j2"
				}
				keys := make([][]byte, 4096)
				for i := range keys {
					keys[i] = state.UserKey(0, fmt.Sprintf("u-%d", i*37), "journey", []byte(sub))
				}
				for _, k := range keys { // warm: the loads are not what is measured
					if _, err := bt.Get(k); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					v, err := bt.Get(keys[i%len(keys)])
					if err != nil || (v != nil) != hit {
						b.Fatalf("Get = %q, %v; want hit=%v", v, err, hit)
					}
				}
			})
		}
	}
}
