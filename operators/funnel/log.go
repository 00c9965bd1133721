package funnel

import (
	"encoding/binary"
	"math"
	"slices"
	"sort"
)

// The shared event log of a user's record. Every funnel used to keep its
// own copy of the user's step events; with 50 funnels over four event
// names one event was stored about 31 times, and those copies were decoded,
// scanned and encoded once per funnel. The log holds each event once: its
// ts, its arrival number (seq), its name and the results of the
// expressions evaluated on it (the `when` conditions that held and the
// group_by values). A funnel's part keeps what is its own (latest ts,
// counted depths) and how to read the log:
//
//   - Since: the seq of the event that created the part. Entries before it
//     arrived before the funnel counted for the user (a funnel defined
//     later must not count them).
//   - Except: the seqs of entries that were too late for this funnel (the
//     late rule is per funnel) while another funnel accepted them.
//   - Events: entries the log no longer holds that the funnel still needs
//     (a funnel that went quiet while others stayed busy, or events read
//     from a record of an earlier layout). It is sorted by ts; at equal ts
//     they precede the log's entries, which arrived after them.
//
// The funnel's events are then Events merged with the log entries whose
// seq is ≥ Since and not in Except, whose ts is ≥ Latest − retention and
// that match a step of the funnel: exactly the events a per-funnel copy
// held. The log is kept sorted by (ts, seq), which is the semantics' order
// (ts, position in the log), since seq grows with the position.

// logEntry is one event of the shared log. Its expression results are
// userRecord.vals[lo:hi].
type logEntry struct {
	ts, seq int64
	name    int32 // index in Operator.events
	lo, hi  int32
}

// entryVal is the result of one expression on an event: a condition that
// held (str < 0) or a group_by's value, rec.strs[str]. A condition that
// failed and a group_by that gave "" are not stored.
type entryVal struct {
	expr int32 // index in Operator.exprKeys
	str  int32
}

// mask returns the steps of d that entry e matches. Cost: O(steps named
// like e), no allocation.
func (r *userRecord) mask(d *Definition, e *logEntry) uint32 {
	named := d.byName[e.name]
	if !d.hasConds || named == 0 {
		return named
	}
	m := named
	for i := 0; named != 0; i++ {
		bit := uint32(1) << i
		if named&bit == 0 {
			continue
		}
		named &^= bit
		if c := d.Steps[i].cond; c != nil && !r.holds(e, int32(d.Steps[i].exprIdx)) {
			m &^= bit
		}
	}
	return m
}

// holds reports whether the condition expr held on e.
func (r *userRecord) holds(e *logEntry, expr int32) bool {
	for _, v := range r.vals[e.lo:e.hi] {
		if v.expr == expr {
			return true
		}
	}
	return false
}

// group returns d's group of e ("" without group_by).
func (r *userRecord) group(d *Definition, e *logEntry) string {
	if d.groupProg == nil {
		return ""
	}
	for _, v := range r.vals[e.lo:e.hi] {
		if v.expr == int32(d.groupIdx) && v.str >= 0 {
			return r.strs[v.str]
		}
	}
	return ""
}

// visible reports whether log entry e is one of d's events for st, given
// its mask m.
func (st *userState) visible(d *Definition, e *logEntry, m uint32) bool {
	return m != 0 && e.seq >= st.Since && e.ts >= st.Latest-d.retention() && !slices.Contains(st.Except, e.seq)
}

