package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/internal/broker"
	"github.com/cairn-cjo/cairn/internal/failpoint"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
)

// The failpoint tests run the processor as a child with CAIRN_FAILPOINT set
// to one named point and a random hit number, so that it SIGKILLs itself
// there (internal/failpoint); they restart it cycle after cycle, then let a
// clean instance finish and check the committed outputs exactly.
//
// A cycle in which the point is not reached fails the test: every hit
// number is drawn from a range the cycle's work is sure to reach, so a miss
// means the point is not where it claims to be.
//
// Points that strike with a transaction open must leave aborted
// transactions on the broker. The producer lingers 10 ms before it sends,
// so a kill within milliseconds of a transaction's first output leaves
// nothing on the broker to abort. Those scenarios therefore keep the input
// paused while a new instance catches up, draw the hit past the catch-up,
// and resume a steady stream of small polls under a long commit interval:
// the kill then falls in a transaction whose earlier polls' outputs were
// sent.

// failpointCycles is the number of kills per point: 3 in make test,
// CAIRN_CHAOS_CYCLES in make chaos.
func failpointCycles() int {
	if os.Getenv("CAIRN_CHAOS_CYCLES") != "" {
		return crashCycles()
	}
	return 3
}

// failpointTimeout bounds one cycle: start-up, a group join that waits for
// the previous (killed) member's session to expire, a catch-up and the work
// up to the hit. Cycles normally take a few seconds; only a miss waits this
// long.
const failpointTimeout = 90 * time.Second

// TestFailpoints kills the processor at every named failpoint, several
// times at random hits of the point, and checks that the committed outputs
// are exactly those of a fault-free run and that no transaction is left
// hanging.
func TestFailpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes")
	}
	cases := []struct {
		point    string
		maxHit   int           // hits are drawn past the catch-up, within maxHit
		interval time.Duration // --commit-interval
		midTxn   bool          // a transaction is open on the broker when it strikes
		run      func(t *testing.T, sc scenario) kafkatest.TxnStats
	}{
		{failpoint.MidBatch, 1000, 500 * time.Millisecond, true, counterFailpoints},
		{failpoint.BeforeEndTxn, 5, 500 * time.Millisecond, true, counterFailpoints},
		{failpoint.EndTxnSent, 10, 50 * time.Millisecond, false, counterFailpoints},
		{failpoint.BeforeApply, 10, 50 * time.Millisecond, false, counterFailpoints},
		{failpoint.MidRestore, 0, 50 * time.Millisecond, false, restoreFailpoints}, // maxHit: the changelog's size
		{failpoint.MidBroadcast, 200, time.Second, true, broadcastFailpoints},
	}
	if kills := len(failpoint.Names) - len(failpoint.Freezes); len(cases) != kills { // freezes: TestFrozenCommitAfterTakeover
		t.Fatalf("%d scenarios for %d failpoints that kill: every point needs one", len(cases), kills)
	}
	cycles := failpointCycles()
	for _, tc := range cases {
		t.Run(tc.point, func(t *testing.T) {
			t.Parallel()
			sc := scenario{point: tc.point, app: "fp-" + tc.point, cycles: cycles, maxHit: tc.maxHit, interval: tc.interval}
			txns := tc.run(t, sc)
			if tc.midTxn && txns.Aborted == 0 {
				t.Errorf("%d kills at %s left no aborted transaction: the point did not strike mid-transaction", cycles, tc.point)
			}
		})
	}
}

// scenario is one failpoint's campaign.
type scenario struct {
	point    string
	app      string // app id: consumer group and topic prefix
	cycles   int
	maxHit   int
	interval time.Duration
	addrs    []string
	defs     string
	feed     *feeder // live input, paused during catch-ups; nil: none
	// base returns the most hits a new instance makes catching up with
	// backlog input records; the drawn hit comes after them.
	base func(backlog int64) int
	seed uint64 // of the kill campaign, for the report
}

// args returns the flags of the scenario's instances: one stable instance
// id, so that each start fences the open transaction of the instance killed
// before it.
func (sc *scenario) args(stateDir string, extra ...string) []string {
	return append([]string{"run", "--brokers", sc.addrs[0], "--app-id", sc.app, "--definitions", sc.defs,
		"--state-dir", stateDir, "--http", "127.0.0.1:0", "--instance-id", sc.app + "-1",
		"--commit-interval", sc.interval.String(), "--session-timeout", "2s", "--rebalance-timeout", "4s",
		"--transaction-timeout", "10s", "--log-level", "info"}, extra...)
}

