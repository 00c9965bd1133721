package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/state"
)

// Standby replicas (Config.StandbyReplicas, docs/design.md "Standby
// replicas"): an instance keeps warm copies of partitions it does not own
// by tailing their changelogs into its store, each batch applied together
// with the partition's marker, so that if the partition is assigned here
// its restore replays only the tail.

// standbys is the engine's standby state. Its tasks never take mu, so that
// claimPartition may wait for a task to exit while holding it.
type standbys struct {
	mu      sync.Mutex                // guards every field below
	tasks   map[int32]*standbyTask    // running standby tasks
	claimed map[int32]bool            // assigned (or being assigned) here: never a standby
	peers   map[string]InstanceStatus // latest status of every instance, from the status topic
}

// standbyTask tails one partition's changelog into the store.
type standbyTask struct {
	p       int32
	cancel  context.CancelFunc
	done    chan struct{} // closed when the task has stopped writing
	applied atomic.Int64  // next changelog offset, as committed to the store with the marker
	end     atomic.Int64  // the changelog's last stable offset, as last seen
}

// lag is the changelog records the task is behind.
func (t *standbyTask) lag() int64 { return max(0, t.end.Load()-t.applied.Load()) }

// StandbyPlacement returns, for each of the partitions 0..partitions-1, the
// instances that keep a standby copy of it: up to replicas of instances,
// never the partition's owner (owners[p]; absent if unknown), ranked for the
// partition by rendezvous hashing of (partition, instance id). It is a pure
// function of its arguments, so every instance that sees the same statuses
// derives the same placement; an instance joining or leaving moves only the
// standbys it ranks for. With replicas ≥ len(instances)-1 every instance but
// the owner is a standby. Cost: O(partitions × instances × log instances).
func StandbyPlacement(partitions int32, owners map[int32]string, instances []string, replicas int) map[int32][]string {
	out := make(map[int32][]string, partitions)
	if replicas <= 0 {
		return out
	}
	type ranked struct {
		id    string
		score uint64
	}
	for p := int32(0); p < partitions; p++ {
		var rs []ranked
		for _, id := range instances {
			if id != owners[p] {
				rs = append(rs, ranked{id, placementScore(p, id)})
			}
		}
		sort.Slice(rs, func(i, j int) bool {
			if rs[i].score != rs[j].score {
				return rs[i].score > rs[j].score
			}
			return rs[i].id < rs[j].id
		})
		for _, r := range rs[:min(replicas, len(rs))] {
			out[p] = append(out[p], r.id)
		}
	}
	return out
}

