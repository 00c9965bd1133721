package funnel

import (
	"bytes"
	"encoding/binary"
	"fmt"
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
// key so that an event costs one read, one write and one changelog record
// however many funnels it matches. Each funnel's part stays encoded until a
// matching event needs it, so a record costs O(size) to copy but only the
// matched funnels to decode. Not safe for concurrent use.
//
// Layout: ValueVersion, binaryMark, the number of parts, then per part its
// funnel id and its userState (binary.go), each preceded by its length in
// bytes (uvarint).
//
// Invariant: parts is sorted by id, with unique ids.
type userRecord struct {
	parts []recordPart
	cur   int // where find starts: funnels are looked up in id order
}

// recordPart is one funnel's part of a record, still encoded.
type recordPart struct {
	id     []byte
	raw    []byte
	legacy bool // raw is a msgpack userState (codec.go)
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
	r.parts, r.cur = r.parts[:0], 0
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

// get decodes the user's state in funnel id into st (reusing its slices);
// found is false (and st empty) if the user has none.
func (r *userRecord) get(id string, st *userState, s *scratch) (found bool, err error) {
	i, ok := r.find(id)
	if !ok {
		st.Latest, st.Events, st.Counted = 0, st.Events[:0], st.Counted[:0]
		return false, nil
	}
	p := &r.parts[i]
	if p.legacy {
		*st = userState{}
		err = msgpack.Unmarshal(p.raw, st)
	} else {
		s.groups, err = st.decodeBinary(p.raw, s.groups, &s.strs)
	}
	if err != nil {
		return false, fmt.Errorf("decoding funnel state: %w: %w", state.ErrBadValue, err)
	}
	return true, nil
}

// put encodes st as the user's state in funnel id. The encoding is
// appended to s.arena, which must not be reset before the record is saved.
func (r *userRecord) put(id string, st *userState, s *scratch) {
	start := len(s.arena)
	s.arena, s.groups = st.appendBinary(s.arena, s.groups)
	b := s.arena[start:len(s.arena):len(s.arena)]
	i, ok := r.find(id)
	if !ok {
		r.parts = append(r.parts, recordPart{})
		copy(r.parts[i+1:], r.parts[i:])
		r.parts[i] = recordPart{id: []byte(id)}
	}
	r.parts[i].raw, r.parts[i].legacy = b, false
}

// save writes the record, dropping the parts of funnels that are no longer
// defined. Legacy parts are re-encoded.
func (r *userRecord) save(ctx *engine.Context, defined map[string]*Definition, s *scratch) error {
	kept := r.parts[:0]
	for _, p := range r.parts {
		if defined[string(p.id)] == nil {
			continue
		}
		if p.legacy {
			st := &userState{}
			if err := msgpack.Unmarshal(p.raw, st); err != nil {
				return fmt.Errorf("decoding funnel state: %w: %w", state.ErrBadValue, err)
			}
			start := len(s.arena)
			s.arena, s.groups = st.appendBinary(s.arena, s.groups)
			p.raw, p.legacy = s.arena[start:len(s.arena):len(s.arena)], false
		}
		kept = append(kept, p)
	}
	r.parts = kept
	size := 2 + binary.MaxVarintLen64
	for _, p := range r.parts {
		size += 2*binary.MaxVarintLen64 + len(p.id) + len(p.raw)
	}
	// A fresh buffer: the store may keep the value it is given.
	b := append(make([]byte, 0, size), state.ValueVersion, binaryMark)
	b = binary.AppendUvarint(b, uint64(len(r.parts)))
	for _, p := range r.parts {
		b = binary.AppendUvarint(b, uint64(len(p.id)))
		b = append(b, p.id...)
		b = binary.AppendUvarint(b, uint64(len(p.raw)))
		b = append(b, p.raw...)
	}
	return ctx.Set(recordSub, b)
}
