package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-cjo/cairn/internal/broker"
	"github.com/cairn-cjo/cairn/internal/failpoint"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
	"github.com/cairn-cjo/cairn/operators/count"
)

// processorBin is the processor binary built once by TestMain for the tests
// that run it as a child process.
var processorBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cairn-bin")
	if err != nil {
		panic(err)
	}
	processorBin = filepath.Join(dir, "processor")
	out, err := exec.Command("go", "build", "-o", processorBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building processor: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const counterDef = "kind: counter\nid: c\ntopic: counts\n"

// counterSetup starts a broker with a 4-partition events topic and writes
// the counter definition; it returns the broker's addresses and the
// definitions directory.
func counterSetup(t *testing.T) ([]string, string) {
	t.Helper()
	b := kafkatest.Start(t, broker.Options{})
	kafkatest.CreateTopic(t, b.Addrs(), "events", 4, nil)
	return b.Addrs(), writeCounterDef(t)
}

// writeCounterDef writes the counter definition to a new directory.
func writeCounterDef(t *testing.T) string {
	t.Helper()
	defs := t.TempDir()
	if err := os.WriteFile(filepath.Join(defs, "counter.yaml"), []byte(counterDef), 0o644); err != nil {
		t.Fatal(err)
	}
	return defs
}

// child is a processor run as a real child process.
type child struct {
	cmd *exec.Cmd
	log *os.File
}

func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	return startChildEnv(t, nil, args...)
}

// startChildEnv is startChild with env ("NAME=value") added to the
// environment of the test.
func startChildEnv(t *testing.T, env []string, args ...string) *child {
	t.Helper()
	logf, err := os.CreateTemp(t.TempDir(), "processor-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(processorBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil { // still running: a test that failed early must not leak it
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			keepLog(t, logf.Name(), cmd.Process.Pid)
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("log of processor pid %d:\n%s", cmd.Process.Pid, b)
		}
	})
	c := &child{cmd: cmd, log: logf}
	childrenOf.mu.Lock()
	childrenOf.m[t.Name()] = append(childrenOf.m[t.Name()], c)
	childrenOf.mu.Unlock()
	return c
}

// keepLog copies a failed test's child log, whole, into the directory
// named by CAIRN_TEST_LOGS, if set: the tail printed in the test output is
// often not enough to tell what happened.
func keepLog(t *testing.T, name string, pid int) {
	dir := os.Getenv("CAIRN_TEST_LOGS")
	if dir == "" {
		return
	}
	b, err := os.ReadFile(name)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err == nil {
		dst := filepath.Join(dir, fmt.Sprintf("%s-%d.log", strings.ReplaceAll(t.Name(), "/", "_"), pid))
		err = os.WriteFile(dst, b, 0o644)
	}
	if err != nil {
		t.Logf("keeping the log of pid %d: %v", pid, err)
	}
}

// childrenOf records the children each test started, for recoveries.
var childrenOf = struct {
	mu sync.Mutex
	m  map[string][]*child
}{m: map[string][]*child{}}

// recoveries returns, for each child t started that got partitions, the
// time from its start ("cairn instance starting") to its first assignment
// ("partitions assigned", logged once their state is restored): how long a
// restarted instance takes to process again, restore and the group's wait
// for a dead member included. Read from the children's logs, so measuring
// it does not change when the test kills them.
func recoveries(t *testing.T) []time.Duration {
	childrenOf.mu.Lock()
	cs := childrenOf.m[t.Name()]
	childrenOf.mu.Unlock()
	var out []time.Duration
	for _, c := range cs {
		b, _ := os.ReadFile(c.log.Name())
		start, ok1 := logTime(string(b), `msg="cairn instance starting"`)
		ready, ok2 := logTime(string(b), `msg="partitions assigned"`)
		if ok1 && ok2 {
			out = append(out, ready.Sub(start))
		}
	}
	return out
}

// logTime returns the time of the first slog text line containing s.
func logTime(log, s string) (time.Time, bool) {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, s) || !strings.HasPrefix(line, "time=") {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		return at, err == nil
	}
	return time.Time{}, false
}

// waitLog waits until the child's log contains s (the child runs at log
// level info or lower).
func (c *child) waitLog(t *testing.T, s string) {
	t.Helper()
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(c.log.Name()); strings.Contains(string(b), s) {
			return
		}
	}
	t.Fatalf("processor log %s never showed %q", c.log.Name(), s)
}