// view appends to out the funnel's events with a ts in [from, to]
// (st.Events merged with the visible log entries, in order) and returns it
// with the index of the entry of seq want (-1 if absent). Both lists are
// sorted by ts, so the range is found by binary search. Cost: O(log n) plus
// the entries in the range.
func (r *userRecord) view(d *Definition, st *userState, want, from, to int64, out []stepEvent) ([]stepEvent, int) {
	at := -1
	k := sort.Search(len(st.Events), func(i int) bool { return st.Events[i].TS >= from })
	first := sort.Search(len(r.log), func(i int) bool { return r.log[i].ts >= from })
	for i := first; i < len(r.log) && r.log[i].ts <= to; i++ {
		e := &r.log[i]
		m := r.mask(d, e)
		if !st.visible(d, e, m) {
			continue
		}
		for k < len(st.Events) && st.Events[k].TS <= e.ts {
			out = append(out, st.Events[k])
			k++
		}
		if e.seq == want {
			at = len(out)
		}
		se := stepEvent{TS: e.ts, Steps: m}
		if m&1 != 0 {
			se.Group = r.group(d, e)
		}
		out = append(out, se)
	}
	for ; k < len(st.Events) && st.Events[k].TS <= to; k++ {
		out = append(out, st.Events[k])
	}
	return out, at
}

// insert adds an entry for an event at ts with the results vals and
// returns its seq. Cost: O(1) for an event in order, else O(log).
func (r *userRecord) insert(ts int64, name int32, vals []entryVal) int64 {
	r.nextSeq++
	e := logEntry{ts: ts, seq: r.nextSeq, name: name, lo: int32(len(r.vals))}
	r.vals = append(r.vals, vals...)
	e.hi = int32(len(r.vals))
	p := len(r.log)
	if p > 0 && r.log[p-1].ts > ts {
		p = sort.Search(p, func(i int) bool { return r.log[i].ts > ts })
	}
	r.log = slices.Insert(r.log, p, e)
	r.dirty = true
	return e.seq
}

// internStr returns the index of s in r.strs, adding it if missing.
func (r *userRecord) internStr(s string) int32 {
	for i, x := range r.strs {
		if x == s {
			return int32(i)
		}
	}
	r.strs = append(r.strs, s)
	return int32(len(r.strs) - 1)
}

// logSlack is how far, as a fraction of the longest retention, the log may
// run past it before it is pruned: pruning decodes every part of the
// record, so it is done in steps rather than on every event.
const logSlack = 4

// pruneLog drops the entries older than the longest retention of the
// defined funnels behind the newest entry, once the oldest is a quarter of
// that retention past it. An entry a part still needs (a funnel whose
// latest is older than the others') moves into that part's own events
// first, so every funnel keeps exactly its events. decodeAll must decode
// every part of the record. It runs after every event (see OnEvent).
func (r *userRecord) pruneLog(maxRetention int64, decodeAll func() error) error {
	if len(r.log) == 0 {
		return nil
	}
	newest := r.log[len(r.log)-1].ts
	cut := newest - maxRetention
	if r.log[0].ts >= cut-maxRetention/logSlack {
		return nil
	}
	if err := decodeAll(); err != nil {
		return err
	}
	r.dirty = true
	k := sort.Search(len(r.log), func(i int) bool { return r.log[i].ts >= cut })
	for i := range r.parts {
		p := &r.parts[i]
		if p.st == nil || p.def == nil {
			continue
		}
		var moved []stepEvent
		for j := range r.log[:k] {
			e := &r.log[j]
			if m := r.mask(p.def, e); p.st.visible(p.def, e, m) {
				se := stepEvent{TS: e.ts, Steps: m}
				if m&1 != 0 {
					se.Group = r.group(p.def, e)
				}
				moved = append(moved, se)
			}
		}
		if len(moved) > 0 {
			p.st.Events, p.st.changed = mergeEvents(p.st.Events, moved), true
		}
		// Except loses the seqs of the dropped entries.
		p.st.changed = p.st.changed || len(p.st.Except) > 0
	}
	r.log = append(r.log[:0], r.log[k:]...)
	return nil
}

// mergeEvents merges moved (sorted, arrived after every event of own at
// equal ts) into own, sorted by ts.
func mergeEvents(own, moved []stepEvent) []stepEvent {
	out := make([]stepEvent, 0, len(own)+len(moved))
	k := 0
	for _, e := range moved {
		for k < len(own) && own[k].TS <= e.TS {
			out = append(out, own[k])
			k++
		}
		out = append(out, e)
	}
	return append(out, own[k:]...)
}

