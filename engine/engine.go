// Package engine runs operators over a Kafka event log, exactly once.
//
// One Engine per process consumes the input topic in a consumer group (the
// cooperative-sticky balancer), runs one worker goroutine per owned
// partition, and commits every output, changelog record and input offset in
// one Kafka transaction per commit cycle; only after that commit does each
// worker apply its buffered state to Pebble (docs/design.md).
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/internal/failpoint"
	"github.com/cairn-cjo/cairn/state"
)

// ErrFatal wraps errors after which the engine must stop rather than
// rebuild its session: the local store failed after a Kafka commit.
var ErrFatal = errors.New("fatal engine error")

// ErrStore wraps, with ErrFatal, a failed write to the local store (a full
// disk, an I/O error). The store is not flushed or closed after it: Pebble
// may panic on a write after a failed one. Nothing is lost: the changelog
// holds every committed write, and the next start restores what the store
// missed.
var ErrStore = errors.New("state store failed")

// ErrDiskFull wraps, with ErrFatal, a stop because the store's disk has
// less than Config.MinFreeDisk free. The store is flushed and intact.
var ErrDiskFull = errors.New("disk nearly full")

// checkDisk returns ErrDiskFull if the store's disk has less free space
// than the configured minimum.
func (e *Engine) checkDisk() error {
	if e.cfg.MinFreeDisk < 0 {
		return nil
	}
	n, ok := e.store.FreeBytes()
	if !ok || n >= uint64(e.cfg.MinFreeDisk) {
		return nil
	}
	e.log.Error("stopping: the state store's disk is nearly full; free space and restart (nothing is lost)",
		"free_bytes", n, "min_free_bytes", e.cfg.MinFreeDisk)
	return fmt.Errorf("%w: %w: %d bytes free for the state store, less than the minimum of %d (--min-free-disk-mb)",
		ErrFatal, ErrDiskFull, n, e.cfg.MinFreeDisk)
}

// storeErr marks err, from a write to the local store, as ErrStore and
// ErrFatal.
func storeErr(what string, err error) error {
	return fmt.Errorf("%w: %w: %s: %w", ErrFatal, ErrStore, what, err)
}

// Engine is one Cairn process's stream processor. Create it with New and
// run it with Run; its read methods are safe for concurrent use.
type Engine struct {
	cfg   Config
	ops   []Operator
	store state.Store
	log   *slog.Logger
	m     *metrics
	adm   *kadm.Client
	admCl *kgo.Client

	partitions int32 // input partition count, set by Run before consuming

	// sess is the current transactional session. It is replaced only by
	// runSession, between sessions, when no worker is running.
	sess session

	mu        sync.Mutex // guards workers and restoring
	workers   map[int32]*worker
	restoring map[int32]int64 // partition -> changelog records left, while restoring
	ready     atomic.Bool

	poison poisonBook // records and timers that made an operator fail (poison.go)

	sb standbys // standby tasks and placement input (standby.go)

	produceErr atomic.Pointer[error] // first produce error of the open transaction
	assignErr  atomic.Pointer[error] // a failed restore: the session must be rebuilt
}

// New validates cfg and returns an engine running ops over store.
func New(cfg Config, store state.Store, ops []Operator) (*Engine, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating config: %w", err)
	}
	e := &Engine{cfg: cfg, ops: ops, store: store, log: cfg.Logger, workers: map[int32]*worker{}}
	e.m = newMetrics(cfg.Registerer)
	return e, nil
}

// Config returns the engine's configuration with defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// Ready reports whether the engine is in a group session with every owned
// partition restored.
func (e *Engine) Ready() bool { return e.ready.Load() }

func (e *Engine) baseOpts() []kgo.Opt {
	return append([]kgo.Opt{kgo.SeedBrokers(e.cfg.Brokers...)}, e.cfg.ClientOpts...)
}

