package main

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/cairn-cjo/cairn/engine"
)

// forwardedHeader marks a request one instance forwarded to another; a
// forwarded request is never forwarded again, so two instances with stale
// views of each other cannot bounce it.
const forwardedHeader = "X-Cairn-Forwarded-By"

// servedByHeader names the instance that answered.
const servedByHeader = "X-Cairn-Served-By"

// forwarder sends a read about a user to the instance that owns the user's
// partition, found in the instances' statuses (<app-id>-status, design §5).
type forwarder struct {
	eng      *engine.Engine
	statuses *engine.GlobalTable
	self     string
	client   http.Client
}

// owner returns the advertised API address of the live instance that owns
// partition p, other than this one.
func (f *forwarder) owner(p int32) (instance, addr string, ok bool) {
	now := time.Now()
	f.statuses.Scan("", func(_ string, v []byte) {
		s, err := engine.DecodeStatus(v)
		if err != nil || ok || s.Instance == f.self || s.HTTP == "" || s.Stale(now) || !s.Owns(p) {
			return
		}
		instance, addr, ok = s.Instance, s.HTTP, true
	})
	return instance, addr, ok
}

// serve answers r with local if this instance owns partition p; otherwise it
// forwards r to the owner and copies its answer. With no known owner, or
// for a request that was already forwarded once, it answers with local,
// which says the partition is not owned here (421).
func (f *forwarder) serve(w http.ResponseWriter, r *http.Request, p int32, local http.HandlerFunc) {
	if p < 0 || f.eng.Owns(p) || r.Header.Get(forwardedHeader) != "" {
		w.Header().Set(servedByHeader, f.self)
		local(w, r)
		return
	}
	instance, addr, ok := f.owner(p)
	if !ok {
		w.Header().Set(servedByHeader, f.self)
		local(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+r.URL.RequestURI(), nil)
	if err != nil {
		local(w, r)
		return
	}
	req.Header.Set(forwardedHeader, f.self)
	if a := r.Header.Get("Authorization"); a != "" {
		req.Header.Set("Authorization", a) // the owner checks the same tokens
	}
	resp, err := f.client.Do(req)
	if err != nil {
		f.eng.Config().Logger.Warn("forwarding to the partition's owner failed; answering locally",
			"owner", instance, "addr", addr, "partition", p, "error", err)
		w.Header().Set(servedByHeader, f.self)
		local(w, r)
		return
	}
	defer resp.Body.Close()
	for _, k := range []string{"Content-Type", servedByHeader} {
		if v := resp.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 16<<20))
}
