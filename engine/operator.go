package engine

import (
	"fmt"
	"strconv"
)

// Event is one user event, decoded from the input topic (see docs/events.md)
// or emitted by an operator as an internal event (names starting with "$").
type Event struct {
	UserID  string         `json:"user_id" msgpack:"user_id"`
	Name    string         `json:"event" msgpack:"event"`
	TS      int64          `json:"ts" msgpack:"ts"` // ms since the epoch, event time
	Props   map[string]any `json:"props,omitempty" msgpack:"props,omitempty"`
	EventID string         `json:"event_id,omitempty" msgpack:"event_id,omitempty"`

	// Where the event was read from. Internal events carry the position of
	// the input record that caused them.
	Topic     string `json:"-" msgpack:"-"`
	Partition int32  `json:"-" msgpack:"-"`
	Offset    int64  `json:"-" msgpack:"-"`
}

// Cause names what caused the event: its event id when it has one, else its
// topic/partition@offset. It is stable across replays.
func (e *Event) Cause() string {
	if e.EventID != "" {
		return e.EventID
	}
	return e.Topic + "/" + strconv.Itoa(int(e.Partition)) + "@" + strconv.FormatInt(e.Offset, 10)
}

// Timer is a durable event-time timer owned by one operator and one user.
type Timer struct {
	ID      string // unique per (operator, user); setting it again replaces it
	Due     int64  // ms since the epoch, event time
	Payload []byte // opaque to the engine
}

// Cause names the timer for action records: "timer:<id>@<due>".
func (t *Timer) Cause() string { return fmt.Sprintf("timer:%s@%d", t.ID, t.Due) }

// Header is a Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Output is a record an operator asks the engine to produce. It is produced
// in the same transaction as the state change that caused it.
type Output struct {
	Topic   string
	Key     []byte
	Value   []byte
	Headers []Header
}

// Operator is a deterministic event processor, such as a journey, segment or
// funnel (design §6). The engine calls it with one event or one timer firing
// at a time, for one user, on the partition's worker goroutine; an operator
// value is shared by all partitions, so it must not keep mutable state
// outside the Context.
//
// Operators never touch Kafka or Pebble: everything goes through Context,
// which makes them deterministic and testable in memory (see Local).
type Operator interface {
	// Name is the operator's stable state namespace. Changing it loses state.
	Name() string
	// Events lists the event names the operator reacts to. The engine indexes
	// operators by it, so an event that no operator lists costs one map
	// lookup. A nil slice means every event. The operators that get an
	// event run in the order the engine was given them, whichever of them
	// list it and whichever listen to everything.
	Events() []string
	// OnEvent handles ev for ctx.UserID().
	OnEvent(ctx *Context, ev *Event) error
	// OnTimer handles one of the operator's timers for ctx.UserID(). The
	// timer is already deleted; set it again to repeat it.
	OnTimer(ctx *Context, t *Timer) error
}

// Flusher is implemented by operators that accumulate work over a
// transaction in a buffer (Context.TxnBuffer) and write it once, before the
// transaction's outputs and changelog records are produced, the way Kafka
// Streams' record caches write aggregates at commit. An aggregate touched by
// a thousand events of one transaction then costs one state write and one
// output instead of a thousand.
type Flusher interface {
	// Flush writes buf, the operator's buffer of this transaction on
	// ctx.Partition(), through ctx: shared state, Upsert, Emit. ctx is bound
	// to no user (UserID is "") and Now is the partition clock. It is called
	// once per transaction in which the operator created a buffer, on the
	// partition's worker goroutine, operators in the order the engine was
	// given them. An error aborts the transaction.
	Flush(ctx *Context, buf any) error
}

// TopicDeclarer is implemented by operators that produce to topics the engine
// must create at start-up (e.g. actions.<channel>).
type TopicDeclarer interface {
	OutputTopics() []string
}
