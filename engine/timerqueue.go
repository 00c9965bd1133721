package engine

import (
	"container/heap"
	"math"

	"github.com/cairn-cjo/cairn/state"
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
// Cost: Push, Remove and PopMin are O(log n) (container/heap); MinDue and
// Len are O(1).
// Memory: about 70 bytes per timer plus its key (13 bytes, the operator,
// user and id, and their length prefixes, rounded up to Go's size
// class): 116 bytes for a journey timer with a 12-byte user id in
// BenchmarkTimerQueuePush, 130 bytes with a million timers.
//
// Not safe for concurrent use: it belongs to its partition core's
// goroutine.
type timerQueue struct {
	heap  timerHeap
	byTag map[string]*timerEntry // timer key minus the prefix and due -> entry
}

// timerEntry is one pending timer. key is its full timer key; i its index
// in the heap, kept up to date by Swap.
type timerEntry struct {
	key string
	i   int
}

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
	return state.TimerKeyDue(q.heap[0].key)
}

// Push adds the timer with key; a timer with the same identity must not be
// in the queue (Remove it first).
func (q *timerQueue) Push(key string) {
	e := &timerEntry{key: key}
	q.byTag[key[state.TimerIdentityAt:]] = e
	heap.Push(&q.heap, e)
}

// Remove drops the timer whose key ends with identity (the operator, user
// and id part of a timer key), if it is there, and returns its key.
func (q *timerQueue) Remove(identity []byte) (key string, ok bool) {
	e, ok := q.byTag[string(identity)]
	if !ok {
		return "", false
	}
	heap.Remove(&q.heap, e.i)
	delete(q.byTag, e.key[state.TimerIdentityAt:])
	return e.key, true
}

// PopMin removes and returns the key of the earliest timer.
func (q *timerQueue) PopMin() (key string, ok bool) {
	if len(q.heap) == 0 {
		return "", false
	}
	e := heap.Pop(&q.heap).(*timerEntry)
	delete(q.byTag, e.key[state.TimerIdentityAt:])
	return e.key, true
}

// timerHeap is a min-heap of timer entries by key, for container/heap.
type timerHeap []*timerEntry

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].key < h[j].key }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].i, h[j].i = i, j
}

func (h *timerHeap) Push(x any) {
	e := x.(*timerEntry)
	e.i = len(*h)
	*h = append(*h, e)
}

func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
