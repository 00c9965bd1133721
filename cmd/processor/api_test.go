package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cairn-cjo/cairn/internal/broker"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
)

const apiDefs = `kind: segment
id: gold
rule: {profile: 'profile.tier == "gold"'}
---
kind: segment
id: vip-list
rule: {list: true}
---
kind: journey
id: hello
entry: {event: app_open}
nodes:
  hi: {action: {channel: push, template: hi}}
---
kind: funnel
id: open-then-buy
window: 1h
steps: [{event: app_open}, {event: purchase}]
bucket: day
timezone: UTC
`

// TestAPI runs an instance in-process and exercises the HTTP API as an
// operator would.
func TestAPI(t *testing.T) {
	base, addrs := startAPI(t)
	now := time.Now().UnixMilli()
	kafkatest.ProduceEvents(t, addrs, "events", []kafkatest.Event{
		{UserID: "u-1", Event: "$profile_set", TS: now, Props: map[string]any{"tier": "gold"}},
		{UserID: "u-1", Event: "app_open", TS: now + 1},
		{UserID: "u-2", Event: "app_open", TS: now + 2},
		{UserID: "u-2", Event: "purchase", TS: now + 3},
	})
	eventually(t, base+"/readyz", func(code int, _ string) bool { return code == 200 })
	eventually(t, base+"/v1/users/u-1", func(code int, body string) bool {
		return code == 200 && strings.Contains(body, `"tier": "gold"`) && strings.Contains(body, `"gold"`) && strings.Contains(body, `"journey": "hello"`)
	})
	eventually(t, base+"/v1/segments/gold", func(code int, body string) bool { return code == 200 && strings.Contains(body, `"size": 1`) })
	eventually(t, base+"/v1/funnels/open-then-buy", func(code int, body string) bool {
		return code == 200 && strings.Contains(body, `"count": 2`) && strings.Contains(body, `"count": 1`) && strings.Contains(body, `"purchase"`)
	})
	eventually(t, base+"/v1/journeys/hello/stats", func(code int, body string) bool { return code == 200 && strings.Contains(body, `"entered": 2`) })

	resp, err := authed("POST", base+"/v1/segments/vip-list/members", apiToken, strings.NewReader("u-1\nu-3,u-4\n"))
	if err != nil {
		t.Fatal(err)
	}
	var up struct{ Users int }
	_ = json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || up.Users != 3 {
		t.Fatalf("upload: %d, %d users", resp.StatusCode, up.Users)
	}
	eventually(t, base+"/v1/segments/vip-list/members/u-3", func(code int, body string) bool {
		return code == 200 && strings.Contains(body, `"member": true`)
	})
	eventually(t, base+"/v1/segments/vip-list/export", func(code int, body string) bool {
		return code == 200 && body == "u-1\nu-3\nu-4\n" || code == 200 && len(strings.Fields(body)) == 3
	})
	eventually(t, base+"/metrics", func(code int, body string) bool {
		return code == 200 && strings.Contains(body, "cairn_records_consumed_total") && strings.Contains(body, "cairn_transactions_committed_total")
	})
}

// apiToken is the mutation token of the instances of startAPI.
const apiToken = "api-test-token-0123456789"

// authed sends a request with Authorization: Bearer token (none if empty).
func authed(method, url, token string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return http.DefaultClient.Do(req)
}

// startAPI runs an instance with apiDefs and --http-token apiToken
// in-process, stopped with the test, and returns its base URL and the
// broker's addresses.
func startAPI(t *testing.T) (string, []string) {
	t.Helper()
	return startAPIWith(t, func(c *Config) { c.HTTPToken = apiToken }, newLogger("error"))
}

