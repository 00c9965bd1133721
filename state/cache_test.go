package state

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestCacheGroupLen(t *testing.T) {
	tests := []struct {
		name string
		key  []byte
		want int
	}{
		{"user key", UserKey(3, "alice", "op", []byte("s")), len(UserPrefix(3, "alice", ""))},
		{"user prefix", UserPrefix(3, "alice", ""), len(UserPrefix(3, "alice", ""))},
		{"empty user", UserKey(3, "", "op", nil), len(UserPrefix(3, "", ""))},
		{"timer index", TimerIndexKey(1, "bob", "op", "id"), len(TimerIndexPrefix(1, "bob"))},
		{"meta", MetaKey(1, "clock"), 0},
		{"shared", SharedKey(1, "op", []byte("x")), 0},
		{"timer", TimerKey(1, 5, "op", "bob", "id"), 0},
		{"tag only", tagPrefix(1, TagUser), 0},
		{"truncated user", UserPrefix(1, "alice", "")[:8], 0},
		{"varint overflow", append(tagPrefix(1, TagUser), bytes.Repeat([]byte{0xff}, 11)...), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := cacheGroupLen(tc.key); got != tc.want {
				t.Errorf("cacheGroupLen(%x) = %d, want %d", tc.key, got, tc.want)
			}
		})
	}
}

// tagPrefix returns p|tag.
func tagPrefix(p int32, tag Tag) []byte { return tagged(p, tag, 0) }

func TestInsideGroup(t *testing.T) {
	g := UserPrefix(0, "u", "")
	ff := UserPrefix(0, "u\xff", "")
	tests := []struct {
		name         string
		lo, hi, pref []byte
		want         bool
	}{
		{"whole group", g, PrefixEnd(g), g, true},
		{"one operator", UserPrefix(0, "u", "op"), PrefixEnd(UserPrefix(0, "u", "op")), g, true},
		{"whole group ending in 0xff", ff, PrefixEnd(ff), ff, true},
		{"past the group", g, PrefixEnd(UserPrefix(0, "v", "")), g, false},
		{"open upper bound", g, nil, g, false},
		{"empty range", UserKey(0, "u", "op", []byte("b")), UserKey(0, "u", "op", []byte("a")), g, false},
		{"upper one byte short of the end", g, PrefixEnd(g)[:len(g)-2], g, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := insideGroup(tc.lo, tc.hi, tc.pref); got != tc.want {
				t.Errorf("insideGroup(%x, %x, %x) = %v, want %v", tc.lo, tc.hi, tc.pref, got, tc.want)
			}
		})
	}
}

