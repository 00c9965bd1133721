package api

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzAPIHandlers sends arbitrary requests (method, target, one extra
// header, Authorization, body) through the middleware and the mux, with
// stand-ins for the processor's routes. Raw requests are parsed with
// http.ReadRequest, as the server does, and those it rejects are skipped.
// Invariants: nothing panics; nothing answers 5xx but /readyz (503, not
// ready); no mutation reaches a handler without the mutation token, and no
// protected read without a token.
func FuzzAPIHandlers(f *testing.F) {
	seeds := []struct{ method, target, header, auth, body string }{
		{"POST", "/v1/segments/s/members", "", "Bearer " + testToken, "a\nb,c\n"},
		{"POST", "/v1/segments/s/members?progress=1", "Content-Type: text/plain", "", "a"},
		{"PUT", "/v1/segments/s/members", "", "Bearer " + testReadToken, "a"},
		{"DELETE", "/v1/segments/%2e%2e/members", "", "bearer  " + testToken + " ", ""},
		{"GET", "/v1/users/u-1", "", "Bearer " + testReadToken, ""},
		{"GET", "//metrics", "", "", ""},
		{"GET", "/readyz", "", "", ""},
		{"HEAD", "/v1/segments/s/export", "", "Bearer " + testToken, ""},
		{"PATCH", "/healthz", "X-Forwarded-For: 1.2.3.4", "", "{}"},
		{"GET", "/v1/segments/s/../../metrics", "", "", ""},
		{"CONNECT", "127.0.0.1:8080", "", "", ""},
		{"POST", "*", "Transfer-Encoding: chunked", "Bearer", strings.Repeat("x", 5000)},
	}
	for _, s := range seeds {
		f.Add(s.method, s.target, s.header, s.auth, s.body)
	}
	ts := newTestServer(f, Options{Token: testToken, ReadToken: testReadToken, MaxBodyBytes: 1024})
	f.Fuzz(func(t *testing.T, method, target, header, auth, body string) {
		raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: cairn\r\n%s\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n%s",
			method, target, header, auth, len(body), body)
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return // the server answers 400 before any handler
		}
		req.RemoteAddr = "192.0.2.1:1234"
		ts.reads.Store(0)
		ts.mutations.Store(0)
		ts.readyCalled.Store(false)
		rec := httptest.NewRecorder()
		ts.ServeHTTP(rec, req)
		if rec.Code >= 500 && !(rec.Code == http.StatusServiceUnavailable && ts.readyCalled.Load()) {
			t.Fatalf("%s %q: status %d: %s", req.Method, req.URL, rec.Code, rec.Body)
		}
		presented := presentedForTest(req.Header.Get("Authorization"))
		if ts.mutations.Load() > 0 && presented != testToken {
			t.Fatalf("%s %q reached a mutation handler with Authorization %q", req.Method, req.URL, req.Header.Get("Authorization"))
		}
		if ts.reads.Load() > 0 && presented != testToken && presented != testReadToken {
			t.Fatalf("%s %q reached a read handler with Authorization %q", req.Method, req.URL, req.Header.Get("Authorization"))
		}
		if !isRead(req.Method) && presented != testToken && rec.Code != 401 && rec.Code != 403 {
			t.Fatalf("%s %q without the token answered %d, want 401 or 403", req.Method, req.URL, rec.Code)
		}
	})
}

// presentedForTest is the token of a "Bearer <token>" header, written apart
// from bearer so that the fuzz test does not trust the code it checks.
func presentedForTest(h string) string {
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return ""
	}
	return strings.Trim(h[7:], " \t")
}
