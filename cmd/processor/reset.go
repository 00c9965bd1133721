package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/kafkasec"
)

// cmdReset deletes an app's internal topics and consumer group after
// showing what it will delete and reading the app id back from in (or
// with --yes).
func cmdReset(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("reset", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "comma-separated seed brokers")
	appID := fs.String("app-id", "", "the app to reset (required)")
	input := fs.String("input-topic", "events", "the app's input topic (kept; named in the plan)")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	var sec kafkasec.Options
	bindKafkaFlags(fs, &sec)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *appID == "" {
		return fmt.Errorf("--app-id: required")
	}
	opts, err := sec.ClientOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(splitList(*brokers)...)}, opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cfg := engine.Config{Brokers: splitList(*brokers), AppID: *appID, InputTopic: *input}
	plan, err := engine.PlanReset(ctx, adm, cfg)
	if err != nil {
		return err
	}
	if len(plan.Topics) == 0 && !plan.GroupExists {
		fmt.Fprintf(out, "nothing to reset: app %s has no internal topics and no consumer group\n", *appID)
		return nil
	}
	fmt.Fprintf(out, "This deletes, for app %s:\n", *appID)
	for _, t := range plan.Topics {
		fmt.Fprintf(out, "  topic %s\n", t)
	}
	if plan.GroupExists {
		fmt.Fprintf(out, "  consumer group %s and its committed offsets of %s (the next start reads %s from the beginning)\n", plan.Group, *input, *input)
	}
	fmt.Fprintf(out, "It keeps %s, %s.dlq and the action topics. Delete the instances' state directories too, or they restore from scratch.\n", *input, *input)
	if !*yes {
		fmt.Fprintf(out, "Type the app id to confirm: ")
		line, _ := bufio.NewReader(in).ReadString('\n')
		if strings.TrimSpace(line) != *appID {
			return fmt.Errorf("not confirmed: nothing deleted")
		}
	}
	if err := engine.Reset(ctx, adm, plan); err != nil {
		return err
	}
	fmt.Fprintf(out, "app %s reset\n", *appID)
	return nil
}
