package funnel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/state"
)

// recordSub is the sub key of a user's record.
var recordSub = []byte("u")

// binaryMark follows state.ValueVersion in a record or counts value in the
// binary layout. 0xc1 never starts a msgpack value, so it tells the binary
// layout from the msgpack one of earlier versions, which is still read.
const binaryMark = 0xc1

// logLayout follows binaryMark and a zero byte in a record with a shared
// log. A record of the binary layout before it has its number of parts
// there, and one with zero parts ends after it, so the two never collide.
const logLayout = 3

// userRecord is the state of one user in every funnel, stored under one sub
// key so that a transaction costs one read, one write and one changelog
// record per user however many funnels and events it has. It holds the
// user's shared event log (log.go) and one part per funnel. Each part
// stays encoded until an event of the transaction needs it; it is then
// decoded once and kept decoded until the transaction's Flush encodes the
// record. So a user costs O(size) to read and write once per transaction,
// and only the matched funnels to decode. Not safe for concurrent use.
//
// Layout: ValueVersion, binaryMark, 0, logLayout, then uvarints unless
// said otherwise: the last seq given; the tables of event names,
// expression keys (exprKey) and group strings, each a
// count then (length, bytes) per item; the count of log entries, then per
// entry: its ts as a varint delta from the previous entry's; a head,
// (name << 2 | min(results, 3)) << 1, plus 1 if its seq is not the
// previous entry's + 1, where name is a table index; then the seq's varint
// delta if the head says so; the number of results − 3 if it is 3 or
// more; then per result the expression (table index) and, for a group_by,
// the string (table index); finally the number of parts, then per part its funnel id and its
// userState (a Since, the count of Except and its seqs, then the binary
// layout of binary.go), each preceded by its length in bytes.
//
// Records written before the shared log (ValueVersion, binaryMark, the
// number of parts, the parts in the binary layout) and in msgpack are
// still read; their parts' events become the parts' own.
//
// Invariant: parts is sorted by id, with unique ids; log is sorted by (ts,
// seq), seqs unique and at most nextSeq.
type userRecord struct {
	parts []recordPart
	cur   int  // where find starts: funnels are looked up in id order
	dirty bool // a part changed since the record was read

	log     []logEntry
	vals    []entryVal // the results of log entries, by logEntry.lo/hi
	strs    []string   // group values referred to by vals
	nextSeq int64      // the last seq given

	partAt []int32 // by Definition.ord: the index of its part, -1 if none
}

// Layouts of a record part.
const (
	partLog    = iota // Since, Except, then the binary layout
	partBinary        // the binary layout, before the shared log
	partLegacy        // msgpack (codec.go)
)

// recordPart is one funnel's part of a record: encoded in raw until st
// holds it decoded (raw is then stale).
type recordPart struct {
	id     []byte
	raw    []byte
	layout int
	st     *userState
	def    *Definition // nil if the funnel is no longer defined
}

// legacyRecord is the msgpack layout of a record written by earlier
// versions.
type legacyRecord struct {
	_msgpack struct{}    `msgpack:",as_array"` //nolint:unused // msgpack layout tag
	Funnels  []legacyRaw // by ID
}

type legacyRaw struct {
	_msgpack struct{} `msgpack:",as_array"` //nolint:unused // msgpack layout tag
	ID       string
	State    msgpack.RawMessage
}

// load reads the user's record into r, reusing r's memory.
func (r *userRecord) load(ctx *engine.Context, o *Operator) error {
	r.parts, r.cur, r.dirty = r.parts[:0], 0, false
	r.log, r.vals, r.strs, r.nextSeq = r.log[:0], r.vals[:0], r.strs[:0], 0
	resetMap(&r.partAt, len(o.funnels))
	b, err := ctx.Get(recordSub)
	if err != nil || b == nil {
		return err
	}
	if err := r.decode(b, o); err != nil {
		return fmt.Errorf("reading funnel state of %s: %w", ctx.UserID(), err)
	}
	return nil
}

