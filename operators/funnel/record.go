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

// userRecord is the state of one user in every funnel, stored under one sub
// key so that a transaction costs one read, one write and one changelog
// record per user however many funnels and events it has. Each funnel's
// part stays encoded until an event of the transaction needs it; it is then
// decoded once and kept decoded until the transaction's Flush encodes the
// record. So a user costs O(size) to read and write once per transaction,
// and only the matched funnels to decode. Not safe for concurrent use.
//
// Layout: ValueVersion, binaryMark, the number of parts, then per part its
// funnel id and its userState (binary.go), each preceded by its length in
// bytes (uvarint).
//
// Invariant: parts is sorted by id, with unique ids.
type userRecord struct {
	parts []recordPart
	cur   int  // where find starts: funnels are looked up in id order
	dirty bool // a part changed since the record was read
}

// recordPart is one funnel's part of a record: encoded in raw until st
// holds it decoded (raw is then stale).
type recordPart struct {
	id     []byte
	raw    []byte
	legacy bool // raw is a msgpack userState (codec.go)
	st     *userState
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
func (r *userRecord) load(ctx *engine.Context) error {
	r.parts, r.cur, r.dirty = r.parts[:0], 0, false
	b, err := ctx.Get(recordSub)
	if err != nil || b == nil {
		return err
	}
	if err := r.decode(b); err != nil {
		return fmt.Errorf("reading funnel state of %s: %w", ctx.UserID(), err)
	}
	return nil
}

func (r *userRecord) decode(b []byte) error {
	if len(b) < 2 || b[0] != state.ValueVersion || b[1] != binaryMark {
		var old legacyRecord
		if err := state.DecodeValue(b, &old); err != nil {
			return err
		}
		for _, f := range old.Funnels {
			r.parts = append(r.parts, recordPart{id: []byte(f.ID), raw: f.State, legacy: true})
		}
		return r.checkSorted()
	}
	rd := &binReader{b: b[2:]}
	for n := rd.count(2); n > 0 && rd.err == nil; n-- {
		p := recordPart{id: rd.bytes()}
		p.raw = rd.bytes()
		r.parts = append(r.parts, p)
	}
	if rd.err == nil && len(rd.b) != 0 {
		rd.fail("%d trailing bytes", len(rd.b))
	}
	if rd.err != nil {
		return fmt.Errorf("decoding state value: %w: %w", state.ErrBadValue, rd.err)
	}
	return r.checkSorted()
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

// state returns the user's state in funnel id, decoding it on first use;
// found is false if the user had none, and the state is then a new, empty
// part of the record.
func (r *userRecord) state(id string, t *txnState, s *scratch) (st *userState, found bool, err error) {
	i, ok := r.find(id)
	if !ok {
		r.parts = slices.Insert(r.parts, i, recordPart{id: []byte(id), st: t.newState()})
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
	p.st = st
	return st, true, nil
}

// decodePart decodes p's raw bytes into st.
func (st *userState) decodePart(p *recordPart, s *scratch) error {
	var err error
	if p.legacy {
		err = msgpack.Unmarshal(p.raw, st)
	} else {
		s.groups, err = st.decodeBinary(p.raw, s.groups, &s.strs)
	}
	if err != nil {
		return fmt.Errorf("decoding funnel state: %w: %w", state.ErrBadValue, err)
	}
	return nil
}

// encode returns the record in the binary layout, without the parts of
// funnels that are no longer defined. Decoded and legacy parts are
// encoded; the others are copied as they are. The record must not be used
// after: its decoded parts are not written back to raw.
func (r *userRecord) encode(defined map[string]*Definition, s *scratch) ([]byte, error) {
	size, n := 2+binary.MaxVarintLen64, 0
	for _, p := range r.parts {
		if defined[string(p.id)] != nil {
			size += 2*binary.MaxVarintLen64 + len(p.id) + len(p.raw)
			n++
		}
	}
	// A fresh buffer: the store may keep the value it is given.
	b := append(make([]byte, 0, size), state.ValueVersion, binaryMark)
	b = binary.AppendUvarint(b, uint64(n))
	for i := range r.parts {
		p := &r.parts[i]
		if defined[string(p.id)] == nil {
			continue
		}
		if p.st == nil && p.legacy {
			p.st = &userState{}
			if err := p.st.decodePart(p, s); err != nil {
				return nil, err
			}
		}
		raw := p.raw
		if p.st != nil {
			s.arena, s.groups = p.st.appendBinary(s.arena[:0], s.groups)
			raw = s.arena
		}
		b = binary.AppendUvarint(b, uint64(len(p.id)))
		b = append(b, p.id...)
		b = binary.AppendUvarint(b, uint64(len(raw)))
		b = append(b, raw...)
	}
	return b, nil
}
