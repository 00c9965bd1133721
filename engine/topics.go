package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ErrPartitionMismatch is returned by EnsureTopics when a co-partitioned
// internal topic exists with a partition count other than the input's.
var ErrPartitionMismatch = errors.New("partition count mismatch")

// ErrNoInputTopic is returned by EnsureTopics when the input topic is
// missing: its partition count is the unit of scale and is chosen by the
// operator, never guessed.
var ErrNoInputTopic = errors.New("input topic does not exist")

// TopicPlan lists the topics an engine needs.
type TopicPlan struct {
	Input        string
	CoPartition  []string // compacted, same partition count as the input
	Plain        []string // any partition count; created with the input's
	Single       []string // compacted, one partition (the status topic)
	InputDefault int32    // if > 0, create a missing input with this many partitions
}

// Plan returns the topics the engine needs for cfg and the operators' output
// topics: <app>-changelog and <app>-aggregates (compacted, co-partitioned),
// <input>.dlq and every declared output topic.
func (c *Config) Plan(ops []Operator) TopicPlan {
	p := TopicPlan{Input: c.InputTopic, CoPartition: []string{c.ChangelogTopic(), c.AggregatesTopic()}, Single: []string{c.StatusTopic()}}
	seen := map[string]bool{c.DLQTopic(): true}
	p.Plain = append(p.Plain, c.DLQTopic())
	for _, op := range ops {
		if d, ok := op.(TopicDeclarer); ok {
			for _, t := range d.OutputTopics() {
				if !seen[t] && t != c.AggregatesTopic() {
					seen[t] = true
					p.Plain = append(p.Plain, t)
				}
			}
		}
	}
	sort.Strings(p.Plain[1:])
	return p
}

// EnsureTopics creates the missing topics of plan and checks the partition
// counts of existing co-partitioned ones. It returns the input's partition
// count.
func EnsureTopics(ctx context.Context, adm *kadm.Client, plan TopicPlan) (int32, error) {
	n, err := ensureInput(ctx, adm, plan)
	if err != nil {
		return 0, err
	}
	details, err := adm.ListTopics(ctx, append(append(append([]string(nil), plan.CoPartition...), plan.Plain...), plan.Single...)...)
	if err != nil {
		return 0, fmt.Errorf("listing topics: %w", err)
	}
	compact := map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}
	for _, t := range plan.CoPartition {
		if d, ok := details[t]; ok && d.Err == nil {
			if got := int32(len(d.Partitions)); got != n {
				return 0, fmt.Errorf("topic %s has %d partitions but input %s has %d; it must be co-partitioned: delete it (processor reset) or use another --app-id: %w",
					t, got, plan.Input, n, ErrPartitionMismatch)
			}
			continue
		}
		if err := create(ctx, adm, t, n, compact); err != nil {
			return 0, err
		}
	}
	for _, t := range plan.Plain {
		if d, ok := details[t]; ok && d.Err == nil {
			continue
		}
		if err := create(ctx, adm, t, n, nil); err != nil {
			return 0, err
		}
	}
	for _, t := range plan.Single {
		if d, ok := details[t]; ok && d.Err == nil {
			continue
		}
		if err := create(ctx, adm, t, 1, compact); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func ensureInput(ctx context.Context, adm *kadm.Client, plan TopicPlan) (int32, error) {
	details, err := adm.ListTopics(ctx, plan.Input)
	if err != nil {
		return 0, fmt.Errorf("listing input topic %s: %w", plan.Input, err)
	}
	if d, ok := details[plan.Input]; ok && d.Err == nil && len(d.Partitions) > 0 {
		return int32(len(d.Partitions)), nil
	}
	if plan.InputDefault <= 0 {
		return 0, fmt.Errorf("topic %s: %w; create it with the partition count you want to scale to", plan.Input, ErrNoInputTopic)
	}
	if err := create(ctx, adm, plan.Input, plan.InputDefault, nil); err != nil {
		return 0, err
	}
	return plan.InputDefault, nil
}

func create(ctx context.Context, adm *kadm.Client, topic string, n int32, cfg map[string]*string) error {
	resp, err := adm.CreateTopic(ctx, n, -1, cfg, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("creating topic %s: %w", topic, err)
	}
	return nil
}