func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

// term sends SIGTERM and returns the exit code.
func (c *child) term(t *testing.T) int {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(45 * time.Second):
		c.kill()
		t.Fatalf("processor did not exit within 45s of SIGTERM; log %s", c.log.Name())
	}
	return c.cmd.ProcessState.ExitCode()
}

// crashCycles is the number of SIGKILLs: 20 in make test, more with
// CAIRN_CHAOS_CYCLES (make chaos).
func crashCycles() int {
	if n, err := strconv.Atoi(os.Getenv("CAIRN_CHAOS_CYCLES")); err == nil && n > 0 {
		return n
	}
	return 20
}

// TestCrashConsistency runs the processor as a child process, SIGKILLs it at
// random moments while events keep arriving, restarts it each time, and
// checks that the committed outputs are exactly one per input event, in
// order, as a crash-free run would produce.
func TestCrashConsistency(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes for about a minute")
	}
	addrs, defs := counterSetup(t)
	args := []string{"run", "--brokers", addrs[0], "--app-id", "crash", "--definitions", defs,
		"--state-dir", t.TempDir(), "--http", "127.0.0.1:0", "--instance-id", "crash-1",
		"--commit-interval", "50ms", "--session-timeout", "3s", "--rebalance-timeout", "6s", "--transaction-timeout", "10s", "--log-level", "info"}

	cycles := crashCycles()
	evs := feed(t, addrs, 100, max(40, 6*cycles), 150*time.Millisecond) // events keep coming while kills go on
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < cycles; i++ {
		c := startChild(t, args...)
		if i%2 == 1 { // half the kills land while it processes, the others anywhere from the start (join, restore)
			c.waitLog(t, "partitions assigned")
		}
		time.Sleep(time.Duration(200+rng.IntN(1300)) * time.Millisecond)
		c.kill()
	}
	all := evs()
	kafkatest.WaitGroupEmpty(t, addrs, "crash")
	c := startChild(t, args...)
	start := time.Now()
	c.waitLog(t, "partitions assigned") // the final instance takes part, whatever the kills left to do
	outs := kafkatest.WaitCounts(t, addrs, "counts", len(all))
	converged := time.Since(start)
	if code := c.term(t); code != 0 {
		t.Errorf("processor exited %d after SIGTERM, want 0 (log %s)", code, c.log.Name())
	}
	reportCounts(t, addrs, kafkatest.ChaosRow{Scenario: "SIGKILL at random moments", Cycles: cycles, Recovery: converged, Seed: seed, Restarts: recoveries(t)}, all, outs)
	t.Logf("%d kills, %d events, %d outputs, exact", cycles, len(all), len(outs))
}

// reportCounts checks the counter outputs of a chaos run: no hanging
// transaction on the counts topic, then one output per event in order,
// after reporting row with their tally and the transactions.
func reportCounts(t *testing.T, addrs []string, row kafkatest.ChaosRow, all []kafkatest.Event, outs []count.Record) kafkatest.TxnStats {
	t.Helper()
	txns := kafkatest.CheckTransactions(t, addrs, "counts")
	row.Tally, row.Txns = kafkatest.TallyCounts(all, outs), &txns
	kafkatest.ReportChaos(t, row)
	kafkatest.CheckCounts(t, all, outs)
	return txns
}

// feed produces batches of events in the background, one batch per
// interval, until batches batches are sent; the returned function waits for
// the end and returns every event produced.
func feed(t *testing.T, addrs []string, batch, batches int, every time.Duration) func() []kafkatest.Event {
	var (
		wg  sync.WaitGroup
		all []kafkatest.Event
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx := context.Background()
		for i := 0; i < batches && ctx.Err() == nil; i++ {
			evs := feedBatch(i, batch)
			kafkatest.ProduceEvents(t, addrs, "events", evs)
			all = append(all, evs...)
			time.Sleep(every)
		}
	}()
	return func() []kafkatest.Event { wg.Wait(); return all }
}

// feedBatch returns the i-th batch of n events of feed: view_item events of
// 97 users, with increasing timestamps and unique event ids.
func feedBatch(i, n int) []kafkatest.Event {
	evs := make([]kafkatest.Event, n)
	for j := range evs {
		k := i*n + j
		evs[j] = kafkatest.Event{UserID: fmt.Sprintf("u-%d", (k*7919)%97), Event: "view_item",
			TS: 1_700_000_000_000 + int64(k), EventID: fmt.Sprintf("e-%d", k)}
	}
	return evs
}

