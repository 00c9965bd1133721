package api

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestExtendDeadlinesKeepsAStreamAlive streams a response for longer than
// the server's ReadTimeout and WriteTimeout. Extending the deadlines before
// each chunk keeps it going with its context alive; without, net/http
// cancels the request's context when the read deadline passes.
func TestExtendDeadlinesKeepsAStreamAlive(t *testing.T) {
	cases := []struct {
		name      string
		extend    bool
		wantLines int
		wantCtx   bool // the request's context still alive at the end
	}{
		{"extended", true, 6, true},
		{"not extended", false, -1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := New(Options{Addr: "127.0.0.1:0", Token: testToken, ReadTimeout: 200 * time.Millisecond,
				WriteTimeout: 300 * time.Millisecond}, prometheus.NewRegistry(), func() bool { return true })
			if err != nil {
				t.Fatal(err)
			}
			ctxAlive := make(chan bool, 1)
			srv.Handle("POST /stream", func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i < 5; i++ {
					if tc.extend {
						ExtendDeadlines(w, 300*time.Millisecond)
					}
					fmt.Fprintf(w, "chunk %d\n", i)
					w.(http.Flusher).Flush()
					time.Sleep(150 * time.Millisecond)
				}
				ctxAlive <- r.Context().Err() == nil
				fmt.Fprintln(w, "done")
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { _ = srv.Serve(ctx) }()
			req, _ := http.NewRequest("POST", "http://"+srv.Addr()+"/stream", strings.NewReader("x"))
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			lines := 0
			for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
				lines++
			}
			if tc.wantLines >= 0 && lines != tc.wantLines {
				t.Errorf("%d lines, want %d", lines, tc.wantLines)
			}
			if got := <-ctxAlive; got != tc.wantCtx {
				t.Errorf("context alive after 750ms: %v, want %v", got, tc.wantCtx)
			}
		})
	}
}
