package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairn-cjo/cairn/internal/broker"
	"github.com/cairn-cjo/cairn/internal/failpoint"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
)

// mixedFaults are the faults TestCheckerAllFaultsMixed takes turns with.
var mixedFaults = []string{"kill", "failpoint", "broker restart", "storm", "broker errors"}

// mixedFailpoints are the commit-path failpoints it arms (mid-restore and
// mid-broadcast need a restore or a broadcast in flight; TestFailpoints
// covers them).
var mixedFailpoints = []string{failpoint.MidBatch, failpoint.BeforeEndTxn, failpoint.EndTxnSent, failpoint.BeforeApply}

// mixedBrokerErrors are the broker errors it injects, a few requests each.
var mixedBrokerErrors = []kfake.Fault{
	{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.UnknownServerError},
	{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.ConcurrentTransactions},
	{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.RequestTimedOut},
	{Keys: []kmsg.Key{kmsg.TxnOffsetCommit}, Err: kerr.UnknownServerError},
	{Keys: []kmsg.Key{kmsg.TxnOffsetCommit}, Err: kerr.RequestTimedOut},
	{Keys: []kmsg.Key{kmsg.Produce}, Topic: "actions.push", Err: kerr.UnknownServerError},
}

// mixedRun is the state of one TestCheckerAllFaultsMixed run.
type mixedRun struct {
	t     *testing.T
	opts  broker.Options // DataDir and Port, so that a restart keeps both
	b     *broker.Broker
	addrs []string
	defs  string
	dir   string // the main instance's state dir, lost now and then
	rng   *rand.Rand
	hits  map[string]int // faults that struck, by kind
}

// args returns the flags of an instance of the run.
func (r *mixedRun) args(id, dir string) []string {
	return []string{"run", "--brokers", r.addrs[0], "--app-id", "mix", "--definitions", r.defs,
		"--state-dir", dir, "--http", "127.0.0.1:0", "--instance-id", id, "--idle-advance=false",
		"--commit-interval", "30ms", "--session-timeout", "2s", "--rebalance-timeout", "5s", "--transaction-timeout", "8s", "--log-level", "info"}
}

// pause sleeps between lo and hi milliseconds.
func (r *mixedRun) pause(lo, hi int) {
	time.Sleep(time.Duration(lo+r.rng.IntN(hi-lo)) * time.Millisecond)
}

// TestCheckerAllFaultsMixed runs the checker's journeys and funnel through
// every kind of fault in one run, taking turns: a SIGKILL at a random
// moment, a SIGKILL at a random commit-path failpoint, a broker restart
// (data dir kept) under a running instance, a second instance joining and
// leaving (by SIGTERM or SIGKILL), and broker errors on EndTxn,
// TxnOffsetCommit and Produce; every third cycle also loses the state dir.
// Outputs, aggregates and the state after every restore are checked as in
// TestCheckerJourneyUnderKills. Ten cycles in make test, CAIRN_CHAOS_CYCLES
// in make chaos.
func TestCheckerAllFaultsMixed(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes and restarts the broker")
	}
	cycles := 2 * len(mixedFaults)
	if os.Getenv("CAIRN_CHAOS_CYCLES") != "" {
		cycles = crashCycles()
	}
	users, perUser := 30, 10*max(6, cycles)
	seed := uint64(time.Now().UnixNano())
	r := &mixedRun{t: t, opts: broker.Options{DataDir: t.TempDir(), Port: mustFreePort(t)}, defs: t.TempDir(), dir: t.TempDir(),
		rng: rand.New(rand.NewPCG(seed, 23)), hits: map[string]int{}}
	r.startBroker()
	t.Cleanup(func() { r.b.Close() })
	kafkatest.CreateTopic(t, r.addrs, "events", 4, nil)
	writeCheckerDefs(t, r.defs)
	evs := checkerEvents(users, perUser)
	chunk := (len(evs) + cycles - 1) / cycles
	for i := 0; i < cycles; i++ {
		kafkatest.ProduceEvents(t, r.addrs, "events", evs[i*chunk:min((i+1)*chunk, len(evs))])
		if i%3 == 2 {
			r.dir = t.TempDir()
		}
		r.cycle(mixedFaults[i%len(mixedFaults)])
	}
	kafkatest.WaitGroupEmpty(t, r.addrs, "mix")
	c := startChildEnv(t, restoreDigestEnv, r.args("m-1", t.TempDir())...) // restored from the changelog alone
	c.waitLog(t, "partitions assigned")
	kafkatest.WaitConsumed(t, r.addrs, "mix", "events")
	if code := c.term(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	var struck []string
	for _, f := range mixedFaults {
		struck = append(struck, fmt.Sprintf("%s %d", f, r.hits[f]))
	}
	row := kafkatest.ChaosRow{Scenario: fmt.Sprintf("all faults mixed in turn, checker journeys and funnel, state dir lost every third cycle; faults that struck: %s; events = expected actions",
		strings.Join(struck, ", ")),
		Cycles: cycles, Seed: seed, Restarts: recoveries(t)}
	reportChecker(t, r.addrs, "mix", r.defs, users, perUser, row)
}