// TestZombieAddsNothing freezes one of two instances (SIGSTOP) for longer
// than its session timeout while events keep arriving, lets the other take
// its partitions, then thaws it (SIGCONT). The thawed zombie's open
// transaction must not add anything to the committed output: its
// TxnOffsetCommit fails on the stale group generation (KIP-447) and it
// aborts. Neither Kafka nor kfake aborts a stale producer's open
// transaction when another member takes over (transactional ids are per
// instance), so this checks Cairn's own fencing. A zombie frozen after its
// offset commit went through is TestFrozenCommitAfterTakeover's case.
func TestZombieAddsNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("freezes real processes")
	}
	addrs, defs := counterSetup(t)
	args := freezeArgs(t, addrs, defs, "zombie")
	evs := feed(t, addrs, 100, 60, 100*time.Millisecond)
	zombie := startChild(t, args("z")...)
	time.Sleep(1500 * time.Millisecond)
	other := startChild(t, args("o")...)
	time.Sleep(2 * time.Second)
	if err := zombie.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawAndCheck(t, addrs, zombie, other, evs, "zombie (SIGSTOP past the session timeout, SIGCONT)")
}

// freezeArgs returns the flags of the freeze tests' instances of app, by
// instance id: a session timeout of 2s, so that a frozen instance loses its
// partitions quickly, and a transaction timeout of 20s, so that the broker
// does not abort its transaction before it is thawed.
func freezeArgs(t *testing.T, addrs []string, defs, app string) func(id string) []string {
	return func(id string) []string {
		return []string{"run", "--brokers", addrs[0], "--app-id", app, "--definitions", defs,
			"--state-dir", t.TempDir(), "--http", "127.0.0.1:0", "--instance-id", id,
			"--commit-interval", "50ms", "--session-timeout", "2s", "--transaction-timeout", "20s", "--log-level", "info"}
	}
}

// thawAndCheck waits past the session timeout, so that the group moves the
// frozen instance's partitions to other, then thaws it (SIGCONT), waits for
// the outputs of every event fed, and again 2s later so that a late commit
// shows, stops both and checks the outputs are exact.
func thawAndCheck(t *testing.T, addrs []string, frozen, other *child, evs func() []kafkatest.Event, scenario string) {
	t.Helper()
	time.Sleep(6 * time.Second)
	if err := frozen.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	all := evs()
	kafkatest.WaitCounts(t, addrs, "counts", len(all))
	time.Sleep(2 * time.Second)
	outs := kafkatest.WaitCounts(t, addrs, "counts", len(all))
	for _, c := range []*child{frozen, other} {
		if code := c.term(t); code != 0 {
			t.Errorf("exit code %d after SIGTERM (log %s)", code, c.log.Name())
		}
	}
	reportCounts(t, addrs, kafkatest.ChaosRow{Scenario: scenario, Cycles: 1, Restarts: recoveries(t)}, all, outs)
}

// TestFrozenCommitAfterTakeover freezes an instance at the worst moment of
// a transaction: inside End, after its offsets were committed to the
// transaction and its heartbeat was answered, before EndTxn is sent (the
// freeze-in-end failpoint: the process SIGSTOPs itself there). The group
// moves its partitions to the other instance while it is frozen; thawed,
// it sends EndTxn and commits, since nothing it heard said otherwise. The
// new owner must not have rebuilt the state from before that commit while
// consuming after it: restore waits for the group's offsets to be stable
// before it reads the changelog (engine.stableInputOffset). Without that
// wait this test lost and duplicated counts on every run.
func TestFrozenCommitAfterTakeover(t *testing.T) {
	if testing.Short() {
		t.Skip("freezes real processes")
	}
	addrs, defs := counterSetup(t)
	args := freezeArgs(t, addrs, defs, "frozen")
	evs := feed(t, addrs, 60, 120, 100*time.Millisecond)
	frozen := startChildEnv(t, []string{failpoint.EnvVar + "=" + failpoint.FreezeInEnd + "@40"}, args("f")...)
	frozen.waitLog(t, "partitions assigned")
	time.Sleep(1500 * time.Millisecond)
	other := startChild(t, args("o")...)
	frozen.waitLog(t, "failpoint reached")
	thawAndCheck(t, addrs, frozen, other, evs, "frozen in End after its offset commit (SIGSTOP), thawed after the takeover")
}

