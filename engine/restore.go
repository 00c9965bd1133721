package engine

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/internal/failpoint"
	"github.com/cairn-cjo/cairn/state"
)

// restoreCommitEvery bounds the size of one restore batch.
const restoreCommitEvery = 5000

// restoreStallTimeout fails a restore that sees no record for this long
// while the changelog's last stable offset is still ahead.
const restoreStallTimeout = 30 * time.Second

// restore brings the store's copy of partition p up to the changelog's last
// stable offset, starting at the partition's marker (design §2.4), and
// checks that the state it rebuilt stands at the group's committed input
// offset, where consumption resumes (catchUpInput). A warm partition
// (revoked earlier, or kept by a standby task) replays only the tail past
// its marker.
func (e *Engine) restore(ctx context.Context, p int32) (marker, error) {
	start := time.Now()
	committed, err := e.stableInputOffset(ctx, p) // first: see its doc
	if err != nil {
		return marker{}, err
	}
	stableWait := time.Since(start)
	m, end, err := e.startingMarker(ctx, p)
	if err != nil {
		return marker{}, err
	}
	from := m.ChangelogOffset
	label := fmt.Sprint(p)
	e.m.restoreRemain.WithLabelValues(label).Set(float64(max(0, end-m.ChangelogOffset)))
	e.setRestoring(p, max(0, end-m.ChangelogOffset), false)
	defer e.setRestoring(p, 0, true)
	if m.ChangelogOffset < end {
		if err := e.replay(ctx, p, m, end); err != nil {
			return marker{}, fmt.Errorf("restoring %s/%d: %w", e.cfg.ChangelogTopic(), p, err)
		}
	}
	if err := e.catchUpInput(ctx, p, m, committed); err != nil {
		return marker{}, err
	}
	e.m.restoreRemain.WithLabelValues(label).Set(0)
	e.log.Info("restored partition", "partition", p, "changelog_from", from, "changelog_end", m.ChangelogOffset,
		"took", time.Since(start), "input_offset", committed, "offsets_wait", stableWait)
	e.logRestoreDigest(p, committed)
	return *m, nil
}

// startingMarker reads partition p's marker and the changelog's bounds and
// returns where a restore or a standby task starts reading, with the
// changelog's last stable offset. A missing marker, one older than the
// changelog's start (compaction or retention removed what it points at) or
// one past its end (the topic was recreated) means a full restore: the
// partition's range is wiped first, so that the store never holds state
// its marker does not account for.
func (e *Engine) startingMarker(ctx context.Context, p int32) (*marker, int64, error) {
	m, err := e.readMarker(p)
	if err != nil {
		return nil, 0, err
	}
	logStart, end, err := e.changelogBounds(ctx, p)
	if err != nil {
		return nil, 0, err
	}
	if m != nil && m.ChangelogOffset > end {
		// Past the end of the changelog: the topic was deleted and created
		// again (processor reset) or lost its tail, so the local state
		// belongs to another history.
		e.log.Warn("local state is ahead of the changelog, which was recreated or truncated; restoring from scratch",
			"partition", p, "marker", m.ChangelogOffset, "changelog_end", end)
		m = nil
	}
	if m == nil || m.ChangelogOffset < logStart {
		pre := state.PartitionPrefix(p)
		if err := e.store.DeleteRange(pre, state.PrefixEnd(pre)); err != nil {
			return nil, 0, storeErr("clearing the partition before a restore", err)
		}
		m = &marker{ChangelogOffset: logStart}
	}
	return m, end, nil
}

func (e *Engine) readMarker(p int32) (*marker, error) {
	v, err := e.store.Get(state.MetaKey(p, markerKeyName))
	if err != nil || v == nil {
		return nil, err
	}
	m := &marker{}
	if err := state.DecodeValue(v, m); err != nil {
		return nil, fmt.Errorf("reading marker of partition %d: %w", p, err)
	}
	return m, nil
}

// changelogBounds returns the changelog partition's start offset and its
// last stable offset (the end of committed data). It retries for a few
// seconds: a topic created moments ago may not be in every broker's metadata.
func (e *Engine) changelogBounds(ctx context.Context, p int32) (start, end int64, err error) {
	for i := 0; i < 50; i++ {
		if start, end, err = e.listBounds(ctx, p); err == nil || ctx.Err() != nil {
			return start, end, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return start, end, err
}

func (e *Engine) listBounds(ctx context.Context, p int32) (int64, int64, error) {
	topic := e.cfg.ChangelogTopic()
	starts, err := e.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, 0, fmt.Errorf("listing start offsets of %s: %w", topic, err)
	}
	ends, err := e.adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return 0, 0, fmt.Errorf("listing stable offsets of %s: %w", topic, err)
	}
	s, ok1 := starts.Lookup(topic, p)
	en, ok2 := ends.Lookup(topic, p)
	if !ok1 || !ok2 || s.Err != nil || en.Err != nil {
		return 0, 0, fmt.Errorf("listing offsets of %s/%d: %w", topic, p, firstErr(s, en))
	}
	return s.Offset, en.Offset, nil
}