// decode reads b into r. The log's names and expressions are mapped to o's
// (entries of names no funnel of o has, and results of expressions none
// uses, are dropped: no funnel can see them); with o nil the log is
// checked and dropped.
func (r *userRecord) decode(b []byte, o *Operator) error {
	if len(b) < 2 || b[0] != state.ValueVersion || b[1] != binaryMark {
		var old legacyRecord
		if err := state.DecodeValue(b, &old); err != nil {
			return err
		}
		for _, f := range old.Funnels {
			r.parts = append(r.parts, recordPart{id: []byte(f.ID), raw: f.State, layout: partLegacy})
		}
		return r.finishDecode(o)
	}
	rd := &binReader{b: b[2:]}
	layout := partBinary
	if len(rd.b) > 2 && rd.b[0] == 0 && rd.b[1] == logLayout {
		layout, rd.b = partLog, rd.b[2:]
		r.decodeLog(rd, o)
	}
	n := rd.count(2)
	if cap(r.parts) < n {
		r.parts = make([]recordPart, 0, n)
	}
	for ; n > 0 && rd.err == nil; n-- {
		p := recordPart{id: rd.bytes(), layout: layout}
		p.raw = rd.bytes()
		r.parts = append(r.parts, p)
	}
	if rd.err == nil && len(rd.b) != 0 {
		rd.fail("%d trailing bytes", len(rd.b))
	}
	if rd.err != nil {
		return fmt.Errorf("decoding state value: %w: %w", state.ErrBadValue, rd.err)
	}
	return r.finishDecode(o)
}

// finishDecode checks the parts' order and maps them to o's funnels, in
// one walk of both (each is sorted by id).
func (r *userRecord) finishDecode(o *Operator) error {
	if err := r.checkSorted(); err != nil || o == nil {
		return err
	}
	resetMap(&r.partAt, len(o.funnels))
	fs, j := o.funnels, 0
	for i := range r.parts {
		id := r.parts[i].id
		for j < len(fs) && fs[j].ID < string(id) {
			j++
		}
		if j < len(fs) && fs[j].ID == string(id) {
			r.parts[i].def, r.partAt[j] = fs[j], int32(i)
		}
	}
	return nil
}

func (r *userRecord) checkSorted() error {
	for i := 1; i < len(r.parts); i++ {
		if bytes.Compare(r.parts[i-1].id, r.parts[i].id) >= 0 {
			return fmt.Errorf("decoding state value: funnel parts out of order: %w", state.ErrBadValue)
		}
	}
	return nil
}

// find returns the index of id's part, or where to insert it. Looking ids
// up in increasing order costs O(parts) in all.
func (r *userRecord) find(id string) (int, bool) {
	i := r.cur
	if i > len(r.parts) || i > 0 && string(r.parts[i-1].id) >= id {
		i = sort.Search(len(r.parts), func(i int) bool { return string(r.parts[i].id) >= id })
	}
	for i < len(r.parts) && string(r.parts[i].id) < id {
		i++
	}
	r.cur = i
	return i, i < len(r.parts) && string(r.parts[i].id) == id
}

// part returns the index of d's part, or where to insert it.
func (r *userRecord) part(d *Definition) (int, bool) {
	if d.ord < len(r.partAt) && r.partAt[d.ord] >= 0 {
		return int(r.partAt[d.ord]), true
	}
	return r.find(d.ID)
}

// states sets every hit's st and found: its state in its funnel, as state
// returns it. hits must be sorted by funnel id (Operator.byEvent is): the
// parts of the funnels the user had none in are then added in one merge
// pass, so a user entering all n funnels costs O(parts + n), not one
// insertion of O(parts) each.
func (r *userRecord) states(hits []hit, t *txnState, s *scratch) error {
	missing := 0
	for i := range hits {
		if _, hits[i].found = r.part(hits[i].f); !hits[i].found {
			missing++
		}
	}
	if missing > 0 {
		r.addParts(hits, missing, t)
	}
	for i := range hits {
		h := &hits[i]
		if !h.found {
			at, _ := r.part(h.f)
			h.st = r.parts[at].st
			continue
		}
		var err error
		if h.st, _, err = r.state(h.f, t, s); err != nil {
			return fmt.Errorf("funnel %s: %w", h.f.ID, err)
		}
	}
	return nil
}

// addParts merges into r.parts a new, empty part for the funnel of each
// hit that is not found (hits are sorted by id), in place from the end,
// and rebuilds partAt.
func (r *userRecord) addParts(hits []hit, missing int, t *txnState) {
	k := len(r.parts) - 1
	r.parts = slices.Grow(r.parts, missing)[:len(r.parts)+missing]
	w := len(r.parts) - 1
	for i := len(hits) - 1; i >= 0; i-- {
		if hits[i].found {
			continue
		}
		d := hits[i].f
		for k >= 0 && string(r.parts[k].id) > d.ID {
			r.parts[w] = r.parts[k]
			w, k = w-1, k-1
		}
		r.parts[w] = recordPart{id: d.idBytes, st: t.newState(), def: d}
		w--
	}
	r.cur = 0
	for k := range r.partAt {
		r.partAt[k] = -1
	}
	for i := range r.parts {
		if d := r.parts[i].def; d != nil && d.ord < len(r.partAt) {
			r.partAt[d.ord] = int32(i)
		}
	}
}

