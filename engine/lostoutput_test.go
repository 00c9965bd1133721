package engine_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairn-cjo/cairn/internal/broker"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
)

// TestEngineCommitWaitsForEveryProduce reproduces, deterministically, the
// outputs lost when the engine chose to commit before every produce of the
// transaction was answered (engine/loop.go, outcome). The broker holds back
// the answer to one Produce request carrying counter outputs for a second,
// long past the moment the engine flushes its workers and chooses commit
// or abort, then fails it. Choosing commit from the produce errors seen so
// far commits the transaction without those outputs: their input offsets
// are committed, so they are never produced again. Waiting for every answer
// first sees the failure, aborts, and reprocesses.
func TestEngineCommitWaitsForEveryProduce(t *testing.T) {
	b := kafkatest.Start(t, broker.Options{})
	addrs := b.Addrs()
	kafkatest.CreateTopic(t, addrs, input, 4, nil)
	first := genEvents("a", 20, 200, 1_700_000_000_000)
	kafkatest.ProduceEvents(t, addrs, input, first)
	startInstance(t, addrs, "one", t.TempDir(), nil)
	kafkatest.WaitCounts(t, addrs, countsOut, len(first))

	id := topicID(t, addrs, countsOut)
	var armed, delayed atomic.Bool
	armed.Store(true)
	c := b.Cluster()
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		if !producesTo(pr, countsOut, id) || !armed.CompareAndSwap(true, false) {
			return nil, nil, false
		}
		c.SleepControl(func() { time.Sleep(time.Second) }) // other connections run meanwhile
		delayed.Store(true)
		return failedProduce(pr, kerr.UnknownServerError), nil, true
	})
	second := genEvents("b", 20, 200, 1_700_000_010_000)
	kafkatest.ProduceEvents(t, addrs, input, second)
	kafkatest.WaitConsumed(t, addrs, "test", input)
	if !delayed.Load() {
		t.Fatal("no produce of counter outputs was held back: the test exercised nothing")
	}
	all := append(first, second...)
	tally := kafkatest.TallyCounts(all, kafkatest.WaitCounts(t, addrs, countsOut, 0))
	if !tally.Exact() {
		t.Fatalf("after a produce answered late with an error: %+v", tally)
	}
}

// producesTo reports whether req carries records for topic, named or (from
// Produce v13) by its id.
func producesTo(req *kmsg.ProduceRequest, topic string, id [16]byte) bool {
	for _, tp := range req.Topics {
		if tp.Topic == topic || tp.TopicID == id {
			return true
		}
	}
	return false
}

// failedProduce answers req with err on every partition it carries.
func failedProduce(req *kmsg.ProduceRequest, err *kerr.Error) *kmsg.ProduceResponse {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	for _, tp := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic, rt.TopicID = tp.Topic, tp.TopicID
		for _, p := range tp.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, err.Code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// topicID returns the id of topic, which must exist.
func topicID(t *testing.T, addrs []string, topic string) [16]byte {
	t.Helper()
	td, err := kadm.NewClient(kafkatest.Client(t, addrs)).ListTopics(context.Background(), topic)
	if err != nil || td[topic].Err != nil {
		t.Fatalf("describing %s: %v %v", topic, err, td[topic].Err)
	}
	return td[topic].ID
}
