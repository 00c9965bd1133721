package main

import (
	"net/http"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/api"
	"github.com/cairn-cjo/cairn/operators"
	"github.com/cairn-cjo/cairn/operators/journey"
	"github.com/cairn-cjo/cairn/operators/segment"
)

// routes registers the API of the operators on srv.
func routes(srv *api.Server, eng *engine.Engine, aggs *engine.GlobalTable, producer *kgo.Client, set *operators.Set, fwd *forwarder) {
	segmentRoutes(srv, eng, aggs, producer, fwd)
	funnelRoutes(srv, aggs, set.Funnels)
	srv.Handle("GET /v1/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		fwd.serve(w, r, eng.UserPartition(r.PathValue("id")), func(w http.ResponseWriter, r *http.Request) { getUser(w, r, eng) })
	})
	srv.Handle("GET /v1/journeys/{id}/stats", func(w http.ResponseWriter, r *http.Request) {
		var vals [][]byte
		aggs.Scan(journey.StatsKeyPrefix(r.PathValue("id")), func(_ string, v []byte) { vals = append(vals, v) })
		stats, err := journey.SumStats(vals)
		if err != nil {
			api.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		if len(stats) == 0 {
			api.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "no stats for journey " + r.PathValue("id") + " yet"})
			return
		}
		api.WriteJSON(w, http.StatusOK, stats)
	})
}

// userView is the answer of GET /v1/users/{id}.
type userView struct {
	UserID    string            `json:"user_id"`
	Partition int32             `json:"partition"`
	Profile   map[string]any    `json:"profile"`
	Journeys  *journey.UserView `json:"journeys,omitempty"`
	Segments  []string          `json:"segments"`
}

func getUser(w http.ResponseWriter, r *http.Request, eng *engine.Engine) {
	id := r.PathValue("id")
	v := userView{UserID: id, Partition: eng.UserPartition(id)}
	prof, err := eng.Profile(id)
	if err == nil {
		v.Profile = prof
		v.Journeys, err = journey.DescribeUser(func(fn func(sub, value []byte) error) error {
			return eng.ReadUser(id, journey.OperatorName, func(_ string, sub, value []byte) error { return fn(sub, value) })
		})
	}
	if err == nil {
		v.Segments, err = segment.UserSegments(func(sub []byte) ([]byte, error) {
			return eng.GetUser(id, segment.OperatorName, sub)
		})
	}
	if !writeErr(w, err) {
		api.WriteJSON(w, http.StatusOK, v)
	}
}
