package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/kafkasec"
)

// cmdStatus prints every instance of an app from its status topic: its
// partitions (owned and standby), restores, lag and state size, and the
// partitions nobody owns.
func cmdStatus(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "comma-separated seed brokers")
	appID := fs.String("app-id", "cairn", "the app")
	input := fs.String("input-topic", "events", "the app's input topic")
	var sec kafkasec.Options
	bindKafkaFlags(fs, &sec)
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts, err := sec.ClientOpts()
	if err != nil {
		return err
	}
	opts = append([]kgo.Opt{kgo.SeedBrokers(splitList(*brokers)...)}, opts...)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cfg := engine.Config{AppID: *appID}
	recs, err := engine.ReadCommitted(ctx, cfg.StatusTopic(), opts...)
	if err != nil {
		return fmt.Errorf("reading %s: %w", cfg.StatusTopic(), err)
	}
	latest := map[string][]byte{}
	for _, r := range recs {
		if r.Value == nil {
			delete(latest, string(r.Key))
		} else {
			latest[string(r.Key)] = r.Value
		}
	}
	var ss []engine.InstanceStatus
	for _, v := range latest {
		if s, err := engine.DecodeStatus(v); err == nil {
			ss = append(ss, s)
		}
	}
	engine.SortStatuses(ss)
	partitions, err := inputPartitions(ctx, opts, *input)
	if err != nil {
		return err
	}
	printStatus(out, ss, partitions, time.Now())
	return nil
}

func inputPartitions(ctx context.Context, opts []kgo.Opt, topic string) (int, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("listing %s: %w", topic, err)
	}
	return len(td[topic].Partitions), nil
}

// printStatus writes one line per instance and a summary of ownership.
// Instances whose status is older than three intervals are marked stale
// and own nothing in the summary.
func printStatus(out io.Writer, ss []engine.InstanceStatus, partitions int, now time.Time) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tHTTP\tOWNED\tRESTORING\tLAG\tSTATE\tSTANDBY\tREADY\tUPDATED")
	owned := map[int32]string{}
	for _, s := range ss {
		var lag int64
		for _, l := range s.Lag {
			lag += l
		}
		var restoring []string
		for p, left := range s.Restoring {
			restoring = append(restoring, fmt.Sprintf("%d (%d left)", p, left))
		}
		sort.Strings(restoring)
		age := now.Sub(time.UnixMilli(s.UpdatedAt)).Round(time.Second)
		updated := fmt.Sprintf("%s ago", age)
		if s.Stale(now) {
			updated += " STALE"
		} else {
			for _, p := range s.Owned {
				owned[p] = s.Instance
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%v\t%s\n", s.Instance, s.HTTP, joinInt32(s.Owned),
			strings.Join(restoring, " "), lag, humanBytes(s.StateBytes), standbyCell(s), s.Ready, updated)
	}
	tw.Flush()
	var missing []int32
	for p := int32(0); p < int32(partitions); p++ {
		if owned[p] == "" {
			missing = append(missing, p)
		}
	}
	fmt.Fprintf(out, "%d instances, %d/%d partitions owned", len(ss), partitions-len(missing), partitions)
	if len(missing) > 0 {
		fmt.Fprintf(out, "; unowned: %s", joinInt32(missing))
	}
	fmt.Fprintln(out)
}

// standbyCell describes s's standby partitions: "1,3 (12 behind, 2.0 MiB)",
// or "" without any.
func standbyCell(s engine.InstanceStatus) string {
	if len(s.Standby) == 0 {
		return ""
	}
	ps := make([]int32, 0, len(s.Standby))
	var behind int64
	for p, lag := range s.Standby {
		ps = append(ps, p)
		behind += lag
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return fmt.Sprintf("%s (%d behind, %s)", joinInt32(ps), behind, humanBytes(s.StandbyBytes))
}

func joinInt32(ps []int32) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ",")
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
