package funnel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/state"
)

// The partition's counts are stored in pages: one shared key per (bucket
// label, group), "p/<bucket>\x00<group>", holding the counts of every
// funnel with a bucket of that label and that group. The raises of a
// transaction mostly fall in a few pages (the current buckets, per group),
// so Flush reads and writes a few pages instead of one key per (funnel,
// bucket, group). A page holds at most one
// entry per funnel ever defined, whatever the number of groups.
//
// Layout: ValueVersion, binaryMark, the number of entries, then per entry,
// sorted by funnel id: the id (length, bytes), the number of counts and the
// counts, all uvarints.
//
// Counts written by earlier versions, one key per (funnel, bucket, group)
// (countSub), are read when a page has no entry for the funnel yet.

func pageSub(bucket, group string) []byte {
	return []byte("p/" + bucket + "\x00" + group)
}

// countSub is the key of one (funnel, bucket, group)'s counts in earlier
// versions.
func countSub(id, bucket, group string) []byte {
	return []byte("c/" + id + "\x00" + bucket + "\x00" + group)
}

// pageEntry is one funnel's counts in a page; counts is a window of
// page.counts, given by [lo, hi).
type pageEntry struct {
	id     []byte
	lo, hi int
}

// page is a decoded page, reusable.
type page struct {
	entries []pageEntry
	counts  []int64
}

func (p *page) decode(b []byte) error {
	p.entries, p.counts = p.entries[:0], p.counts[:0]
	if b == nil {
		return nil
	}
	if len(b) < 2 || b[0] != state.ValueVersion || b[1] != binaryMark {
		return fmt.Errorf("decoding state value: not a counts page: %w", state.ErrBadValue)
	}
	r := &binReader{b: b[2:]}
	for n := r.count(2); n > 0 && r.err == nil; n-- {
		e := pageEntry{id: r.bytes(), lo: len(p.counts)}
		for k := r.count(1); k > 0 && r.err == nil; k-- {
			v := r.uvarint()
			if v > math.MaxInt64 {
				r.fail("count %d", v)
			}
			p.counts = append(p.counts, int64(v))
		}
		e.hi = len(p.counts)
		if m := len(p.entries); r.err == nil && m > 0 && bytes.Compare(p.entries[m-1].id, e.id) >= 0 {
			r.fail("page entries out of order")
		}
		p.entries = append(p.entries, e)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return fmt.Errorf("decoding state value: %w: %w", state.ErrBadValue, r.err)
	}
	return nil
}

func (p *page) encode() []byte {
	size := 2 + binary.MaxVarintLen64
	for _, e := range p.entries {
		size += 2*binary.MaxVarintLen64 + len(e.id) + (e.hi-e.lo)*3
	}
	b := append(make([]byte, 0, size), state.ValueVersion, binaryMark)
	b = binary.AppendUvarint(b, uint64(len(p.entries)))
	for _, e := range p.entries {
		b = binary.AppendUvarint(b, uint64(len(e.id)))
		b = append(b, e.id...)
		b = binary.AppendUvarint(b, uint64(e.hi-e.lo))
		for _, c := range p.counts[e.lo:e.hi] {
			b = binary.AppendUvarint(b, uint64(c))
		}
	}
	return b
}

// entry returns the index of f's entry, creating it (from the counts of an
// earlier version's key, if any) with len(f.Steps) counts if missing, and
// resizing it if f's number of steps changed.
func (p *page) entry(ctx *engine.Context, f *Definition, bucket, group string) (int, error) {
	i := sort.Search(len(p.entries), func(i int) bool { return string(p.entries[i].id) >= f.ID })
	n := len(f.Steps)
	if i < len(p.entries) && string(p.entries[i].id) == f.ID {
		e := &p.entries[i]
		if e.hi-e.lo != n {
			lo := len(p.counts)
			p.counts = append(p.counts, make([]int64, n)...)
			copy(p.counts[lo:], p.counts[e.lo:e.hi])
			e.lo, e.hi = lo, lo+n
		}
		return i, nil
	}
	lo := len(p.counts)
	p.counts = append(p.counts, make([]int64, n)...)
	b, err := ctx.GetShared(countSub(f.ID, bucket, group))
	if err != nil {
		return 0, err
	}
	if b != nil {
		var old []int64
		if err := state.DecodeValue(b, &old); err != nil {
			return 0, fmt.Errorf("reading counts of %s/%s: %w", bucket, group, err)
		}
		copy(p.counts[lo:], old)
	}
	p.entries = slices.Insert(p.entries, i, pageEntry{id: []byte(f.ID), lo: lo, hi: lo + n})
	return i, nil
}