// TestRestartAfterKillInEnd kills an instance (SIGKILL) while it is frozen
// inside End with its offsets committed to its open transaction (the
// freeze-in-end failpoint), and restarts it under the same instance id.
// Until that transaction ends the group's offsets are unstable, and no
// restore may read the changelog (TestFrozenCommitAfterTakeover). The new
// incarnation must end it at once rather than wait out the transaction
// timeout, set here to 10 minutes: its loop begins a transaction on its
// first poll, before any assignment, and franz-go's BeginTransaction
// initializes the producer id, which fences the previous holder of the
// transactional id. Were that lazy (at the first produce, which needs the
// offsets), it would never take its partitions within waitLog's 90 s.
func TestRestartAfterKillInEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes")
	}
	addrs, defs := counterSetup(t)
	args := append(freezeArgs(t, addrs, defs, "killed-in-end")("k"), "--transaction-timeout", "10m")
	evs := feed(t, addrs, 60, 60, 100*time.Millisecond)
	first := startChildEnv(t, []string{failpoint.EnvVar + "=" + failpoint.FreezeInEnd + "@20"}, args...)
	first.waitLog(t, "failpoint reached")
	first.kill()
	second := startChild(t, args...)
	second.waitLog(t, `msg="partitions assigned" partitions="[0 1 2 3]"`)
	all := evs()
	outs := kafkatest.WaitCounts(t, addrs, "counts", len(all))
	if code := second.term(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM (log %s)", code, second.log.Name())
	}
	reportCounts(t, addrs, kafkatest.ChaosRow{Scenario: "SIGKILL while frozen in End after its offset commit, restart under the same id", Cycles: 1, Restarts: recoveries(t)}, all, outs)
}

// TestBrokerRestartMidStream stops the broker (persisted to a data dir)
// while the processor is working through a backlog, starts it again on the
// same port, and checks the outputs are still exactly one per event.
func TestBrokerRestartMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the broker under a running processor")
	}
	opts := broker.Options{DataDir: t.TempDir(), Port: mustFreePort(t)}
	b, err := broker.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	addrs := b.Addrs()
	kafkatest.CreateTopic(t, addrs, "events", 4, nil)
	defs := writeCounterDef(t)
	first := make([]kafkatest.Event, 60000)
	for i := range first {
		first[i] = kafkatest.Event{UserID: fmt.Sprintf("u-%d", i%211), Event: "view_item", TS: 1_700_000_000_000 + int64(i), EventID: fmt.Sprintf("a-%d", i)}
	}
	kafkatest.ProduceEvents(t, addrs, "events", first)
	c := startChild(t, "run", "--brokers", addrs[0], "--app-id", "restart", "--definitions", defs,
		"--state-dir", t.TempDir(), "--http", "127.0.0.1:0", "--instance-id", "r-1",
		"--commit-interval", "20ms", "--session-timeout", "3s", "--transaction-timeout", "10s", "--log-level", "warn")
	n := 0
	for deadline := time.Now().Add(30 * time.Second); n == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		n = len(kafkatest.ReadCommitted(t, addrs, "counts"))
	}
	if n == 0 || n >= len(first) {
		t.Fatalf("%d of %d outputs before the restart: the restart must come mid-stream", n, len(first))
	}
	t.Logf("restarting the broker after %d of %d outputs", n, len(first))
	b.Close()
	time.Sleep(2 * time.Second)
	if b, err = broker.Start(opts); err != nil {
		t.Fatalf("restarting the broker: %v", err)
	}
	defer b.Close()
	second := make([]kafkatest.Event, 2000)
	for i := range second {
		second[i] = kafkatest.Event{UserID: fmt.Sprintf("u-%d", i%211), Event: "view_item", TS: 1_700_000_100_000 + int64(i), EventID: fmt.Sprintf("b-%d", i)}
	}
	kafkatest.ProduceEvents(t, addrs, "events", second)
	all := append(first, second...)
	outs := kafkatest.WaitCounts(t, addrs, "counts", len(all))
	if code := c.term(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM (log %s)", code, c.log.Name())
	}
	reportCounts(t, addrs, kafkatest.ChaosRow{Scenario: "broker restart mid-backlog", Cycles: 1, Restarts: recoveries(t)}, all, outs)
}