// appendLog appends the log in the record layout (record.go) to b: the last
// seq, the tables of the names, expressions and strings its entries use,
// then the entries.
func (r *userRecord) appendLog(b []byte, o *Operator, s *scratch) []byte {
	names := resetMap(&s.nameMap, len(o.events))
	exprs := resetMap(&s.exprMap, len(o.exprKeys))
	strs := resetMap(&s.strMap, len(r.strs))
	var nNames, nExprs, nStrs int32
	for i := range r.log {
		e := &r.log[i]
		if names[e.name] < 0 {
			names[e.name], nNames = nNames, nNames+1
		}
		for _, v := range r.vals[e.lo:e.hi] {
			if exprs[v.expr] < 0 {
				exprs[v.expr], nExprs = nExprs, nExprs+1
			}
			if v.str >= 0 && strs[v.str] < 0 {
				strs[v.str], nStrs = nStrs, nStrs+1
			}
		}
	}
	b = binary.AppendUvarint(b, uint64(r.nextSeq))
	b = appendTable(b, names, nNames, func(i int) string { return o.events[i] })
	b = appendTable(b, exprs, nExprs, func(i int) string { return o.exprKeys[i] })
	b = appendTable(b, strs, nStrs, func(i int) string { return r.strs[i] })
	b = binary.AppendUvarint(b, uint64(len(r.log)))
	var ts, seq int64
	for i := range r.log {
		e := &r.log[i]
		b = binary.AppendVarint(b, e.ts-ts)
		nv := int64(e.hi - e.lo)
		head := (int64(names[e.name])<<2 | min(nv, 3)) << 1
		if e.seq != seq+1 {
			head |= 1
		}
		b = binary.AppendUvarint(b, uint64(head))
		if head&1 != 0 {
			b = binary.AppendVarint(b, e.seq-seq)
		}
		if nv >= 3 {
			b = binary.AppendUvarint(b, uint64(nv-3))
		}
		ts, seq = e.ts, e.seq
		for _, v := range r.vals[e.lo:e.hi] {
			b = binary.AppendUvarint(b, uint64(exprs[v.expr]))
			if v.str >= 0 {
				b = binary.AppendUvarint(b, uint64(strs[v.str]))
			}
		}
	}
	return b
}

// resetMap returns (*m)[:n], every element -1, reusing *m's memory.
func resetMap(m *[]int32, n int) []int32 {
	if cap(*m) < n {
		*m = make([]int32, n)
	}
	*m = (*m)[:n]
	for i := range *m {
		(*m)[i] = -1
	}
	return *m
}

// appendTable appends the n items of a table, item at[i] of index m[i]
// for every i with m[i] >= 0.
func appendTable(b []byte, m []int32, n int32, at func(int) string) []byte {
	b = binary.AppendUvarint(b, uint64(n))
	for want := int32(0); want < n; want++ {
		for i, x := range m {
			if x == want {
				s := at(i)
				b = binary.AppendUvarint(b, uint64(len(s)))
				b = append(b, s...)
				break
			}
		}
	}
	return b
}

