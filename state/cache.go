package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"sync/atomic"
)

// CachedBatch is a Batch that answers reads of a user's keys from memory.
//
// A group is the key prefix p|tag|lp(user) for the user tag (TagUser) and
// the timer index tag (TagTimerIdx): one user's state, or one user's timer
// index. The first read of a group loads every key of it with one Scan of
// the inner batch (the committed store plus the open batch) into a sorted
// slice; later Gets, including of absent keys, and Scans inside the group
// are answered from that slice. Keys of other tags (meta, shared, timers)
// and Scans that cross a group's bounds go to the inner batch.
//
// Invariant: a loaded group holds exactly the keys and values the inner
// batch would return under its prefix. Writes go through to the inner
// batch (so Changes, Empty and Commit are the inner batch's) and update a
// loaded group in place; a group that is not loaded is not loaded by a
// write. Discard clears the whole cache, since the writes it drops may be
// in any group. Anything that writes the partition's keys to the store
// outside this batch must call ClearCache.
//
// Bound: the cache holds about Budget bytes (keys, values and a fixed
// overhead per entry and group). It grows past it during a transaction and
// shrinks only in Commit, to three quarters of the budget, evicting groups
// in CLOCK (second chance) order, so a transaction never loses a group it
// is using. A group larger than a quarter of the budget (at least
// minGroupLimit) is not kept: its reads go to the inner batch.
//
// Cost: a hit is a map lookup and a binary search in the user's keys, plus
// the copy Get returns; a miss is one Scan of the group. Writes add an
// insertion into a loaded group's slice. Thread safety: like any Batch,
// owned by one goroutine; only SetBudget and Stats may be called from
// others.
type CachedBatch struct {
	inner    Batch
	budget   atomic.Int64
	groups   map[string]*cacheGroup
	ring     []*cacheGroup // CLOCK order; each group knows its slot
	hand     int
	bytes    int64               // keys, values and overheads of loaded groups
	big      map[string]struct{} // groups found over the limit since the last Commit
	maxGroup int64               // if > 0, overrides the group limit (tests)

	hits, misses, evictions atomic.Uint64
	size                    atomic.Int64 // bytes, for Stats
}

// CacheStats are a CachedBatch's counters since it was made.
type CacheStats struct {
	Hits      uint64 // reads answered from a loaded group
	Misses    uint64 // reads that loaded a group (or found it too large)
	Evictions uint64 // groups dropped to stay within the budget
	Bytes     int64  // bytes held after the last Commit or Discard
}

// cacheGroup is one loaded group: its entries sorted by key.
type cacheGroup struct {
	entries []cacheEntry
	prefix  string
	bytes   int64
	slot    int  // index in CachedBatch.ring
	ref     bool // read since the CLOCK hand last passed
}

// cacheEntry is a key and its value, both in one private allocation; the
// value is never nil (an empty value is present, not absent).
type cacheEntry struct{ key, value []byte }

const (
	entryOverhead = 64  // an entry's slice headers and allocation rounding
	groupOverhead = 160 // a group's struct, map entry and ring slot
	minGroupLimit = 64 << 10
)

// errGroupTooBig stops the Scan loading a group over the limit.
var errGroupTooBig = errors.New("state cache: group over the limit")

// NewCachedBatch returns a CachedBatch over inner holding about
// budgetBytes; a budget of 0 or less caches nothing.
func NewCachedBatch(inner Batch, budgetBytes int64) *CachedBatch {
	b := &CachedBatch{inner: inner, groups: map[string]*cacheGroup{}, big: map[string]struct{}{}}
	b.budget.Store(budgetBytes)
	return b
}

// SetBudget changes the byte budget; it takes effect at the next Commit
// (or load). Safe for concurrent use.
func (b *CachedBatch) SetBudget(n int64) { b.budget.Store(n) }

// Budget returns the byte budget. Safe for concurrent use.
func (b *CachedBatch) Budget() int64 { return b.budget.Load() }

// Stats returns the counters. Safe for concurrent use.
func (b *CachedBatch) Stats() CacheStats {
	return CacheStats{Hits: b.hits.Load(), Misses: b.misses.Load(), Evictions: b.evictions.Load(), Bytes: b.size.Load()}
}

