package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/internal/failpoint"
)

// loop is the transaction loop of one session. A transaction spans polls
// until CommitInterval has passed or CommitRecords records were processed.
// Rebalances are blocked from the first poll of a transaction until it ends
// (BlockRebalanceOnPoll), so partition callbacks only ever run between
// transactions, when no worker holds uncommitted state.
//
// Polls and processing overlap: dispatch hands each partition's records to
// its worker and returns, so the next poll (and the fetch behind it) runs
// while the workers process; settle waits for them before the transaction
// ends. A worker processes its tasks in order, so each partition still sees
// its records in log order.
type loop struct {
	e        *Engine
	inTxn    bool // a local transaction has begun
	dirty    bool // records were processed in it
	records  int
	deadline time.Time
	synced   time.Time // last store sync, see maybeSync
	checked  time.Time // last disk check, see maybeCheckDisk

	work     sync.WaitGroup // records dispatched in this transaction
	mu       sync.Mutex     // guards workErr and poisoned
	workErr  error          // a failure other than an operator's, from a worker
	poisoned bool           // an operator failed (entered in the poison book)
	failed   atomic.Bool    // workErr or poisoned is set: stop polling
}

func (l *loop) cycle(ctx context.Context) error {
	e := l.e
	pctx, cancel := context.WithDeadline(ctx, l.deadline)
	fs := e.sess.PollRecords(pctx, e.cfg.MaxPollRecords)
	cancel()
	if fs.IsClientClosed() {
		return errors.Join(errors.New("client closed"), l.abortOpen())
	}
	if perr := e.assignErr.Load(); perr != nil {
		return errors.Join(*perr, l.abortOpen())
	}
	if err := fetchErr(fs); err != nil {
		e.log.Warn("fetch error", "error", err)
	}
	if !l.inTxn {
		if err := e.sess.Begin(); err != nil {
			return fmt.Errorf("beginning transaction: %w", err)
		}
		l.inTxn = true
	}
	n, err := l.dispatch(fs)
	if err != nil {
		return errors.Join(err, l.abortOpen())
	}
	l.records += n
	l.dirty = l.dirty || n > 0
	if !l.failed.Load() && time.Now().Before(l.deadline) && l.records < e.cfg.CommitRecords {
		return nil
	}
	poisoned, err := l.settle()
	if err != nil {
		l.end(kgo.TryAbort)
		return err
	}
	if poisoned {
		// An operator failed on a record or timer: abort, so the session
		// rewinds to the committed offsets and the poison book decides,
		// on the way back, to retry it or dead-letter it.
		return l.end(kgo.TryAbort)
	}
	return l.commit()
}

// dispatch hands each partition's records to its worker without waiting
// for them (see settle). It returns the number of records handed over.
func (l *loop) dispatch(fs kgo.Fetches) (total int, err error) {
	e := l.e
	fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
		if len(ftp.Records) == 0 {
			return
		}
		e.mu.Lock()
		w := e.workers[ftp.Partition]
		e.mu.Unlock()
		if w == nil {
			err = errors.Join(err, fmt.Errorf("records for unowned partition %d", ftp.Partition))
			return
		}
		total += len(ftp.Records)
		hwm, rs := ftp.HighWatermark, ftp.Records
		w.run(&l.work, func() { l.processOn(w, rs, hwm) })
	})
	return total, err
}

// processOn runs on w's goroutine. After a failure in the transaction the
// worker skips the records that follow: the transaction will be aborted
// and they will come again.
func (l *loop) processOn(w *worker, rs []*kgo.Record, hwm int64) {
	if l.failed.Load() {
		return
	}
	perr := w.processRecords(rs)
	w.lag.Store(max(0, hwm-w.next) + int64(w.backlog)) // the backlog is consumed, not processed
	l.e.m.lag.WithLabelValues(w.label).Set(float64(w.lag.Load()))
	if perr == nil {
		return
	}
	l.mu.Lock()
	if isOperatorFailure(perr) {
		l.poisoned = true
	} else {
		l.workErr = errors.Join(l.workErr, fmt.Errorf("processing partition %d: %w", w.p, perr))
	}
	l.mu.Unlock()
	l.failed.Store(true)
}

// settle waits until the workers processed every record dispatched in the
// transaction and reports what failed: poisoned for an operator failure
// (entered in the poison book), err for any other.
func (l *loop) settle() (poisoned bool, err error) {
	l.work.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	poisoned, err = l.poisoned, l.workErr
	l.poisoned, l.workErr = false, nil
	l.failed.Store(false)
	return poisoned, err
}

// abortOpen settles and aborts the open transaction, if any, for a cycle
// that fails for a reason of its own.
func (l *loop) abortOpen() error {
	l.settle()
	if !l.inTxn {
		return nil
	}
	return l.end(kgo.TryAbort)
}

