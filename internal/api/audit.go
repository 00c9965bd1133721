package api

import (
	"io"
	"net/http"
	"time"
)

// serveMutation serves a request whose method is not a read, and logs one
// audit line for it once it is answered, whether it was accepted or
// refused. The line never holds the Authorization header.
func (s *Server) serveMutation(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	d := s.auth.authorize(r)
	body := &countingBody{}
	if d.allowed() {
		body = s.limitBody(w, r)
		s.mux.ServeHTTP(rec, r)
	} else {
		d.write(rec)
	}
	s.opts.Logger.Info("http mutation", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr,
		"status", rec.code(), "body_bytes", body.n, "content_length", r.ContentLength,
		"duration", time.Since(start), "authorized", d.allowed(), "auth", d.cred)
}

// recorder remembers the status of a response. It passes Flush and Unwrap
// through, so that streaming handlers (which assert http.Flusher) and
// http.ResponseController (ExtendDeadlines) work behind it. Not safe for
// concurrent use, like any ResponseWriter.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Flush sends what was written so far, if the underlying writer can.
func (r *recorder) Flush() {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// code is the status sent, 200 if the handler wrote nothing (as net/http
// answers then).
func (r *recorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// countingBody counts the bytes a handler read from a request body (the
// audit log's body_bytes). The zero value is an empty body.
type countingBody struct {
	rc io.ReadCloser
	n  int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	if c.rc == nil {
		return 0, io.EOF
	}
	n, err := c.rc.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingBody) Close() error {
	if c.rc == nil {
		return nil
	}
	return c.rc.Close()
}
