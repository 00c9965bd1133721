package engine

import (
	"encoding/binary"
	"math"
)

// timerQueue is the in-memory index of one partition's timers: every timer
// key in the store plus the open batch, ordered as Pebble orders the keys,
// with a map from a timer's identity to its entry for cancel and
// reschedule. It never replaces the store: the timer keys stay durable and
// changelogged, and the queue is rebuilt from them with one scan whenever
// the partition core is (re)loaded (partitionCore.timers).
//
// An entry holds the encoded timer key as a string, so comparing two
// entries is comparing their keys: the order is Pebble's byte order by
// construction (due first, then the length-prefixed operator, user and id,
// so at one due time user "b" comes before user "aa"), and a replay fires
// timers in the order it always did. The map key is the key's tail after
// the due time, a substring sharing the key's bytes.
//
// Cost: Push, Remove and PopMin are O(log n); MinDue and Len are O(1).
// Memory: about 70 bytes per timer plus its key (13 bytes, the operator,
// user and id, and their length prefixes, rounded up to Go's size
// class): 116 bytes for a journey timer with a 12-byte user id in
// BenchmarkTimerQueuePush, 130 bytes with a million timers.
//
// Not safe for concurrent use: it belongs to its partition core's
// goroutine.
type timerQueue struct {
	heap  []*timerEntry
	byTag map[string]*timerEntry // timer key minus the prefix and due -> entry
}

// timerEntry is one pending timer. key is its full timer key; i its index
// in the heap, kept up to date by every move.
type timerEntry struct {
	key string
	i   int
}

// timerKeyIdentity is where the identity (operator, user, id) starts in a
// timer key: after the 4-byte partition, the tag and the 8-byte due time
// (state/keys.go).
const timerKeyIdentity = 4 + 1 + 8

func newTimerQueue() *timerQueue {
	return &timerQueue{byTag: map[string]*timerEntry{}}
}

// Len returns the number of pending timers.
func (q *timerQueue) Len() int { return len(q.heap) }

// MinDue returns the due time of the earliest timer, math.MaxInt64 if
// there is none.
func (q *timerQueue) MinDue() int64 {
	if len(q.heap) == 0 {
		return math.MaxInt64
	}
	return timerKeyDue(q.heap[0].key)
}

// timerKeyDue decodes the due time of a timer key (big-endian, sign bit
// flipped, after the partition and the tag).
func timerKeyDue(key string) int64 {
	return int64(binary.BigEndian.Uint64([]byte(key[5:timerKeyIdentity])) ^ (1 << 63))
}

// Push adds the timer with key; a timer with the same identity must not be
// in the queue (Remove it first).
func (q *timerQueue) Push(key string) {
	e := &timerEntry{key: key, i: len(q.heap)}
	q.byTag[key[timerKeyIdentity:]] = e
	q.heap = append(q.heap, e)
	q.up(e.i)
}

// Remove drops the timer whose key ends with identity (the operator, user
// and id part of a timer key), if it is there, and returns its key.
func (q *timerQueue) Remove(identity []byte) (key string, ok bool) {
	e, ok := q.byTag[string(identity)]
	if !ok {
		return "", false
	}
	q.removeAt(e.i)
	return e.key, true
}

// PopMin removes and returns the key of the earliest timer.
func (q *timerQueue) PopMin() (key string, ok bool) {
	if len(q.heap) == 0 {
		return "", false
	}
	e := q.heap[0]
	q.removeAt(0)
	return e.key, true
}

func (q *timerQueue) removeAt(i int) {
	e := q.heap[i]
	delete(q.byTag, e.key[timerKeyIdentity:])
	last := len(q.heap) - 1
	if i != last {
		q.swap(i, last)
	}
	q.heap[last] = nil
	q.heap = q.heap[:last]
	if i != last {
		q.down(i)
		q.up(i)
	}
}

func (q *timerQueue) swap(i, j int) {
	q.heap[i], q.heap[j] = q.heap[j], q.heap[i]
	q.heap[i].i, q.heap[j].i = i, j
}

func (q *timerQueue) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if q.heap[parent].key <= q.heap[i].key {
			return
		}
		q.swap(i, parent)
		i = parent
	}
}

func (q *timerQueue) down(i int) {
	n := len(q.heap)
	for {
		least := i
		if l := 2*i + 1; l < n && q.heap[l].key < q.heap[least].key {
			least = l
		}
		if r := 2*i + 2; r < n && q.heap[r].key < q.heap[least].key {
			least = r
		}
		if least == i {
			return
		}
		q.swap(i, least)
		i = least
	}
}
