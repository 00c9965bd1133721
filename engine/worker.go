package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/internal/failpoint"
	"github.com/cairn-cjo/cairn/state"
)

// markerKeyName is the meta key of a partition's marker: the changelog
// offset up to which the local store reflects the changelog. It is written
// only by apply and restore, never to the changelog.
const markerKeyName = "marker"

// marker is the value under markerKeyName.
type marker struct {
	ChangelogOffset int64 `msgpack:"c"` // next changelog offset to restore from
	InputOffset     int64 `msgpack:"i"` // next input offset (informational)
}

// worker owns one input partition: its partitionCore and its goroutine. All
// of its fields are touched only from that goroutine, through run, except
// changelogMax and lag (atomic) and mu, stopped and tasks.
type worker struct {
	e     *Engine
	p     int32
	label string
	core  *partitionCore
	tasks chan func()

	mu      sync.Mutex // guards stopped and sends on tasks, so that run never sends on a closed channel
	stopped bool

	marker       marker
	next         int64 // next input offset to process
	timers       int64 // committed timers of the partition
	active       bool  // processed records in the current commit cycle
	changelogMax atomic.Int64
	firingFrom   time.Time // start of the firing window fireDue is in, if any
	backlog      int       // backlog records in state, batch included (backlog.go)
	stalled      bool      // the window stopped a record in the open transaction; it is in the backlog, so backlog > 0
	// backlogCommitted is backlog as of the last commit; paused says
	// whether fetching the partition is paused (syncPause).
	backlogCommitted int
	paused           bool
	lag              atomic.Int64     // input records behind the high watermark, backlog included, as of the last poll
	cacheSeen        state.CacheStats // read-cache counters already added to the metrics
}

// workerQueue is how many tasks (polls' records of the partition) may wait
// for a worker before the loop blocks handing it another: enough for the
// polls of a transaction (CommitRecords / MaxPollRecords with defaults),
// so the loop keeps polling while the worker catches up.
const workerQueue = 8

func (e *Engine) newWorker(p int32) *worker {
	w := &worker{e: e, p: p, label: strconv.Itoa(int(p)), tasks: make(chan func(), workerQueue)}
	w.core = newPartitionCore(p, e.store, e.ops, e.cacheShare(), e.log.With("partition", p))
	skew := e.cfg.MaxClockSkew
	w.core.wallLimit = func() int64 { return time.Now().Add(skew).UnixMilli() }
	w.core.sink = w.produce
	w.core.poison, w.core.deadTimer = &e.poison, w.deadLetterTimer
	if !e.cfg.ShadowUntil.IsZero() {
		w.core.shadowUntil = e.cfg.ShadowUntil.UnixMilli()
		w.core.shadowed = func(o Output) { e.m.shadowed.WithLabelValues(o.Topic).Inc() }
	}
	go func() {
		for t := range w.tasks {
			t()
		}
	}()
	return w
}

// run executes fn on the worker's goroutine and signals wg when done. On a
// stopped worker it does nothing: a revoke (which may come from the
// client's goroutine while the loop iterates over its snapshot of the
// workers) already dropped the partition's uncommitted state, and the
// session aborts the transaction it was in.
func (w *worker) run(wg *sync.WaitGroup, fn func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	wg.Add(1)
	w.tasks <- func() { defer wg.Done(); fn() }
}

// stop ends the worker's goroutine once its queued task is done. It is
// idempotent.
func (w *worker) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.stopped = true
		close(w.tasks)
	}
}

// processRecords handles one poll's records of the partition, after what
// it can of its backlog. An operator failure is entered in the poison book
// before it is returned: the caller aborts, and the record comes again.
func (w *worker) processRecords(rs []*kgo.Record) error {
	w.active = true
	if err := w.drainBacklog(); err != nil {
		return w.noteFailure(err)
	}
	consumed := w.e.m.consumed.WithLabelValues(w.label) // a map lookup: once per poll, not per record
	for _, r := range rs {
		consumed.Inc()
		w.checkKeyPartition(r)
		if err := w.take(r); err != nil {
			return w.noteFailure(err)
		}
		w.next = r.Offset + 1
		failpoint.Inject(failpoint.MidBatch)
	}
	w.syncPause()
	return nil
}

// noteFailure enters an operator failure in the poison book and returns
// err, so that the retry after the abort dead-letters what fails twice.
func (w *worker) noteFailure(err error) error {
	var f *operatorFailure
	if errors.As(err, &f) {
		n := w.e.poison.fail(f.key, err)
		w.core.log.Warn("operator failed; aborting the transaction", "attempt", n, "of", poisonAttempts, "error", err)
	}
	return err
}

