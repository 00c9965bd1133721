// Package kafkatest holds test helpers that talk the real Kafka protocol to
// an embedded kfake broker: start a broker, create topics, produce events,
// and read a topic's committed records to the end.
package kafkatest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/broker"
)

// Start starts an in-memory broker on a random port, closed with the test.
func Start(t testing.TB, o broker.Options) *broker.Broker {
	t.Helper()
	b, err := broker.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// Client returns a plain client for addrs, closed with the test.
func Client(t testing.TB, addrs []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// CreateTopic creates topic with n partitions.
func CreateTopic(t testing.TB, addrs []string, topic string, n int32, cfg map[string]*string) {
	t.Helper()
	adm := kadm.NewClient(Client(t, addrs))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, n, -1, cfg, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("creating %s: %v", topic, err)
	}
}

// Event is the wire form of an input event (docs/events.md).
type Event struct {
	UserID  string         `json:"user_id"`
	Event   string         `json:"event"`
	TS      int64          `json:"ts"`
	Props   map[string]any `json:"props,omitempty"`
	EventID string         `json:"event_id,omitempty"`
}

// ProduceEvents produces evs to topic, keyed by user, with the default
// (murmur2) partitioner, and waits for every ack.
func ProduceEvents(t testing.TB, addrs []string, topic string, evs []Event) {
	t.Helper()
	ProduceRecords(t, addrs, EventRecords(t, topic, evs))
}

// EventRecords returns evs as records of topic, keyed by user.
func EventRecords(t testing.TB, topic string, evs []Event) []*kgo.Record {
	t.Helper()
	rs := make([]*kgo.Record, len(evs))
	for i, ev := range evs {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		rs[i] = &kgo.Record{Topic: topic, Key: []byte(ev.UserID), Value: b}
	}
	return rs
}

// ProduceRecords produces rs and waits for every ack.
func ProduceRecords(t testing.TB, addrs []string, rs []*kgo.Record) {
	t.Helper()
	cl := Client(t, addrs, kgo.ProducerLinger(5*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
}

// ReadCommitted returns every committed record of topic, reading each
// partition up to its last stable offset at the time of the call.
func ReadCommitted(t testing.TB, addrs []string, topic string) []*kgo.Record {
	t.Helper()
	rs, err := ReadCommittedErr(addrs, topic, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// ReadCommittedErr is ReadCommitted returning an error instead of failing.
func ReadCommittedErr(addrs []string, topic string, timeout time.Duration) ([]*kgo.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return engine.ReadCommitted(ctx, topic, kgo.SeedBrokers(addrs...))
}

// WaitGroupEmpty waits until consumer group has no members, for example
// after every instance in it was killed, so that the next instance to join
// starts from a group of one.
//
// Tests that kill processes call it before starting the instance they wait
// on. kfake (as of v0.0.0-20260918054303) keeps a member forever when its
// connection dies while its JoinGroup is parked and the leader syncs first:
// the failed JoinGroup reply never arms the member's session timer, so it
// owns its partitions until the next join. Apache Kafka arms the timer for
// every member when a join completes, so such a member expires after its
// session timeout there.
func WaitGroupEmpty(t testing.TB, addrs []string, group string) {
	t.Helper()
	adm := kadm.NewClient(Client(t, addrs))
	var last string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		gs, err := adm.DescribeGroups(ctx, group)
		cancel()
		if err != nil {
			last = err.Error()
			continue
		}
		g, ok := gs[group]
		if errors.Is(g.Err, kerr.GroupIDNotFound) {
			return // never joined, or deleted
		}
		if !ok || g.Err != nil {
			last = fmt.Sprint(g.Err)
			continue
		}
		if len(g.Members) == 0 {
			return
		}
		last = fmt.Sprintf("state %s, %d members", g.State, len(g.Members))
	}
	t.Fatalf("group %s still has members after 60s (%s)", group, last)
}

// WaitConsumed waits up to 120s until group has committed every offset of
// topic, failing the test if it does not.
func WaitConsumed(t testing.TB, addrs []string, group, topic string) {
	t.Helper()
	adm := kadm.NewClient(Client(t, addrs))
	ctx := context.Background()
	for deadline := time.Now().Add(120 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ends, err1 := adm.ListEndOffsets(ctx, topic)
		offs, err2 := adm.FetchOffsets(ctx, group)
		if err1 != nil || err2 != nil {
			continue
		}
		done := true
		ends.Each(func(e kadm.ListedOffset) {
			if c, ok := offs.Lookup(topic, e.Partition); e.Offset > 0 && (!ok || c.At < e.Offset) {
				done = false
			}
		})
		if done {
			return
		}
	}
	t.Fatalf("group %s did not consume %s within 120s", group, topic)
}