// commit drains backlogs, advances idle partitions' clocks, flushes every
// worker and ends the transaction if anything is pending in it.
func (l *loop) commit() error {
	e := l.e
	if err := l.maybeCheckDisk(); err != nil {
		if l.inTxn {
			l.end(kgo.TryAbort)
		}
		return err
	}
	now := time.Now().UnixMilli()
	pending := l.dirty
	var mu sync.Mutex
	err := e.forEachWorker(func(w *worker) error {
		if err := w.settleTime(now); err != nil {
			return w.noteFailure(err)
		}
		e.m.clockSkew.WithLabelValues(w.label).Set(float64(now-w.core.clock) / 1000)
		if w.core.pending() {
			mu.Lock()
			pending = true
			mu.Unlock()
		}
		return nil
	})
	if isOperatorFailure(err) {
		return l.end(kgo.TryAbort) // as in cycle: retried, then dead-lettered
	}
	if err != nil {
		l.end(kgo.TryAbort)
		return fmt.Errorf("advancing idle partitions: %w", err)
	}
	if !pending {
		l.deadline = time.Now().Add(e.cfg.CommitInterval)
		e.sess.AllowRebalance()
		return nil
	}
	if err := e.forEachWorker((*worker).flush); err != nil {
		l.end(kgo.TryAbort)
		return fmt.Errorf("flushing changelog: %w", err)
	}
	return l.end(l.outcome())
}

// outcome waits until every record of the transaction is acknowledged or
// failed, then says whether to commit it. Waiting matters: End flushes too,
// but a record that fails during End's flush does not stop End from
// committing, and its promise may run after a check made before End: the
// transaction would commit without that output, which is then lost (found
// by TestEngineCommitPathFaults under load). Flush returns after every
// promise of the flushed records ran.
func (l *loop) outcome() kgo.TransactionEndTry {
	e := l.e
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.TransactionTimeout)
	err := e.sess.Client().Flush(ctx)
	cancel()
	failpoint.Inject(failpoint.BeforeEndTxn)
	if err != nil {
		e.log.Warn("flushing the transaction's records failed; aborting it", "error", err)
		return kgo.TryAbort
	}
	if e.produceErr.Load() != nil {
		return kgo.TryAbort
	}
	return kgo.TryCommit
}

// end ends the open transaction and applies or drops every worker's state
// accordingly. An error from End means the outcome is unknown: the caller
// rebuilds the session, and restore reconciles the store with whatever the
// broker decided.
func (l *loop) end(try kgo.TransactionEndTry) error {
	e := l.e
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.TransactionTimeout)
	committed, err := e.sess.End(ctx, try)
	cancel()
	e.produceErr.Store(nil)
	l.inTxn, l.dirty, l.records = false, false, 0
	l.deadline = time.Now().Add(e.cfg.CommitInterval)
	if committed {
		failpoint.Inject(failpoint.BeforeApply)
		if aerr := e.forEachWorker((*worker).apply); aerr != nil {
			return storeErr("applying committed state", aerr)
		}
		if serr := l.maybeSync(); serr != nil {
			return serr
		}
		e.m.commits.Inc()
	} else {
		e.dropAll()
		e.m.aborted.Inc()
	}
	e.m.commitDuration.Observe(time.Since(start).Seconds())
	e.sess.AllowRebalance()
	if err != nil {
		return fmt.Errorf("ending transaction: %w", err)
	}
	return nil
}

// storeCheckInterval is how often the store's free disk space is checked
// and, after a commit, its log synced. Commits do not wait for the disk, so
// this bounds how long a failed log write goes unnoticed; Pebble itself
// treats such a failure as fatal (state.Options.OnFatal), which loses
// nothing either (design §2).
const storeCheckInterval = time.Second

// maybeCheckDisk checks the store's free disk space if storeCheckInterval
// has passed since the last check. It runs every commit cycle, idle or not,
// so that a disk filled by others stops the engine before its next write.
func (l *loop) maybeCheckDisk() error {
	if time.Since(l.checked) < storeCheckInterval {
		return nil
	}
	l.checked = time.Now()
	return l.e.checkDisk()
}

// maybeSync syncs the store's log if storeCheckInterval has passed since
// the last sync.
func (l *loop) maybeSync() error {
	if time.Since(l.synced) < storeCheckInterval {
		return nil
	}
	l.synced = time.Now()
	if err := l.e.store.Sync(); err != nil {
		return storeErr("syncing committed state", err)
	}
	return nil
}

// finish commits the open transaction on shutdown.
func (l *loop) finish() error {
	poisoned, err := l.settle()
	if !l.inTxn {
		return err
	}
	if err != nil || poisoned {
		return errors.Join(err, l.end(kgo.TryAbort))
	}
	return l.commit()
}
