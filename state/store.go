package state

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Store is Cairn's local state: one per process, shared by all partition
// workers, each of which only touches keys under its own partition prefix.
//
// Concurrency: every Store method is safe for concurrent use. A Batch is not:
// it is owned by one goroutine at a time (its partition's worker).
type Store interface {
	// NewBatch returns an empty batch whose reads see its own writes on top
	// of the committed state.
	NewBatch() Batch
	// Get returns the committed value of key, or nil if it is absent.
	Get(key []byte) ([]byte, error)
	// Scan calls fn for every committed key in [lower, upper) in order. The
	// slices passed to fn are only valid during the call.
	Scan(lower, upper []byte, fn func(key, value []byte) error) error
	// DeleteRange deletes every committed key in [lower, upper).
	DeleteRange(lower, upper []byte) error
	// DiskUsage returns an estimate of the bytes stored under [lower, upper).
	DiskUsage(lower, upper []byte) (uint64, error)
	// Flush makes every committed batch durable.
	Flush() error
	// FreeBytes returns the bytes available to the store on its disk; ok is
	// false where that is unknown (an in-memory store).
	FreeBytes() (n uint64, ok bool)
	// Sync waits until every committed batch is in the synced write-ahead
	// log. Commits do not wait for the disk (see Options.Sync), so a failed
	// log write (a full disk) only surfaces here; the engine calls it
	// periodically. Cost: one fsync.
	Sync() error
	// Close flushes and releases the store.
	Close() error
}

// Batch buffers writes until Commit applies them atomically. It records which
// keys it changed so that the engine can write one changelog record per key.
//
// Cost: reads through a batch merge its index with the committed state, so a
// Get costs one Pebble lookup; writes are O(log n) in the batch size.
type Batch interface {
	Get(key []byte) ([]byte, error)
	Set(key, value []byte) error
	Delete(key []byte) error
	Scan(lower, upper []byte, fn func(key, value []byte) error) error
	// Changes calls fn once per key written since the batch was created or
	// last reset, in key order, with value nil for a deletion. The key is
	// a fresh copy fn may keep; the value is valid until the batch is
	// reset (by Commit or Discard).
	Changes(fn func(key, value []byte) error) error
	// Empty reports whether the batch holds no writes.
	Empty() bool
	// Commit applies the batch atomically and resets it.
	Commit() error
	// Discard drops every write and resets the batch.
	Discard()
	// Close releases the batch; it must not be used afterwards.
	Close()
}

// Options configures OpenPebble. The zero value is valid.
type Options struct {
	// InMemory keeps the store in memory (vfs.NewMem); for tests and the
	// in-memory operator harness. Default false.
	InMemory bool
	// FS overrides the filesystem, e.g. an errorfs for fault tests. Default
	// vfs.Default, or vfs.NewMem() when InMemory.
	FS vfs.FS
	// CacheBytes is Pebble's block cache size. Default 64 MiB.
	CacheBytes int64
	// MemTableBytes is the size of Pebble's memtable. Default 64 MiB: a
	// transaction's batch holds the state of every user it touched, and a
	// batch over half the memtable would be flushed to its own table at
	// once; a large memtable also absorbs rewrites of the same users'
	// records before they reach a table.
	MemTableBytes int
	// OnFatal is called by Pebble on an error it cannot go on from, such as
	// a failed write to its log (a full disk); it must not return. Default:
	// panic with the message.
	OnFatal func(msg string)
	// Sync makes every Commit wait for the WAL to be synced. Default false:
	// the changelog is the source of truth (design §2), so a lost WAL tail
	// only costs a longer restore.
	Sync bool
}

// EnsureDefaults fills in zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.CacheBytes == 0 {
		o.CacheBytes = 64 << 20
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = 64 << 20
	}
	if o.FS == nil {
		if o.InMemory {
			o.FS = vfs.NewMem()
		} else {
			o.FS = vfs.Default
		}
	}
}

type pebbleStore struct {
	fs    vfs.FS
	dir   string
	db    *pebble.DB
	cache *pebble.Cache
	wo    *pebble.WriteOptions
}