// cycle runs the main instance through one fault and leaves it dead.
func (r *mixedRun) cycle(fault string) {
	t := r.t
	env := restoreDigestEnv
	if fault == "failpoint" {
		fp := fmt.Sprintf("%s@%d", mixedFailpoints[r.rng.IntN(len(mixedFailpoints))], 1+r.rng.IntN(2))
		env = append([]string{failpoint.EnvVar + "=" + fp}, env...)
	}
	var errs *kfake.FaultHandle
	if fault == "broker errors" { // before the start, so that the backlog's transactions meet it
		f := mixedBrokerErrors[r.rng.IntN(len(mixedBrokerErrors))]
		f.Count = 2 + r.rng.IntN(2)
		errs = r.b.Cluster().Fault(f)
	}
	main := startChildEnv(t, env, r.args("m-1", r.dir)...)
	exited := main.watch()
	switch fault {
	case "kill":
		r.pause(100, 800)
		r.hits[fault]++
	case "failpoint":
		select {
		case <-exited:
		case <-time.After(10 * time.Second): // input ran out before the hit: a plain kill
		}
	case "broker restart":
		r.pause(200, 1000)
		r.b.Close()
		time.Sleep(time.Second)
		r.startBroker()
		r.hits[fault]++
		r.pause(500, 1500)
	case "storm":
		main.waitLog(t, "partitions assigned")
		second := startChildEnv(t, restoreDigestEnv, r.args("m-2", t.TempDir())...)
		second.waitLog(t, "partitions assigned")
		r.pause(100, 1000)
		if r.rng.IntN(2) == 0 {
			second.kill()
		} else if code := second.term(t); code != 0 {
			t.Errorf("second instance exited %d after SIGTERM", code)
		}
		r.hits[fault]++
	case "broker errors":
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if errs.Wait(ctx, 1) == nil { // input ran out before a hit: a plain kill
			r.hits[fault]++
		} else {
			r.hits["kill"]++
		}
		cancel()
		r.pause(100, 800)
		errs.Remove()
	}
	_ = main.cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	if b, _ := os.ReadFile(main.log.Name()); strings.Contains(string(b), "failpoint reached") {
		r.hits[fault]++
	} else if fault == "failpoint" {
		r.hits["kill"]++
	}
}

// startBroker starts (or restarts) the run's broker on its port and data
// dir.
func (r *mixedRun) startBroker() {
	b, err := broker.Start(r.opts)
	if err != nil {
		r.t.Fatalf("starting the broker: %v", err)
	}
	r.b, r.addrs = b, b.Addrs()
}

// freePort returns a TCP port free on 127.0.0.1 at the time of the call.
func mustFreePort(t *testing.T) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}