// killCampaign runs sc.cycles children, cycle i with args(i) and
// CAIRN_FAILPOINT=point@N, each until it dies at the point. It fails the
// test for each cycle that missed the point and returns their number.
func (sc *scenario) killCampaign(t *testing.T, args func(i int) []string) (missed int) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	sc.seed = seed
	rng := rand.New(rand.NewPCG(seed, 11))
	hits := make([]string, sc.cycles)
	for i := range hits {
		if sc.feed != nil {
			sc.feed.pause()
		}
		n := 1 + rng.IntN(sc.maxHit)
		if sc.base != nil {
			n += sc.base(backlog(t, sc.addrs, sc.app))
		}
		hits[i] = fmt.Sprintf("%s@%d", sc.point, n)
		if !sc.cycle(t, hits[i], args(i)) {
			missed++
			t.Errorf("cycle %d: %s never reached within %s", i, hits[i], failpointTimeout)
		}
	}
	if sc.feed != nil {
		sc.feed.resume()
	}
	t.Logf("seed %d, failpoints %v, %d missed", seed, hits, missed)
	return missed
}

// cycle runs one child with CAIRN_FAILPOINT=fp and waits for it to die at
// the point, resuming the paused feed once the child caught up with the
// input. It returns false, after killing the child itself, if the point was
// not reached within failpointTimeout; it fails the test if the child ended
// in any other way.
func (sc *scenario) cycle(t *testing.T, fp string, args []string) bool {
	t.Helper()
	c := startChildEnv(t, []string{failpoint.EnvVar + "=" + fp}, args...)
	exited := c.watch()
	if sc.feed != nil {
		waitCaughtUp(t, sc.addrs, sc.app, exited)
		sc.feed.resume()
	}
	select {
	case <-exited:
	case <-time.After(failpointTimeout):
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		return false
	}
	ws := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%s: processor ended with %v, not by SIGKILL at the failpoint (log %s)", fp, c.cmd.ProcessState, c.log.Name())
	}
	if b, _ := os.ReadFile(c.log.Name()); !strings.Contains(string(b), "failpoint reached") {
		t.Fatalf("%s: processor died of SIGKILL without reaching its failpoint (log %s)", fp, c.log.Name())
	}
	return true
}

// watch waits for the child in the background; the channel closes when it
// has ended. Use it instead of term and kill, not with them.
func (c *child) watch() <-chan struct{} {
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	return done
}

// backlog returns how many records of the events topic group has not
// committed yet.
func backlog(t *testing.T, addrs []string, group string) int64 {
	t.Helper()
	adm := kadm.NewClient(kafkatest.Client(t, addrs))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, "events")
	if err != nil {
		t.Fatalf("listing end offsets: %v", err)
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) { // nothing committed yet
		offs, err = kadm.OffsetResponses{}, nil
	}
	if err != nil {
		t.Fatalf("fetching offsets of %s: %v", group, err)
	}
	var n int64
	ends.Each(func(e kadm.ListedOffset) {
		c, ok := offs.Lookup("events", e.Partition)
		switch {
		case !ok || c.At < 0:
			n += e.Offset
		case c.At < e.Offset:
			n += e.Offset - c.At
		}
	})
	return n
}

// waitCaughtUp waits until group has committed every record of the events
// topic, or until exited closes (the point struck during the catch-up).
func waitCaughtUp(t *testing.T, addrs []string, group string, exited <-chan struct{}) {
	t.Helper()
	for deadline := time.Now().Add(failpointTimeout); time.Now().Before(deadline); {
		select {
		case <-exited:
			return
		case <-time.After(100 * time.Millisecond):
		}
		if backlog(t, addrs, group) == 0 {
			return
		}
	}
	t.Fatalf("group %s did not catch up within %s", group, failpointTimeout)
}

// feeder produces batches of events in the background, one per interval,
// until stopped; pause holds it between two batches. Its methods are for
// the test goroutine only.
type feeder struct {
	mu     sync.Mutex // held while producing a batch, and while paused
	paused bool
	done   chan struct{}
	once   sync.Once // closes done
	wg     sync.WaitGroup
	all    []kafkatest.Event // every event produced, once stopped
}

