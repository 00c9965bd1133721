package funnel

import (
	"encoding/binary"
	"fmt"
	"math"
)

// The binary layout of a userState (one funnel's part of a user's record).
// It replaces msgpack because a part is decoded and encoded on every event
// that matches the funnel; the layout is also about three times smaller.
// All integers are varints (signed ones zig-zag):
//
//	Latest
//	nGroups, then nGroups × (len, bytes)      distinct non-empty groups
//	nEvents, then per event:
//	  TS − previous TS (Latest for the first),
//	  Steps<<4 | min(g, 15), then g − 15 if g ≥ 15, where g is the group:
//	  0 for "", else 1 + its index in the groups
//	nCounted, then per entry:
//	  bucket, g, Depth, End − Latest
//
// where a bucket label of the usual form ("2026-11-22", "2026-11-22T13") is
// packed as a number, 2·packLabel+1, and any other as 2·len, then its bytes.
//
// An event's position in the log is not stored: it only orders events of
// equal TS, and they are stored in log order (see userState).

// appendBinary appends st in the binary layout to b.
func (st *userState) appendBinary(b []byte, groups []string) ([]byte, []string) {
	groups = groups[:0]
	last := uint64(0) // the index found last: neighbouring events mostly share a group
	index := func(g string) uint64 {
		if g == "" {
			return 0
		}
		if last != 0 && groups[last-1] == g {
			return last
		}
		for i, x := range groups {
			if x == g {
				last = uint64(i + 1)
				return last
			}
		}
		groups = append(groups, g)
		last = uint64(len(groups))
		return last
	}
	for i := range st.Events {
		index(st.Events[i].Group)
	}
	for i := range st.Counted {
		index(st.Counted[i].Group)
	}
	b = binary.AppendVarint(b, st.Latest)
	b = binary.AppendUvarint(b, uint64(len(groups)))
	for _, g := range groups {
		b = binary.AppendUvarint(b, uint64(len(g)))
		b = append(b, g...)
	}
	b = appendEvents(b, st.Events, st.Latest, index)
	b = binary.AppendUvarint(b, uint64(len(st.Counted)))
	for i := range st.Counted {
		c := &st.Counted[i]
		b = appendLabel(b, c.Bucket)
		b = binary.AppendUvarint(b, index(c.Group))
		b = binary.AppendUvarint(b, uint64(c.Depth))
		b = binary.AppendVarint(b, c.End-st.Latest)
	}
	return b, groups
}

// appendEvents appends the count of evs, then each event: its TS as a
// varint delta from the previous one's (from ts for the first), then
// Steps<<4 | min(g, 15), then g − 15 if g ≥ 15, where g = index(Group).
func appendEvents(b []byte, evs []stepEvent, ts int64, index func(string) uint64) []byte {
	b = binary.AppendUvarint(b, uint64(len(evs)))
	for i := range evs {
		e := &evs[i]
		b = binary.AppendVarint(b, e.TS-ts)
		g := index(e.Group)
		b = binary.AppendUvarint(b, uint64(e.Steps)<<4|min(g, 15))
		if g >= 15 {
			b = binary.AppendUvarint(b, g-15)
		}
		ts = e.TS
	}
	return b
}

// groupTable appends a part's table of groups (count, then length and
// bytes each) to groups.
func (r *binReader) groupTable(groups []string, in *interner) []string {
	for n := r.count(1); n > 0 && r.err == nil; n-- {
		groups = append(groups, in.str(r.bytes()))
	}
	return groups
}

// groupAt returns the group numbered i in a part: "" for 0, else
// groups[i-1].
func (r *binReader) groupAt(groups []string, i uint64) string {
	if i == 0 || r.err != nil {
		return ""
	}
	if i > uint64(len(groups)) {
		r.fail("group %d of %d", i, len(groups))
		return ""
	}
	return groups[i-1]
}

// appendLabel appends a bucket label: 2·packLabel+1 for a label of the
// usual form, else 2·len then its bytes.
func appendLabel(b []byte, label string) []byte {
	if v, ok := packLabel(label); ok {
		return binary.AppendUvarint(b, v<<1|1)
	}
	b = binary.AppendUvarint(b, uint64(len(label))<<1)
	return append(b, label...)
}

// label reads what appendLabel writes.
func (r *binReader) label(in *interner) string {
	v := r.uvarint()
	if r.err != nil {
		return ""
	}
	if v&1 != 0 {
		return in.label(v >> 1)
	}
	if v>>1 > uint64(len(r.b)) {
		r.fail("label of %d bytes exceeds the value", v>>1)
		return ""
	}
	s := in.str(r.b[:v>>1])
	r.b = r.b[v>>1:]
	return s
}

// binReader reads varints and strings from a byte slice, keeping the first
// error; after an error every call returns a zero value.
type binReader struct {
	b   []byte
	err error
}

func (r *binReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errBadState, fmt.Sprintf(format, args...))
	}
}

func (r *binReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *binReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a length of items each at least min bytes long.
func (r *binReader) count(min int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/min) {
		r.fail("count %d exceeds the value", n)
		return 0
	}
	return int(n)
}

func (r *binReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("string of %d bytes exceeds the value", n)
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

// add returns a+b, failing on overflow.
func (r *binReader) add(a, b int64) int64 {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		r.fail("overflow")
		return 0
	}
	return s
}

