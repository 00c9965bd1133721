package funnel

import (
	"fmt"
	"sort"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/state"
)

// recordSub is the sub key of a user's record.
var recordSub = []byte("u")

// userRecord is the state of one user in every funnel, stored under one sub
// key so that an event costs one read, one write and one changelog record
// however many funnels it matches. Each funnel's part stays encoded until a
// matching event needs it, so a record costs O(size) to copy but only the
// matched funnels to decode. Not safe for concurrent use.
//
// Invariant: Funnels is sorted by ID, with unique IDs.
type userRecord struct {
	_msgpack struct{}    `msgpack:",as_array"` //nolint:unused // msgpack layout tag
	Funnels  []funnelRaw // by ID
}

// funnelRaw is one funnel's part of a record: a msgpack-encoded userState.
type funnelRaw struct {
	_msgpack struct{} `msgpack:",as_array"` //nolint:unused // msgpack layout tag
	ID       string
	State    msgpack.RawMessage
}

func loadRecord(ctx *engine.Context) (*userRecord, error) {
	rec := &userRecord{}
	b, err := ctx.Get(recordSub)
	if err != nil || b == nil {
		return rec, err
	}
	if err := state.DecodeValue(b, rec); err != nil {
		return nil, fmt.Errorf("reading funnel state of %s: %w", ctx.UserID(), err)
	}
	return rec, nil
}

func (r *userRecord) find(id string) (int, bool) {
	i := sort.Search(len(r.Funnels), func(i int) bool { return r.Funnels[i].ID >= id })
	return i, i < len(r.Funnels) && r.Funnels[i].ID == id
}

// get decodes the user's state in funnel id; found is false (and the state
// empty) if the user has none.
func (r *userRecord) get(id string) (st *userState, found bool, err error) {
	st = &userState{}
	i, ok := r.find(id)
	if !ok {
		return st, false, nil
	}
	if err := msgpack.Unmarshal(r.Funnels[i].State, st); err != nil {
		return nil, false, fmt.Errorf("decoding funnel state: %w: %w", state.ErrBadValue, err)
	}
	return st, true, nil
}

// put encodes st as the user's state in funnel id.
func (r *userRecord) put(id string, st *userState) error {
	b, err := msgpack.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding funnel state: %w", err)
	}
	i, ok := r.find(id)
	if !ok {
		r.Funnels = append(r.Funnels, funnelRaw{})
		copy(r.Funnels[i+1:], r.Funnels[i:])
		r.Funnels[i].ID = id
	}
	r.Funnels[i].State = b
	return nil
}

// save writes the record, dropping the parts of funnels that are no longer
// defined.
func (r *userRecord) save(ctx *engine.Context, defined map[string]*Definition) error {
	kept := r.Funnels[:0]
	for _, f := range r.Funnels {
		if defined[f.ID] != nil {
			kept = append(kept, f)
		}
	}
	r.Funnels = kept
	b, err := state.EncodeValue(r)
	if err != nil {
		return err
	}
	return ctx.Set(recordSub, b)
}
