package engine

import "github.com/twmb/franz-go/pkg/kgo"

// partitioner sends records of co-partitioned topics (changelog, aggregates)
// to the partition set on the record, and every other record where Kafka's
// default murmur2 key partitioner would, so that channel senders can rely on
// per-user order within a partition.
type partitioner struct {
	manual map[string]bool
	dflt   kgo.Partitioner
}

func newPartitioner(manualTopics ...string) kgo.Partitioner {
	p := &partitioner{manual: map[string]bool{}, dflt: kgo.StickyKeyPartitioner(nil)}
	for _, t := range manualTopics {
		p.manual[t] = true
	}
	return p
}

func (p *partitioner) ForTopic(t string) kgo.TopicPartitioner {
	if p.manual[t] {
		return manualTopicPartitioner{}
	}
	return p.dflt.ForTopic(t)
}

type manualTopicPartitioner struct{}

func (manualTopicPartitioner) RequiresConsistency(*kgo.Record) bool { return true }
func (manualTopicPartitioner) Partition(r *kgo.Record, _ int) int   { return int(r.Partition) }