// decodeLog reads what appendLog writes into r, mapping its names and
// expressions to o's (see userRecord.decode).
func (r *userRecord) decodeLog(rd *binReader, o *Operator) {
	r.nextSeq = int64(rd.uvarint())
	if r.nextSeq < 0 {
		rd.fail("seq %d", r.nextSeq)
	}
	names := r.mapTable(rd, func(s []byte) int32 {
		if i, ok := o.nameIndex(s); ok {
			return i
		}
		return -1
	})
	var groupExpr []bool
	exprs := r.mapTable(rd, func(s []byte) int32 {
		groupExpr = append(groupExpr, len(s) > 0 && s[0] == 'g')
		if o != nil {
			if i, ok := o.exprIdx[string(s)]; ok {
				return int32(i)
			}
		}
		return -1
	})
	nStrs := rd.count(1)
	for range nStrs {
		if rd.err != nil {
			break
		}
		r.strs = append(r.strs, string(rd.bytes()))
	}
	var ts, seq int64
	for n, i := rd.count(2), 0; i < n && rd.err == nil; i++ {
		pts, pseq := ts, seq
		ts = rd.add(ts, rd.varint())
		head := rd.uvarint()
		if head&1 != 0 {
			seq = rd.add(seq, rd.varint())
		} else {
			seq = rd.add(seq, 1)
		}
		nv := int((head >> 1) & 3)
		if nv == 3 {
			nv += rd.count(1)
		}
		if rd.err == nil && (seq < 1 || seq > r.nextSeq || i > 0 && (ts < pts || ts == pts && seq <= pseq)) {
			rd.fail("log entry (%d, %d) out of order", ts, seq)
		}
		e := logEntry{ts: ts, seq: seq, name: -1, lo: int32(len(r.vals))}
		if x := head >> 3; x < uint64(len(names)) {
			e.name = names[x]
		} else {
			rd.fail("name %d of %d", x, len(names))
		}
		for k := nv; k > 0 && rd.err == nil; k-- {
			x := rd.uvarint()
			if x >= uint64(len(exprs)) {
				rd.fail("expression %d of %d", x, len(exprs))
				break
			}
			v := entryVal{expr: exprs[x], str: -1}
			if groupExpr[x] {
				if si := rd.uvarint(); si < uint64(nStrs) {
					v.str = int32(si)
				} else {
					rd.fail("string %d of %d", si, nStrs)
				}
			}
			if v.expr >= 0 {
				r.vals = append(r.vals, v)
			}
		}
		e.hi = int32(len(r.vals))
		if e.name < 0 {
			r.vals = r.vals[:e.lo]
			continue
		}
		r.log = append(r.log, e)
	}
}

// mapTable reads a table of strings and returns, per item, index(item).
func (r *userRecord) mapTable(rd *binReader, index func([]byte) int32) []int32 {
	n := rd.count(1)
	m := make([]int32, 0, n)
	for range n {
		if rd.err != nil {
			break
		}
		m = append(m, index(rd.bytes()))
	}
	return m
}

// latestOf returns the latest ts among the funnel's events: those of its
// own and the log entries it accepted. The latest is never pruned (every
// cutoff is a retention behind it) and moves to Events when the log drops
// it, so it is one of them; it is 0 if the funnel has none. Cost: a scan
// of the log from its end to the first entry the funnel accepted.
func (r *userRecord) latestOf(d *Definition, st *userState) int64 {
	latest, found := int64(0), false
	if n := len(st.Events); n > 0 {
		latest, found = st.Events[n-1].TS, true
	}
	for i := len(r.log) - 1; i >= 0; i-- {
		e := &r.log[i]
		if found && e.ts <= latest {
			break
		}
		if e.seq >= st.Since && r.mask(d, e) != 0 && !slices.Contains(st.Except, e.seq) {
			return e.ts
		}
	}
	return latest
}

// The layout of a part of a record with a shared log (partLog), uvarints
// unless said otherwise:
//
//	Since, then the count of Except and its seqs
//	nGroups, then nGroups × (len, bytes)      distinct non-empty groups
//	nEvents, then per own event:
//	  its TS as a varint (the first) or a varint delta from the previous,
//	  Steps<<4 | min(g, 15), then g − 15 if g ≥ 15, where g is the group:
//	  0 for "", else 1 + its index in the groups
//	nCounted, then per entry:
//	  bucket (as in binary.go), g, Depth, then End as a varint: 2·End/60000
//	  if End is a whole minute, else 2·End+1
//
// Latest is not stored: it is derived from the log (latestOf), so a part
// that an event leaves unchanged but for Latest is copied as it was.