// ClearCache drops every loaded group. Call it after the store's keys of
// this batch's partition changed other than through the batch.
func (b *CachedBatch) ClearCache() {
	clear(b.groups)
	clear(b.big)
	clear(b.ring)
	b.ring, b.hand, b.bytes = b.ring[:0], 0, 0
	b.size.Store(0)
}

// Get returns the value of key, or nil if it is absent. The slice is the
// caller's.
func (b *CachedBatch) Get(key []byte) ([]byte, error) {
	n := cacheGroupLen(key)
	if n == 0 {
		return b.inner.Get(key)
	}
	g, err := b.group(key[:n])
	if err != nil {
		return nil, err
	}
	if g == nil {
		return b.inner.Get(key)
	}
	i, ok := g.find(key)
	if !ok {
		return nil, nil
	}
	return bytes.Clone(g.entries[i].value), nil
}

// Set writes key through to the inner batch and into its group if loaded.
func (b *CachedBatch) Set(key, value []byte) error {
	if err := b.inner.Set(key, value); err != nil {
		return err
	}
	if g := b.loaded(key); g != nil {
		b.bytes += g.put(key, value)
	}
	return nil
}

// Delete deletes key through the inner batch and from its group if loaded.
func (b *CachedBatch) Delete(key []byte) error {
	if err := b.inner.Delete(key); err != nil {
		return err
	}
	if g := b.loaded(key); g != nil {
		b.bytes += g.remove(key)
	}
	return nil
}

// Scan calls fn for every key in [lower, upper) in order. A range inside
// one group is read from memory; the slices passed to fn are only valid
// during the call and must not be modified.
func (b *CachedBatch) Scan(lower, upper []byte, fn func(key, value []byte) error) error {
	n := cacheGroupLen(lower)
	if n == 0 || !insideGroup(lower, upper, lower[:n]) {
		return b.inner.Scan(lower, upper, fn)
	}
	g, err := b.group(lower[:n])
	if err != nil {
		return err
	}
	if g == nil {
		return b.inner.Scan(lower, upper, fn)
	}
	i, _ := g.find(lower)
	j := i
	for j < len(g.entries) && bytes.Compare(g.entries[j].key, upper) < 0 {
		j++
	}
	// fn may write to the batch: iterate over a copy of the entries, as a
	// Pebble iterator does not see writes made after it was opened.
	var buf [8]cacheEntry
	for _, e := range append(buf[:0], g.entries[i:j]...) {
		if err := fn(e.key, e.value); err != nil {
			return err
		}
	}
	return nil
}

// Changes is the inner batch's.
func (b *CachedBatch) Changes(fn func(key, value []byte) error) error { return b.inner.Changes(fn) }

// Empty is the inner batch's.
func (b *CachedBatch) Empty() bool { return b.inner.Empty() }

// Commit commits the inner batch, then evicts groups if the cache is over
// its budget. If the commit fails the cache is cleared, as the store's
// contents are then unknown.
func (b *CachedBatch) Commit() error {
	if err := b.inner.Commit(); err != nil {
		b.ClearCache()
		return err
	}
	clear(b.big)
	b.evict()
	b.size.Store(b.bytes)
	return nil
}

// Discard drops the inner batch's writes and the whole cache.
func (b *CachedBatch) Discard() {
	b.inner.Discard()
	b.ClearCache()
}

// Close releases the inner batch and the cache.
func (b *CachedBatch) Close() {
	b.ClearCache()
	b.inner.Close()
}

// loaded returns key's group if it is loaded.
func (b *CachedBatch) loaded(key []byte) *cacheGroup {
	n := cacheGroupLen(key)
	if n == 0 || len(b.groups) == 0 {
		return nil
	}
	return b.groups[string(key[:n])]
}

