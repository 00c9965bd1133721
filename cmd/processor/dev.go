package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/internal/broker"
	"github.com/cairn-cjo/cairn/internal/demo"
)

func cmdDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	defsDir := fs.String("definitions", "examples", "definitions directory")
	dataDir := fs.String("data-dir", ".cairn", "where the broker log and the state live")
	port := fs.Int("port", 9092, "embedded broker port")
	httpAddr := fs.String("http", "127.0.0.1:8080", "metrics, health and API address")
	rate := fs.Float64("rate", 20, "demo events per second")
	users := fs.Int("users", 200, "demo users")
	fresh := fs.Bool("fresh", false, "delete the data dir first")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *fresh {
		_ = os.RemoveAll(*dataDir)
	}
	log := newLogger("warn")
	b, err := broker.Start(broker.Options{DataDir: filepath.Join(*dataDir, "broker"), Port: *port, Topics: []string{"events"}})
	if err != nil {
		return fmt.Errorf("%w (is port %d in use? try --port)", err, *port)
	}
	defer b.Close()
	brokers := strings.Join(b.Addrs(), ",")
	tokenFile := filepath.Join(*dataDir, devTokenFile)
	if err := ensureDevToken(tokenFile); err != nil {
		return err
	}
	c := Config{Brokers: brokers, AppID: "cairn", InputTopic: "events", StateDir: filepath.Join(*dataDir, "state"),
		Definitions: *defsDir, HTTP: *httpAddr, HTTPTokenFile: tokenFile, CommitInterval: 100 * time.Millisecond,
		InstanceID: "dev", LogLevel: "warn"}
	errc := make(chan error, 1)
	started := make(chan *instance, 1)
	go func() { errc <- runInstance(ctx, c, log, func(i *instance) { started <- i }) }()
	var inst *instance
	select {
	case err := <-errc:
		return err
	case inst = <-started:
	}
	outputs := outputTopics(inst)
	printDevBanner(brokers, *dataDir, tokenFile, inst, outputs)
	go func() {
		_ = demo.Run(ctx, demo.Options{Brokers: b.Addrs(), Users: *users, Rate: *rate, Logger: log})
	}()
	go tailOutputs(ctx, b.Addrs(), outputs)
	return <-errc
}

func outputTopics(inst *instance) []string {
	cfg := inst.eng.Config()
	plan := cfg.Plan(inst.set.Operators)
	var out []string
	for _, t := range plan.Plain {
		if t != cfg.DLQTopic() {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// devTokenFile is the API token of `processor dev`, under its --data-dir.
const devTokenFile = "http-token"

// ensureDevToken writes a random API token to path (mode 0600) unless it
// holds one already, so that a restart keeps the token the README's curl
// commands read ($(cat .cairn/http-token)); --fresh makes a new one.
func ensureDevToken(path string) error {
	if _, err := readTokenFile(path); err == nil {
		return nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("generating the dev API token: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing the dev API token: %w", err)
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing the dev API token: %w", err)
	}
	return nil
}

func printDevBanner(brokers, dataDir, tokenFile string, inst *instance, outputs []string) {
	cfg := inst.eng.Config()
	first := "actions.push"
	if len(outputs) > 0 && !contains(outputs, first) {
		first = outputs[0]
	}
	fmt.Printf(`
Cairn dev is running (Ctrl-C to stop).

  broker      %s  (embedded, Kafka protocol; data in %s)
  metrics     http://%s/metrics
  health      http://%s/readyz
  input       %s  (demo events flowing now)
  outputs     %s
  internal    %s, %s, %s

Tail the actions yourself (read_committed, as channel senders must):
  kcat -b %s -C -t %s -X isolation.level=read_committed -f '%%k %%s\n'

API mutations need the token in %s; upload a list:
  curl -s -X POST -H "Authorization: Bearer $(cat %s)" --data-binary $'u-1\nu-2' \
    http://%s/v1/segments/vip-list/members

Outputs as they are committed:
`, brokers, dataDir, inst.srv.Addr(), inst.srv.Addr(), cfg.InputTopic, strings.Join(outputs, ", "),
		cfg.ChangelogTopic(), cfg.AggregatesTopic(), cfg.DLQTopic(), brokers, first,
		tokenFile, tokenFile, inst.srv.Addr())
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// tailOutputs prints committed output records: every record for the first
// 30 seconds, then a count every 10 seconds.
func tailOutputs(ctx context.Context, brokers []string, topics []string) {
	if len(topics) == 0 {
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	if err != nil {
		return
	}
	defer cl.Close()
	start, last, n := time.Now(), time.Now(), 0
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		if errors.Is(ctx.Err(), context.Canceled) {
			return
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			if time.Since(start) < 30*time.Second {
				fmt.Printf("  %-18s %s\n", r.Topic, r.Value)
			}
		})
		if time.Since(start) >= 30*time.Second && time.Since(last) >= 10*time.Second {
			fmt.Printf("  ... %d outputs committed so far\n", n)
			last = time.Now()
		}
	}
}
