package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDevShowsOutputsWithin30s runs `processor dev` as `make run` does (on
// random ports) and waits for the first committed output it prints.
func TestDevShowsOutputsWithin30s(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the dev stack for up to 30s")
	}
	dataDir := t.TempDir()
	cmd := exec.Command(processorBin, "dev", "--port", "0", "--http", "127.0.0.1:0",
		"--data-dir", dataDir, "--definitions", "../../examples", "--rate", "50")
	out, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	done := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); done <- err }()
	lines := make(chan string)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	start := time.Now()
	var seen []string
	deadline := time.After(30 * time.Second)
	for found := false; !found; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("dev exited early:\n%s", strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			found = strings.HasPrefix(l, "  actions.") && strings.Contains(l, `"action_id"`)
		case <-deadline:
			t.Fatalf("no output within 30s:\n%s", strings.Join(seen, "\n"))
		}
	}
	t.Logf("first output after %s", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(strings.Join(seen, "\n"), "kcat -b") {
		t.Error("the banner does not show the kcat command")
	}
	if !strings.Contains(strings.Join(seen, "\n"), `-H "Authorization: Bearer $(cat `+filepath.Join(dataDir, "http-token")+`)"`) {
		t.Error("the banner does not show the curl command with the token")
	}
	if st, err := os.Stat(filepath.Join(dataDir, "http-token")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("token file: %v, %v; want mode 0600", st, err)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	go func() {
		for range lines {
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev exited with %v after SIGINT", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop within 30s of SIGINT")
	}
}
