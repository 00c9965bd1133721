package journey

import (
	"gopkg.in/yaml.v3"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/expr"
)

// segmentProp is the property naming the segment of a $segment_enter or
// $segment_exit event, and of a broadcast's synthetic entry event.
const segmentProp = "segment"

// status is the lifecycle status of one journey version.
type status string

const (
	statusActive  status = "active"  // takes new entries if it is the highest active version
	statusPaused  status = "paused"  // takes no new entries; instances continue
	statusStopped status = "stopped" // instances exit on their next event or timer
)

// reentry says when a user who entered a journey may enter it again.
type reentry int

const (
	reentryNever     reentry = iota // once per user, ever
	reentryAfterExit                // any time the user is not in the journey
	reentryDuration                 // after exit, and at least a duration after the last entry
)

type nodeKind int

const (
	kindWait nodeKind = iota + 1
	kindBranch
	kindSplit
	kindAction
	kindExit
)

func (k nodeKind) String() string {
	return [...]string{"?", "wait", "branch", "split", "action", "exit"}[k]
}

type waitKind int

const (
	waitFor   waitKind = iota + 1 // a fixed duration
	waitUntil                     // the next HH:MM in the user's time zone
	waitEvent                     // an event, with an optional timeout
)

// journeyDef is one compiled, validated version of a journey. It is
// immutable after New and shared by all partitions.
type journeyDef struct {
	id      string
	version int
	status  status
	file    string

	// Exactly one entry form is set: entryEvent alone (an event),
	// entryEvent with entrySegment (the $segment_enter or $segment_exit of
	// that segment), or schedule (a broadcast; entryEvent is "").
	entryEvent   string
	entrySegment string
	schedule     *scheduleSpec
	entryWhen    cond
	reentry      reentry
	reentryAfter int64 // ms, for reentryDuration

	holdout float64 // percent of entries held out, 0..100
	exitOn  []eventMatch
	goal    *goalSpec

	start string
	nodes map[string]*node
	order []string // node ids in definition order
}

// entryMatches reports whether ev is an entry event of j. A scheduled
// journey has none: its members enter through a broadcast (broadcast.go).
func (j *journeyDef) entryMatches(ev *engine.Event) bool {
	if j.schedule != nil || ev.Name != j.entryEvent {
		return false
	}
	return j.entrySegment == "" || ev.Props[segmentProp] == j.entrySegment
}

// eventMatch matches an event by name and an optional condition.
type eventMatch struct {
	event string
	where cond
}

type goalSpec struct {
	eventMatch
	within int64 // ms; 0: while the instance is active
}

type node struct {
	id   string
	kind nodeKind
	next string     // "" exits
	src  *yaml.Node // the node's key in the file, for errors

	wait     waitSpec
	branches []branchArm
	elseNext string
	splits   []splitArm
	action   actionSpec
}

type waitSpec struct {
	kind      waitKind
	dur       int64 // waitFor
	until     int   // waitUntil: minute of day
	event     eventMatch
	timeout   int64 // waitEvent; 0: none
	onEvent   string
	onTimeout string
}

type branchArm struct {
	when cond
	next string
}

type splitArm struct {
	weight int
	next   string
}

type actionSpec struct {
	channel       string
	template      string
	paramKeys     []string // sorted
	params        map[string]*expr.Template
	transactional bool
	profile       bool // a param template may read the profile (readsProfile)
}

// successors returns the node ids n can move to, "" excluded.
func (n *node) successors() []string {
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s)
		}
	}
	add(n.next)
	for _, b := range n.branches {
		add(b.next)
	}
	add(n.elseNext)
	for _, s := range n.splits {
		add(s.next)
	}
	add(n.wait.onEvent)
	add(n.wait.onTimeout)
	return out
}
