package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/engine"
)

// proc is one processor instance run as a child process.
type proc struct {
	id  string
	cmd *exec.Cmd
	log string
}

// start runs `processor run` as instance id with a new state directory.
func (c *cluster) start(id string) (*proc, error) { return c.startWith(id, c.replicas) }

// startWith is start with the given standby replicas.
func (c *cluster) startWith(id string, replicas int) (*proc, error) {
	logPath := filepath.Join(c.dir, id+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(c.o.Binary, "run", "--brokers", c.addrs[0], "--app-id", clusterApp, "--definitions", c.defs,
		"--state-dir", filepath.Join(c.dir, "state-"+id), "--http", "127.0.0.1:0", "--instance-id", id,
		"--standby-replicas", strconv.Itoa(replicas), "--status-interval", "200ms",
		"--session-timeout", c.o.SessionTimeout.String(), "--rebalance-timeout", (2 * c.o.SessionTimeout).String(),
		"--transaction-timeout", c.o.TransactionTimeout.String(), "--log-level", "info")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting instance %s: %w", id, err)
	}
	return &proc{id: id, cmd: cmd, log: logPath}, nil
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

// term stops p cleanly (it leaves the group) and waits for it.
func (p *proc) term() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		p.kill()
		return fmt.Errorf("instance %s did not stop within 60s of SIGTERM", p.id)
	}
}

// settleBeforeKill lets the instances go idle before the kill, so that the
// figure is the takeover: a kill inside a transaction leaves its offsets
// pending, and the new owner's offset fetch (require-stable, KIP-447)
// waits until the broker aborts it after the transaction timeout.
const settleBeforeKill = 2 * time.Second

// measureJoinAndFailover starts a second instance next to a, measures the
// join pause, waits until b's standbys (if any) are caught up, SIGKILLs a
// and measures the failover pause.
func (c *cluster) measureJoinAndFailover(ctx context.Context, a *proc, run *ClusterRun) error {
	t0 := time.Now()
	b, err := c.start("b")
	if err != nil {
		return err
	}
	defer b.kill()
	if run.JoinPause, err = c.pause(ctx, t0, func(m []int) bool { return len(m) == 2 && m[0] > 0 && m[1] > 0 }, nil); err != nil {
		return fmt.Errorf("measuring the join: %w", err)
	}
	if err := c.waitStandbysCaughtUp(ctx); err != nil {
		return err
	}
	time.Sleep(settleBeforeKill)
	moved := c.statuses(ctx)["a"].Owned
	t0 = time.Now()
	a.kill()
	// Only a's partitions are probed: the failover pause is theirs.
	if run.FailoverPause, err = c.pause(ctx, t0, func(m []int) bool { return len(m) == 1 }, moved); err != nil {
		return fmt.Errorf("measuring the failover: %w", err)
	}
	run.FailoverReplayed, run.FailoverRestore, err = restoresSince(b.log, t0)
	if err != nil {
		return err
	}
	return b.term()
}