// decodeBinary reads what appendBinary writes into st, reusing st's slices.
// The whole of b must be consumed.
func (st *userState) decodeBinary(b []byte, groups []string, in *interner) ([]string, error) {
	r := &binReader{b: b}
	st.Latest = r.varint()
	groups = r.groupTable(groups[:0], in)
	groupAt := func(i uint64) string { return r.groupAt(groups, i) }
	n := r.count(2)
	if cap(st.Events) < n {
		st.Events = make([]stepEvent, 0, n)
	}
	st.Events = st.Events[:0]
	ts := st.Latest
	for ; n > 0 && r.err == nil; n-- {
		e := stepEvent{TS: r.add(ts, r.varint())}
		v := r.uvarint()
		steps, g := v>>4, v&15
		if g == 15 {
			g += r.uvarint()
		}
		if r.err == nil && (steps == 0 || steps > math.MaxUint32) {
			r.fail("step mask %d", steps)
		}
		e.Steps, e.Group = uint32(steps), groupAt(g)
		st.Events = append(st.Events, e)
		ts = e.TS
	}
	n = r.count(4)
	if cap(st.Counted) < n+1 {
		st.Counted = make([]counted, 0, n+2)
	}
	st.Counted = st.Counted[:0]
	for ; n > 0 && r.err == nil; n-- {
		c := counted{Bucket: r.label(in)}
		c.Group = groupAt(r.uvarint())
		depth := r.uvarint()
		if r.err == nil && depth > MaxSteps {
			r.fail("depth %d", depth)
		}
		c.Depth, c.End = int(depth), r.add(st.Latest, r.varint())
		st.Counted = append(st.Counted, c)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return groups, r.err
}

// interner returns equal strings for equal bytes without allocating them
// again: groups and bucket labels repeat across funnels and events. A nil
// interner allocates every time.
type interner struct {
	m      map[string]string
	labels [16]packedLabel // by packed value mod 16: a record's few labels
	recent [16]string      // the last strings returned, by a hash of length and ends: no map hash for a record's few groups
}

// packedLabel is a label and its packed value (packLabel).
type packedLabel struct {
	v uint64
	s string
}

// label returns the label packed as v, from a small cache of the last
// labels unpacked: a record holds a few labels many times, and unpacking
// one and interning it costs a hash.
func (in *interner) label(v uint64) string {
	if in == nil {
		var buf [16]byte
		return string(unpackLabel(buf[:0], v))
	}
	e := &in.labels[v%uint64(len(in.labels))]
	if e.s == "" || e.v != v {
		var buf [16]byte
		*e = packedLabel{v: v, s: in.str(unpackLabel(buf[:0], v))}
	}
	return e.s
}

// maxInterned bounds the strings of an interner; it starts over when full.
const maxInterned = 4096

func (in *interner) str(b []byte) string {
	if in == nil {
		return string(b)
	}
	var e *string
	if len(b) > 0 {
		e = &in.recent[(len(b)+int(b[0])+int(b[len(b)-1])<<1)%len(in.recent)]
		if *e == string(b) {
			return *e
		}
	}
	if s, ok := in.m[string(b)]; ok {
		if e != nil {
			*e = s
		}
		return s
	}
	if in.m == nil || len(in.m) >= maxInterned {
		in.m = make(map[string]string, 256)
	}
	s := string(b)
	in.m[s] = s
	if e != nil {
		*e = s
	}
	return s
}

// packLabel packs a bucket label "YYYY-MM-DD" or "YYYY-MM-DDTHH" into a
// number that unpackLabel turns back into the same label; ok is false for
// any other string.
func packLabel(label string) (v uint64, ok bool) {
	if len(label) != 10 && len(label) != 13 {
		return 0, false
	}
	num := func(i, n int) uint64 {
		x := uint64(0)
		for _, c := range []byte(label[i : i+n]) {
			if c < '0' || c > '9' {
				ok = false
			}
			x = x*10 + uint64(c-'0')
		}
		return x
	}
	ok = label[4] == '-' && label[7] == '-'
	y, m, d, h := num(0, 4), num(5, 2), num(8, 2), uint64(24)
	if len(label) == 13 {
		ok = ok && label[10] == 'T'
		h = num(11, 2)
	}
	if !ok || m > 12 || d > 31 || h > 24 {
		return 0, false
	}
	v = ((y*13+m)*32+d)*25 + h
	var buf [16]byte
	return v, string(unpackLabel(buf[:0], v)) == label
}

// unpackLabel appends the label packed as v to b.
func unpackLabel(b []byte, v uint64) []byte {
	h := v % 25
	v /= 25
	d := v % 32
	v /= 32
	m, y := v%13, v/13
	digits := func(b []byte, x uint64, n int) []byte {
		for i := n - 1; i >= 0; i-- {
			b = append(b, 0)
		}
		for i := len(b) - 1; i >= len(b)-n; i-- {
			b[i] = byte('0' + x%10)
			x /= 10
		}
		return b
	}
	b = digits(b, y, 4)
	b = append(b, '-')
	b = digits(b, m, 2)
	b = append(b, '-')
	b = digits(b, d, 2)
	if h != 24 {
		b = append(b, 'T')
		b = digits(b, h, 2)
	}
	return b
}
