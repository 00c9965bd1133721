package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/broker"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
)

// TestReset deletes an app's internal topics and group as an operator
// would: refused while an instance runs, kept when the confirmation is
// wrong, done when it is right; the input and the other app's topics stay.
func TestReset(t *testing.T) {
	b := kafkatest.Start(t, broker.Options{})
	addrs := b.Addrs()
	for _, tp := range []string{"events", "shop-changelog", "shop-aggregates", "other-changelog"} {
		kafkatest.CreateTopic(t, addrs, tp, 2, nil)
	}
	adm := kadm.NewClient(kafkatest.Client(t, addrs))
	ctx := context.Background()
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "events", Partition: 0, At: 5})
	if _, err := adm.CommitOffsets(ctx, "shop", offs); err != nil {
		t.Fatal(err)
	}
	reset := func(stdin string, args ...string) (string, error) {
		var out bytes.Buffer
		err := cmdReset(ctx, append([]string{"--brokers", addrs[0], "--app-id", "shop"}, args...), strings.NewReader(stdin), &out)
		return out.String(), err
	}

	// A running member: refused, nothing deleted.
	member := kafkatest.Client(t, addrs, kgo.ConsumerGroup("shop"), kgo.ConsumeTopics("events"))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		member.PollFetches(pctx)
		cancel()
		if gs, _ := adm.DescribeGroups(ctx, "shop"); len(gs["shop"].Members) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if _, err := reset("", "--yes"); !errors.Is(err, engine.ErrGroupActive) {
		t.Fatalf("reset with a running member: %v, want ErrGroupActive", err)
	}
	member.LeaveGroup()
	member.Close()

	out, err := reset("oops\n")
	if err == nil || !strings.Contains(err.Error(), "not confirmed") {
		t.Fatalf("wrong confirmation: %v", err)
	}
	for _, want := range []string{"topic shop-aggregates", "topic shop-changelog", "consumer group shop", "keeps events"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan does not say %q:\n%s", want, out)
		}
	}
	if _, err := reset("shop\n"); err != nil {
		t.Fatalf("confirmed reset: %v", err)
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if topics.Has("shop-changelog") || topics.Has("shop-aggregates") || !topics.Has("events") || !topics.Has("other-changelog") {
		t.Errorf("topics after reset: %v", topics.Names())
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := groups["shop"]; ok {
		t.Error("group shop still exists")
	}
	if out, err := reset(""); err != nil || !strings.Contains(out, "nothing to reset") {
		t.Errorf("second reset: %q, %v", out, err)
	}
}
