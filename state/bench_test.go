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
	st, err := state.OpenPebble(b.TempDir(), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
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
