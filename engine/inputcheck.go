package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/cairn-cjo/cairn/state"
)

// inputKeyName is the meta key holding the next input offset of the
// partition (8 bytes, big-endian) as of the last transaction that consumed
// its records. worker.flush writes it in every such transaction, so it is
// changelogged with the state that transaction made: after a restore it
// says which input offset the rebuilt state stands at, and restore checks
// that against the group's committed offset (design §2.4).
const inputKeyName = "input"

// readInputOffset returns partition p's changelogged input offset, and
// false if none was ever written (a partition that never consumed a record,
// or state written before the key existed).
func (e *Engine) readInputOffset(p int32) (int64, bool, error) {
	v, err := e.store.Get(state.MetaKey(p, inputKeyName))
	if err != nil || v == nil {
		return 0, false, err
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("input offset of partition %d: %d bytes, want 8", p, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

// stableOffsetRetry is how long stableInputOffset waits between fetches
// while the group's offsets are unstable.
const stableOffsetRetry = 50 * time.Millisecond

// stableInputOffset returns the group's committed offset of input
// partition p (0 if none), waiting while a transaction that committed
// offsets for the group is still open (UNSTABLE_OFFSET_COMMIT, KIP-447).
//
// A restore must call it before it reads the changelog's last stable
// offset. A previous owner frozen inside End (after its TxnOffsetCommit,
// before its EndTxn) may still commit once thawed: its heartbeat answer
// can predate the freeze. Until it does, its changelog records are past the
// last stable offset, so a restore that read the bounds first would rebuild
// the state from before that transaction while the consumer, whose own
// offset fetch waits for stability, resumed after it: every event of the
// transaction counted once in the outputs and missing from the state (found
// by TestZombieAddsNothing failing about once in sixty runs; made
// deterministic by TestFrozenCommitAfterTakeover). Once the offsets are
// stable no other member can commit p's offset: the previous owner's
// generation is stale.
//
// It gives up after twice the transaction timeout, by which the broker has
// aborted any transaction left open.
func (e *Engine) stableInputOffset(ctx context.Context, p int32) (int64, error) {
	deadline := time.Now().Add(2 * e.cfg.TransactionTimeout)
	for {
		at, err := e.fetchInputOffset(ctx, p)
		if err == nil || !errors.Is(err, kerr.UnstableOffsetCommit) {
			return at, err
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("committed offset of %s/%d still unstable after %s: %w", e.cfg.InputTopic, p, 2*e.cfg.TransactionTimeout, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(stableOffsetRetry):
		}
	}
}

// fetchInputOffset fetches the group's committed offset of input partition
// p with RequireStable set.
func (e *Engine) fetchInputOffset(ctx context.Context, p int32) (int64, error) {
	offs, err := e.adm.FetchOffsets(kadm.RequireStable(ctx), e.cfg.AppID)
	if err != nil {
		return 0, fmt.Errorf("fetching committed offsets of group %s: %w", e.cfg.AppID, err)
	}
	o, ok := offs.Lookup(e.cfg.InputTopic, p)
	switch {
	case !ok:
		return 0, nil // nothing committed yet
	case o.Err != nil:
		return 0, fmt.Errorf("committed offset of %s/%d: %w", e.cfg.InputTopic, p, o.Err)
	}
	return max(0, o.At), nil
}

// inputCatchUp is how long restore keeps re-reading a changelog whose
// state stands behind the group's committed input offset while the
// changelog still has records past its last stable offset.
func (e *Engine) inputCatchUp() time.Duration { return 2 * e.cfg.TransactionTimeout }

// catchUpInput makes sure the state restore rebuilt for partition p stands
// at committed, the group's stable offset: the changelogged input offset
// (inputKeyName) must equal it. Behind it, while the changelog has records
// past its last stable offset, a committed transaction's markers have not
// all been written yet (on Apache Kafka the group's offsets can become
// stable before a changelog partition's marker lands): it waits, replays
// what became stable and checks again. Behind it with nothing pending, the
// offsets were moved by hand (kadm, kafka-consumer-groups): that is logged
// and accepted. Ahead of it, only at-least-once delivery (which
// changelogs before it commits offsets) or offsets moved back by hand can
// do that: logged for exactly-once, and accepted.
//
// It moves m past what it replays, and sets m.InputOffset to the input
// offset the state stands at when that is known.
func (e *Engine) catchUpInput(ctx context.Context, p int32, m *marker, committed int64) error {
	deadline := time.Now().Add(e.inputCatchUp())
	for {
		at, known, err := e.readInputOffset(p)
		if err != nil || !known {
			return err
		}
		m.InputOffset = at
		if at >= committed {
			if at > committed && e.cfg.Delivery == DeliveryExactlyOnce {
				e.log.Warn("restored state is ahead of the group's committed input offset; were the offsets moved back by hand, or did they expire?",
					"partition", p, "state_input_offset", at, "committed_offset", committed)
			}
			return nil
		}
		stable, high, err := e.changelogEnds(ctx, p)
		if err != nil {
			return err
		}
		if high <= m.ChangelogOffset {
			e.log.Warn("restored state is behind the group's committed input offset with nothing pending in the changelog; were the offsets moved forward by hand?",
				"partition", p, "state_input_offset", at, "committed_offset", committed)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("restored state of partition %d stands at input offset %d, the group committed %d, and %s/%d has uncommitted records from %d to %d for over %s",
				p, at, committed, e.cfg.ChangelogTopic(), p, stable, high, e.inputCatchUp())
		}
		if stable > m.ChangelogOffset {
			if err := e.replay(ctx, p, m, stable); err != nil {
				return fmt.Errorf("restoring %s/%d: %w", e.cfg.ChangelogTopic(), p, err)
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(stableOffsetRetry):
		}
	}
}
