package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/api"
	"github.com/cairn-cjo/cairn/operators/funnel"
)

// funnelRoutes registers GET /v1/funnels/{id}?from=&to=&group=, summed over
// partitions from the aggregates table.
func funnelRoutes(srv *api.Server, aggs *engine.GlobalTable, fo *funnel.Operator) {
	srv.Handle("GET /v1/funnels/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		var rows []funnel.Row
		aggs.Scan("funnel/"+id+"/", func(k string, v []byte) {
			if row, err := funnel.DecodeRow([]byte(k), v); err == nil {
				rows = append(rows, row)
			}
		})
		q := r.URL.Query()
		res := funnel.Query(rows, id, q.Get("from"), q.Get("to"), q.Get("group"))
		res.StepNames = stepNames(fo, id)
		api.WriteJSON(w, http.StatusOK, res)
	})
}

func stepNames(fo *funnel.Operator, id string) []string {
	if fo == nil {
		return nil
	}
	for _, d := range fo.Definitions() {
		if d.ID == id {
			return d.StepNames()
		}
	}
	return nil
}

// cmdFunnel prints a funnel's table, read from the aggregates topic.
func cmdFunnel(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("funnel", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "seed brokers")
	appID := fs.String("app-id", "cairn", "app id (the aggregates topic is <app-id>-aggregates)")
	from := fs.String("from", "", "first bucket date, e.g. 2026-11-01 (default: open)")
	to := fs.String("to", "", "last bucket date (default: open)")
	group := fs.String("group", "", "only this group")
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		return fmt.Errorf("usage: processor funnel <id> [--from D] [--to D] [--group G] [--brokers B] [--app-id A]")
	}
	id := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	recs, err := engine.ReadCommitted(rctx, *appID+"-aggregates", kgo.SeedBrokers(splitList(*brokers)...))
	if err != nil {
		return err
	}
	var rows []funnel.Row
	for _, r := range recs {
		if row, err := funnel.DecodeRow(r.Key, r.Value); err == nil {
			rows = append(rows, row)
		}
	}
	res := funnel.Query(rows, id, *from, *to, *group)
	if len(res.Rows) == 0 {
		return fmt.Errorf("no counts for funnel %q in that range (yet)", id)
	}
	return res.WriteTable(os.Stdout)
}