// Run ensures the topics exist, then consumes until ctx is canceled. On
// cancellation it commits the open transaction, flushes the store, leaves
// the group and returns nil. After a transaction error whose outcome is
// unknown it rebuilds the session, which restores every partition from its
// marker, and goes on.
func (e *Engine) Run(ctx context.Context) error {
	cl, err := kgo.NewClient(e.baseOpts()...)
	if err != nil {
		return fmt.Errorf("creating admin client: %w", err)
	}
	e.admCl, e.adm = cl, kadm.NewClient(cl)
	defer cl.Close()
	if err := e.checkDisk(); err != nil {
		return err
	}
	if e.partitions, err = EnsureTopics(ctx, e.adm, e.cfg.Plan(e.ops)); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting: nothing was consumed, a clean stop
		}
		return err
	}
	var statusWG sync.WaitGroup
	statusCtx, stopStatus := context.WithCancel(context.Background())
	statusWG.Add(1)
	go e.publishStatus(statusCtx, &statusWG)
	if e.cfg.StandbyReplicas > 0 {
		statusWG.Add(1)
		go e.runStandbys(statusCtx, &statusWG)
	}
	defer func() { stopStatus(); statusWG.Wait() }() // after the session: the tombstone comes last
	for backoff := time.Duration(0); ; {
		err := e.runSession(ctx)
		if ctx.Err() != nil || errors.Is(err, ErrFatal) {
			if errors.Is(err, ErrStore) {
				return err
			}
			e.stopStandbys() // their last batches are in before the flush
			if ferr := e.store.Flush(); ferr != nil && err == nil {
				err = ferr
			}
			if errors.Is(err, ErrFatal) {
				return err
			}
			return nil
		}
		e.m.reinits.Inc()
		backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
		e.log.Warn("rebuilding transactional session", "error", err, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
	}
}

// sessionOpts are the options of both kinds of session (newSession adds
// the transactional ones).
func (e *Engine) sessionOpts() []kgo.Opt {
	return append(e.baseOpts(),
		kgo.ConsumerGroup(e.cfg.AppID),
		kgo.ConsumeTopics(e.cfg.InputTopic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(e.cfg.SessionTimeout),
		kgo.HeartbeatInterval(e.cfg.SessionTimeout/3),
		kgo.RebalanceTimeout(e.cfg.RebalanceTimeout),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(sessionFetchMaxWait),
		kgo.FetchMaxPartitionBytes(e.cfg.FetchMaxPartitionBytes),
		kgo.RecordPartitioner(newPartitioner(e.cfg.ChangelogTopic(), e.cfg.AggregatesTopic())),
		kgo.OnPartitionsAssigned(e.onAssigned),
		kgo.OnPartitionsRevoked(e.onRevoked),
		kgo.OnPartitionsLost(e.onRevoked),
		kgo.WithHooks(failpoint.KafkaHooks()...), // nil unless CAIRN_FAILPOINT=end-txn-sent
	)
}

// sessionFetchMaxWait bounds how long the broker holds an input fetch
// that has no data. A partition assigned while a fetch is held joins the
// next fetch only, so franz-go's default of 5s delayed a takeover by up to
// 5s after its restore (found by `processor bench cluster`: failovers of
// 3s and 8s in alternation). 500ms is the Java client's default; an idle
// instance sends about two empty fetches a second per broker.
const sessionFetchMaxWait = 500 * time.Millisecond

// runSession runs one transactional session until ctx is canceled or a
// transaction fails in a way that needs a new session.
func (e *Engine) runSession(ctx context.Context) (err error) {
	sess, err := e.newSession()
	if err != nil {
		return fmt.Errorf("%w: creating %s session: %w", ErrFatal, e.cfg.Delivery, err)
	}
	e.sess = sess
	defer func() { e.closeSession(err) }()
	l := loop{e: e, deadline: time.Now().Add(e.cfg.CommitInterval)}
	for {
		if ctx.Err() != nil {
			return l.finish()
		}
		if err := l.cycle(ctx); err != nil {
			return err
		}
	}
}

// closeSession leaves the group (stopping every worker through onRevoked)
// and closes the client.
func (e *Engine) closeSession(cause error) {
	e.ready.Store(false)
	if cause != nil {
		e.dropAll()
	}
	e.sess.AllowRebalance()
	e.sess.Close()
	e.assignErr.Store(nil)
	e.mu.Lock()
	for p, w := range e.workers { // in case the callbacks did not run
		e.retire(w)
		delete(e.workers, p)
	}
	e.mu.Unlock()
	e.releaseAllClaims() // including a partition whose restore failed
	e.m.owned.Set(0)
}

// retire stops w, whose partition is no longer this instance's, and
// forgets its backlog gauge, so that sums over instances stay true.
func (e *Engine) retire(w *worker) {
	w.stop()
	e.m.backlog.DeleteLabelValues(w.label)
}

func (e *Engine) dropAll() {
	e.forEachWorker(func(w *worker) error { return w.drop() })
}

func (e *Engine) onAssigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
	ps := assigned[e.cfg.InputTopic]
	e.ready.Store(false)
	defer e.ready.Store(true)
	for _, p := range ps {
		e.claimPartition(p) // stops its standby task, if any, before the restore reads the marker
		m, err := e.restore(ctx, p)
		if err != nil {
			// Without its state the partition cannot be processed:
			// leave the group so it moves elsewhere and retry.
			err = fmt.Errorf("restoring partition %d: %w", p, err)
			e.assignErr.CompareAndSwap(nil, &err)
			return
		}
		w := e.newWorker(p)
		w.startAt(m)
		err = w.core.load()
		if err == nil {
			err = w.loadBacklog()
		}
		if err == nil {
			var n int
			n, err = w.core.pendingTimers()
			w.timers = int64(n)
			e.m.timersPending.WithLabelValues(w.label).Set(float64(n))
		}
		if err != nil {
			err = fmt.Errorf("loading partition %d: %w", p, err)
			e.assignErr.CompareAndSwap(nil, &err)
			w.stop()
			return
		}
		e.mu.Lock()
		e.workers[p] = w
		e.mu.Unlock()
	}
	e.m.owned.Set(float64(e.ownedCount()))
	e.rebudgetCaches()
	e.log.Info("partitions assigned", "partitions", ps)
}

