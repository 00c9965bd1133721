package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/api"
	"github.com/cairn-cjo/cairn/operators/segment"
)

// maxUploadBytes bounds the body of a list upload (the server's default
// limit is far lower: api.DefaultMaxBodyBytes).
const maxUploadBytes = 64 << 20

// streamStall is how long a list upload or an export may go without
// progress before its connection is dropped. It replaces the server's read
// and write timeouts for these routes (api.ExtendDeadlines): at the start,
// so that the body of an upload has this long to arrive (64 MiB at
// 0.5 MiB/s), then before each produced chunk or exported batch, so that a
// transfer of minutes goes on while a stalled client or broker does not
// hold the connection forever.
const streamStall = 2 * time.Minute

// segmentRoutes registers the segment API. Mutations go through the input
// topic as $segment_add / $segment_remove events, so they take the same
// partitioning and exactly-once path as any event.
func segmentRoutes(srv *api.Server, eng *engine.Engine, aggs *engine.GlobalTable, producer *kgo.Client, fwd *forwarder) {
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
		fwd.serve(w, r, eng.UserPartition(r.PathValue("user")), func(w http.ResponseWriter, r *http.Request) {
			id, user := r.PathValue("id"), r.PathValue("user")
			get, _ := segment.EngineReaders(eng, eng.UserPartition(user))
			in, err := segment.IsMember(get, user, id)
			if writeErr(w, err) {
				return
			}
			api.WriteJSON(w, http.StatusOK, map[string]any{"segment": id, "user_id": user, "member": in})
		})
	})
	srv.Handle("GET /v1/segments/{id}/export", func(w http.ResponseWriter, r *http.Request) {
		exportSegment(w, eng, r.PathValue("id"))
	})
	srv.HandleWithLimit("POST /v1/segments/{id}/members", maxUploadBytes, func(w http.ResponseWriter, r *http.Request) {
		upload(w, r, eng, producer, false)
	})
	srv.HandleWithLimit("DELETE /v1/segments/{id}/members", maxUploadBytes, func(w http.ResponseWriter, r *http.Request) {
		upload(w, r, eng, producer, true)
	})
	srv.HandleWithLimit("PUT /v1/segments/{id}/members", maxUploadBytes, func(w http.ResponseWriter, r *http.Request) {
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
	api.ExtendDeadlines(w, streamStall)
	ids, ok := readUpload(w, r)
	if !ok {
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
	p := newUploadProgress(w, r, id, len(ids)+len(drop))
	if p.produce(r.Context(), eng, producer, "$segment_add", ids) && p.produce(r.Context(), eng, producer, "$segment_remove", drop) {
		p.done(map[string]any{"segment": id, "added": len(ids), "removed": len(drop)})
	}
}

// uploadChunk is how many list events are produced (and acknowledged)
// at a time: it bounds the memory of a large upload and sets the pace of
// its progress reports.
const uploadChunk = 10_000

// uploadProgress produces the events of one list upload chunk by chunk and
// reports progress: with ?progress=1 the response is newline-delimited JSON,
// a {"produced", "total"} line per chunk and then the summary (or an
// {"error"} line); without it, one JSON summary. Large uploads are also
// logged every 100,000 events.
type uploadProgress struct {
	w        http.ResponseWriter
	segment  string
	total    int
	produced int
	stream   bool
	now      int64
}

func newUploadProgress(w http.ResponseWriter, r *http.Request, segment string, total int) *uploadProgress {
	p := &uploadProgress{w: w, segment: segment, total: total, now: time.Now().UnixMilli()}
	if v := r.URL.Query().Get("progress"); v != "" && v != "0" && v != "false" {
		p.stream = true
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusAccepted)
	}
	return p
}

// produce sends one event named name per user, chunk by chunk, and reports
// whether all were acknowledged; on failure it has written the error.
func (p *uploadProgress) produce(ctx context.Context, eng *engine.Engine, producer *kgo.Client, name string, users []string) bool {
	for lo := 0; lo < len(users); lo += uploadChunk {
		hi := min(lo+uploadChunk, len(users))
		api.ExtendDeadlines(p.w, streamStall)
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := producer.ProduceSync(cctx, listEvents(eng, p.segment, name, users[lo:hi], lo, p.now)...).FirstErr()
		cancel()
		if err != nil {
			p.fail(fmt.Errorf("producing list events: %w", err))
			return false
		}
		before := p.produced
		p.produced += hi - lo
		if p.stream {
			p.line(map[string]any{"produced": p.produced, "total": p.total})
		}
		if p.produced/100_000 > before/100_000 {
			slog.Info("segment list upload", "segment", p.segment, "produced", p.produced, "total", p.total)
		}
	}
	return true
}

func (p *uploadProgress) line(v any) {
	b, _ := json.Marshal(v)
	_, _ = p.w.Write(append(b, '\n'))
	if f, ok := p.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (p *uploadProgress) fail(err error) {
	if p.stream {
		p.line(map[string]any{"error": err.Error(), "produced": p.produced, "total": p.total})
		return
	}
	api.WriteJSON(p.w, http.StatusBadGateway, map[string]any{"error": err.Error(), "produced": p.produced, "total": p.total})
}

func (p *uploadProgress) done(summary map[string]any) {
	if p.stream {
		summary["done"] = true
		p.line(summary)
		return
	}
	api.WriteJSON(p.w, http.StatusAccepted, summary)
}

// listEvents returns one input record per user, naming the list; first is
// the index of users[0] in the upload, which makes the event ids unique.
func listEvents(eng *engine.Engine, segmentID, name string, users []string, first int, now int64) []*kgo.Record {
	recs := make([]*kgo.Record, 0, len(users))
	for i, u := range users {
		v, _ := json.Marshal(map[string]any{"user_id": u, "event": name, "ts": now,
			"props": map[string]any{"segment": segmentID}, "event_id": fmt.Sprintf("%s-%s-%d-%d", name[1:], segmentID, now, first+i)})
		recs = append(recs, &kgo.Record{Topic: eng.Config().InputTopic, Key: []byte(u), Value: v})
	}
	return recs
}

// exportSegment streams the members of id on this instance's partitions,
// one per line; the X-Cairn-Partitions header names the partitions covered.
func exportSegment(w http.ResponseWriter, eng *engine.Engine, id string) {
	owned := eng.Owned()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Cairn-Partitions", fmt.Sprint(owned))
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	n := 0
	for _, p := range owned {
		get, scan := segment.EngineReaders(eng, p)
		err := segment.Members(get, scan, id, func(user string) error {
			if n%uploadChunk == 0 {
				api.ExtendDeadlines(w, streamStall)
			}
			n++
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
	api.ExtendDeadlines(w, streamStall)
	ids, ok := readUpload(w, r)
	if !ok {
		return
	}
	name := "$segment_add"
	if remove {
		name = "$segment_remove"
	}
	id := r.PathValue("id")
	p := newUploadProgress(w, r, id, len(ids))
	if p.produce(r.Context(), eng, producer, name, ids) {
		p.done(map[string]any{"segment": id, "event": name, "users": len(ids)})
	}
}

// readUpload reads the ids of an upload's body (limited to maxUploadBytes
// by its route); on failure it has answered 413 or 400.
func readUpload(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	ids, err := readIDs(r.Body)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		api.WriteJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf(
			"the list is larger than %d MiB: split it into several POSTs", maxUploadBytes>>20)})
	case err != nil:
		api.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
	}
	return ids, err == nil
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
			"hint": "this instance does not own the partition and knows no live owner to forward to (see processor status); retry shortly"})
	default:
		api.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	}
	return true
}