func openMem(t testing.TB) Store {
	t.Helper()
	s, err := OpenPebble("", Options{InMemory: true, MemTableBytes: 1 << 20, CacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestCachedBatch(t *testing.T) {
	k1 := UserKey(0, "u", "op", []byte("a"))
	k2 := UserKey(0, "u", "op", []byte("b"))
	tests := []struct {
		name string
		run  func(t *testing.T, b *CachedBatch)
	}{
		{"a miss is cached", func(t *testing.T, b *CachedBatch) {
			for range 3 {
				if v := mustGetB(t, b, k1); v != nil {
					t.Fatalf("Get = %q, want absent", v)
				}
			}
			if s := b.Stats(); s.Misses != 1 || s.Hits != 2 {
				t.Errorf("stats %+v, want 1 miss and 2 hits", s)
			}
		}},
		{"writes reach a loaded group", func(t *testing.T, b *CachedBatch) {
			mustGetB(t, b, k1)
			mustOK(t, b.Set(k1, []byte("x")))
			mustOK(t, b.Set(k2, nil))
			if v := mustGetB(t, b, k1); string(v) != "x" {
				t.Errorf("Get(k1) = %q, want x", v)
			}
			if v := mustGetB(t, b, k2); v == nil || len(v) != 0 {
				t.Errorf("Get(k2) = %#v, want present and empty", v)
			}
			mustOK(t, b.Delete(k1))
			if v := mustGetB(t, b, k1); v != nil {
				t.Errorf("Get(k1) after Delete = %q, want absent", v)
			}
		}},
		{"callers own what they pass and get", func(t *testing.T, b *CachedBatch) {
			v := []byte("orig")
			mustOK(t, b.Set(k1, v))
			mustGetB(t, b, k1) // loads the group
			v[0] = 'X'
			mustOK(t, b.Set(k2, v))
			v[0] = 'Y'
			got := mustGetB(t, b, k2)
			got[0] = 'Z'
			if v := mustGetB(t, b, k2); string(v) != "Xrig" {
				t.Errorf("Get(k2) = %q, want Xrig", v)
			}
		}},
		{"discard forgets the group", func(t *testing.T, b *CachedBatch) {
			mustGetB(t, b, k1)
			mustOK(t, b.Set(k1, []byte("x")))
			b.Discard()
			if v := mustGetB(t, b, k1); v != nil {
				t.Errorf("Get after Discard = %q, want absent", v)
			}
		}},
		{"commit evicts down to the budget", func(t *testing.T, b *CachedBatch) {
			b.SetBudget(2000)
			for i := range 40 {
				mustGetB(t, b, UserKey(0, fmt.Sprint("user", i), "op", nil))
			}
			mustOK(t, b.Commit())
			s := b.Stats()
			if s.Bytes > 1500 || s.Evictions == 0 {
				t.Errorf("stats %+v, want at most 1500 bytes after evictions", s)
			}
		}},
		{"a group over the limit reads through", func(t *testing.T, b *CachedBatch) {
			b.maxGroup = 300
			for i := range 10 {
				mustOK(t, b.Set(UserKey(0, "u", "op", []byte{byte(i)}), []byte("value")))
			}
			if v := mustGetB(t, b, UserKey(0, "u", "op", []byte{3})); string(v) != "value" {
				t.Errorf("Get = %q, want value", v)
			}
			if len(b.groups) != 0 {
				t.Errorf("%d groups loaded, want none", len(b.groups))
			}
		}},
		{"a zero budget caches nothing", func(t *testing.T, b *CachedBatch) {
			b.SetBudget(0)
			mustGetB(t, b, k1)
			if len(b.groups) != 0 {
				t.Errorf("%d groups loaded, want none", len(b.groups))
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewCachedBatch(openMem(t).NewBatch(), 1<<20)
			defer b.Close()
			tc.run(t, b)
		})
	}
}

func mustGetB(t *testing.T, b Batch, k []byte) []byte {
	t.Helper()
	v, err := b.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCachedBatchAgrees is a differential test: random operations on a
// CachedBatch and on a plain batch of another store must give the same
// results at every step, under budgets that force evictions and group
// limits that force read-through.
func TestCachedBatchAgrees(t *testing.T) {
	configs := []struct {
		name     string
		budget   int64
		maxGroup int64
	}{
		{"roomy", 1 << 20, 0},
		{"tiny budget", 600, 0},
		{"small budget", 4000, 0},
		{"small groups", 1 << 20, 400},
		{"off", 0, 0},
	}
	for _, c := range configs {
		for seed := range uint64(6) {
			t.Run(fmt.Sprintf("%s/seed%d", c.name, seed), func(t *testing.T) {
				r := rand.New(rand.NewPCG(seed, 7))
				d := newDiff(t, c.budget, c.maxGroup)
				for step := range 1500 {
					if err := d.step(r.IntN); err != nil {
						t.Fatalf("step %d: %v", step, err)
					}
				}
			})
		}
	}
}

// FuzzCachedBatch drives the differential test with the fuzzer's bytes as
// the choices.
func FuzzCachedBatch(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, int64(600))
	f.Add(bytes.Repeat([]byte{3, 1, 4, 1, 5, 9, 2, 6}, 20), int64(0))
	f.Add(bytes.Repeat([]byte{9, 0, 0, 2, 1, 1, 7, 3}, 30), int64(1<<20))
	f.Fuzz(func(t *testing.T, choices []byte, budget int64) {
		d := newDiff(t, budget, 0)
		pick := func(n int) int {
			if len(choices) == 0 {
				return 0
			}
			c := int(choices[0])
			choices = choices[1:]
			return c % n
		}
		for len(choices) > 0 {
			if err := d.step(pick); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// diff holds a cached and a plain batch over two stores that received the
// same writes.
type diff struct {
	t      *testing.T
	cached *CachedBatch
	plain  Batch
}

func newDiff(t *testing.T, budget, maxGroup int64) *diff {
	t.Helper()
	c := NewCachedBatch(openMem(t).NewBatch(), budget)
	c.maxGroup = maxGroup
	p := openMem(t).NewBatch()
	t.Cleanup(func() { c.Close(); p.Close() })
	return &diff{t: t, cached: c, plain: p}
}

var (
	diffUsers = []string{"", "a", "b", "a\x00", "\xff", "\xff\xff"}
	diffOps   = []string{"op", "op2", "$profile"}
)

// key picks a key: mostly user and timer index keys, sometimes others.
func diffKey(pick func(int) int) []byte {
	u, op := diffUsers[pick(len(diffUsers))], diffOps[pick(len(diffOps))]
	sub := []byte{byte('a' + pick(4))}
	switch pick(8) {
	case 0:
		return TimerIndexKey(0, u, op, string(sub))
	case 1:
		return SharedKey(0, op, sub)
	case 2:
		return MetaKey(0, string(sub))
	case 3:
		return UserKey(1, u, op, sub) // another partition
	default:
		return UserKey(0, u, op, sub)
	}
}

// diffRange picks a scan range: inside a group, across groups, or odd.
func diffRange(pick func(int) int) (lo, hi []byte) {
	u, op := diffUsers[pick(len(diffUsers))], diffOps[pick(len(diffOps))]
	var pre []byte
	switch pick(7) {
	case 0:
		pre = UserPrefix(0, u, "")
	case 1:
		pre = UserPrefix(0, u, op)
	case 2:
		pre = UserKey(0, u, op, []byte{byte('a' + pick(4))})
	case 3:
		pre = TimerIndexPrefix(0, u)
	case 4:
		pre = tagPrefix(0, TagUser) // every user: crosses groups
	case 5:
		pre = PartitionPrefix(0)
	default:
		lo, hi = diffKey(pick), diffKey(pick)
		if pick(4) == 0 {
			hi = nil
		}
		return lo, hi
	}
	return pre, PrefixEnd(pre)
}

// step applies one random operation to both batches and compares.
func (d *diff) step(pick func(int) int) error {
	switch op := pick(20); {
	case op < 7:
		k := diffKey(pick)
		a, errA := d.cached.Get(k)
		b, errB := d.plain.Get(k)
		if errA != nil || errB != nil || !bytes.Equal(a, b) || (a == nil) != (b == nil) {
			return fmt.Errorf("Get(%x) = %q, %v; plain %q, %v", k, a, errA, b, errB)
		}
	case op < 11:
		k := diffKey(pick)
		v := []byte(fmt.Sprint(pick(1000)))
		if pick(5) == 0 {
			v = nil
		}
		return d.both(fmt.Sprintf("Set(%x)", k), func(b Batch) error { return b.Set(k, v) })
	case op < 13:
		k := diffKey(pick)
		return d.both(fmt.Sprintf("Delete(%x)", k), func(b Batch) error { return b.Delete(k) })
	case op < 16:
		lo, hi := diffRange(pick)
		write := pick(4) == 0
		wk := diffKey(pick)
		a, errA := scanAll(d.cached, lo, hi, write, wk)
		b, errB := scanAll(d.plain, lo, hi, write, wk)
		if (errA == nil) != (errB == nil) || a != b {
			return fmt.Errorf("Scan(%x, %x) = %q, %v; plain %q, %v", lo, hi, a, errA, b, errB)
		}
	case op < 18:
		if err := d.compareChanges(); err != nil {
			return err
		}
		return d.both("Commit", func(b Batch) error { return b.Commit() })
	default:
		d.cached.Discard()
		d.plain.Discard()
	}
	return d.checkGroups()
}

// both applies fn to both batches and requires the same outcome.
func (d *diff) both(what string, fn func(Batch) error) error {
	errA, errB := fn(d.cached), fn(d.plain)
	if (errA == nil) != (errB == nil) {
		return fmt.Errorf("%s: cached %v, plain %v", what, errA, errB)
	}
	return nil
}

func (d *diff) compareChanges() error {
	a, b := changesOf(d.cached), changesOf(d.plain)
	if a != b || d.cached.Empty() != d.plain.Empty() {
		return fmt.Errorf("changes %q (empty %v); plain %q (empty %v)", a, d.cached.Empty(), b, d.plain.Empty())
	}
	return nil
}

// checkGroups verifies the invariant: each loaded group holds what the
// inner batch holds under its prefix, within the limits of its size.
func (d *diff) checkGroups() error {
	for p, g := range d.cached.groups {
		want, err := scanAll(d.cached.inner, []byte(p), PrefixEnd([]byte(p)), false, nil)
		if err != nil {
			return err
		}
		var got bytes.Buffer
		for _, e := range g.entries {
			fmt.Fprintf(&got, "%x=%q;", e.key, e.value)
		}
		if got.String() != want {
			return fmt.Errorf("group %x holds %q, inner %q", p, got.String(), want)
		}
	}
	return nil
}

// scanAll renders a Scan's result; with write, the callback also writes wk
// (a Pebble iterator does not see it; nor may the cache's).
func scanAll(b Batch, lo, hi []byte, write bool, wk []byte) (string, error) {
	var out bytes.Buffer
	err := b.Scan(lo, hi, func(k, v []byte) error {
		fmt.Fprintf(&out, "%x=%q;", k, v)
		if write {
			write = false
			return b.Set(wk, []byte("during scan"))
		}
		return nil
	})
	return out.String(), err
}

func changesOf(b Batch) string {
	var out bytes.Buffer
	_ = b.Changes(func(k, v []byte) error {
		fmt.Fprintf(&out, "%x=%q(%v);", k, v, v == nil)
		return nil
	})
	return out.String()
}
