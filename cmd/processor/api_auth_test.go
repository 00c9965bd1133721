package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAPIAuth runs an instance with a mutation token read from a file and
// a read token, and checks the real routes refuse and accept as
// docs/operations.md says, with one audit line per mutation.
func TestAPIAuth(t *testing.T) {
	const readToken = "api-read-token-0123456789"
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(apiToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	base, _ := startAPIWith(t, func(c *Config) { c.HTTPTokenFile, c.HTTPReadToken = file, readToken }, log)
	eventually(t, base+"/readyz", func(code int, _ string) bool { return code == 200 })
	members := base + "/v1/segments/vip-list/members"
	cases := []struct {
		name, method, url, token string
		want                     int
	}{
		{"upload without token", "POST", members, "", 401},
		{"upload with wrong token", "POST", members, "api-test-token-0123456788", 401},
		{"upload with read token", "POST", members, readToken, 403},
		{"upload with token", "POST", members, apiToken, 202},
		{"replace without token", "PUT", members, "", 401},
		{"remove with token", "DELETE", members, apiToken, 202},
		{"user without token", "GET", base + "/v1/users/u-1", "", 401},
		{"user with read token", "GET", base + "/v1/users/u-1", readToken, 200},
		{"export with mutation token", "GET", base + "/v1/segments/vip-list/export", apiToken, 200},
		{"metrics without token", "GET", base + "/metrics", "", 200},
		{"healthz without token", "GET", base + "/healthz", "", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := authed(tc.method, tc.url, tc.token, strings.NewReader("a\nb\n"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			if tc.want == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	out := logs.String()
	if strings.Contains(out, apiToken) || strings.Contains(out, readToken) {
		t.Fatalf("a token is in the logs:\n%s", out)
	}
	if n := strings.Count(out, `"msg":"http mutation"`); n != 6 {
		t.Errorf("%d audit lines, want 6 (one per mutation):\n%s", n, out)
	}
	if !strings.Contains(out, `"authorized":false,"auth":"read-token"`) || !strings.Contains(out, `"status":202,"body_bytes":4`) {
		t.Errorf("audit lines lack the refused read-token upload or the accepted one:\n%s", out)
	}
}

// TestAPIMutationsDisabledByDefault: without --http-token, an upload is
// refused, with a message naming the flag.
func TestAPIMutationsDisabledByDefault(t *testing.T) {
	base, _ := startAPIWith(t, func(*Config) {}, newLogger("error"))
	eventually(t, base+"/readyz", func(code int, _ string) bool { return code == 200 })
	resp, err := authed("POST", base+"/v1/segments/vip-list/members", apiToken, strings.NewReader("a"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "--http-token") {
		t.Fatalf("status %d: %s; want 403 naming --http-token", resp.StatusCode, body)
	}
}