// startAPIWith is startAPI with the config changed by edit and logs to log.
func startAPIWith(t *testing.T, edit func(*Config), log *slog.Logger) (string, []string) {
	t.Helper()
	b := kafkatest.Start(t, broker.Options{})
	addrs := b.Addrs()
	kafkatest.CreateTopic(t, addrs, "events", 2, nil)
	defs := t.TempDir()
	if err := os.WriteFile(filepath.Join(defs, "d.yaml"), []byte(apiDefs), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	addr := make(chan string, 1)
	c := Config{Brokers: addrs[0], AppID: "api", InputTopic: "events", StateDir: t.TempDir(), Definitions: defs,
		HTTP: "127.0.0.1:0", CommitInterval: 50 * time.Millisecond, InstanceID: "api-1",
		SessionTimeout: 3 * time.Second, TxnTimeout: 10 * time.Second, IdleAdvance: true, LogLevel: "warn"}
	edit(&c)
	go func() { done <- runInstance(ctx, c, log, func(i *instance) { addr <- i.srv.Addr() }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case a := <-addr:
		return "http://" + a, addrs
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("instance did not start: %v", err)
		return "", nil
	}
}

// eventually polls url until ok accepts the answer, for up to 30s.
func eventually(t *testing.T, url string, ok func(code int, body string) bool) {
	t.Helper()
	var code int
	var body string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		code, body = resp.StatusCode, string(b)
		if ok(code, body) {
			return
		}
	}
	t.Fatalf("GET %s: last answer %d %s", url, code, body)
}

func TestAPIReplaceList(t *testing.T) {
	base, _ := startAPI(t)
	eventually(t, base+"/readyz", func(code int, _ string) bool { return code == 200 })
	send := func(method, body string) {
		t.Helper()
		resp, err := authed(method, base+"/v1/segments/vip-list/members", apiToken, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%s: status %d", method, resp.StatusCode)
		}
	}
	members := func(want string) {
		t.Helper()
		eventually(t, base+"/v1/segments/vip-list/export", func(code int, body string) bool {
			f := strings.Fields(body)
			sort.Strings(f)
			return code == 200 && strings.Join(f, ",") == want
		})
	}
	send("POST", "a\nb\nc\n")
	members("a,b,c")
	send("DELETE", "b")
	members("a,c")
	send("PUT", "c,d")
	members("c,d")
}

// TestAPIUploadsAMillionIDsWithProgress uploads a list of 1,000,000 ids with
// ?progress=1: the response must report progress chunk by chunk, in order,
// end with the summary, and every id must be on the input topic as one
// $segment_add event.
func TestAPIUploadsAMillionIDsWithProgress(t *testing.T) {
	if testing.Short() {
		t.Skip("produces a million records")
	}
	base, addrs := startAPI(t)
	eventually(t, base+"/readyz", func(code int, _ string) bool { return code == 200 })
	ends := func() int64 {
		t.Helper()
		offs, err := kadm.NewClient(kafkatest.Client(t, addrs)).ListEndOffsets(context.Background(), "events")
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		offs.Each(func(o kadm.ListedOffset) { n += o.Offset })
		return n
	}
	before := ends()
	const n = 1_000_000
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriter(pw)
		for i := 0; i < n; i++ {
			fmt.Fprintf(bw, "m-%d\n", i)
		}
		bw.Flush()
		pw.Close()
	}()
	resp, err := authed("POST", base+"/v1/segments/vip-list/members?progress=1", apiToken, pr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var last struct {
		Produced, Total, Users int
		Done                   bool
		Error                  string
	}
	reports := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		prev := last.Produced
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if last.Error != "" {
			t.Fatalf("upload failed: %s", last.Error)
		}
		if !last.Done {
			reports++
			if last.Produced <= prev || last.Total != n {
				t.Fatalf("progress %d/%d after %d", last.Produced, last.Total, prev)
			}
		}
	}
	if !last.Done || last.Users != n || reports < 10 {
		t.Fatalf("upload ended with %+v after %d progress lines, want done with %d users and ≥ 10 reports", last, reports, n)
	}
	if got := ends() - before; got != n {
		t.Fatalf("%d records reached the input topic, want %d", got, n)
	}
}
