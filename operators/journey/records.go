package journey

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/state"
)

// userRec is a user's state in one journey (all versions): sub key
// "j/<journey id>". Its fields are abbreviated in msgpack because there is
// one per user and journey.
//
// Invariants: Active implies Seq > 0 and Entry is the active entry; Node
// is "" for a holdout instance; Due != 0 iff a timer "j/<id>" is pending.
type userRec struct {
	Seq      uint32      `msgpack:"q"`           // entries so far
	Version  int         `msgpack:"v"`           // version of the latest entry
	Entry    storedEvent `msgpack:"e"`           // the latest entry event
	Holdout  bool        `msgpack:"h,omitempty"` // the latest entry is held out
	Active   bool        `msgpack:"a,omitempty"`
	Node     string      `msgpack:"n,omitempty"`  // current node
	NodeTS   int64       `msgpack:"nt,omitempty"` // when it entered Node
	Due      int64       `msgpack:"d,omitempty"`  // pending timer's due time
	LastExit int64       `msgpack:"x,omitempty"`
	// GoalOpen: a goal event still counts as a conversion of the latest
	// entry, until GoalDeadline (0: while Active).
	GoalOpen     bool  `msgpack:"g,omitempty"`
	GoalDeadline int64 `msgpack:"gd,omitempty"`
}

// storedEvent is an entry event as kept in state.
//
// Its props are decoded lazily: DecodeMsgpack keeps their msgpack bytes in
// rawProps and props decodes them when a condition, template or view
// first needs them, as most events that read a journey record never do.
// Invariant: at most one of Props and rawProps is set; EncodeMsgpack
// writes rawProps back as they were read, which is what reflection would
// write for the map they hold.
type storedEvent struct {
	Name     string         `msgpack:"n"`
	TS       int64          `msgpack:"t"`
	ID       string         `msgpack:"i,omitempty"`
	Props    map[string]any `msgpack:"p,omitempty"`
	rawProps msgpack.RawMessage
}

func storeEvent(ev *engine.Event) storedEvent {
	return storedEvent{Name: ev.Name, TS: ev.TS, ID: ev.EventID, Props: ev.Props}
}

// props returns the event's props, decoding them on first use.
func (s *storedEvent) props() (map[string]any, error) {
	if s.rawProps != nil {
		m, err := msgpack.NewDecoder(bytes.NewReader(s.rawProps)).DecodeMap()
		if err != nil {
			return nil, fmt.Errorf("decoding entry event props: %w", err)
		}
		s.Props, s.rawProps = m, nil
	}
	return s.Props, nil
}

func (s *storedEvent) event(user string) (*engine.Event, error) {
	props, err := s.props()
	if err != nil {
		return nil, err
	}
	return &engine.Event{Name: s.Name, TS: s.TS, EventID: s.ID, Props: props, UserID: user}, nil
}

// timerKind says what a timer resumes.
type timerKind uint8

const (
	timerWait    timerKind = iota + 1 // a duration or until wait ended
	timerTimeout                      // a for_event wait timed out
	timerDefer                        // quiet hours ended for a deferred action
	timerHoldout                      // a holdout's goal window ended
)

// timerPayload names the instance a timer was set for.
type timerPayload struct {
	Journey string    `msgpack:"j"`
	Version int       `msgpack:"v"`
	Seq     uint32    `msgpack:"q"`
	Node    string    `msgpack:"n,omitempty"`
	Kind    timerKind `msgpack:"k"`
}

// histEvent is one event of a user's did-history (sub key "h/<name>").
type histEvent struct {
	TS    int64          `msgpack:"t"`
	Props map[string]any `msgpack:"p,omitempty"`
}

// capState is a user's recent non-transactional sends per channel, sorted
// by time (sub key "c"). It holds at most policySet.maxMax times per
// channel, none older than policySet.maxPer.
type capState struct {
	Sent map[string][]int64 `msgpack:"s"`
}

const (
	recPrefix  = "j/"
	histPrefix = "h/"
	capsKey    = "c"
	statPrefix = "s/"
)

func timerID(journey string) string { return recPrefix + journey }

func encode(v any) ([]byte, error) { return state.EncodeValue(v) }

func decode(b []byte, v any) error { return state.DecodeValue(b, v) }