// appendLogPart appends st in the part layout to b.
func (st *userState) appendLogPart(b []byte, r *userRecord, groups []string) ([]byte, []string) {
	b = binary.AppendUvarint(b, uint64(st.Since))
	n := 0
	for _, seq := range st.Except {
		if r.hasSeq(seq) {
			st.Except[n] = seq
			n++
		}
	}
	st.Except = st.Except[:n]
	b = binary.AppendUvarint(b, uint64(n))
	for _, seq := range st.Except {
		b = binary.AppendUvarint(b, uint64(seq))
	}
	groups = st.groupTable(groups[:0])
	b = binary.AppendUvarint(b, uint64(len(groups)))
	for _, g := range groups {
		b = binary.AppendUvarint(b, uint64(len(g)))
		b = append(b, g...)
	}
	b = appendEvents(b, st.Events, 0, func(g string) uint64 { return groupIndex(groups, g) })
	b = binary.AppendUvarint(b, uint64(len(st.Counted)))
	for i := range st.Counted {
		c := &st.Counted[i]
		b = appendLabel(b, c.Bucket)
		b = binary.AppendUvarint(b, groupIndex(groups, c.Group))
		b = binary.AppendUvarint(b, uint64(c.Depth))
		if c.End%minuteMs == 0 {
			b = binary.AppendVarint(b, c.End/minuteMs*2)
		} else {
			b = binary.AppendVarint(b, c.End*2+1)
		}
	}
	return b, groups
}

// groupTable appends st's distinct non-empty groups to groups, in order of
// first use (events, then counted).
func (st *userState) groupTable(groups []string) []string {
	add := func(g string) {
		if g != "" && !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	for i := range st.Events {
		add(st.Events[i].Group)
	}
	for i := range st.Counted {
		add(st.Counted[i].Group)
	}
	return groups
}

// groupIndex is g's number in a part: 0 for "", else 1 + its index.
func groupIndex(groups []string, g string) uint64 {
	if g == "" {
		return 0
	}
	return uint64(slices.Index(groups, g) + 1)
}

// decodeLogPart reads what appendLogPart writes into st, but Latest.
func (st *userState) decodeLogPart(b []byte, groups []string, in *interner) ([]string, error) {
	rd := &binReader{b: b}
	st.Since = int64(rd.uvarint())
	for n := rd.count(1); n > 0 && rd.err == nil; n-- {
		st.Except = append(st.Except, int64(rd.uvarint()))
	}
	groups = rd.groupTable(groups[:0], in)
	groupAt := func(i uint64) string { return rd.groupAt(groups, i) }
	n := rd.count(2)
	if cap(st.Events) < n {
		st.Events = make([]stepEvent, 0, n)
	}
	ts := int64(0)
	for i := 0; i < n && rd.err == nil; i++ {
		ts = rd.add(ts, rd.varint())
		v := rd.uvarint()
		steps, g := v>>4, v&15
		if g == 15 {
			g += rd.uvarint()
		}
		if rd.err == nil && (steps == 0 || steps > math.MaxUint32 || i > 0 && ts < st.Events[i-1].TS) {
			rd.fail("event %d: step mask %d, ts %d", i, steps, ts)
		}
		st.Events = append(st.Events, stepEvent{TS: ts, Steps: uint32(steps), Group: groupAt(g)})
	}
	for n := rd.count(4); n > 0 && rd.err == nil; n-- {
		c := counted{Bucket: rd.label(in)}
		c.Group = groupAt(rd.uvarint())
		depth := rd.uvarint()
		if rd.err == nil && depth > MaxSteps {
			rd.fail("depth %d", depth)
		}
		c.Depth = int(depth)
		if x := rd.varint(); x&1 == 0 {
			if x/2 > math.MaxInt64/minuteMs || x/2 < math.MinInt64/minuteMs {
				rd.fail("end %d", x)
			}
			c.End = x / 2 * minuteMs
		} else {
			c.End = (x - 1) / 2
		}
		st.Counted = append(st.Counted, c)
	}
	if rd.err == nil && len(rd.b) != 0 {
		rd.fail("%d trailing bytes", len(rd.b))
	}
	return groups, rd.err
}
