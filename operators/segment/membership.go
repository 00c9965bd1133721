package segment

import (
	"fmt"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/state"
)

// setMember records that the current user entered (in) or left segment s:
// one chunk rewrite, one size update, one upsert of the partition size and
// one internal event. The user record was already updated by the caller.
func (o *Operator) setMember(u *userState, s *segment, in bool, src *engine.Event) error {
	ctx := u.ctx
	dense, err := u.dense()
	if err != nil {
		return err
	}
	key := chunkKey(s.id, uint16(dense>>16))
	v, err := ctx.GetShared(key)
	if err != nil {
		return err
	}
	v, changed, err := updateChunk(v, uint16(dense>>16), uint16(dense), in)
	if err != nil {
		return fmt.Errorf("updating segment %s: %w", s.id, err)
	}
	if changed {
		if err := o.writeChunk(ctx, s.id, key, v, in); err != nil {
			return err
		}
	} else {
		// The record and the bitmap disagreed: an invariant was broken. The
		// record is the source of truth and the bitmap already agrees with
		// its new value, so only the event remains to be emitted.
		ctx.Logger().Error("segment bitmap disagreed with user record", "segment", s.id, "user", ctx.UserID(), "in", in)
	}
	name := EventExit
	if in {
		name = EventEnter
	}
	return ctx.EmitEvent(engine.Event{
		Name: name, TS: ctx.Now(), Props: map[string]any{"segment": s.id},
		Topic: src.Topic, Partition: src.Partition, Offset: src.Offset,
	})
}

// dense returns the user's dense id, from the record (a copy of the
// dictionary entry that saves a read per change) or else from the
// dictionary, allocating one on the user's first entry into any segment.
func (u *userState) dense() (uint32, error) {
	if u.rec.Dense > 0 {
		return u.rec.Dense - 1, nil
	}
	d, ok, err := lookupDense(u.ctx.GetShared, u.ctx.UserID())
	if err == nil && !ok {
		d, err = admit(u.ctx)
	}
	if err != nil {
		return 0, err
	}
	u.rec.Dense, u.recDirty = d+1, true
	return d, nil
}

// admit gives the current user the next dense id of the partition and
// records it in both dictionaries.
func admit(ctx *engine.Context) (uint32, error) {
	dense, err := nextDense(ctx.GetShared)
	if err != nil {
		return 0, err
	}
	user := ctx.UserID()
	if err := ctx.SetShared(keyNext, encodeU32(dense+1)); err != nil {
		return 0, err
	}
	if err := ctx.SetShared(dictKey(user), encodeU32(dense)); err != nil {
		return 0, err
	}
	rev := append([]byte{state.ValueVersion}, user...)
	return dense, ctx.SetShared(reverseKey(dense), rev)
}

// writeChunk stores the changed chunk (deleting it when empty) and the new
// partition size.
func (o *Operator) writeChunk(ctx *engine.Context, segment string, key, v []byte, in bool) error {
	var err error
	if v == nil {
		err = ctx.DeleteShared(key)
	} else {
		err = ctx.SetShared(key, v)
	}
	if err != nil {
		return err
	}
	return o.addSize(ctx, segment, in)
}

// addSize adjusts the partition size of segment by ±1 and upserts it to the
// aggregates topic (coalesced: one record per segment per transaction).
func (o *Operator) addSize(ctx *engine.Context, segment string, in bool) error {
	n, err := Size(ctx.GetShared, segment)
	if err != nil {
		return err
	}
	switch {
	case in:
		n++
	case n == 0:
		return fmt.Errorf("updating size of segment %s: below zero", segment)
	default:
		n--
	}
	if err := ctx.SetShared(sizeKey(segment), encodeU64(n)); err != nil {
		return err
	}
	p := ctx.Partition()
	ctx.Upsert(engine.Output{
		Topic: o.topic,
		Key:   []byte(SizeKey(segment, p)),
		Value: encodeSizeRow(SizeRow{Segment: segment, Partition: p, Size: n}),
	})
	return nil
}
