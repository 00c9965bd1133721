package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/state"
)

// A partition's backlog holds input records it has consumed but not yet
// processed, because the timers due before them did not all fire within
// the firing window (Config.FiringWindow). Once the window stops a record,
// the partition processes nothing more in that transaction (the worker is
// stalled): a transaction fires at most one window's worth of timers
// beyond those of the records it processes. A broadcast that re-arms
// itself at the same due time, or an outage that leaves a million waits
// overdue, would otherwise fire in the transaction of the next record and
// could outlive the transaction timeout, to be aborted and retried
// forever.
//
// The backlog is state: each record is a meta key p|meta|"deferred/"+offset
// written through the batch, so it is changelogged and committed with the
// input offsets that consumed it, and a restore brings it back. The
// records are processed in offset order, each after every timer due before
// it, so where the transactions end changes nothing a record or timer
// sees: outcomes stay those of event time (docs/design.md, "Firing window
// and backlog"). While a partition has a backlog, the records it polls
// join the backlog and its fetching is paused, so the backlog holds at
// most about what was already fetched.

// deferredPrefix starts the meta name of every backlog record; the record's
// input offset follows it, big-endian, so the keys sort in offset order.
const deferredPrefix = "deferred/"

// drainChunk is how many backlog records drainBacklog reads per scan.
const drainChunk = 256

// deferredRecord is the value of a backlog key: the parts of an input
// record that processRecord reads (its offset is in the key).
type deferredRecord struct {
	Topic string `msgpack:"t"`
	Key   []byte `msgpack:"k"`
	Value []byte `msgpack:"v"`
	TS    int64  `msgpack:"ts"`
}

func deferredKey(p int32, offset int64) []byte {
	return binary.BigEndian.AppendUint64(state.MetaKey(p, deferredPrefix), uint64(offset))
}

// moreFiring is the firing window as a fireDueWhile budget, asked before
// each firing: the first starts the window, the others fire while it
// lasts. The caller zeroes firingFrom before each firing run; the wall
// clock is read only when a timer is due, and w.moreFiring, passed down
// without being kept, allocates nothing.
func (w *worker) moreFiring() bool {
	now := time.Now()
	if w.firingFrom.IsZero() {
		w.firingFrom = now
		return true
	}
	return now.Sub(w.firingFrom) < w.e.cfg.FiringWindow
}

// take processes r, or adds it to the backlog: behind a backlog, or when
// the timers due before it did not all fire within the firing window.
func (w *worker) take(r *kgo.Record) error {
	if w.backlog == 0 { // a stalled worker has a backlog: the record that stalled it
		if done, err := w.processRecord(r); done || err != nil {
			return err
		}
		w.core.log.Warn("timers due before a record did not all fire within the firing window; deferring the partition's input to the next transactions",
			"offset", r.Offset, "firing_window", w.e.cfg.FiringWindow)
	}
	return w.deferRecord(r)
}

// deferRecord adds r to the end of the backlog.
func (w *worker) deferRecord(r *kgo.Record) error {
	v, err := state.EncodeValue(deferredRecord{Topic: r.Topic, Key: r.Key, Value: r.Value, TS: r.Timestamp.UnixMilli()})
	if err != nil {
		return fmt.Errorf("deferring record %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	if err := w.core.batch.Set(deferredKey(w.p, r.Offset), v); err != nil {
		return fmt.Errorf("deferring record %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	w.backlog++
	return nil
}

// drainBacklog processes backlog records in offset order until the backlog
// is empty or the firing window stops one again; after that, not again in
// the same transaction. Cost: one scan of the backlog's keys per
// drainChunk records.
func (w *worker) drainBacklog() error {
	for w.backlog > 0 && !w.stalled {
		rs, err := w.deferred(drainChunk)
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			return fmt.Errorf("partition %d: %d backlog records expected, none in state", w.p, w.backlog)
		}
		for _, r := range rs {
			done, err := w.processRecord(r)
			if err != nil || !done {
				return err
			}
			if err := w.core.batch.Delete(deferredKey(w.p, r.Offset)); err != nil {
				return err
			}
			w.backlog--
		}
	}
	return nil
}

// errEnough stops a scan that has read what it needs.
var errEnough = errors.New("enough")

// deferred returns the first n records of the backlog, in offset order, as
// the input records they were.
func (w *worker) deferred(n int) ([]*kgo.Record, error) {
	pre := state.MetaKey(w.p, deferredPrefix)
	var rs []*kgo.Record
	err := w.core.batch.Scan(pre, state.PrefixEnd(pre), func(k, v []byte) error {
		if len(rs) == n {
			return errEnough
		}
		var d deferredRecord
		if len(k) != len(pre)+8 {
			return fmt.Errorf("backlog key %x: %w", k, state.ErrBadKey)
		}
		if err := state.DecodeValue(v, &d); err != nil { // copies Key and Value
			return fmt.Errorf("backlog record %x: %w", k, err)
		}
		rs = append(rs, &kgo.Record{Topic: d.Topic, Partition: w.p, Key: d.Key, Value: d.Value,
			Offset: int64(binary.BigEndian.Uint64(k[len(pre):])), Timestamp: time.UnixMilli(d.TS)})
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, fmt.Errorf("reading the backlog of partition %d: %w", w.p, err)
	}
	return rs, nil
}

// loadBacklog counts the committed backlog and pauses or resumes fetching
// the partition to match, whatever this client did with it before. It is
// called once the partition is assigned and restored.
func (w *worker) loadBacklog() error {
	pre := state.MetaKey(w.p, deferredPrefix)
	n := 0
	if err := w.core.batch.Scan(pre, state.PrefixEnd(pre), func(_, _ []byte) error { n++; return nil }); err != nil {
		return fmt.Errorf("reading the backlog of partition %d: %w", w.p, err)
	}
	w.backlog, w.backlogCommitted = n, n
	w.e.m.backlog.WithLabelValues(w.label).Set(float64(w.backlog))
	w.paused = w.backlog == 0 // so that syncPause resumes it
	w.syncPause()
	return nil
}

// syncPause pauses fetching the partition while it has a backlog, and
// resumes it once the backlog is gone. Records already fetched still come
// and join the backlog; a paused partition's uncommitted offset does not
// move past what was polled, so nothing is skipped.
func (w *worker) syncPause() {
	want := w.backlog > 0
	if want == w.paused {
		return
	}
	w.paused = want
	tp := map[string][]int32{w.e.cfg.InputTopic: {w.p}}
	if want {
		w.e.sess.Client().PauseFetchPartitions(tp)
	} else {
		w.e.sess.Client().ResumeFetchPartitions(tp)
	}
}