func placementScore(p int32, id string) uint64 {
	h := fnv.New64a()
	_ = binary.Write(h, binary.BigEndian, p)
	h.Write([]byte(id))
	x := h.Sum64() // FNV's low bits mix poorly; finish with splitmix64
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// placementInput derives the instances and owners from statuses: live ones
// only (a stale status is a dead instance), self always included. A
// partition two live statuses claim (a handover in flight) goes to the
// newer status, ties to the smaller id.
func placementInput(self string, peers map[string]InstanceStatus, now time.Time) ([]string, map[int32]string) {
	instances := []string{self}
	owners := map[int32]string{}
	at := map[int32]int64{}
	for id, s := range peers {
		if s.Stale(now) {
			continue
		}
		if id != self {
			instances = append(instances, id)
		}
		for _, p := range s.Owned {
			cur, ok := owners[p]
			if !ok || s.UpdatedAt > at[p] || (s.UpdatedAt == at[p] && id < cur) {
				owners[p], at[p] = id, s.UpdatedAt
			}
		}
	}
	sort.Strings(instances)
	return instances, owners
}

// wantedStandbys returns the partitions this instance should keep standbys
// of, from the statuses it has seen.
func (e *Engine) wantedStandbys(now time.Time) map[int32]bool {
	e.sb.mu.Lock()
	instances, owners := placementInput(e.cfg.InstanceID, e.sb.peers, now)
	e.sb.mu.Unlock()
	want := map[int32]bool{}
	for p, ids := range StandbyPlacement(e.partitions, owners, instances, e.cfg.StandbyReplicas) {
		if slices.Contains(ids, e.cfg.InstanceID) {
			want[p] = true
		}
	}
	return want
}

// runStandbys keeps the standby tasks in line with the placement until ctx
// is canceled, then stops them all. It tails the status topic to learn the
// live instances and who owns what.
func (e *Engine) runStandbys(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	defer e.stopStandbys()
	cl, err := kgo.NewClient(append(e.baseOpts(), kgo.ConsumeTopics(e.cfg.StatusTopic()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		e.log.Error("standby replicas disabled: creating the status reader", "error", err)
		return
	}
	defer cl.Close()
	next := time.Now()
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, e.cfg.StatusInterval/2)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(e.notePeer)
		// Not while joining or restoring: a fresh instance would otherwise
		// start tailing every partition owned elsewhere, competing with
		// the restore of its own (bench: a join pause 0.6s longer).
		if time.Now().After(next) && ctx.Err() == nil && e.Ready() {
			e.reconcileStandbys(ctx)
			next = time.Now().Add(e.cfg.StatusInterval / 2)
		}
	}
}

// notePeer records one status-topic record (a tombstone removes the
// instance).
func (e *Engine) notePeer(r *kgo.Record) {
	e.sb.mu.Lock()
	defer e.sb.mu.Unlock()
	if e.sb.peers == nil {
		e.sb.peers = map[string]InstanceStatus{}
	}
	if r.Value == nil {
		delete(e.sb.peers, string(r.Key))
		return
	}
	if s, err := DecodeStatus(r.Value); err == nil {
		e.sb.peers[string(r.Key)] = s
	}
}

// reconcileStandbys starts a task for every wanted partition that is not
// claimed here and stops the tasks no longer wanted.
func (e *Engine) reconcileStandbys(ctx context.Context) {
	want := e.wantedStandbys(time.Now())
	e.sb.mu.Lock()
	defer e.sb.mu.Unlock()
	for p, t := range e.sb.tasks {
		if !want[p] {
			e.stopTaskLocked(t)
		}
	}
	for p := range want {
		if e.sb.claimed[p] || e.sb.tasks[p] != nil {
			continue
		}
		if e.sb.tasks == nil {
			e.sb.tasks = map[int32]*standbyTask{}
		}
		tctx, cancel := context.WithCancel(ctx)
		t := &standbyTask{p: p, cancel: cancel, done: make(chan struct{})}
		e.sb.tasks[p] = t
		go e.runStandby(tctx, t)
	}
	e.m.standbys.Set(float64(len(e.sb.tasks)))
}

// stopTaskLocked cancels t and waits until it has stopped writing; e.sb.mu
// is held, so no task for the partition can start meanwhile.
func (e *Engine) stopTaskLocked(t *standbyTask) {
	t.cancel()
	<-t.done
	delete(e.sb.tasks, t.p)
	e.m.standbyLag.DeleteLabelValues(strconv.Itoa(int(t.p)))
	e.m.standbys.Set(float64(len(e.sb.tasks)))
}

// claimPartition marks p as owned here and stops its standby task, if any,
// waiting until the task's last batch and marker are committed or dropped:
// after it returns, only the partition's worker writes p's keys.
func (e *Engine) claimPartition(p int32) {
	e.sb.mu.Lock()
	defer e.sb.mu.Unlock()
	if e.sb.claimed == nil {
		e.sb.claimed = map[int32]bool{}
	}
	e.sb.claimed[p] = true
	if t := e.sb.tasks[p]; t != nil {
		e.stopTaskLocked(t)
		e.log.Info("standby handed over to the owner", "partition", p, "applied", t.applied.Load())
	}
}

// releasePartitions ends the claims on ps (revoked): they may become
// standbys again.
func (e *Engine) releasePartitions(ps []int32) {
	e.sb.mu.Lock()
	defer e.sb.mu.Unlock()
	for _, p := range ps {
		delete(e.sb.claimed, p)
	}
}

// releaseAllClaims ends every claim, when the session closes.
func (e *Engine) releaseAllClaims() {
	e.sb.mu.Lock()
	defer e.sb.mu.Unlock()
	clear(e.sb.claimed)
}

// stopStandbys stops every standby task.
func (e *Engine) stopStandbys() {
	e.sb.mu.Lock()
	defer e.sb.mu.Unlock()
	for _, t := range e.sb.tasks {
		e.stopTaskLocked(t)
	}
}

// standbyLags returns each standby partition's lag. Safe for concurrent use.
func (e *Engine) standbyLags() map[int32]int64 {
	e.sb.mu.Lock()
	defer e.sb.mu.Unlock()
	if len(e.sb.tasks) == 0 {
		return nil
	}
	out := make(map[int32]int64, len(e.sb.tasks))
	for p, t := range e.sb.tasks {
		out[p] = t.lag()
	}
	return out
}

// runStandby tails t's changelog until its context is canceled, starting
// again after an error.
func (e *Engine) runStandby(ctx context.Context, t *standbyTask) {
	defer close(t.done)
	e.log.Info("standby started", "partition", t.p)
	for ctx.Err() == nil {
		err := e.tailChangelog(ctx, t)
		if ctx.Err() != nil {
			return
		}
		e.log.Warn("standby task failed; retrying", "partition", t.p, "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// tailChangelog applies partition t.p's committed changelog records to the
// store from its marker on, committing each poll's records in one batch
// with the advanced marker: the store never holds changelog data its marker
// does not account for, and a crash or a handover loses at most an
// uncommitted batch, which the next reader replays.
func (e *Engine) tailChangelog(ctx context.Context, t *standbyTask) error {
	m, end, err := e.startingMarker(ctx, t.p)
	if err != nil {
		return err
	}
	t.applied.Store(m.ChangelogOffset)
	t.end.Store(end)
	cl, err := e.changelogReader(t.p, m.ChangelogOffset)
	if err != nil {
		return err
	}
	defer cl.Close()
	b := e.store.NewBatch()
	defer b.Close()
	label, prefix := strconv.Itoa(int(t.p)), state.PartitionPrefix(t.p)
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil // the uncommitted batch, if any, is dropped
		}
		if err := fetchErr(fs); err != nil {
			return err
		}
		n, err := applyFetched(fs, b, prefix, m, t)
		if err != nil {
			return err
		}
		if n > 0 {
			if err := commitRestore(b, t.p, m); err != nil {
				return err
			}
			t.applied.Store(m.ChangelogOffset)
			e.m.standbyRecords.Add(float64(n))
		}
		e.m.standbyLag.WithLabelValues(label).Set(float64(t.lag()))
	}
}

// applyFetched writes the records of fs to b, moving m past them, and
// records the changelog's last stable offset in t.
func applyFetched(fs kgo.Fetches, b state.Batch, prefix []byte, m *marker, t *standbyTask) (int, error) {
	n := 0
	for _, f := range fs {
		for _, ft := range f.Topics {
			for _, fp := range ft.Partitions {
				if fp.LastStableOffset > 0 {
					t.end.Store(fp.LastStableOffset)
				}
				for _, r := range fp.Records {
					if err := applyChangelogRecord(b, prefix, r, m); err != nil {
						return n, fmt.Errorf("standby of partition %d: %w", t.p, err)
					}
					n++
				}
			}
		}
	}
	return n, nil
}