// txnState is the operator's transaction buffer (engine.Context.TxnBuffer)
// on one partition: the records of the transaction's users, decoded as
// their events needed them, and the raises of their depths, summed per
// (funnel, bucket, group). Flush writes each changed record once, applies
// the raises to the counts pages and upserts each changed row once, so a
// user with many events in one transaction costs one record write and a
// count touched by many events one page write and one upsert. Not safe for
// concurrent use; one belongs to one partition worker.
//
// Flush returns it to txnPool with its records and states, whose memory the
// next transaction reuses; an aborted transaction's buffer is left to the
// garbage collector.
type txnState struct {
	users map[string]*userRecord
	rows  map[rowKey]*txnRow

	freeRecs []*userRecord
	// states holds the decoded parts in chunks of stateChunk, so that the
	// parts of a transaction sit together in memory and the next
	// transaction reuses them and their slices; used counts those handed
	// out.
	states [][]userState
	used   int
}

type rowKey struct{ id, bucket, group string }

// txnRow is the raise of one (funnel, bucket, group) in a transaction:
// delta[l] users reached level l+1.
type txnRow struct {
	f             *Definition
	bucket, group string
	delta         []int64
	counts        []int64 // the counts after the raise, set by Flush
}

var txnPool = sync.Pool{New: func() any {
	return &txnState{users: map[string]*userRecord{}, rows: map[rowKey]*txnRow{}}
}}

func newTxnState() any { return txnPool.Get() }

// maxFree bounds the free records and states a txnState keeps.
const maxFree = 1 << 14

// release empties t and puts it back in txnPool; t must not be used after.
func (t *txnState) release() {
	for _, r := range t.users {
		clear(r.parts)
		if len(t.freeRecs) < maxFree {
			t.freeRecs = append(t.freeRecs, r)
		}
	}
	clear(t.users)
	clear(t.rows)
	t.used = 0
	if len(t.states) > maxFree/stateChunk {
		clear(t.states[maxFree/stateChunk:])
		t.states = t.states[:maxFree/stateChunk]
	}
	txnPool.Put(t)
}

// stateChunk is the number of userStates allocated at once.
const stateChunk = 256

// newState returns an empty userState, reusing the memory of one of an
// earlier transaction.
func (t *txnState) newState() *userState {
	c, i := t.used/stateChunk, t.used%stateChunk
	if c == len(t.states) {
		t.states = append(t.states, newStateChunk())
	}
	t.used++
	st := &t.states[c][i]
	clear(st.Events)
	clear(st.Counted)
	st.Latest, st.Events, st.Counted = 0, st.Events[:0], st.Counted[:0]
	st.Since, st.Except, st.changed = 0, st.Except[:0], false
	return st
}

// newStateChunk allocates stateChunk states, each with room for two
// counted entries (most parts have one or two) in one array beside them:
// two allocations per chunk, and states of 96 bytes, so that the many
// parts a transaction decodes take fewer cache lines.
func newStateChunk() []userState {
	chunk := make([]userState, stateChunk)
	room := make([]counted, 2*stateChunk)
	for i := range chunk {
		chunk[i].Counted = room[2*i : 2*i : 2*i+2]
	}
	return chunk
}

// record returns the record of the context's user, read from state on the
// user's first event of the transaction.
func (t *txnState) record(ctx *engine.Context, o *Operator) (*userRecord, error) {
	if r := t.users[ctx.UserID()]; r != nil {
		return r, nil
	}
	var r *userRecord
	if n := len(t.freeRecs); n > 0 {
		r, t.freeRecs = t.freeRecs[n-1], t.freeRecs[:n-1]
	} else {
		r = &userRecord{}
	}
	if err := r.load(ctx, o); err != nil {
		return nil, err
	}
	t.users[ctx.UserID()] = r
	return r, nil
}

