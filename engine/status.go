package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/state"
)

// InstanceStatus is what an instance publishes about itself, about every
// StatusInterval, to the compacted topic <app-id>-status, keyed by its
// instance id (a tombstone when it stops cleanly). `processor status`
// prints them, and the HTTP API finds there which instance owns a
// partition, to forward a request to it.
type InstanceStatus struct {
	Instance   string          `json:"instance"`
	HTTP       string          `json:"http,omitempty"` // advertised API address, host:port
	Owned      []int32         `json:"owned"`
	Restoring  map[int32]int64 `json:"restoring,omitempty"` // partition -> changelog records left
	Lag        map[int32]int64 `json:"lag,omitempty"`       // partition -> input records behind
	StateBytes uint64          `json:"state_bytes"`         // estimate, owned partitions
	Standby    map[int32]int64 `json:"standby,omitempty"`   // standby partition -> changelog records behind
	// StandbyBytes estimates the state of the standby partitions.
	StandbyBytes uint64 `json:"standby_bytes,omitempty"`
	Ready        bool   `json:"ready"`
	UpdatedAt    int64  `json:"updated_at"` // ms since the epoch, wall clock
	Interval     int64  `json:"interval_ms"`
}

// Stale reports whether s is older than three of its intervals at now: its
// instance probably died without a tombstone.
func (s InstanceStatus) Stale(now time.Time) bool {
	return now.UnixMilli()-s.UpdatedAt > 3*max(s.Interval, 1)
}

// Owns reports whether s lists partition p as owned.
func (s InstanceStatus) Owns(p int32) bool { return slices.Contains(s.Owned, p) }

// DecodeStatus decodes a value of the status topic.
func DecodeStatus(v []byte) (InstanceStatus, error) {
	var s InstanceStatus
	if err := json.Unmarshal(v, &s); err != nil {
		return s, fmt.Errorf("decoding instance status: %w", err)
	}
	return s, nil
}

// StatusTopic is "<app-id>-status".
func (c *Config) StatusTopic() string { return c.AppID + "-status" }

// Status returns the instance's status now. Safe for concurrent use.
func (e *Engine) Status() InstanceStatus {
	s := InstanceStatus{Instance: e.cfg.InstanceID, HTTP: e.cfg.AdvertiseHTTP, Owned: e.Owned(),
		Ready: e.Ready(), UpdatedAt: time.Now().UnixMilli(), Interval: e.cfg.StatusInterval.Milliseconds()}
	e.mu.Lock()
	for p, w := range e.workers {
		if s.Lag == nil {
			s.Lag = map[int32]int64{}
		}
		s.Lag[p] = w.lag.Load()
	}
	for p, n := range e.restoring {
		if s.Restoring == nil {
			s.Restoring = map[int32]int64{}
		}
		s.Restoring[p] = n
	}
	e.mu.Unlock()
	s.StateBytes = e.diskUsage(s.Owned)
	s.Standby = e.standbyLags()
	for p := range s.Standby {
		s.StandbyBytes += e.diskUsage([]int32{p})
	}
	return s
}

// diskUsage estimates the store's bytes of partitions ps.
func (e *Engine) diskUsage(ps []int32) uint64 {
	var total uint64
	for _, p := range ps {
		pre := state.PartitionPrefix(p)
		if n, err := e.store.DiskUsage(pre, state.PrefixEnd(pre)); err == nil {
			total += n
		}
	}
	return total
}

// setRestoring records the changelog records left to restore partition p;
// done removes it.
func (e *Engine) setRestoring(p int32, left int64, done bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if done {
		delete(e.restoring, p)
		return
	}
	if e.restoring == nil {
		e.restoring = map[int32]int64{}
	}
	e.restoring[p] = left
}

// publishStatus produces the instance's status every StatusInterval until
// ctx is canceled, then a tombstone. It uses its own plain (not
// transactional) producer: the status is informational and must flow while
// a transaction is open or a restore runs. Errors are logged and retried at
// the next interval.
func (e *Engine) publishStatus(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	cl, err := kgo.NewClient(append(e.baseOpts(), kgo.DefaultProduceTopic(e.cfg.StatusTopic()))...)
	if err != nil {
		e.log.Warn("status publisher not started", "error", err)
		return
	}
	defer cl.Close()
	key := []byte(e.cfg.InstanceID)
	t := time.NewTicker(e.cfg.StatusInterval)
	defer t.Stop()
	for {
		v, _ := json.Marshal(e.Status())
		pctx, cancel := context.WithTimeout(ctx, e.cfg.StatusInterval)
		if err := cl.ProduceSync(pctx, &kgo.Record{Key: key, Value: v}).FirstErr(); err != nil && ctx.Err() == nil {
			e.log.Warn("publishing instance status", "topic", e.cfg.StatusTopic(), "error", err)
		}
		cancel()
		select {
		case <-t.C:
		case <-ctx.Done():
			tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = cl.ProduceSync(tctx, &kgo.Record{Key: key}).FirstErr() // tombstone: this instance is gone
			cancel()
			return
		}
	}
}

// SortStatuses orders statuses by instance id.
func SortStatuses(ss []InstanceStatus) {
	sort.Slice(ss, func(i, j int) bool { return ss[i].Instance < ss[j].Instance })
}