// measureRestore starts a third instance alone on an empty state directory
// and reads from its log how fast it restored every partition.
func (c *cluster) measureRestore(ctx context.Context, run *ClusterRun) error {
	if err := c.waitGroupEmpty(ctx); err != nil {
		return err
	}
	bytes, records, err := c.changelogSize(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	r, err := c.startWith("c", 0) // a standby would fill the store before the assignment
	if err != nil {
		return err
	}
	defer r.kill()
	if _, err := c.pause(ctx, t0, func(m []int) bool { return len(m) == 1 }, nil); err != nil {
		return fmt.Errorf("waiting for the restoring instance: %w", err)
	}
	replayed, took, err := restoresSince(r.log, t0)
	if err != nil {
		return err
	}
	run.ChangelogRecords, run.RestoreRecords, run.RestoreBytes, run.RestoreSeconds = records, replayed, bytes, took
	if took > 0 {
		run.RestoreEventsPS = float64(replayed) / took
		run.RestoreMBPS = float64(bytes) / took / 1e6
	}
	return r.term()
}

// pause waits until the group's assignment (each member's partition count)
// satisfies settled, then produces one probe record to every partition and
// waits until the group has committed past all of them: every partition
// processes again (only parts, if not nil). It returns the seconds from t0.
func (c *cluster) pause(ctx context.Context, t0 time.Time, settled func([]int) bool, parts []int32) (float64, error) {
	deadline := time.Now().Add(5 * time.Minute)
	for !settled(c.assignment(ctx)) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("group never settled; last assignment %v", c.assignment(ctx))
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := map[int32]int64{}
	for p, k := range c.probe {
		if parts != nil && !slices.Contains(parts, p) {
			continue
		}
		r, err := c.cl.ProduceSync(ctx, &kgo.Record{Key: k, Partition: p,
			Value: []byte(`{"user_id":"` + string(k) + `","event":"probe","ts":` + strconv.FormatInt(time.Now().UnixMilli(), 10) + `}`)}).First()
		if err != nil {
			return 0, fmt.Errorf("producing a probe: %w", err)
		}
		want[p] = r.Offset + 1
	}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		offs, err := c.adm.FetchOffsets(ctx, clusterApp)
		if err == nil && committedPast(offs, want) {
			return time.Since(t0).Seconds(), nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, fmt.Errorf("probes %v never committed", want)
}

func committedPast(offs kadm.OffsetResponses, want map[int32]int64) bool {
	for p, w := range want {
		o, ok := offs.Lookup("events", p)
		if !ok || o.Err != nil || o.At < w {
			return false
		}
	}
	return true
}

// assignment returns, for a stable group with every partition assigned,
// each member's partition count; nil while the group rebalances.
func (c *cluster) assignment(ctx context.Context) []int {
	gs, err := c.adm.DescribeGroups(ctx, clusterApp)
	if err != nil {
		return nil
	}
	g := gs[clusterApp]
	if g.State != "Stable" {
		return nil
	}
	var out []int
	total := 0
	for _, m := range g.Members {
		n := 0
		if ca, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range ca.Topics {
				n += len(t.Partitions)
			}
		}
		out, total = append(out, n), total+n
	}
	if total != int(c.o.Partitions) {
		return nil
	}
	return out
}

// statuses returns the latest status of every instance.
func (c *cluster) statuses(ctx context.Context) map[string]engine.InstanceStatus {
	cfg := engine.Config{AppID: clusterApp}
	recs, err := engine.ReadCommitted(ctx, cfg.StatusTopic(), kgo.SeedBrokers(c.addrs...))
	if err != nil {
		return nil
	}
	out := map[string]engine.InstanceStatus{}
	for _, r := range recs {
		if r.Value == nil {
			delete(out, string(r.Key))
		} else if s, err := engine.DecodeStatus(r.Value); err == nil {
			out[string(r.Key)] = s
		}
	}
	return out
}

// waitStandbysCaughtUp waits, with standby replicas, until b keeps a
// standby of each of a's partitions with no lag; without, until the group
// committed every probe of a short pause (steady state).
func (c *cluster) waitStandbysCaughtUp(ctx context.Context) error {
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ss := c.statuses(ctx)
		a, b := ss["a"], ss["b"]
		ok := len(a.Owned) > 0
		for _, p := range a.Owned {
			if lag, has := b.Standby[p]; c.replicas > 0 && (!has || lag != 0) {
				ok = false
			}
		}
		if ok {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return fmt.Errorf("b's standbys never caught up with a's partitions")
}

// waitGroupEmpty waits until the group has no members (kfake keeps a
// member whose connection died in a parked JoinGroup: see
// kafkatest.WaitGroupEmpty).
func (c *cluster) waitGroupEmpty(ctx context.Context) error {
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		gs, err := c.adm.DescribeGroups(ctx, clusterApp)
		if err == nil && len(gs[clusterApp].Members) == 0 {
			return nil
		}
	}
	return fmt.Errorf("group %s never emptied", clusterApp)
}

// changelogSize reads the whole changelog and returns its payload bytes
// (keys and values) and records.
func (c *cluster) changelogSize(ctx context.Context) (int64, int64, error) {
	cfg := engine.Config{AppID: clusterApp}
	recs, err := engine.ReadCommitted(ctx, cfg.ChangelogTopic(), kgo.SeedBrokers(c.addrs...))
	if err != nil {
		return 0, 0, fmt.Errorf("reading the changelog: %w", err)
	}
	var n int64
	for _, r := range recs {
		n += int64(len(r.Key) + len(r.Value))
	}
	return n, int64(len(recs)), nil
}

var restoredRe = regexp.MustCompile(`^time=(\S+) .*msg="restored partition" partition=\d+ changelog_from=(\d+) changelog_end=(\d+) (?:\S+ )*?took=(\S+)`)

// restoresSince sums, over the restores an instance's log shows after
// since, the changelog records replayed and the seconds they took.
func restoresSince(logPath string, since time.Time) (records int64, seconds float64, err error) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		m := restoredRe.FindStringSubmatch(line)
		if m == nil {
			if strings.Contains(line, `msg="restored partition"`) {
				// The engine's log line changed: fail rather than
				// report restores of 0 records.
				return 0, 0, fmt.Errorf("restore line %q of %s has an unknown format", line, logPath)
			}
			continue
		}
		at, err1 := time.Parse(time.RFC3339Nano, m[1])
		from, err2 := strconv.ParseInt(m[2], 10, 64)
		end, err3 := strconv.ParseInt(m[3], 10, 64)
		took, err4 := time.ParseDuration(m[4])
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			return 0, 0, fmt.Errorf("parsing restore line %q of %s", line, logPath)
		}
		if at.Before(since) {
			continue
		}
		records += end - from
		seconds += took.Seconds()
	}
	return records, seconds, nil
}