func (e *Engine) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	ps := revoked[e.cfg.InputTopic]
	e.mu.Lock()
	for _, p := range ps {
		if w, ok := e.workers[p]; ok {
			var wg sync.WaitGroup
			w.run(&wg, func() { _ = w.drop() })
			wg.Wait()
			e.retire(w)
			delete(e.workers, p)
		}
	}
	n := len(e.workers)
	e.mu.Unlock()
	e.releasePartitions(ps)
	e.rebudgetCaches()
	e.m.owned.Set(float64(n))
	e.log.Info("partitions revoked", "partitions", ps)
}

func (e *Engine) ownedCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.workers)
}

// Owned returns the input partitions this instance owns, sorted.
func (e *Engine) Owned() []int32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]int32, 0, len(e.workers))
	for p := range e.workers {
		out = append(out, p)
	}
	sortInt32(out)
	return out
}

// forEachWorker runs fn on every worker's goroutine in parallel and returns
// the first error.
func (e *Engine) forEachWorker(fn func(*worker) error) error {
	e.mu.Lock()
	ws := make([]*worker, 0, len(e.workers))
	for _, w := range e.workers {
		ws = append(ws, w)
	}
	e.mu.Unlock()
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for _, w := range ws {
		w.run(&wg, func() {
			if err := fn(w); err != nil {
				errMu.Lock()
				if first == nil {
					first = err
				}
				errMu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// promise records the first produce error of the open transaction, which
// turns its end into an abort.
func (e *Engine) promise(r *kgo.Record, err error) {
	if err != nil {
		e.produceErr.CompareAndSwap(nil, &err)
		e.log.Warn("produce failed; the transaction will abort", "topic", r.Topic, "error", err)
	}
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func sortInt32(s []int32) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
