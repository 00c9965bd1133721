package state_test

import (
	"testing"

	"github.com/cairn-cjo/cairn/state"
	"github.com/cairn-cjo/cairn/state/statetest"
)

func TestPebbleConformance(t *testing.T) {
	opts := map[string]state.Options{
		"disk":        {},
		"disk-sync":   {Sync: true},
		"in-memory":   {InMemory: true},
		"small-cache": {CacheBytes: 1 << 20},
	}
	for name, o := range opts {
		t.Run(name, func(t *testing.T) {
			statetest.Run(t, func(t *testing.T) state.Store {
				dir := ""
				if !o.InMemory {
					dir = t.TempDir()
				}
				s, err := state.OpenPebble(dir, o)
				if err != nil {
					t.Fatal(err)
				}
				return s
			})
		})
	}
}
