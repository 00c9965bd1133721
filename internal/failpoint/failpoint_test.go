package failpoint

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name, in string
		want     Point
		ok       bool
		errIs    error // nil: no error expected, unless errPart is set
		errPart  string
	}{
		{name: "unset", in: ""},
		{name: "blank", in: "  "},
		{name: "first hit", in: "mid-batch", want: Point{MidBatch, 1}, ok: true},
		{name: "n-th hit", in: "before-apply@40", want: Point{BeforeApply, 40}, ok: true},
		{name: "surrounding blanks", in: " mid-restore@2 ", want: Point{MidRestore, 2}, ok: true},
		{name: "every name", in: "mid-broadcast@1", want: Point{MidBroadcast, 1}, ok: true},
		{name: "typo", in: "mid-bacth", errIs: ErrUnknownPoint},
		{name: "typo with hit", in: "end-txn@3", errIs: ErrUnknownPoint},
		{name: "case matters", in: "MID-BATCH", errIs: ErrUnknownPoint},
		{name: "zero hit", in: "mid-batch@0", errPart: "must be an integer ≥ 1"},
		{name: "negative hit", in: "mid-batch@-2", errPart: "must be an integer ≥ 1"},
		{name: "empty hit", in: "mid-batch@", errPart: "must be an integer ≥ 1"},
		{name: "not a number", in: "mid-batch@x", errPart: "must be an integer ≥ 1"},
		{name: "two points", in: "mid-batch,mid-restore", errIs: ErrUnknownPoint},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, ok, err := Parse(tc.in)
			switch {
			case tc.errIs != nil || tc.errPart != "":
				if err == nil {
					t.Fatalf("Parse(%q) = %v, %v, nil; want an error", tc.in, p, ok)
				}
				if tc.errIs != nil && !errors.Is(err, tc.errIs) {
					t.Fatalf("Parse(%q) error %v, want %v", tc.in, err, tc.errIs)
				}
				if !strings.Contains(err.Error(), tc.errPart) || !strings.Contains(err.Error(), EnvVar) {
					t.Fatalf("Parse(%q) error %q, want it to name %s and say %q", tc.in, err, EnvVar, tc.errPart)
				}
				if ok {
					t.Fatalf("Parse(%q) armed a point despite the error", tc.in)
				}
			case err != nil:
				t.Fatalf("Parse(%q): %v", tc.in, err)
			case ok != tc.ok || p != tc.want:
				t.Fatalf("Parse(%q) = %v, %v; want %v, %v", tc.in, p, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestUnknownNameListsValidNames checks that the error for a typo lists the
// valid names, so the fix is in the message.
func TestUnknownNameListsValidNames(t *testing.T) {
	_, _, err := Parse("mid-bacth@3")
	for _, n := range Names {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("error %q does not list %s", err, n)
		}
	}
}

func TestNamesAreDistinctAndParse(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range Names {
		if seen[n] {
			t.Errorf("%s listed twice", n)
		}
		seen[n] = true
		if p, ok, err := Parse(n + "@7"); err != nil || !ok || p != (Point{n, 7}) {
			t.Errorf("Parse(%s@7) = %v, %v, %v", n, p, ok, err)
		}
	}
}

// The child side of the tests below: with helperEnv set, the test binary
// reports each call it survives on stdout and then exits 0.
const helperEnv = "CAIRN_FAILPOINT_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "inject":
		for i := 1; i <= 5; i++ {
			Inject(MidRestore) // never armed in these tests: must not count
			Inject(MidBatch)
			fmt.Println("survived", i)
		}
		os.Exit(0)
	case "hook":
		hooks := KafkaHooks()
		for i := 1; i <= 3; i++ {
			for _, h := range hooks {
				w := h.(kgo.HookBrokerWrite)
				w.OnBrokerWrite(kgo.BrokerMetadata{}, int16(kmsg.Produce), 100, 0, 0, nil)
				w.OnBrokerWrite(kgo.BrokerMetadata{}, int16(kmsg.EndTxn), 0, 0, 0, errors.New("write failed"))
				w.OnBrokerWrite(kgo.BrokerMetadata{}, int16(kmsg.EndTxn), 100, 0, 0, nil)
			}
			fmt.Println("survived", i)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHelper re-executes the test binary as a child in mode with
// CAIRN_FAILPOINT=fp and returns its stdout, whether SIGKILL ended it, and
// its exit code otherwise.
func runHelper(t *testing.T, mode, fp string) (string, bool, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, EnvVar+"="+fp)
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("helper %s with %s=%s did not exit within 30s", mode, EnvVar, fp)
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL
	return out.String(), killed, cmd.ProcessState.ExitCode()
}

// TestInjectKillsChild runs a child with a point armed and checks that it
// dies of SIGKILL at exactly the chosen hit, and only then.
func TestInjectKillsChild(t *testing.T) {
	cases := []struct {
		name, env string
		survived  int // calls survived before the kill; 5 = never killed
	}{
		{"first hit", MidBatch, 0},
		{"third hit", MidBatch + "@3", 2},
		{"fifth hit", MidBatch + "@5", 4},
		{"beyond the run", MidBatch + "@6", 5},
		{"another point", BeforeApply, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, killed, code := runHelper(t, "inject", tc.env)
			if got := strings.Count(out, "survived"); got != tc.survived {
				t.Errorf("survived %d calls, want %d; output:\n%s", got, tc.survived, out)
			}
			wantKilled := tc.survived < 5
			if killed != wantKilled || !killed && code != 0 {
				t.Fatalf("killed by SIGKILL = %v (exit %d), want %v; output:\n%s", killed, code, wantKilled, out)
			}
			if p, _, _ := Parse(tc.env); killed && !strings.Contains(out, "failpoint="+p.String()) {
				t.Errorf("no log line naming the failpoint before the kill; output:\n%s", out)
			}
		})
	}
}

// TestEndTxnHookKillsChild checks that the Kafka hook kills on the N-th
// EndTxn written in full, not on other requests or failed writes.
func TestEndTxnHookKillsChild(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		t.Run("hit "+strconv.Itoa(n), func(t *testing.T) {
			out, killed, code := runHelper(t, "hook", EndTxnSent+"@"+strconv.Itoa(n))
			if !killed {
				t.Fatalf("not killed (exit %d); output:\n%s", code, out)
			}
			if got := strings.Count(out, "survived"); got != n-1 {
				t.Errorf("survived %d EndTxn writes, want %d; output:\n%s", got, n-1, out)
			}
		})
	}
	if out, killed, code := runHelper(t, "hook", MidBatch); killed || code != 0 || strings.Count(out, "survived") != 3 {
		t.Fatalf("with %s armed the hook must do nothing: killed %v, exit %d, output:\n%s", MidBatch, killed, code, out)
	}
}

func TestKafkaHooksOnlyWhenArmed(t *testing.T) {
	if _, ok := Armed(); ok {
		t.Skipf("%s is set in the test environment", EnvVar)
	}
	if h := KafkaHooks(); h != nil {
		t.Fatalf("KafkaHooks() = %v with nothing armed, want nil", h)
	}
}

// BenchmarkInjectDisabled measures Inject with nothing armed: the cost
// every call site pays in production.
func BenchmarkInjectDisabled(b *testing.B) {
	if _, ok := Armed(); ok {
		b.Skipf("%s is set", EnvVar)
	}
	b.ReportAllocs()
	for b.Loop() {
		Inject(MidBatch)
	}
}