// startFeeder starts producing batch(0), batch(1), … to the events topic,
// every interval, with one client.
func startFeeder(t *testing.T, addrs []string, every time.Duration, batch func(i int) []kafkatest.Event) *feeder {
	cl := kafkatest.Client(t, addrs, kgo.ProducerLinger(time.Millisecond))
	f := &feeder{done: make(chan struct{})}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for i := 0; ; i++ {
			f.mu.Lock()
			evs := batch(i)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := cl.ProduceSync(ctx, kafkatest.EventRecords(t, "events", evs)...).FirstErr()
			cancel()
			if err == nil {
				f.all = append(f.all, evs...)
			}
			f.mu.Unlock()
			if err != nil {
				t.Errorf("feeding events: %v", err)
				return
			}
			select {
			case <-f.done:
				return
			case <-time.After(every):
			}
		}
	}()
	t.Cleanup(func() { f.stop() }) // a test that failed early must not leave it producing
	return f
}

func (f *feeder) pause() {
	if !f.paused {
		f.mu.Lock()
		f.paused = true
	}
}

func (f *feeder) resume() {
	if f.paused {
		f.paused = false
		f.mu.Unlock()
	}
}

// stop ends the feed and returns every event produced.
func (f *feeder) stop() []kafkatest.Event {
	f.resume()
	f.once.Do(func() { close(f.done) })
	f.wg.Wait()
	return f.all
}

// counterFailpoints runs the counter while events keep arriving (20 every
// 20 ms) and kills it at sc.point in every cycle, with one state directory
// throughout.
func counterFailpoints(t *testing.T, sc scenario) kafkatest.TxnStats {
	sc.addrs, sc.defs = counterSetup(t)
	sc.feed = startFeeder(t, sc.addrs, 20*time.Millisecond, func(i int) []kafkatest.Event { return feedBatch(i, 20) })
	switch sc.point {
	case failpoint.MidBatch: // one hit per record
		sc.base = func(b int64) int { return int(b) }
	case failpoint.BeforeEndTxn:
		// The first transaction of a session ends as soon as its first
		// poll is processed: its deadline passed while the group formed.
		sc.base = func(int64) int { return 1 }
	}
	args := sc.args(t.TempDir())
	missed := sc.killCampaign(t, func(int) []string { return args })
	all := sc.feed.stop()
	return finishCounter(t, &sc, args, all, missed)
}

// restoreFailpoints builds a changelog with a clean instance, then kills
// instances in the middle of restoring it, each from a new, empty state
// directory so that it replays the whole changelog. The final instance
// starts from the last killed one's directory, partly restored.
func restoreFailpoints(t *testing.T, sc scenario) kafkatest.TxnStats {
	sc.addrs, sc.defs = counterSetup(t)
	f := startFeeder(t, sc.addrs, 20*time.Millisecond, func(i int) []kafkatest.Event { return feedBatch(i, 20) })
	first := startChild(t, sc.args(t.TempDir())...)
	first.waitLog(t, "partitions assigned")
	time.Sleep(2 * time.Second) // transactions of a live stream: many changelog records
	all := f.stop()
	kafkatest.WaitCounts(t, sc.addrs, "counts", len(all))
	if code := first.term(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM (log %s)", code, first.log.Name())
	}
	changes := len(kafkatest.ReadCommitted(t, sc.addrs, sc.app+"-changelog"))
	if changes < 100 {
		t.Fatalf("only %d changelog records: restores would be too short to interrupt", changes)
	}
	t.Logf("%d changelog records to restore", changes)
	sc.maxHit = changes
	dirs := make([]string, sc.cycles)
	missed := sc.killCampaign(t, func(i int) []string {
		dirs[i] = t.TempDir()
		return sc.args(dirs[i])
	})
	return finishCounter(t, &sc, sc.args(dirs[len(dirs)-1]), all, missed)
}

