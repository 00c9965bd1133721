package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/cairn-cjo/cairn/internal/broker"
)

func cmdBroker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	dir := fs.String("data-dir", "", "persist the log in this directory (default: in memory)")
	port := fs.Int("port", 9092, "port to listen on, on 127.0.0.1")
	parts := fs.Int("partitions", 6, "default partition count of new topics")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := broker.Start(broker.Options{DataDir: *dir, Port: *port, Partitions: *parts})
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Printf("embedded broker listening on %v (data dir %q); Ctrl-C to stop\n", b.Addrs(), *dir)
	<-ctx.Done()
	return nil
}
