package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
)

var httpAddrRe = regexp.MustCompile(`msg="cairn instance starting".* http=(\S+)`)

// httpAddr returns the API address the child logged at start.
func (c *child) httpAddr(t *testing.T) string {
	t.Helper()
	c.waitLog(t, "cairn instance starting")
	b, _ := os.ReadFile(c.log.Name())
	m := httpAddrRe.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no http address in %s", c.log.Name())
	}
	return string(m[1])
}

// TestStatusAndForwarding runs two instances of one app. processor status
// must list both and every partition as owned; any instance must answer
// GET /v1/users/{id} for any user, forwarding to the owner when it is not
// it; after one stops, status must show the other alone.
func TestStatusAndForwarding(t *testing.T) {
	addrs, defs := counterSetup(t)
	var evs []kafkatest.Event
	for i := 0; i < 40; i++ {
		evs = append(evs, kafkatest.Event{UserID: fmt.Sprintf("u-%d", i), Event: "$profile_set", TS: time.Now().UnixMilli(),
			Props: map[string]any{"tier": fmt.Sprintf("t%d", i)}})
	}
	kafkatest.ProduceEvents(t, addrs, "events", evs)
	start := func(id string) *child {
		return startChild(t, "run", "--brokers", addrs[0], "--app-id", "st", "--definitions", defs,
			"--state-dir", t.TempDir(), "--http", "127.0.0.1:0", "--instance-id", id, "--status-interval", "200ms",
			"--session-timeout", "3s", "--rebalance-timeout", "5s", "--log-level", "info")
	}
	a, b := start("a"), start("b")
	aHTTP := a.httpAddr(t)
	status := func() string {
		var out bytes.Buffer
		if err := cmdStatus(context.Background(), []string{"--brokers", addrs[0], "--app-id", "st"}, &out); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	eventuallyTrue(t, "both instances own partitions", func() bool {
		s := status()
		return strings.Contains(s, "2 instances, 4/4 partitions owned") && !strings.Contains(s, "STALE") &&
			regexp.MustCompile(`(?m)^a\s+\S+\s+\d`).MatchString(s) && regexp.MustCompile(`(?m)^b\s+\S+\s+\d`).MatchString(s)
	}, status)

	served := map[string]int{}
	get := func(i int) {
		var body, by string
		eventuallyTrue(t, fmt.Sprintf("GET /v1/users/u-%d from a", i), func() bool {
			resp, err := http.Get("http://" + aHTTP + fmt.Sprintf("/v1/users/u-%d", i))
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			bb, _ := io.ReadAll(resp.Body)
			body, by = string(bb), resp.Header.Get(servedByHeader)
			return resp.StatusCode == 200 && strings.Contains(body, fmt.Sprintf(`"tier": "t%d"`, i))
		}, func() string { return by + ": " + body })
		served[by]++
	}
	for i := 0; i < 40; i++ {
		get(i)
	}
	// On a loaded machine b may miss a heartbeat and lose its partitions
	// to a for a while; every answer above is still right. Forwarding must
	// show once b owns partitions again.
	for deadline := time.Now().Add(60 * time.Second); served["b"] == 0 && time.Now().Before(deadline); {
		for i := 0; i < 40 && served["b"] == 0; i++ {
			get(i)
		}
	}
	if served["a"] == 0 || served["b"] == 0 {
		t.Fatalf("answers served by %v: want both instances (b's users forwarded)\n%s", served, status())
	}
	if code := b.term(t); code != 0 {
		t.Errorf("b exited %d", code)
	}
	eventuallyTrue(t, "a alone owns every partition", func() bool {
		s := status()
		return strings.Contains(s, "1 instances, 4/4 partitions owned") && !strings.Contains(s, "\nb ")
	}, status)
	t.Logf("answers served by %v\n%s", served, status())
}

// eventuallyTrue polls cond for up to 60s, failing with what() if it never
// holds.
func eventuallyTrue(t *testing.T, what string, cond func() bool, state func() string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 60s; last state:\n%s", what, state())
}

// TestPrintStatus checks the table processor status prints, standbys and
// stale instances included.
func TestPrintStatus(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	fresh := now.UnixMilli() - 100
	for _, tc := range []struct {
		name  string
		ss    []engine.InstanceStatus
		want  []string // regexps the output must match
		avoid []string
	}{
		{"owned and standby", []engine.InstanceStatus{
			{Instance: "a", Owned: []int32{0, 2}, Standby: map[int32]int64{3: 5, 1: 7}, StandbyBytes: 2048, Ready: true, UpdatedAt: fresh, Interval: 1000},
			{Instance: "b", Owned: []int32{1, 3}, Standby: map[int32]int64{0: 0, 2: 0}, Ready: true, UpdatedAt: fresh, Interval: 1000},
		}, []string{`(?m)^a\s+0,2\s+0\s+0 B\s+1,3 \(12 behind, 2\.0 KiB\)\s+true`, `(?m)^b\s+1,3\s+0\s+0 B\s+0,2 \(0 behind, 0 B\)`, `2 instances, 4/4 partitions owned\n$`}, nil},
		{"no standbys", []engine.InstanceStatus{
			{Instance: "a", Owned: []int32{0, 1, 2, 3}, Ready: true, UpdatedAt: fresh, Interval: 1000},
		}, []string{`(?m)^a\s+0,1,2,3\s+0\s+0 B\s+true`}, []string{"behind"}},
		{"stale owner leaves partitions unowned", []engine.InstanceStatus{
			{Instance: "a", Owned: []int32{0, 1}, UpdatedAt: fresh - 10_000, Interval: 1000},
			{Instance: "b", Owned: []int32{2, 3}, Standby: map[int32]int64{0: 0, 1: 3}, Ready: true, UpdatedAt: fresh, Interval: 1000},
		}, []string{`STALE`, `unowned: 0,1`, `(?m)^b\s+2,3\s+0\s+0 B\s+0,1 \(3 behind`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			printStatus(&out, tc.ss, 4, now)
			for _, re := range tc.want {
				if !regexp.MustCompile(re).MatchString(out.String()) {
					t.Errorf("output does not match %q:\n%s", re, out.String())
				}
			}
			for _, s := range tc.avoid {
				if strings.Contains(out.String(), s) {
					t.Errorf("output contains %q:\n%s", s, out.String())
				}
			}
		})
	}
}