// finishCounter adds a batch of events, runs a clean instance with args
// until every event has its counter output, then checks and reports the
// outputs and transactions.
func finishCounter(t *testing.T, sc *scenario, args []string, all []kafkatest.Event, missed int) kafkatest.TxnStats {
	t.Helper()
	more := feedBatch(1_000_000, 500) // new input on top of the recovered state
	kafkatest.ProduceEvents(t, sc.addrs, "events", more)
	all = append(all, more...)
	kafkatest.WaitGroupEmpty(t, sc.addrs, sc.app)
	c := startChild(t, args...)
	start := time.Now()
	c.waitLog(t, "partitions assigned") // SIGTERM must not race the start-up
	outs := kafkatest.WaitCounts(t, sc.addrs, "counts", len(all))
	converged := time.Since(start)
	if code := c.term(t); code != 0 {
		t.Errorf("processor exited %d after SIGTERM, want 0 (log %s)", code, c.log.Name())
	}
	txns := reportCounts(t, sc.addrs, kafkatest.ChaosRow{Scenario: "SIGKILL at failpoint " + sc.point, Cycles: sc.cycles - missed, Recovery: converged, Seed: sc.seed, Restarts: recoveries(t)}, all, outs)
	t.Logf("%d kills, %d events, %d outputs, exact; %d abort and %d commit markers, %d aborted records",
		sc.cycles-missed, len(all), len(outs), txns.Aborted, txns.Committed, txns.AbortedRecords)
	return txns
}

// broadcastDefs is a journey that enters every member of segment gold at
// each minute of event time and sends one push action per entry, and the
// counter, so that every poll has outputs.
const broadcastDefs = `kind: segment
id: gold
rule: {profile: 'profile.tier == "gold"'}
---
kind: journey
id: tick
entry:
  schedule: {cron: "* * * * *", timezone: UTC, segment: gold}
  reentry: after_exit
nodes:
  ping: {action: {channel: push, template: tick}}
---
` + counterDef

// broadcastT0 is the event time of the broadcast scenario's first round: 7 s
// past a minute, so that no event falls on a tick.
var broadcastT0 = time.Date(2025, 6, 2, 7, 0, 7, 0, time.UTC).UnixMilli()

// broadcastRound returns round k of the broadcast scenario's input: in
// round 0 every user sets tier gold; in round k > 0 every user sends an
// event 30 s of event time after round k-1.
func broadcastRound(users, k int) []kafkatest.Event {
	evs := make([]kafkatest.Event, users)
	for u := range evs {
		user := fmt.Sprintf("b-%d", u)
		if k == 0 {
			evs[u] = kafkatest.Event{UserID: user, Event: "$profile_set", TS: broadcastT0,
				Props: map[string]any{"tier": "gold"}, EventID: fmt.Sprintf("p-%d", u)}
			continue
		}
		evs[u] = kafkatest.Event{UserID: user, Event: "view_item", TS: broadcastT0 + int64(k)*30_000,
			EventID: fmt.Sprintf("v-%d-%d", k, u)}
	}
	return evs
}

// broadcastTicks returns the ticks every partition broadcast when the last
// round's events are at last: each partition holds some users, whose events
// come every 30 s from broadcastT0, so it fires every minute strictly
// between broadcastT0 and last, and each tick enters every user once.
func broadcastTicks(last int64) []int64 {
	var ticks []int64
	for tick := broadcastT0 - 7_000 + 60_000; tick < last; tick += 60_000 {
		ticks = append(ticks, tick)
	}
	return ticks
}

