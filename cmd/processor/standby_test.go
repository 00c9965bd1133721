package main

import (
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/cairn-cjo/cairn/internal/kafkatest"
)

// TestStandbyTakeoverAfterSIGKILL runs two instances with one standby
// replica while events keep arriving, SIGKILLs the first once its partitions
// have a caught-up standby on the second, and lets the second take them
// over from its standby copies. The committed outputs must be exactly one
// per event, in order, and the takeover must replay only a tail of the
// changelog.
func TestStandbyTakeoverAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a real process")
	}
	addrs, defs := counterSetup(t)
	args := func(id string) []string {
		return []string{"run", "--brokers", addrs[0], "--app-id", "sb", "--definitions", defs,
			"--state-dir", t.TempDir(), "--http", "127.0.0.1:0", "--instance-id", id, "--standby-replicas", "1",
			"--status-interval", "200ms", "--commit-interval", "50ms", "--session-timeout", "3s",
			"--rebalance-timeout", "6s", "--transaction-timeout", "10s", "--log-level", "info"}
	}
	evs := feed(t, addrs, 100, 60, 100*time.Millisecond)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 2))
	a := startChild(t, args("a")...)
	a.waitLog(t, "partitions assigned")
	b := startChild(t, args("b")...)
	b.waitLog(t, "partitions assigned")
	b.waitLog(t, "standby started")
	time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond) // a lands anywhere in a's commit cycle
	a.kill()
	b.waitLog(t, "standby handed over to the owner")
	all := evs()
	outs := kafkatest.WaitCounts(t, addrs, "counts", len(all))
	if code := b.term(t); code != 0 {
		t.Errorf("b exited %d after SIGTERM, want 0", code)
	}
	reportCounts(t, addrs, kafkatest.ChaosRow{Scenario: "SIGKILL of an owner, its standby takes over", Cycles: 1, Seed: seed}, all, outs)
	replayed, size := takeoverReplay(t, b)
	t.Logf("seed %d: %d events exact; takeover replayed %d of %d changelog records", seed, len(all), replayed, size)
	if size == 0 || replayed*2 > size {
		t.Errorf("takeover replayed %d of %d changelog records; a standby should leave only the tail", replayed, size)
	}
}

var restoredRe = regexp.MustCompile(`msg="restored partition" partition=\d+ changelog_from=(\d+) changelog_end=(\d+)`)

// takeoverReplay sums, over b's restores after a standby handover, the
// changelog records replayed and the changelog's end offsets.
func takeoverReplay(t *testing.T, b *child) (replayed, size int64) {
	t.Helper()
	log, err := os.ReadFile(b.log.Name())
	if err != nil {
		t.Fatal(err)
	}
	at := regexp.MustCompile(`msg="standby handed over`).FindIndex(log)
	if at == nil {
		t.Fatal("no standby handover in b's log")
	}
	for _, m := range restoredRe.FindAllSubmatch(log[at[0]:], -1) {
		from, _ := strconv.ParseInt(string(m[1]), 10, 64)
		end, _ := strconv.ParseInt(string(m[2]), 10, 64)
		replayed += end - from
		size += end
	}
	return replayed, size
}