// OpenPebble opens (creating if needed) a Pebble store in dir.
func OpenPebble(dir string, o Options) (Store, error) {
	o.EnsureDefaults()
	cache := pebble.NewCache(o.CacheBytes)
	po := &pebble.Options{FS: o.FS, Cache: cache, Logger: quietLogger{o.OnFatal}, MemTableSize: uint64(o.MemTableBytes)}
	// Bloom filters (10 bits per key, about 1% false positives) on every
	// level: operators read many keys that do not exist (a journey record
	// for each journey an event may enter), and without a filter each miss
	// reads an index and a data block of every table on its way down.
	po.Levels[0].FilterPolicy = bloom.FilterPolicy(10) // later levels inherit it
	db, err := pebble.Open(dir, po)
	if err != nil {
		cache.Unref()
		return nil, fmt.Errorf("opening pebble at %s: %w", dir, err)
	}
	wo := pebble.NoSync
	if o.Sync {
		wo = pebble.Sync
	}
	return &pebbleStore{db: db, cache: cache, wo: wo, fs: o.FS, dir: dir}, nil
}

func (s *pebbleStore) NewBatch() Batch {
	return &pebbleBatch{s: s, b: s.db.NewIndexedBatch(), changed: map[string][]byte{}}
}

func (s *pebbleStore) Get(key []byte) ([]byte, error) { return get(s.db, key) }

func (s *pebbleStore) Scan(lower, upper []byte, fn func(k, v []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("scanning state: %w", err)
	}
	return scan(it, fn)
}

func (s *pebbleStore) DeleteRange(lower, upper []byte) error {
	if err := s.db.DeleteRange(lower, upper, s.wo); err != nil {
		return fmt.Errorf("deleting state range: %w", err)
	}
	return nil
}

func (s *pebbleStore) DiskUsage(lower, upper []byte) (uint64, error) {
	n, err := s.db.EstimateDiskUsage(lower, upper)
	if err != nil {
		return 0, fmt.Errorf("estimating state size: %w", err)
	}
	return n, nil
}

func (s *pebbleStore) Flush() error {
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("flushing state: %w", err)
	}
	return nil
}

func (s *pebbleStore) FreeBytes() (uint64, bool) {
	if s.dir == "" {
		return 0, false
	}
	u, err := s.fs.GetDiskUsage(s.dir)
	if err != nil {
		return 0, false
	}
	return u.AvailBytes, true
}

func (s *pebbleStore) Sync() error {
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("syncing the state log: %w", err)
	}
	return nil
}

func (s *pebbleStore) Close() error {
	err := s.db.Close()
	s.cache.Unref()
	if err != nil {
		return fmt.Errorf("closing state: %w", err)
	}
	return nil
}

type getter interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

func get(r getter, key []byte) ([]byte, error) {
	v, c, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state key %x: %w", key, err)
	}
	out := make([]byte, len(v)) // non-nil even when empty: nil means absent
	copy(out, v)
	_ = c.Close()
	return out, nil
}

func scan(it *pebble.Iterator, fn func(k, v []byte) error) error {
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("scanning state: %w", err)
		}
		if err := fn(it.Key(), v); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("scanning state: %w", err)
	}
	return nil
}

// pebbleBatch wraps an indexed Pebble batch, which serves the reads of the
// open transaction. changed maps each written key to its latest value (nil
// for a delete); Changes and Commit use it, so a key written many times in
// a transaction is logged and applied once. sorted caches changed's keys in
// order until a new key is written.
type pebbleBatch struct {
	s       *pebbleStore
	b       *pebble.Batch
	changed map[string][]byte
	sorted  []string
	apply   *pebble.Batch // reused for Commit
}

func (b *pebbleBatch) Get(key []byte) ([]byte, error) { return get(b.b, key) }

// Set writes key. The change set keeps the value where the batch encoded
// it, not a copy of its own: a batch's buffer is only appended to until
// reset, which clears the change set, and a buffer the batch outgrows is
// left as it was.
func (b *pebbleBatch) Set(key, value []byte) error {
	op := b.b.SetDeferred(len(key), len(value))
	copy(op.Key, key)
	copy(op.Value, value)
	if err := op.Finish(); err != nil {
		return fmt.Errorf("writing state key %x: %w", key, err)
	}
	v := op.Value[:len(value):len(value)] // an append by a reader cannot reach the batch
	if v == nil {
		v = []byte{} // nil is a delete
	}
	b.note(key, v)
	return nil
}

// note records key's latest value for Changes and Commit.
func (b *pebbleBatch) note(key, value []byte) { b.changed[string(key)] = value }