// checkKeyPartition counts (and now and then logs) a record whose key
// belongs to another partition.
func (w *worker) checkKeyPartition(r *kgo.Record) {
	m := w.e.m
	if n := w.e.partitions; n > 0 && KeyPartition(r.Key, n) != r.Partition {
		if m.wrongPartitionCount.Add(1)%1000 == 1 {
			w.core.log.Warn("record key belongs to another partition; is the producer using murmur2?",
				"topic", r.Topic, "offset", r.Offset, "key", string(r.Key))
		}
		m.wrongPartition.Inc()
	}
}

// processRecord processes r, or dead-letters it. It returns false, having
// processed nothing of r and stalled the worker, if the timers due before r
// did not all fire within the firing window: r must then wait in the
// backlog.
func (w *worker) processRecord(r *kgo.Record) (done bool, err error) {
	if dead, msg := w.e.poison.deadRecord(w.p, r.Offset); dead {
		w.deadLetter(r, ReasonOperator, errors.New(msg))
		return true, nil
	}
	ev, err := DecodeEvent(r.Key, r.Value, r.Timestamp.UnixMilli())
	if err != nil {
		reason := ReasonNotDecoded
		var de *DecodeError
		if errors.As(err, &de) {
			reason = de.Reason
		}
		w.deadLetter(r, reason, err)
		return true, nil
	}
	ev.Topic, ev.Partition, ev.Offset = r.Topic, r.Partition, r.Offset
	w.firingFrom = time.Time{}
	done, err = w.core.processEvent(&ev, w.moreFiring)
	if err != nil {
		return false, asOperatorFailure(err, func() string { return recordKey(w.p, r.Offset) })
	}
	if !done {
		w.stalled = true
		return false, nil
	}
	w.e.m.processed.Inc()
	return true, nil
}

// deadLetter produces r to the DLQ in the current transaction, with headers
// naming the reason and the source position.
func (w *worker) deadLetter(r *kgo.Record, reason string, err error) {
	w.e.m.dlq.WithLabelValues(reason).Inc()
	w.core.log.Warn("sending record to the dead-letter topic", "reason", reason, "error", err,
		"source", r.Topic+"/"+w.label+"@"+strconv.FormatInt(r.Offset, 10))
	w.produce(Output{Topic: w.e.cfg.DLQTopic(), Key: r.Key, Value: r.Value, Headers: []Header{
		{Key: "cairn.reason", Value: []byte(reason)},
		{Key: "cairn.error", Value: []byte(err.Error())},
		{Key: "cairn.source.topic", Value: []byte(r.Topic)},
		{Key: "cairn.source.partition", Value: []byte(w.label)},
		{Key: "cairn.source.offset", Value: []byte(strconv.FormatInt(r.Offset, 10))},
	}})
}

// deadLetterTimer produces a timer that failed poisonAttempts times to the
// DLQ instead of firing it (the timer is already deleted): keyed by its
// user, the payload as value, headers naming the operator, timer and due
// time. Replaying it is the operator's decision; the partition goes on.
func (w *worker) deadLetterTimer(k state.Key, payload []byte, msg string) {
	w.e.m.dlq.WithLabelValues(ReasonTimer).Inc()
	w.core.log.Warn("sending a failing timer to the dead-letter topic", "operator", k.Operator, "user", k.User,
		"timer", k.ID, "due", k.Due, "error", msg)
	w.produce(Output{Topic: w.e.cfg.DLQTopic(), Key: []byte(k.User), Value: payload, Headers: []Header{
		{Key: "cairn.reason", Value: []byte(ReasonTimer)},
		{Key: "cairn.error", Value: []byte(msg)},
		{Key: "cairn.source.partition", Value: []byte(w.label)},
		{Key: "cairn.timer.operator", Value: []byte(k.Operator)},
		{Key: "cairn.timer.id", Value: []byte(k.ID)},
		{Key: "cairn.timer.due", Value: []byte(strconv.FormatInt(k.Due, 10))},
	}})
}

// settleTime runs, at the end of a commit cycle, what the passing of time
// asks of the partition: processing what it can of its backlog, or else,
// if it had no records, advancing its clock (idle).
func (w *worker) settleTime(now int64) error {
	if w.backlog > 0 {
		err := w.drainBacklog()
		w.syncPause()
		return err
	}
	if w.active || w.e.cfg.DisableIdleAdvance {
		return nil
	}
	return w.idle(now)
}

