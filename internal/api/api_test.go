package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	testToken     = "mutation-token-0123456789"
	testReadToken = "read-token-0123456789abc"
)

// testServer is a Server with stand-ins for the processor's routes, which
// count the requests that reached them.
type testServer struct {
	*Server
	reads, mutations atomic.Int64
	readyCalled      atomic.Bool
}

// newTestServer returns a server on a random loopback port that is never
// served: tests call its ServeHTTP.
func newTestServer(t testing.TB, o Options) *testServer {
	t.Helper()
	o.Addr = "127.0.0.1:0"
	ts := &testServer{}
	srv, err := New(o, prometheus.NewRegistry(), func() bool { ts.readyCalled.Store(true); return false })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.ln.Close() })
	ts.Server = srv
	read := func(w http.ResponseWriter, r *http.Request) {
		ts.reads.Add(1)
		WriteJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
	}
	for _, p := range []string{"/v1/users/{id}", "/v1/journeys/{id}/stats", "/v1/segments/{id}",
		"/v1/segments/{id}/members/{user}", "/v1/segments/{id}/export", "/v1/funnels/{id}"} {
		srv.Handle("GET "+p, read)
	}
	mutate := func(w http.ResponseWriter, r *http.Request) {
		ts.mutations.Add(1)
		if _, ok := w.(http.Flusher); !ok {
			WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "the middleware hides http.Flusher"})
			return
		}
		n, err := io.Copy(io.Discard, r.Body)
		if errors.As(err, new(*http.MaxBytesError)) {
			WriteJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": err.Error()})
			return
		}
		WriteJSON(w, http.StatusAccepted, map[string]int64{"bytes": n})
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		srv.HandleWithLimit(m+" /v1/segments/{id}/members", 4096, mutate)
	}
	srv.Handle("POST /v1/small", mutate)
	return ts
}

// do sends one request through the middleware.
func (ts *testServer) do(method, target, auth, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	ts.ServeHTTP(rec, req)
	return rec
}

func TestAuth(t *testing.T) {
	both := Options{Token: testToken, ReadToken: testReadToken}
	cases := []struct {
		name          string
		opts          Options
		method, path  string
		auth          string
		want          int
		wantChallenge string // prefix of WWW-Authenticate, "" for none
		wantMsg       string // substring of the body
	}{
		{"mutation without token", both, "POST", "/v1/segments/s/members", "", 401, `Bearer realm="cairn"`, "missing bearer token"},
		{"mutation with wrong token", both, "POST", "/v1/segments/s/members", "Bearer wrong-token-0123456789", 401, `Bearer realm="cairn", error="invalid_token"`, "invalid"},
		{"mutation with a prefix of the token", both, "DELETE", "/v1/segments/s/members", "Bearer " + testToken[:20], 401, `Bearer realm="cairn", error="invalid_token"`, "invalid"},
		{"mutation with token plus suffix", both, "PUT", "/v1/segments/s/members", "Bearer " + testToken + "x", 401, `Bearer realm="cairn", error="invalid_token"`, "invalid"},
		{"mutation with right token", both, "POST", "/v1/segments/s/members", "Bearer " + testToken, 202, "", ""},
		{"scheme is case-insensitive", both, "PUT", "/v1/segments/s/members", "bearer " + testToken, 202, "", ""},
		{"basic auth is no bearer token", both, "POST", "/v1/segments/s/members", "Basic " + testToken, 401, `Bearer realm="cairn"`, "missing"},
		{"mutation with read token", both, "DELETE", "/v1/segments/s/members", "Bearer " + testReadToken, 403, `Bearer realm="cairn", error="insufficient_scope"`, "read token"},
		{"unknown method is a mutation", both, "FROB", "/v1/segments/s/members", "", 401, `Bearer`, "missing"},
		{"OPTIONS is a mutation", both, "OPTIONS", "/v1/users/u", "Bearer " + testReadToken, 403, `Bearer`, "read token"},
		{"unknown path refused before routing", both, "POST", "/nowhere", "", 401, `Bearer`, ""},
		{"unknown path with token reaches the mux", both, "POST", "/nowhere", "Bearer " + testToken, 404, "", ""},
		{"read without token", both, "GET", "/v1/users/u", "", 401, `Bearer realm="cairn"`, "missing"},
		{"HEAD without token", both, "HEAD", "/v1/users/u", "", 401, `Bearer`, ""},
		{"read with wrong token", both, "GET", "/v1/users/u", "Bearer nope-nope-nope-nope", 401, `Bearer realm="cairn", error="invalid_token"`, "invalid"},
		{"read with read token", both, "GET", "/v1/users/u", "Bearer " + testReadToken, 200, "", `"id": "u"`},
		{"read with mutation token", both, "GET", "/v1/segments/s/export", "Bearer " + testToken, 200, "", ""},
		{"healthz is exempt", both, "GET", "/healthz", "", 200, "", "ok"},
		{"readyz is exempt", both, "GET", "/readyz", "", 503, "", "restoring"},
		{"metrics is exempt", both, "GET", "/metrics", "", 200, "", ""},
		{"exempt paths match exactly", both, "GET", "/metrics/", "", 401, `Bearer`, ""},
		{"exempt path is no exemption for a mutation", both, "POST", "/healthz", "", 401, `Bearer`, ""},
		{"reads open without a read token", Options{Token: testToken}, "GET", "/v1/users/u", "", 200, "", ""},
		{"no token: mutations disabled", Options{}, "POST", "/v1/segments/s/members", "", 403, "", "--http-token"},
		{"no token: any token is refused too", Options{}, "POST", "/v1/segments/s/members", "Bearer " + testToken, 403, "", "mutations are disabled"},
		{"no token: reads open", Options{}, "GET", "/v1/users/u", "", 200, "", ""},
		{"read token only: mutations disabled", Options{ReadToken: testReadToken}, "POST", "/v1/segments/s/members", "Bearer " + testReadToken, 403, "", "mutations are disabled"},
		{"insecure mutations", Options{InsecureMutations: true}, "POST", "/v1/segments/s/members", "", 202, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, tc.opts)
			rec := ts.do(tc.method, tc.path, tc.auth, "a\nb\n")
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, tc.wantChallenge) || (tc.wantChallenge == "") != (got == "") {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.wantChallenge)
			}
			if !strings.Contains(rec.Body.String(), tc.wantMsg) {
				t.Errorf("body %q does not say %q", rec.Body, tc.wantMsg)
			}
			if strings.Contains(rec.Body.String(), testToken) || strings.Contains(rec.Body.String(), testReadToken) {
				t.Errorf("the answer holds a token: %s", rec.Body)
			}
			if tc.want == 401 || tc.want == 403 {
				if n := ts.reads.Load() + ts.mutations.Load(); n != 0 {
					t.Errorf("a refused request reached %d handlers", n)
				}
			}
		})
	}
}

