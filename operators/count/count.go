// Package count is the simplest real operator: it counts each user's events
// and emits one record per counted event with the running count. It is
// deterministic, which makes it the operator of the engine's exactly-once
// tests and of the engine benchmark, and it is handy for checking that
// events reach Cairn at all.
//
//	kind: counter
//	id: all-events          # [a-z0-9-]+
//	topic: counts           # output topic
//	events: [purchase]      # optional; default every event
package count

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/defs"
)

// Record is the value of an output record.
type Record struct {
	Counter string `json:"counter"`
	UserID  string `json:"user_id"`
	Event   string `json:"event"`
	N       uint64 `json:"n"`     // the user's count after this event
	TS      int64  `json:"ts"`    // the event's time
	Cause   string `json:"cause"` // the event's id or position
}

// Counter is one counter definition; it implements engine.Operator and
// engine.TopicDeclarer. It is immutable and safe for concurrent use.
type Counter struct {
	ID     string
	Topic  string
	events []string
}

var idRe = regexp.MustCompile(`^[a-z0-9-]+$`)

// Load returns one Counter per "counter" document in docs.
func Load(docs []defs.Doc) ([]*Counter, error) {
	var out []*Counter
	var errs []error
	for i := range docs {
		d := &docs[i]
		if d.Kind != "counter" {
			continue
		}
		var raw struct {
			Kind   string   `yaml:"kind"`
			ID     string   `yaml:"id"`
			Topic  string   `yaml:"topic"`
			Events []string `yaml:"events"`
		}
		if err := d.Node.Decode(&raw); err != nil {
			errs = append(errs, d.Errorf(d.Node, "", "decoding counter: %v", err))
			continue
		}
		if !idRe.MatchString(raw.ID) {
			errs = append(errs, d.Errorf(defs.Field(d.Node, "id"), "id", "must match [a-z0-9-]+, got %q", raw.ID))
		}
		if raw.Topic == "" {
			errs = append(errs, d.Errorf(d.Node, "topic", "required"))
		}
		out = append(out, &Counter{ID: raw.ID, Topic: raw.Topic, events: raw.Events})
	}
	return out, errors.Join(errs...)
}

// Name implements engine.Operator.
func (c *Counter) Name() string { return "count/" + c.ID }

// Events implements engine.Operator.
func (c *Counter) Events() []string { return c.events }

// OutputTopics implements engine.TopicDeclarer.
func (c *Counter) OutputTopics() []string { return []string{c.Topic} }

// OnEvent increments the user's count and emits it.
func (c *Counter) OnEvent(ctx *engine.Context, ev *engine.Event) error {
	if ev.Name != "" && ev.Name[0] == '$' {
		return nil
	}
	v, err := ctx.Get(nil)
	if err != nil {
		return err
	}
	var n uint64
	if len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	n++
	if err := ctx.Set(nil, binary.BigEndian.AppendUint64(nil, n)); err != nil {
		return err
	}
	b, err := json.Marshal(Record{Counter: c.ID, UserID: ev.UserID, Event: ev.Name, N: n, TS: ev.TS, Cause: ev.Cause()})
	if err != nil {
		return fmt.Errorf("encoding count: %w", err)
	}
	ctx.Emit(engine.Output{Topic: c.Topic, Key: []byte(ev.UserID), Value: b})
	return nil
}

// OnTimer implements engine.Operator; counters set no timers.
func (c *Counter) OnTimer(*engine.Context, *engine.Timer) error { return nil }