// idle advances the clock of a partition that had no records this cycle.
// Only a clock move that fires timers is written to state; otherwise the
// move stays in memory, so an idle partition writes nothing.
func (w *worker) idle(now int64) error {
	c := w.core
	if now <= c.clock {
		return nil
	}
	due, err := c.nextDue()
	if err != nil {
		return err
	}
	if due <= now {
		w.firingFrom = time.Time{}
		last, done, err := c.fireDueWhile(now, w.moreFiring)
		if err != nil || !done {
			// Overdue timers beyond the firing window fire in the next
			// cycles, each in its own transaction; the clock follows them.
			return errors.Join(err, c.setClock(last))
		}
		return c.setClock(now)
	}
	c.clock = now
	return nil
}

// produce sends out in the session's open transaction. Records for
// co-partitioned topics go to this worker's partition.
func (w *worker) produce(out Output) {
	r := &kgo.Record{Topic: out.Topic, Key: out.Key, Value: out.Value, Partition: -1}
	if out.Topic == w.e.cfg.AggregatesTopic() {
		r.Partition = w.p
	}
	for _, h := range out.Headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	w.e.m.outputs.WithLabelValues(out.Topic).Inc()
	w.e.sess.Produce(context.Background(), r, w.e.promise)
}

// flush produces the coalesced upserts and one changelog record per key
// changed in this transaction (a tombstone for a deletion).
func (w *worker) flush() error {
	if err := w.writeInputOffset(); err != nil {
		return err
	}
	if err := w.core.flush(); err != nil {
		return err
	}
	w.changelogMax.Store(-1)
	topic := w.e.cfg.ChangelogTopic()
	return w.core.batch.Changes(func(k, v []byte) error {
		r := &kgo.Record{Topic: topic, Partition: w.p, Key: k, Value: v} // Changes' keys are fresh copies
		w.e.sess.Produce(context.Background(), r, w.changelogPromise)
		return nil
	})
}

// writeInputOffset writes the partition's next input offset under
// inputKeyName if the transaction consumed records of it, so that the
// offset is changelogged with the state it goes with (catchUpInput).
func (w *worker) writeInputOffset() error {
	if w.next == w.marker.InputOffset {
		return nil
	}
	return w.core.batch.Set(state.MetaKey(w.p, inputKeyName), binary.BigEndian.AppendUint64(nil, uint64(w.next)))
}

func (w *worker) changelogPromise(r *kgo.Record, err error) {
	if err != nil {
		w.e.promise(r, err)
		return
	}
	for {
		cur := w.changelogMax.Load()
		if r.Offset <= cur || w.changelogMax.CompareAndSwap(cur, r.Offset) {
			return
		}
	}
}

// startAt starts the worker from m, the marker restore left. apply writes
// w.marker back on every commit, also for a partition with no changelog
// records in the transaction, so it must start from the restored one: a
// zero marker would send the next restore back to the start of the
// changelog.
func (w *worker) startAt(m marker) {
	w.marker = m
	w.next = m.InputOffset
}

// apply commits the transaction's writes and the marker to the store. It
// runs only after the Kafka transaction committed (design §2).
func (w *worker) apply() error {
	if max := w.changelogMax.Load(); max >= 0 {
		w.marker.ChangelogOffset = max + 1
	}
	w.marker.InputOffset = w.next
	v, err := state.EncodeValue(w.marker)
	if err != nil {
		return err
	}
	if err := w.core.batch.Set(state.MetaKey(w.p, markerKeyName), v); err != nil {
		return err
	}
	if err := w.core.batch.Commit(); err != nil {
		return err
	}
	w.active = false
	w.stalled, w.backlogCommitted = false, w.backlog
	w.e.m.backlog.WithLabelValues(w.label).Set(float64(w.backlog))
	w.timers += w.core.timerDelta
	w.e.m.timersPending.WithLabelValues(w.label).Set(float64(w.timers))
	w.e.m.timersFired.Add(float64(w.core.timersFired))
	w.core.timerDelta, w.core.timersFired = 0, 0
	w.observeCache()
	return nil
}

// drop forgets the transaction's writes; the session rewinds the input.
func (w *worker) drop() error {
	w.active = false
	w.next = w.marker.InputOffset
	w.stalled, w.backlog = false, w.backlogCommitted
	w.syncPause()
	defer w.observeCache()
	return w.core.drop()
}
