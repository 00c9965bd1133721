// Package statetest is the conformance suite every state.Store
// implementation and option set must pass.
package statetest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cairn-cjo/cairn/state"
)

// Run runs the suite against stores made by open, one per subtest.
func Run(t *testing.T, open func(t *testing.T) state.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s state.Store)
	}{
		{"batch reads its own writes", readYourWrites},
		{"commit applies atomically", commitApplies},
		{"discard drops everything", discardDrops},
		{"changes lists the last write per key", changesLastWrite},
		{"scan merges batch and store in order", scanMerges},
		{"delete range", deleteRange},
		{"an empty value is not a delete", emptyIsNotDelete},
		{"commit applies the last write per key", commitLastWrite},
		{"changes hands out keys the caller may keep", changesKeysAreCopies},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			defer func() {
				if err := s.Close(); err != nil {
					t.Error(err)
				}
			}()
			tc.fn(t, s)
		})
	}
}

func mustGet(t *testing.T, get func([]byte) ([]byte, error), k string) []byte {
	t.Helper()
	v, err := get([]byte(k))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readYourWrites(t *testing.T, s state.Store) {
	b := s.NewBatch()
	defer b.Close()
	must(t, b.Set([]byte("a"), []byte("1")))
	if v := mustGet(t, b.Get, "a"); string(v) != "1" {
		t.Fatalf("batch Get = %q, want 1", v)
	}
	if v := mustGet(t, s.Get, "a"); v != nil {
		t.Fatalf("store Get before commit = %q, want nil", v)
	}
	must(t, b.Delete([]byte("a")))
	if v := mustGet(t, b.Get, "a"); v != nil {
		t.Fatalf("batch Get after delete = %q", v)
	}
}

func commitApplies(t *testing.T, s state.Store) {
	b := s.NewBatch()
	defer b.Close()
	must(t, b.Set([]byte("a"), []byte("1")))
	must(t, b.Set([]byte("b"), nil))
	must(t, b.Commit())
	if !b.Empty() {
		t.Fatal("batch not empty after commit")
	}
	if v := mustGet(t, s.Get, "a"); string(v) != "1" {
		t.Fatalf("Get a = %q", v)
	}
	if v := mustGet(t, s.Get, "b"); v == nil || len(v) != 0 {
		t.Fatalf("Get b = %v, want empty non-nil", v)
	}
}

func discardDrops(t *testing.T, s state.Store) {
	b := s.NewBatch()
	defer b.Close()
	must(t, b.Set([]byte("a"), []byte("1")))
	b.Discard()
	if v := mustGet(t, b.Get, "a"); v != nil {
		t.Fatalf("Get after discard = %q", v)
	}
	n := 0
	must(t, b.Changes(func(_, _ []byte) error { n++; return nil }))
	if n != 0 {
		t.Fatalf("%d changes after discard", n)
	}
}

func changesLastWrite(t *testing.T, s state.Store) {
	b := s.NewBatch()
	defer b.Close()
	must(t, b.Set([]byte("b"), []byte("1")))
	must(t, b.Set([]byte("a"), []byte("1")))
	must(t, b.Set([]byte("b"), []byte("2")))
	must(t, b.Delete([]byte("a")))
	var got []string
	must(t, b.Changes(func(k, v []byte) error {
		got = append(got, fmt.Sprintf("%s=%v", k, v))
		return nil
	}))
	if want := "[a=[] b=[50]]"; fmt.Sprint(got) != want {
		t.Fatalf("Changes = %v, want %s", got, want)
	}
}

func emptyIsNotDelete(t *testing.T, s state.Store) {
	b := s.NewBatch()
	defer b.Close()
	must(t, b.Set([]byte("e"), []byte{}))
	must(t, b.Delete([]byte("d")))
	got := map[string]bool{} // key -> value is nil (a tombstone)
	must(t, b.Changes(func(k, v []byte) error {
		got[string(k)] = v == nil
		return nil
	}))
	if len(got) != 2 || got["e"] || !got["d"] {
		t.Fatalf("Changes tombstones = %v, want e: false (empty value), d: true", got)
	}
	must(t, b.Commit())
	if v := mustGet(t, s.Get, "e"); v == nil || len(v) != 0 {
		t.Fatalf("Get e after commit = %v, want empty non-nil", v)
	}
}

// commitLastWrite writes keys several times (set, delete, set again) in
// one batch, over committed values, and checks the store ends with the
// last write of each.
func commitLastWrite(t *testing.T, s state.Store) {
	b := s.NewBatch()
	defer b.Close()
	must(t, b.Set([]byte("k1"), []byte("old")))
	must(t, b.Set([]byte("k2"), []byte("old")))
	must(t, b.Commit())
	ops := []struct{ k, v string }{ // v "" is a delete
		{"k1", "a"}, {"k2", ""}, {"k3", "x"}, {"k1", ""}, {"k2", "b"}, {"k3", "y"}, {"k1", "c"}, {"k4", "z"}, {"k4", ""},
	}
	for _, op := range ops {
		if op.v == "" {
			must(t, b.Delete([]byte(op.k)))
		} else {
			must(t, b.Set([]byte(op.k), []byte(op.v)))
		}
	}
	must(t, b.Commit())
	want := map[string]string{"k1": "c", "k2": "b", "k3": "y", "k4": ""}
	for k, w := range want {
		v := mustGet(t, s.Get, k)
		if (w == "" && v != nil) || (w != "" && string(v) != w) {
			t.Errorf("Get %s after commit = %q, want %q", k, v, w)
		}
	}
}

func changesKeysAreCopies(t *testing.T, s state.Store) {
	b := s.NewBatch()
	defer b.Close()
	must(t, b.Set([]byte("k"), []byte("v")))
	var kept [][]byte
	must(t, b.Changes(func(k, _ []byte) error { kept = append(kept, k); return nil }))
	for _, k := range kept {
		k[0] = 'x' // the caller's own copy
	}
	var got []string
	must(t, b.Changes(func(k, _ []byte) error { got = append(got, string(k)); return nil }))
	if fmt.Sprint(got) != "[k]" {
		t.Fatalf("Changes after changing a key it handed out = %v, want [k]", got)
	}
}

func scanMerges(t *testing.T, s state.Store) {
	b := s.NewBatch()
	defer b.Close()
	must(t, b.Set([]byte("k1"), []byte("old")))
	must(t, b.Set([]byte("k3"), []byte("x")))
	must(t, b.Commit())
	must(t, b.Set([]byte("k2"), []byte("new")))
	must(t, b.Set([]byte("k1"), []byte("upd")))
	must(t, b.Delete([]byte("k3")))
	var got bytes.Buffer
	must(t, b.Scan([]byte("k"), []byte("l"), func(k, v []byte) error {
		fmt.Fprintf(&got, "%s=%s ", k, v)
		return nil
	}))
	if want := "k1=upd k2=new "; got.String() != want {
		t.Fatalf("Scan = %q, want %q", got.String(), want)
	}
}

func deleteRange(t *testing.T, s state.Store) {
	b := s.NewBatch()
	defer b.Close()
	for _, k := range []string{"a1", "a2", "b1"} {
		must(t, b.Set([]byte(k), []byte("v")))
	}
	must(t, b.Commit())
	must(t, s.DeleteRange([]byte("a"), []byte("b")))
	n := 0
	must(t, s.Scan(nil, nil, func(_, _ []byte) error { n++; return nil }))
	if n != 1 {
		t.Fatalf("%d keys after DeleteRange, want 1", n)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
