package funnel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/state"
)

// The partition's counts are stored in pages: one shared key per (bucket
// label, group), "p/<bucket>\x00<group>", holding the counts of every
// funnel with a bucket of that label and that group. The raises of one event
// mostly fall in a few pages (the buckets of the event and of the attempts
// it deepens, in its group), so an event reads and writes a few pages
// instead of one key per (funnel, bucket, group). A page holds at most one
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

// funnelChange is a change of one funnel, and where its counts are after
// it is applied (scratch.rows).
type funnelChange struct {
	f      *Definition
	c      change
	lo, hi int
}

// applyAll adds every raise of the event to the partition's counts, page by
// page, then upserts the changed rows in (funnel, bucket, group) order.
func (o *Operator) applyAll(ctx *engine.Context, s *scratch) error {
	s.fcs = s.fcs[:0]
	for i := range s.hits {
		h := &s.hits[i]
		chs := s.changes[h.lo:h.hi]
		if len(chs) > 1 {
			slices.SortFunc(chs, func(a, b change) int {
				if c := cmpString(a.Bucket, b.Bucket); c != 0 {
					return c
				}
				return cmpString(a.Group, b.Group)
			})
		}
		for _, c := range chs {
			s.fcs = append(s.fcs, funnelChange{f: h.f, c: c})
		}
	}
	if len(s.fcs) == 0 {
		return nil
	}
	// Apply page by page: order the changes by page, keeping a stable index.
	s.order = s.order[:0]
	for i := range s.fcs {
		s.order = append(s.order, i)
	}
	slices.SortFunc(s.order, func(a, b int) int {
		x, y := &s.fcs[a].c, &s.fcs[b].c
		if c := cmpString(x.Bucket, y.Bucket); c != 0 {
			return c
		}
		return cmpString(x.Group, y.Group)
	})
	s.rows = s.rows[:0]
	p := &s.page
	for k := 0; k < len(s.order); {
		first := &s.fcs[s.order[k]].c
		end := k + 1
		for end < len(s.order) {
			c := &s.fcs[s.order[end]].c
			if c.Bucket != first.Bucket || c.Group != first.Group {
				break
			}
			end++
		}
		sub := pageSub(first.Bucket, first.Group)
		b, err := ctx.GetShared(sub)
		if err != nil {
			return err
		}
		if err := p.decode(b); err != nil {
			return fmt.Errorf("reading counts of %s/%s: %w", first.Bucket, first.Group, err)
		}
		for _, i := range s.order[k:end] {
			fc := &s.fcs[i]
			j, err := p.entry(ctx, fc.f, fc.c.Bucket, fc.c.Group)
			if err != nil {
				return err
			}
			counts := p.counts[p.entries[j].lo:p.entries[j].hi]
			for l := fc.c.From; l < fc.c.To; l++ {
				counts[l]++
			}
			fc.lo = len(s.rows)
			s.rows = append(s.rows, counts...)
			fc.hi = len(s.rows)
		}
		if err := ctx.SetShared(sub, p.encode()); err != nil {
			return err
		}
		k = end
	}
	for i := range s.fcs {
		fc := &s.fcs[i]
		row := Row{Funnel: fc.f.ID, Bucket: fc.c.Bucket, Group: fc.c.Group, Partition: ctx.Partition(), Steps: s.rows[fc.lo:fc.hi]}
		v, err := row.appendJSON(nil)
		if err != nil {
			return fmt.Errorf("funnel %s: encoding row: %w", fc.f.ID, err)
		}
		ctx.Upsert(engine.Output{Topic: o.opts.AggregatesTopic, Key: []byte(row.Key()), Value: v})
	}
	return nil
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