// keys returns the written keys in order. Cost: a sort of the keys the
// first time after a new key was written, then nothing. Keys are never
// removed from changed during a transaction, so sorted is current exactly
// when it has as many keys.
func (b *pebbleBatch) keys() []string {
	if len(b.sorted) == len(b.changed) {
		return b.sorted
	}
	b.sorted = b.sorted[:0]
	for k := range b.changed {
		b.sorted = append(b.sorted, k)
	}
	sort.Strings(b.sorted)
	return b.sorted
}

func (b *pebbleBatch) Delete(key []byte) error {
	if err := b.b.Delete(key, nil); err != nil {
		return fmt.Errorf("deleting state key %x: %w", key, err)
	}
	b.note(key, nil)
	return nil
}

func (b *pebbleBatch) Scan(lower, upper []byte, fn func(k, v []byte) error) error {
	it, err := b.b.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("scanning state: %w", err)
	}
	return scan(it, fn)
}

func (b *pebbleBatch) Changes(fn func(k, v []byte) error) error {
	for _, k := range b.keys() {
		if err := fn([]byte(k), b.changed[k]); err != nil {
			return err
		}
	}
	return nil
}

func (b *pebbleBatch) Empty() bool { return b.b.Empty() }

// Commit applies the latest value of each written key, in key order, not
// the indexed batch with every intermediate write: under skewed load a key
// is written many times per transaction, and each write applied would be
// another memtable insert and WAL bytes. The outcome is the same state. A
// batch with no key written twice is applied as it is, without the copy.
func (b *pebbleBatch) Commit() error {
	w := b.b // no key written twice (a restore, mostly): already the last writes
	if int(b.b.Count()) != len(b.changed) {
		w = b.lastWrites()
	}
	err := b.s.db.Apply(w, b.s.wo)
	if w != b.b {
		b.apply = resetApplied(w)
	}
	if err != nil {
		return fmt.Errorf("applying state batch: %w", err)
	}
	b.reset()
	return nil
}

// lastWrites fills the reusable plain batch with the last write of each
// changed key, in key order. The keys are copied straight from the change
// set's strings into the batch.
func (b *pebbleBatch) lastWrites() *pebble.Batch {
	if b.apply == nil {
		b.apply = b.s.db.NewBatch()
	}
	w := b.apply
	for _, k := range b.keys() {
		v := b.changed[k]
		var op *pebble.DeferredBatchOp
		if v == nil {
			op = w.DeleteDeferred(len(k))
		} else {
			op = w.SetDeferred(len(k), len(v))
			copy(op.Value, v)
		}
		copy(op.Key, k)
		_ = op.Finish() // a plain batch has no index to fail on
	}
	return w
}

// resetApplied empties a plain batch for reuse, or returns nil (a new one
// is made next time) if it grew past keptBatchBytes.
func resetApplied(w *pebble.Batch) *pebble.Batch {
	if len(w.Repr()) > keptBatchBytes {
		_ = w.Close()
		return nil
	}
	w.Reset()
	return w
}

// keptBatchBytes is the largest batch buffer Pebble keeps on Reset.
const keptBatchBytes = 1 << 20

func (b *pebbleBatch) Discard() { b.reset() }

// reset empties the batch for reuse, keeping its buffers: Pebble allows
// Reset after Apply, and reusing saves reallocating (and clearing) the
// batch's arena on every transaction. Pebble drops the buffer of a batch
// over 1 MiB on Reset, so such a batch is replaced by one allocated at its
// size: a transaction that writes as much as the last one then appends
// without growing (and copying) its buffer step by step.
func (b *pebbleBatch) reset() {
	if n := len(b.b.Repr()); n > keptBatchBytes {
		_ = b.b.Close()
		b.b = b.s.db.NewIndexedBatchWithSize(min(n+n/4, maxPresized))
	} else {
		b.b.Reset()
	}
	clear(b.changed)
	b.sorted = b.sorted[:0]
}

// maxPresized bounds the buffer a batch is given up front.
const maxPresized = 64 << 20

func (b *pebbleBatch) Close() {
	_ = b.b.Close()
	if b.apply != nil {
		_ = b.apply.Close()
	}
}

// quietLogger drops Pebble's messages but its fatal ones.
type quietLogger struct{ onFatal func(string) }

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (l quietLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if l.onFatal != nil {
		l.onFatal(msg)
	}
	panic(msg)
}