// group returns the group of prefix, loading it if needed; nil (and no
// error) when the cache is off or the group is over the limit.
func (b *CachedBatch) group(prefix []byte) (*cacheGroup, error) {
	if g, ok := b.groups[string(prefix)]; ok {
		g.ref = true
		b.hits.Add(1)
		return g, nil
	}
	budget := b.budget.Load()
	if budget <= 0 {
		return nil, nil
	}
	b.misses.Add(1)
	if _, ok := b.big[string(prefix)]; ok {
		return nil, nil
	}
	limit := max(budget/4, minGroupLimit)
	if b.maxGroup > 0 {
		limit = b.maxGroup
	}
	g := &cacheGroup{prefix: string(prefix), bytes: groupOverhead + int64(len(prefix)), slot: len(b.ring)}
	err := b.inner.Scan(prefix, PrefixEnd(prefix), func(k, v []byte) error {
		g.entries = append(g.entries, newEntry(k, v))
		g.bytes += entrySize(k, v)
		if g.bytes > limit {
			return errGroupTooBig
		}
		return nil
	})
	if errors.Is(err, errGroupTooBig) {
		b.big[g.prefix] = struct{}{}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b.groups[g.prefix] = g
	b.ring = append(b.ring, g)
	b.bytes += g.bytes
	return g, nil
}

// evict drops groups in CLOCK order until the cache holds at most three
// quarters of its budget, if it holds more than the budget.
func (b *CachedBatch) evict() {
	budget := b.budget.Load()
	if b.bytes <= budget {
		return
	}
	target := max(budget, 0) / 4 * 3
	for b.bytes > target && len(b.ring) > 0 {
		if b.hand >= len(b.ring) {
			b.hand = 0
		}
		g := b.ring[b.hand]
		if g.ref {
			g.ref = false
			b.hand++
			continue
		}
		last := len(b.ring) - 1
		b.ring[b.hand] = b.ring[last]
		b.ring[b.hand].slot = b.hand
		b.ring[last] = nil
		b.ring = b.ring[:last]
		delete(b.groups, g.prefix)
		b.bytes -= g.bytes
		b.evictions.Add(1)
	}
}

// find returns the index of the first entry not less than key and whether
// it is key.
func (g *cacheGroup) find(key []byte) (int, bool) {
	return slices.BinarySearchFunc(g.entries, key, compareEntry)
}

func compareEntry(e cacheEntry, key []byte) int { return bytes.Compare(e.key, key) }

// put sets key to a copy of value and returns the change in bytes.
func (g *cacheGroup) put(key, value []byte) int64 {
	e := newEntry(key, value)
	d := entrySize(key, value)
	i, ok := g.find(key)
	if ok {
		d -= entrySize(g.entries[i].key, g.entries[i].value)
		g.entries[i] = e
	} else {
		g.entries = slices.Insert(g.entries, i, e)
	}
	g.bytes += d
	return d
}

// remove deletes key, if there, and returns the change in bytes.
func (g *cacheGroup) remove(key []byte) int64 {
	i, ok := g.find(key)
	if !ok {
		return 0
	}
	d := -entrySize(g.entries[i].key, g.entries[i].value)
	g.entries = slices.Delete(g.entries, i, i+1) // zeroes the freed slot
	g.bytes += d
	return d
}

func newEntry(k, v []byte) cacheEntry {
	buf := make([]byte, len(k)+len(v))
	copy(buf, k)
	copy(buf[len(k):], v)
	return cacheEntry{key: buf[:len(k):len(k)], value: buf[len(k):]}
}

func entrySize(k, v []byte) int64 { return int64(len(k) + len(v) + entryOverhead) }

// cacheGroupLen returns the length of key's group prefix p|tag|lp(user),
// or 0 if key is not in a cached keyspace or too short to name a user.
// Every key with a given group prefix has that group, so a group's keys
// are exactly a prefix scan.
func cacheGroupLen(key []byte) int {
	if len(key) < 6 || (Tag(key[4]) != TagUser && Tag(key[4]) != TagTimerIdx) {
		return 0
	}
	n, w := binary.Uvarint(key[5:])
	if w <= 0 || uint64(len(key)-5-w) < n {
		return 0
	}
	return 5 + w + int(n)
}

// insideGroup reports whether [lower, upper) holds only keys with prefix,
// given that lower has it: upper has the prefix too, or is its PrefixEnd.
// An empty or inverted range goes to the inner batch, for identical
// behaviour.
func insideGroup(lower, upper, prefix []byte) bool {
	if upper == nil || bytes.Compare(lower, upper) >= 0 {
		return false
	}
	return bytes.HasPrefix(upper, prefix) || bytes.Equal(upper, PrefixEnd(prefix))
}