// state returns the user's state in funnel d, decoding it on first use;
// found is false if the user had none, and the state is then a new, empty
// part of the record.
func (r *userRecord) state(d *Definition, t *txnState, s *scratch) (st *userState, found bool, err error) {
	i, ok := r.part(d)
	if !ok {
		r.parts = slices.Insert(r.parts, i, recordPart{id: d.idBytes, st: t.newState(), def: d})
		for k, at := range r.partAt {
			if int(at) >= i {
				r.partAt[k]++
			}
		}
		if d.ord < len(r.partAt) {
			r.partAt[d.ord] = int32(i)
		}
		return r.parts[i].st, false, nil
	}
	p := &r.parts[i]
	if p.st != nil {
		return p.st, true, nil
	}
	st = t.newState()
	if err := st.decodePart(p, s); err != nil {
		return nil, false, err
	}
	if p.layout == partLog {
		st.Latest = r.latestOf(d, st)
	}
	p.st = st
	return st, true, nil
}

// decodePart decodes p's raw bytes into st.
func (st *userState) decodePart(p *recordPart, s *scratch) error {
	var err error
	switch p.layout {
	case partLegacy:
		err = msgpack.Unmarshal(p.raw, st)
	case partBinary:
		s.groups, err = st.decodeBinary(p.raw, s.groups, &s.strs)
	default:
		s.groups, err = st.decodeLogPart(p.raw, s.groups, &s.strs)
	}
	if err != nil {
		return fmt.Errorf("decoding funnel state: %w: %w", state.ErrBadValue, err)
	}
	return nil
}

// hasSeq reports whether the log holds the entry of seq.
func (r *userRecord) hasSeq(seq int64) bool {
	for i := range r.log {
		if r.log[i].seq == seq {
			return true
		}
	}
	return false
}

// encode returns the record in the shared-log layout, without the parts of
// funnels that are no longer defined. Decoded parts
// and parts of earlier layouts are encoded; the others are copied as they
// are. The record must not be used after: its decoded parts are not
// written back to raw.
func (r *userRecord) encode(o *Operator, t *txnState, s *scratch) ([]byte, error) {
	size, n := r.encodedSize()
	// A fresh buffer: the store may keep the value it is given.
	b := append(make([]byte, 0, size), state.ValueVersion, binaryMark, 0, logLayout)
	b = r.appendLog(b, o, s)
	b = binary.AppendUvarint(b, uint64(n))
	for i := range r.parts {
		p := &r.parts[i]
		if p.def == nil {
			continue
		}
		if p.st == nil && p.layout != partLog {
			if _, _, err := r.state(p.def, t, s); err != nil {
				return nil, err
			}
		}
		b = binary.AppendUvarint(b, uint64(len(p.id)))
		b = append(b, p.id...)
		if p.st != nil && (p.st.changed || p.layout != partLog) {
			at := len(b)
			b, s.groups = p.st.appendLogPart(append(b, 0), r, s.groups)
			b = fixLength(b, at)
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(p.raw)))
		b = append(b, p.raw...)
	}
	return b, nil
}

// encodedSize estimates the size of the encoded record, so that encode
// allocates once: the raw size of the parts read, about what their states
// encode to for the new ones. It also returns the number of parts encode
// writes.
func (r *userRecord) encodedSize() (size, n int) {
	size = 4 + 2*binary.MaxVarintLen64 + len(r.log)*8 + len(r.vals)*4
	for i := range r.parts {
		p := &r.parts[i]
		if p.def == nil {
			continue
		}
		size += 2*binary.MaxVarintLen64 + len(p.id) + len(p.raw)
		if st := p.st; st != nil && p.raw == nil {
			size += 16 + len(st.Except)*4 + len(st.Events)*8 + len(st.Counted)*16
		}
		n++
	}
	return size, n
}

// fixLength turns b[at], a one-byte placeholder followed by the bytes
// written after it, into their length as a uvarint, moving them if the
// length takes more than one byte.
func fixLength(b []byte, at int) []byte {
	n := len(b) - at - 1
	if n < 0x80 {
		b[at] = byte(n)
		return b
	}
	var head [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(head[:], uint64(n))
	b = append(b, head[:k-1]...)
	copy(b[at+k:], b[at+1:at+1+n])
	copy(b[at:], head[:k])
	return b
}
