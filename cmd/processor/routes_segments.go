package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/api"
	"github.com/cairn-cjo/cairn/operators/segment"
)

// maxUploadBytes bounds the body of a list upload.
const maxUploadBytes = 64 << 20

// segmentRoutes registers the segment API. Mutations go through the input
// topic as $segment_add / $segment_remove events, so they take the same
// partitioning and exactly-once path as any event.
func segmentRoutes(srv *api.Server, eng *engine.Engine, aggs *engine.GlobalTable, producer *kgo.Client) {
	srv.Handle("GET /v1/segments/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		var total uint64
		parts := 0
		aggs.Scan("segment/"+id+"/", func(k string, v []byte) {
			if row, err := segment.DecodeSize([]byte(k), v); err == nil && row.Segment == id {
				total += row.Size
				parts++
			}
		})
		api.WriteJSON(w, http.StatusOK, map[string]any{"segment": id, "size": total, "partitions_reporting": parts})
	})
	srv.Handle("GET /v1/segments/{id}/members/{user}", func(w http.ResponseWriter, r *http.Request) {
		id, user := r.PathValue("id"), r.PathValue("user")
		get, _ := segment.EngineReaders(eng, eng.UserPartition(user))
		in, err := segment.IsMember(get, user, id)
		if writeErr(w, err) {
			return
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{"segment": id, "user_id": user, "member": in})
	})
	srv.Handle("GET /v1/segments/{id}/export", func(w http.ResponseWriter, r *http.Request) {
		exportSegment(w, eng, r.PathValue("id"))
	})
	srv.Handle("POST /v1/segments/{id}/members", func(w http.ResponseWriter, r *http.Request) {
		upload(w, r, eng, producer, false)
	})
	srv.Handle("DELETE /v1/segments/{id}/members", func(w http.ResponseWriter, r *http.Request) {
		upload(w, r, eng, producer, true)
	})
	srv.Handle("PUT /v1/segments/{id}/members", func(w http.ResponseWriter, r *http.Request) {
		replace(w, r, eng, producer)
	})
}

// replace makes the list exactly the uploaded ids: it adds them all and
// removes the current members that are not among them. It needs the current
// members of every partition, so it is refused unless this instance owns
// them all.
func replace(w http.ResponseWriter, r *http.Request, eng *engine.Engine, producer *kgo.Client) {
	if n := int32(len(eng.Owned())); n != eng.Partitions() {
		api.WriteJSON(w, http.StatusConflict, map[string]string{"error": fmt.Sprintf(
			"replace needs every partition's members; this instance owns %d of %d: send it to a single instance, or use POST and DELETE", n, eng.Partitions())})
		return
	}
	ids, err := readIDs(http.MaxBytesReader(w, r.Body, maxUploadBytes))
	if err != nil {
		api.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	id := r.PathValue("id")
	keep := make(map[string]bool, len(ids))
	for _, u := range ids {
		keep[u] = true
	}
	var drop []string
	for _, p := range eng.Owned() {
		get, scan := segment.EngineReaders(eng, p)
		err := segment.Members(get, scan, id, func(user string) error {
			if !keep[user] {
				drop = append(drop, user)
			}
			return nil
		})
		if writeErr(w, err) {
			return
		}
	}
	recs := append(listEvents(eng, id, "$segment_add", ids), listEvents(eng, id, "$segment_remove", drop)...)
	if produceAll(w, r, producer, recs) {
		api.WriteJSON(w, http.StatusAccepted, map[string]any{"segment": id, "added": len(ids), "removed": len(drop)})
	}
}

// listEvents returns one input record per user, naming the list.
func listEvents(eng *engine.Engine, segmentID, name string, users []string) []*kgo.Record {
	now := time.Now().UnixMilli()
	recs := make([]*kgo.Record, 0, len(users))
	for i, u := range users {
		v, _ := json.Marshal(map[string]any{"user_id": u, "event": name, "ts": now,
			"props": map[string]any{"segment": segmentID}, "event_id": fmt.Sprintf("%s-%s-%d-%d", name[1:], segmentID, now, i)})
		recs = append(recs, &kgo.Record{Topic: eng.Config().InputTopic, Key: []byte(u), Value: v})
	}
	return recs
}

func produceAll(w http.ResponseWriter, r *http.Request, producer *kgo.Client, recs []*kgo.Record) bool {
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		api.WriteJSON(w, http.StatusBadGateway, map[string]string{"error": "producing list events: " + err.Error()})
		return false
	}
	return true
}

// exportSegment streams the members of id on this instance's partitions,
// one per line; the X-Cairn-Partitions header names the partitions covered.
func exportSegment(w http.ResponseWriter, eng *engine.Engine, id string) {
	owned := eng.Owned()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Cairn-Partitions", fmt.Sprint(owned))
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	for _, p := range owned {
		get, scan := segment.EngineReaders(eng, p)
		err := segment.Members(get, scan, id, func(user string) error {
			_, err := bw.WriteString(user + "\n")
			return err
		})
		if err != nil && !errors.Is(err, engine.ErrNotOwned) {
			fmt.Fprintf(bw, "# error on partition %d: %v\n", p, err)
			return
		}
	}
}

// upload turns a newline- or comma-separated list of user ids into one
// $segment_add (or, with remove, $segment_remove) event per id on the input
// topic.
func upload(w http.ResponseWriter, r *http.Request, eng *engine.Engine, producer *kgo.Client, remove bool) {
	ids, err := readIDs(http.MaxBytesReader(w, r.Body, maxUploadBytes))
	if err != nil {
		api.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	name := "$segment_add"
	if remove {
		name = "$segment_remove"
	}
	id := r.PathValue("id")
	if produceAll(w, r, producer, listEvents(eng, id, name, ids)) {
		api.WriteJSON(w, http.StatusAccepted, map[string]any{"segment": id, "event": name, "users": len(ids)})
	}
}

func readIDs(body io.Reader) ([]string, error) {
	cr := csv.NewReader(body)
	cr.FieldsPerRecord = -1
	var ids []string
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return ids, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading ids: %w", err)
		}
		for _, f := range rec {
			if f = strings.TrimSpace(f); f != "" {
				ids = append(ids, f)
			}
		}
	}
}

// writeErr writes err as JSON and reports whether there was one.
func writeErr(w http.ResponseWriter, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, engine.ErrNotOwned):
		api.WriteJSON(w, http.StatusMisdirectedRequest, map[string]any{"error": err.Error(),
			"hint": "this instance answers for the partitions it owns; ask the owner (forwarding is not built yet)"})
	default:
		api.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	}
	return true
}
