package bench

import (
	"fmt"
	"strings"
	"time"
)

// WriteClusterSection replaces the section named name of the markdown file
// at path with r: the join and failover pauses per standby setting and the
// restore rate.
func WriteClusterSection(path, name, command string, r *ClusterResult) error {
	m, o := ThisMachine(), r.Options
	start, end := "<!-- "+name+":start -->", "<!-- "+name+":end -->"
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## Cluster: join, failover and restore\n\n", start)
	fmt.Fprintf(&b, "Measured %s with `%s`.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), command)
	fmt.Fprintf(&b, "Machine: %s, %d cores, %s, %s, %s. Broker: embedded kfake, in the bench process; instances are `processor run` child processes.\n\n", m.CPU, m.Cores, m.Memory, m.Go, m.OS)
	fmt.Fprintf(&b, "Workload: %d users of state (a profile with five properties and a count each: %d input events, two state keys per user), "+
		"%d partitions, session timeout %s, transaction timeout %s, %d runs per setting (settings alternate; medians). "+
		"Instance a processes the backlog alone; b joins (**join pause**: b's start → the group settled on both and every partition "+
		"committed a probe produced then); once b's standbys (if any) have caught up with a's partitions and both have idled for 2 s, a is SIGKILLed "+
		"(**failover pause**: the kill → each of a's partitions committed a probe on b). A killed owner's partitions move after the "+
		"session timeout, so that bounds the pause from below; the rest is the rebalance, the restore and processing. (A kill "+
		"inside a transaction would add the transaction timeout: the new owner's require-stable offset fetch waits for the broker "+
		"to abort it.) **Restore**: a third instance alone rebuilds every partition from the changelog into "+
		"an empty state directory; records and bytes (keys and values) per second of restore time.\n\n",
		o.Users, 2*o.Users, o.Partitions, o.SessionTimeout, o.TransactionTimeout, o.Runs)
	b.WriteString("| standby replicas | join pause (s) | failover pause (s) | changelog records replayed at failover | failover restore (s) | full restore records/s | full restore MB/s |\n|---|---|---|---|---|---|---|\n")
	for _, s := range r.Summary {
		fmt.Fprintf(&b, "| %d | %.2f | %.2f | %.0f | %.2f | %.0f | %.1f |\n", s.Replicas, s.JoinPause, s.FailoverPause,
			s.FailoverReplayed, s.FailoverRestore, s.RestoreEventsPS, s.RestoreMBPS)
	}
	b.WriteString("\nPer run (join s / failover s / replayed / full restore records/s):\n\n")
	for _, run := range r.Runs {
		fmt.Fprintf(&b, "- standby %d: %.2f / %.2f / %d / %.0f (changelog %d records, %.1f MB)\n", run.Replicas, run.JoinPause,
			run.FailoverPause, run.FailoverReplayed, run.RestoreEventsPS, run.ChangelogRecords, float64(run.RestoreBytes)/1e6)
	}
	fmt.Fprintf(&b, "\n%s\n", end)
	return replaceSection(path, start, end, b.String())
}
