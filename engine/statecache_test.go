package engine

import (
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/cairn-cjo/cairn/state"
)

// TestCacheBudgetIsSplitOverOwnedPartitions checks that every owned
// partition's read cache gets an equal share of Config.StateCacheBytes, and
// that the shares follow assignments and revokes.
func TestCacheBudgetIsSplitOverOwnedPartitions(t *testing.T) {
	st, err := state.OpenPebble("", state.Options{InMemory: true, MemTableBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := &Engine{cfg: Config{StateCacheBytes: 1200}, workers: map[int32]*worker{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	steps := []struct {
		name  string
		owned []int32
		want  int64
	}{
		{"one partition", []int32{0}, 1200},
		{"three partitions", []int32{0, 1, 2}, 400},
		{"one revoked", []int32{0, 2}, 600},
	}
	for _, s := range steps {
		for p, w := range e.workers {
			if !slices.Contains(s.owned, p) {
				w.core.batch.Close()
				delete(e.workers, p)
			}
		}
		for _, p := range s.owned {
			if _, ok := e.workers[p]; !ok {
				e.workers[p] = &worker{core: newPartitionCore(p, st, nil, e.cacheShare(), log)}
			}
		}
		e.rebudgetCaches()
		for p, w := range e.workers {
			if got := w.core.cache.Budget(); got != s.want {
				t.Errorf("%s: partition %d has a budget of %d, want %d", s.name, p, got, s.want)
			}
		}
	}
	for _, w := range e.workers {
		w.core.batch.Close()
	}
}