// add adds the raises of the event's hits. Cost: one map lookup per raise.
func (t *txnState) add(s *scratch) {
	for i := range s.hits {
		h := &s.hits[i]
		for _, c := range s.changes[h.lo:h.hi] {
			k := rowKey{h.f.ID, c.Bucket, c.Group}
			r := t.rows[k]
			if r == nil {
				r = &txnRow{f: h.f, bucket: c.Bucket, group: c.Group, delta: make([]int64, len(h.f.Steps))}
				t.rows[k] = r
			}
			for l := c.From; l < c.To; l++ {
				r.delta[l]++
			}
		}
	}
}

// saveRecords writes the records changed in the transaction.
func (o *Operator) saveRecords(ctx *engine.Context, t *txnState) error {
	s := scratchPool.Get().(*scratch)
	defer s.release()
	for user, r := range t.users {
		if !r.dirty {
			continue
		}
		b, err := r.encode(o, t, s)
		if err != nil {
			return fmt.Errorf("encoding funnel state of %s: %w", user, err)
		}
		if err := ctx.ForUser(user).Set(recordSub, b); err != nil {
			return err
		}
	}
	return nil
}

// Flush writes the records changed in the transaction, applies its raises to
// the partition's counts, page by page, then upserts the changed rows in
// (funnel, bucket, group) order. It implements engine.Flusher.
func (o *Operator) Flush(ctx *engine.Context, b any) error {
	buf := b.(*txnState)
	if err := o.saveRecords(ctx, buf); err != nil {
		return err
	}
	defer buf.release()
	rows := make([]*txnRow, 0, len(buf.rows))
	for _, r := range buf.rows {
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b *txnRow) int {
		if c := cmpString(a.bucket, b.bucket); c != 0 {
			return c
		}
		if c := cmpString(a.group, b.group); c != 0 {
			return c
		}
		return cmpString(a.f.ID, b.f.ID)
	})
	var p page
	for k := 0; k < len(rows); {
		end := k + 1
		for end < len(rows) && rows[end].bucket == rows[k].bucket && rows[end].group == rows[k].group {
			end++
		}
		if err := o.applyPage(ctx, &p, rows[k:end]); err != nil {
			return err
		}
		k = end
	}
	slices.SortFunc(rows, func(a, b *txnRow) int {
		if c := cmpString(a.f.ID, b.f.ID); c != 0 {
			return c
		}
		if c := cmpString(a.bucket, b.bucket); c != 0 {
			return c
		}
		return cmpString(a.group, b.group)
	})
	for _, r := range rows {
		row := Row{Funnel: r.f.ID, Bucket: r.bucket, Group: r.group, Partition: ctx.Partition(), Steps: r.counts}
		v, err := row.appendJSON(nil)
		if err != nil {
			return fmt.Errorf("funnel %s: encoding row: %w", r.f.ID, err)
		}
		ctx.Upsert(engine.Output{Topic: o.opts.AggregatesTopic, Key: []byte(row.Key()), Value: v})
	}
	return nil
}

// applyPage adds the raises of rows, which share a bucket and group, to
// their counts page.
func (o *Operator) applyPage(ctx *engine.Context, p *page, rows []*txnRow) error {
	bucket, group := rows[0].bucket, rows[0].group
	sub := pageSub(bucket, group)
	b, err := ctx.GetShared(sub)
	if err != nil {
		return err
	}
	if err := p.decode(b); err != nil {
		return fmt.Errorf("reading counts of %s/%s: %w", bucket, group, err)
	}
	for _, r := range rows {
		j, err := p.entry(ctx, r.f, bucket, group)
		if err != nil {
			return err
		}
		counts := p.counts[p.entries[j].lo:p.entries[j].hi]
		for l, d := range r.delta {
			counts[l] += d
		}
		r.counts = slices.Clone(counts)
	}
	return ctx.SetShared(sub, p.encode())
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
