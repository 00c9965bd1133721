package journey

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/cairn-cjo/cairn/engine"
)

// Stats are the counters of one journey version: on one partition as
// upserted to the aggregates topic, or summed over partitions by SumStats.
// docs/journeys.md documents the JSON shape. A Stats value is not safe for
// concurrent use.
type Stats struct {
	Journey string `json:"journey"`
	Version int    `json:"version"`
	// Partition is the partition of a per-partition value, -1 in a sum;
	// Partitions is the number of values in a sum.
	Partition  int32 `json:"partition"`
	Partitions int   `json:"partitions,omitempty"`

	Entered        int64                 `json:"entered"`         // treatment entries
	EnteredHoldout int64                 `json:"entered_holdout"` // held-out entries
	Active         int64                 `json:"active"`          // instances now in the journey, both arms
	Exited         int64                 `json:"exited"`
	Exits          map[string]int64      `json:"exits"` // by reason
	Actions        int64                 `json:"actions"`
	Suppressed     int64                 `json:"suppressed"`
	Goals          GoalStats             `json:"goals"`
	EvalErrors     int64                 `json:"eval_errors"` // expressions that failed at run time
	Nodes          map[string]*NodeStats `json:"nodes"`
}

// GoalStats counts goal conversions per arm.
type GoalStats struct {
	Treatment int64 `json:"treatment"`
	Holdout   int64 `json:"holdout"`
}

// NodeStats are the counters of one node.
type NodeStats struct {
	Entered    int64 `json:"entered"`
	Current    int64 `json:"current"` // instances on the node now
	Exited     int64 `json:"exited"`  // instances that left it, by any route
	Actions    int64 `json:"actions"`
	Suppressed int64 `json:"suppressed"`
}

func (s *Stats) node(id string) *NodeStats {
	if s.Nodes == nil {
		s.Nodes = map[string]*NodeStats{}
	}
	n := s.Nodes[id]
	if n == nil {
		n = &NodeStats{}
		s.Nodes[id] = n
	}
	return n
}

// add adds o's counters to s.
func (s *Stats) add(o *Stats) {
	s.Entered += o.Entered
	s.EnteredHoldout += o.EnteredHoldout
	s.Active += o.Active
	s.Exited += o.Exited
	s.Actions += o.Actions
	s.Suppressed += o.Suppressed
	s.Goals.Treatment += o.Goals.Treatment
	s.Goals.Holdout += o.Goals.Holdout
	s.EvalErrors += o.EvalErrors
	for k, v := range o.Exits {
		if s.Exits == nil {
			s.Exits = map[string]int64{}
		}
		s.Exits[k] += v
	}
	for k, v := range o.Nodes {
		n := s.node(k)
		n.Entered += v.Entered
		n.Current += v.Current
		n.Exited += v.Exited
		n.Actions += v.Actions
		n.Suppressed += v.Suppressed
	}
}

// StatsKey is the aggregates-topic key of the counters of a journey
// version on a partition: "journey/<id>/<version>/<partition>".
func StatsKey(journey string, version int, partition int32) string {
	return StatsKeyPrefix(journey) + strconv.Itoa(version) + "/" + strconv.Itoa(int(partition))
}

// StatsKeyPrefix is the prefix of every aggregates-topic key of journey.
// Journey ids cannot contain "/", so the prefix matches no other journey.
func StatsKeyPrefix(journey string) string { return "journey/" + journey + "/" }

// SumStats sums per-partition Stats values (JSON, as upserted to the
// aggregates topic) into one Stats per journey version, sorted by journey
// and version. Values of different partitions of the same version are
// added; pass each partition's latest value once.
func SumStats(values [][]byte) ([]*Stats, error) {
	sums := map[statKey]*Stats{}
	for i, b := range values {
		var s Stats
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("decoding journey stats value %d: %w", i, err)
		}
		k := statKey{s.Journey, s.Version}
		sum := sums[k]
		if sum == nil {
			sum = &Stats{Journey: s.Journey, Version: s.Version, Partition: -1,
				Exits: map[string]int64{}, Nodes: map[string]*NodeStats{}}
			sums[k] = sum
		}
		sum.Partitions++
		sum.add(&s)
	}
	out := make([]*Stats, 0, len(sums))
	for _, s := range sums {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].less(out[j]) })
	return out, nil
}

func (s *Stats) less(o *Stats) bool {
	if s.Journey != o.Journey {
		return s.Journey < o.Journey
	}
	return s.Version < o.Version
}

// statKey names one journey version.
type statKey struct {
	id string
	v  int
}

func (k statKey) sub() []byte { return []byte(statPrefix + k.id + "/" + strconv.Itoa(k.v)) }

// stat returns the partition's counters of a journey version, read once
// per call and marked for writing: call it only to change a counter.
func (r *run) stat(id string, v int) *Stats {
	k := statKey{id, v}
	buf := r.ctx.TxnBuffer(newTxnStats).(txnStats)
	if s, ok := buf[k]; ok {
		return s
	}
	s := &Stats{Journey: id, Version: v, Partition: r.ctx.Partition()}
	b, err := r.ctx.GetShared(k.sub())
	if err != nil {
		r.err = err // returned by flush; the call fails
	} else if b != nil {
		if err := decode(b, s); err != nil {
			// Counters are advisory: restart them rather than stop the
			// partition, and say so.
			r.ctx.Logger().Error("resetting unreadable journey stats", "journey", id, "version", v, "err", err)
			s = &Stats{Journey: id, Version: v, Partition: r.ctx.Partition()}
		}
	}
	buf[k] = s
	return s
}

// statsErr returns the error of a stats read during the run, if any.
func (r *run) statsErr() error {
	if r.err != nil {
		return fmt.Errorf("reading journey stats: %w", r.err)
	}
	return nil
}

// txnStats is the operator's transaction buffer (engine.Context.TxnBuffer):
// the counters of every journey version the transaction changed, so that
// each is encoded, written and upserted once per transaction, not once per
// event. Not safe for concurrent use; one belongs to one partition worker.
type txnStats map[statKey]*Stats

func newTxnStats() any { return txnStats{} }

// Flush writes the transaction's changed counters and upserts them to the
// aggregates topic, in key order. It implements engine.Flusher.
func (o *Operator) Flush(ctx *engine.Context, b any) error {
	stats := b.(txnStats)
	keys := make([]statKey, 0, len(stats))
	for k := range stats {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].id < keys[j].id || keys[i].id == keys[j].id && keys[i].v < keys[j].v
	})
	for _, k := range keys {
		s := stats[k]
		v, err := encode(s)
		if err != nil {
			return err
		}
		if err := ctx.SetShared(k.sub(), v); err != nil {
			return err
		}
		j, err := json.Marshal(s)
		if err != nil {
			return fmt.Errorf("encoding journey stats: %w", err)
		}
		ctx.Upsert(engineOutput(o.opts.AggregatesTopic, StatsKey(k.id, k.v, ctx.Partition()), j))
	}
	return nil
}

func engineOutput(topic, key string, value []byte) engine.Output {
	return engine.Output{Topic: topic, Key: []byte(key), Value: value}
}

var _ engine.Flusher = (*Operator)(nil)