// TestAuthComparesInConstantTime checks that every token check goes through
// the constant-time comparison, with digests of one length whatever the
// length of the token presented.
func TestAuthComparesInConstantTime(t *testing.T) {
	ts := newTestServer(t, Options{Token: testToken, ReadToken: testReadToken})
	var calls int
	ts.auth.equal = func(x, y []byte) int {
		calls++
		if len(x) != 32 || len(y) != 32 {
			t.Errorf("compared %d and %d bytes, want two SHA-256 digests", len(x), len(y))
		}
		return bytesEqualForTest(x, y)
	}
	for _, auth := range []string{"Bearer x", "Bearer " + testToken, "Bearer " + testReadToken, "Bearer " + strings.Repeat("z", 4000)} {
		for _, m := range []string{"GET", "POST"} {
			calls = 0
			ts.do(m, "/v1/segments/s/members", auth, "")
			if calls != 2 {
				t.Errorf("%s with %.20q: %d comparisons, want 2 (both tokens, always)", m, auth, calls)
			}
		}
	}
}

func bytesEqualForTest(x, y []byte) int {
	if bytes.Equal(x, y) {
		return 1
	}
	return 0
}

func TestAuditLogsEveryMutation(t *testing.T) {
	var buf bytes.Buffer
	ts := newTestServer(t, Options{Token: testToken, ReadToken: testReadToken, Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	ts.do("POST", "/v1/segments/s/members", "Bearer "+testToken, "a\nb\n")
	ts.do("DELETE", "/v1/segments/s/members", "Bearer not-the-token-at-all", "a")
	ts.do("GET", "/v1/users/u", "Bearer "+testReadToken, "")
	if strings.Contains(buf.String(), testToken) || strings.Contains(buf.String(), "not-the-token") {
		t.Fatalf("the audit log holds a token:\n%s", buf.String())
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("%d audit lines, want 2 (mutations only):\n%s", len(lines), buf.String())
	}
	want := []map[string]any{
		{"level": "INFO", "msg": "http mutation", "method": "POST", "path": "/v1/segments/s/members", "status": 202.0, "body_bytes": 4.0, "authorized": true, "auth": "token"},
		{"level": "INFO", "msg": "http mutation", "method": "DELETE", "path": "/v1/segments/s/members", "status": 401.0, "body_bytes": 0.0, "authorized": false, "auth": "invalid"},
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v", i, k, lines[i][k], v)
			}
		}
		for _, k := range []string{"remote", "duration", "content_length"} {
			if _, ok := lines[i][k]; !ok {
				t.Errorf("line %d has no %s", i, k)
			}
		}
	}
}

func TestBodyLimits(t *testing.T) {
	ts := newTestServer(t, Options{Token: testToken, MaxBodyBytes: 100})
	auth := "Bearer " + testToken
	cases := []struct {
		name, path string
		size       int
		want       int
	}{
		{"default limit, under", "/v1/small", 100, 202},
		{"default limit, over", "/v1/small", 101, 413},
		{"route limit, over the default", "/v1/segments/s/members", 4096, 202},
		{"route limit, over", "/v1/segments/s/members", 4097, 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if rec := ts.do("POST", tc.path, auth, strings.Repeat("x", tc.size)); rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		want string // substring of the error, "" for none
	}{
		{"no tokens", Options{}, ""},
		{"tokens", Options{Token: testToken, ReadToken: testReadToken}, ""},
		{"insecure", Options{InsecureMutations: true}, ""},
		{"insecure and token", Options{Token: testToken, InsecureMutations: true}, "choose one"},
		{"short token", Options{Token: "short"}, "mutation token: too short"},
		{"token with space", Options{ReadToken: "read token 0123456789"}, "read token: only printable ASCII"},
		{"token with newline", Options{Token: testToken + "\n"}, "printable ASCII"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}