// changelogEnds returns changelog partition p's last stable offset and its
// high watermark: records in between belong to transactions still open, or
// whose markers are still being written.
func (e *Engine) changelogEnds(ctx context.Context, p int32) (stable, high int64, err error) {
	topic := e.cfg.ChangelogTopic()
	_, stable, err = e.listBounds(ctx, p)
	if err != nil {
		return 0, 0, err
	}
	ends, err := e.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, 0, fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	h, ok := ends.Lookup(topic, p)
	if !ok || h.Err != nil {
		return 0, 0, fmt.Errorf("listing end offset of %s/%d: %w", topic, p, firstErr(h, h))
	}
	return stable, h.Offset, nil
}

func firstErr(a, b kadm.ListedOffset) error {
	if a.Err != nil {
		return a.Err
	}
	if b.Err != nil {
		return b.Err
	}
	return fmt.Errorf("partition not found")
}

// replay applies changelog records [m.ChangelogOffset, end) to the store
// with read_committed, committing a batch and the marker every
// restoreCommitEvery records so that an interrupted restore resumes. Control
// records are kept so that the offset end-1, which is always a control
// record or a committed record, is seen.
func (e *Engine) replay(ctx context.Context, p int32, m *marker, end int64) error {
	cl, err := e.changelogReader(p, m.ChangelogOffset)
	if err != nil {
		return err
	}
	defer cl.Close()
	b := e.store.NewBatch()
	defer b.Close()
	label := fmt.Sprint(p)
	prefix := state.PartitionPrefix(p)
	lastProgress, pending := time.Now(), 0
	for m.ChangelogOffset < end {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := fetchErr(fs); err != nil {
			return err
		}
		n, applied := 0, 0
		for it := fs.RecordIter(); !it.Done(); {
			r := it.Next()
			n++
			if err := applyChangelogRecord(b, prefix, r, m); err != nil {
				return err
			}
			if !r.Attrs.IsControl() {
				applied++
				failpoint.Inject(failpoint.MidRestore)
			}
		}
		e.m.restoreRecords.WithLabelValues(label).Add(float64(applied))
		e.m.restoreRemain.WithLabelValues(label).Set(float64(max(0, end-m.ChangelogOffset)))
		e.setRestoring(p, max(0, end-m.ChangelogOffset), false)
		if n > 0 {
			lastProgress = time.Now()
		} else if time.Since(lastProgress) > restoreStallTimeout {
			return fmt.Errorf("no changelog progress for %s at offset %d of %d", restoreStallTimeout, m.ChangelogOffset, end)
		}
		if pending += n; pending >= restoreCommitEvery {
			if err := commitRestore(b, p, m); err != nil {
				return err
			}
			pending = 0
		}
	}
	return commitRestore(b, p, m)
}

// applyChangelogRecord writes changelog record r (a Pebble key and value, or
// a tombstone) to b and moves m past it. Control records only move m.
// changelogReader returns a client reading changelog partition p from
// offset from with read_committed, control records kept.
func (e *Engine) changelogReader(p int32, from int64) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append(e.baseOpts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{e.cfg.ChangelogTopic(): {p: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, fmt.Errorf("creating changelog reader of partition %d: %w", p, err)
	}
	return cl, nil
}

func applyChangelogRecord(b state.Batch, prefix []byte, r *kgo.Record, m *marker) error {
	m.ChangelogOffset = r.Offset + 1
	if r.Attrs.IsControl() {
		return nil
	}
	if !bytes.HasPrefix(r.Key, prefix) {
		return fmt.Errorf("changelog record at %s/%d@%d has a key of another partition", r.Topic, r.Partition, r.Offset)
	}
	if r.Value == nil {
		return b.Delete(r.Key)
	}
	return b.Set(r.Key, r.Value)
}

func commitRestore(b state.Batch, p int32, m *marker) error {
	v, err := state.EncodeValue(m)
	if err != nil {
		return err
	}
	if err := b.Set(state.MetaKey(p, markerKeyName), v); err != nil {
		return err
	}
	if err := b.Commit(); err != nil {
		return storeErr("writing restored state", err)
	}
	return nil
}

func fetchErr(fs kgo.Fetches) error {
	var out error
	fs.EachError(func(t string, p int32, err error) {
		if out == nil && !isCtxErr(err) {
			out = fmt.Errorf("fetching %s/%d: %w", t, p, err)
		}
	})
	return out
}