// broadcastFailpoints kills the processor in the middle of broadcasts while
// rounds of events keep arriving (one every 50 ms: a tick every 100 ms).
func broadcastFailpoints(t *testing.T, sc scenario) kafkatest.TxnStats {
	const users = 20
	b := kafkatest.Start(t, broker.Options{})
	sc.addrs, sc.defs = b.Addrs(), t.TempDir()
	kafkatest.CreateTopic(t, sc.addrs, "events", 4, nil)
	if err := os.WriteFile(filepath.Join(sc.defs, "broadcast.yaml"), []byte(broadcastDefs), 0o644); err != nil {
		t.Fatal(err)
	}
	sc.feed = startFeeder(t, sc.addrs, 50*time.Millisecond, func(k int) []kafkatest.Event { return broadcastRound(users, k) })
	// A backlog of b records holds at most b/users rounds, b/(2 users)+1
	// ticks, each entering every user.
	sc.base = func(b int64) int { return int(b)/2 + users }
	args := sc.args(t.TempDir(), "--idle-advance=false") // ticks in pure event time
	missed := sc.killCampaign(t, func(int) []string { return args })
	evs := sc.feed.stop()
	kafkatest.WaitGroupEmpty(t, sc.addrs, sc.app)
	c := startChild(t, args...)
	start := time.Now()
	c.waitLog(t, "partitions assigned")
	kafkatest.WaitConsumed(t, sc.addrs, sc.app, "events")
	converged := time.Since(start)
	if code := c.term(t); code != 0 {
		t.Errorf("processor exited %d after SIGTERM, want 0 (log %s)", code, c.log.Name())
	}
	txns := kafkatest.CheckTransactions(t, sc.addrs, "actions.push", "counts")
	ticks := broadcastTicks(evs[len(evs)-1].TS)
	tally := tallyBroadcast(t, kafkatest.ReadCommitted(t, sc.addrs, "actions.push"), users, ticks)
	kafkatest.ReportChaos(t, kafkatest.ChaosRow{Scenario: "SIGKILL at failpoint " + sc.point + " (events = expected actions)",
		Cycles: sc.cycles - missed, Tally: tally, Txns: &txns, Recovery: converged, Seed: sc.seed, Restarts: recoveries(t)})
	if !tally.Exact() {
		t.Errorf("broadcast actions not exactly once: %+v", tally)
	}
	counted := evs[users:] // the counter ignores $ events: round 0
	kafkatest.CheckCounts(t, counted, kafkatest.WaitCounts(t, sc.addrs, "counts", len(counted)))
	t.Logf("%d kills, %d users × %d ticks = %d actions, exact; %d abort markers, %d aborted records",
		sc.cycles-missed, users, len(ticks), tally.Outputs, txns.Aborted, txns.AbortedRecords)
	return txns
}

// tallyBroadcast checks broadcast actions: one per user and tick, each
// action id once. Events is the expected count; OutOfOrder counts actions
// at a time that is not a tick.
func tallyBroadcast(t *testing.T, recs []*kgo.Record, users int, ticks []int64) kafkatest.Tally {
	t.Helper()
	isTick := map[int64]bool{}
	for _, tk := range ticks {
		isTick[tk] = true
	}
	c := kafkatest.Tally{Events: users * len(ticks), Outputs: len(recs)}
	ids := map[string]bool{}
	got := map[string]map[int64]bool{}
	for _, r := range recs {
		var a struct {
			ActionID string `json:"action_id"`
			UserID   string `json:"user_id"`
			TS       int64  `json:"ts"`
		}
		if err := json.Unmarshal(r.Value, &a); err != nil {
			t.Fatalf("decoding action at %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
		}
		if ids[a.ActionID] || got[a.UserID][a.TS] {
			c.Duplicated++
			t.Logf("duplicate action %s at %d", a.ActionID, a.TS)
		}
		ids[a.ActionID] = true
		if !isTick[a.TS] {
			c.OutOfOrder++
			continue
		}
		if got[a.UserID] == nil {
			got[a.UserID] = map[int64]bool{}
		}
		got[a.UserID][a.TS] = true
	}
	for u := 0; u < users; u++ {
		user := fmt.Sprintf("b-%d", u)
		if n := len(got[user]); n != len(ticks) {
			c.Lost += len(ticks) - n
			t.Logf("%s: actions at %d of %d ticks", user, n, len(ticks))
		}
	}
	return c
}

// TestFailpointTypoRefused checks that the processor refuses to start when
// CAIRN_FAILPOINT names no failpoint, rather than run a fault-free test.
func TestFailpointTypoRefused(t *testing.T) {
	for _, v := range []string{"mid-bacth", "before-apply@0", "restore"} {
		cmd := exec.Command(processorBin, "validate", "../../examples")
		cmd.Env = append(os.Environ(), failpoint.EnvVar+"="+v)
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 {
			t.Fatalf("%s=%s: exit %v (%v), want 2; output:\n%s", failpoint.EnvVar, v, cmd.ProcessState, err, out)
		}
		if !strings.Contains(string(out), failpoint.EnvVar) || !strings.Contains(string(out), v) {
			t.Errorf("%s=%s: the message must name the variable and the value:\n%s", failpoint.EnvVar, v, out)
		}
	}
}
