// Package failpoint kills the process at named points of the commit path,
// for crash tests. A point is armed by the environment variable
// CAIRN_FAILPOINT, read once when the package initializes:
//
//	CAIRN_FAILPOINT=mid-batch      the first time mid-batch is reached
//	CAIRN_FAILPOINT=mid-batch@40   the 40th time, so a test can vary where
//	                               within the run it strikes
//
// When the selected point is reached for the N-th time, Inject sends
// SIGKILL to its own process: no deferred call, flush or Close runs, as
// after a power cut or an OOM kill. The points in Freezes send SIGSTOP
// instead, and the process goes on where it stopped once it gets SIGCONT. Unset, the variable arms nothing and
// Inject costs one load of a package variable.
//
// The package is a leaf (it imports nothing of Cairn), so engine and
// operators may call it (internal/arch allows this one internal import).
// It is for tests: an armed process kills itself by design, and
// cmd/processor logs a warning when a point is armed and refuses to start
// when the variable names no valid point.
package failpoint

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// EnvVar is the environment variable that arms a failpoint.
const EnvVar = "CAIRN_FAILPOINT"

// The failpoints. Each names where the process dies; docs/design.md says
// what the commit path guarantees at each of them.
const (
	// MidBatch is between two records of a worker's poll
	// (engine/worker.go): outputs of the open transaction are produced,
	// nothing is committed.
	MidBatch = "mid-batch"
	// BeforeEndTxn is after every worker flushed its outputs and changelog
	// records and before the transaction is ended (engine/loop.go).
	BeforeEndTxn = "before-end-txn"
	// EndTxnSent is right after an EndTxn request was written to the
	// broker, before its reply is handled (KafkaHooks): the outcome is
	// decided by the broker, unknown to the process.
	EndTxnSent = "end-txn-sent"
	// BeforeApply is after the Kafka transaction committed and before any
	// worker applied its batch to Pebble (engine/loop.go): the store is
	// behind the changelog.
	BeforeApply = "before-apply"
	// MidRestore is between two changelog records applied by a restore
	// (engine/restore.go).
	MidRestore = "mid-restore"
	// MidBroadcast is between two members entered by a scheduled
	// broadcast (operators/journey/broadcast.go).
	MidBroadcast = "mid-broadcast"
	// FreezeInEnd is inside a transaction's End, after its offsets were
	// committed to the transaction and the heartbeat that follows was
	// answered, before EndTxn is sent (KafkaHooks). Unlike the others it
	// does not kill: the process stops itself with SIGSTOP, as a VM pause
	// or a stalled host would freeze it, and goes on (and commits) when a
	// test sends SIGCONT.
	FreezeInEnd = "freeze-in-end"
)

// Names lists every failpoint, in commit-path order, FreezeInEnd last.
var Names = []string{MidBatch, BeforeEndTxn, EndTxnSent, BeforeApply, MidRestore, MidBroadcast, FreezeInEnd}

// Freezes lists the failpoints that stop the process rather than kill it.
var Freezes = []string{FreezeInEnd}

// Point is a parsed CAIRN_FAILPOINT value: kill at the Hit-th time Name
// is reached.
type Point struct {
	Name string
	Hit  int64 // ≥ 1
}

// String returns the point in CAIRN_FAILPOINT syntax.
func (p Point) String() string { return p.Name + "@" + strconv.FormatInt(p.Hit, 10) }

// ErrUnknownPoint is returned by Parse (and Check) when the value names no
// failpoint in Names.
var ErrUnknownPoint = errors.New("unknown failpoint")

// Parse parses a CAIRN_FAILPOINT value, "name" or "name@N" with N ≥ 1.
// The empty string (or blanks) is no point: ok is false and err nil.
func Parse(s string) (p Point, ok bool, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Point{}, false, nil
	}
	name, hit, hasHit := strings.Cut(s, "@")
	p = Point{Name: name, Hit: 1}
	if !valid(name) {
		return Point{}, false, fmt.Errorf("parsing %s=%q: %w %q (valid: %s)", EnvVar, s, ErrUnknownPoint, name, strings.Join(Names, ", "))
	}
	if hasHit {
		n, err := strconv.ParseInt(hit, 10, 64)
		if err != nil || n < 1 {
			return Point{}, false, fmt.Errorf("parsing %s=%q: hit %q must be an integer ≥ 1", EnvVar, s, hit)
		}
		p.Hit = n
	}
	return p, true, nil
}

func valid(name string) bool {
	for _, n := range Names {
		if n == name {
			return true
		}
	}
	return false
}

// The armed point, set once by init and never written after, so reading
// these variables needs no synchronization.
var (
	enabled  bool  // a valid point is armed
	armed    Point // the point, when enabled
	parseErr error // the variable was set but invalid
)

// hits counts how many times the armed point was reached; Inject is called
// from every worker goroutine, hence the atomic.
var hits atomic.Int64

func init() {
	p, ok, err := Parse(os.Getenv(EnvVar))
	armed, enabled, parseErr = p, ok, err
}

// Check returns the error of an invalid CAIRN_FAILPOINT, so that a process
// can refuse to start rather than run a test without its fault.
func Check() error { return parseErr }

// Armed returns the armed point, if any.
func Armed() (Point, bool) { return armed, enabled }

// Inject kills the process with SIGKILL (or stops it with SIGSTOP, for a
// point in Freezes) if name is the armed point and this is its Hit-th time. Safe for concurrent use. Cost when nothing is
// armed: one load of a bool (Inject inlines; BenchmarkInjectDisabled); when
// another point is armed, a string comparison.
func Inject(name string) {
	if enabled {
		inject(name)
	}
}

func inject(name string) {
	if name != armed.Name || hits.Add(1) != armed.Hit {
		return
	}
	if name == FreezeInEnd {
		slog.Error("failpoint reached: stopping the process with SIGSTOP", "failpoint", armed.String(), "pid", os.Getpid())
		freeze()
		return
	}
	// Synchronous write to stderr, so the log shows why the process died.
	slog.Error("failpoint reached: killing the process with SIGKILL", "failpoint", armed.String(), "pid", os.Getpid())
	kill()
	time.Sleep(time.Minute) // SIGKILL is delivered long before
	panic("failpoint: SIGKILL was not delivered")
}
