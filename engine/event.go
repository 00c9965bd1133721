package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/vmihailenco/msgpack/v5"
)

// MaxEventBytes is the largest record value accepted (1 MiB).
const MaxEventBytes = 1 << 20

// Reasons a record is sent to the dead-letter topic. They are the values of
// the cairn.reason header and of the reason label of the DLQ metric.
const (
	ReasonTooLarge   = "too_large"
	ReasonNotDecoded = "not_json_or_msgpack"
	ReasonNoUser     = "missing_user_id"
	ReasonNoEvent    = "missing_event"
	ReasonKey        = "key_mismatch"
	ReasonTS         = "bad_ts"
)

// DecodeError is returned by DecodeEvent for a record that must go to the
// dead-letter topic.
type DecodeError struct {
	Reason string // one of the Reason constants
	Err    error
}

func (e *DecodeError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

func badRecord(reason, format string, args ...any) error {
	return &DecodeError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// wireEvent is the record value (docs/events.md). TS is raw so that it can
// be a number of milliseconds or an RFC 3339 string.
type wireEvent struct {
	UserID  string         `json:"user_id" msgpack:"user_id"`
	Name    string         `json:"event" msgpack:"event"`
	TS      any            `json:"ts" msgpack:"ts"`
	Props   map[string]any `json:"props" msgpack:"props"`
	EventID string         `json:"event_id" msgpack:"event_id"`
}

// DecodeEvent decodes a record value (JSON, or msgpack told apart by its
// first byte) and checks it against the input contract. recordTS (ms) is
// used when the value has no ts. Any error is a *DecodeError.
func DecodeEvent(key, value []byte, recordTS int64) (Event, error) {
	if len(value) > MaxEventBytes {
		return Event{}, badRecord(ReasonTooLarge, "value is %d bytes, the limit is %d", len(value), MaxEventBytes)
	}
	var w wireEvent
	if err := unmarshal(value, &w); err != nil {
		return Event{}, badRecord(ReasonNotDecoded, "%w", err)
	}
	if w.UserID == "" {
		return Event{}, badRecord(ReasonNoUser, "user_id is missing or empty")
	}
	if w.Name == "" {
		return Event{}, badRecord(ReasonNoEvent, "event is missing or empty")
	}
	if string(key) != w.UserID {
		return Event{}, badRecord(ReasonKey, "record key %q differs from user_id %q", key, w.UserID)
	}
	ts, err := parseTS(w.TS, recordTS)
	if err != nil {
		return Event{}, badRecord(ReasonTS, "%w", err)
	}
	return Event{UserID: w.UserID, Name: w.Name, TS: ts, Props: w.Props, EventID: w.EventID}, nil
}

func unmarshal(b []byte, w *wireEvent) error {
	t := bytes.TrimLeft(b, " \t\r\n")
	switch {
	case len(t) > 0 && t[0] == '{':
		return unmarshalJSON(t, w)
	case len(b) > 0 && (b[0]&0xf0 == 0x80 || b[0] == 0xde || b[0] == 0xdf):
		if err := msgpack.Unmarshal(b, w); err != nil {
			return fmt.Errorf("decoding msgpack: %w", err)
		}
		return nil
	}
	return errors.New("value is neither a JSON object nor a msgpack map")
}

// unmarshalJSON decodes a JSON event with encoding/json's semantics (what
// it accepts and the values it produces; FuzzJSONAgreesWithTheStandardLibrary
// holds them together) at less cost.
func unmarshalJSON(b []byte, w *wireEvent) error {
	// Unmarshal rejects trailing data and is much cheaper than a Decoder.
	if err := gojson.Unmarshal(b, w); err != nil {
		return fmt.Errorf("decoding json: %w", err)
	}
	return nil
}

func parseTS(v any, recordTS int64) (int64, error) {
	switch t := v.(type) {
	case nil:
		return recordTS, nil
	case float64:
		if t != math.Trunc(t) || math.Abs(t) > 1<<53 {
			return 0, fmt.Errorf("ts %v is not a whole number of milliseconds", t)
		}
		return int64(t), nil
	case string:
		tm, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(t))
		if err != nil {
			return 0, fmt.Errorf("ts %q is not RFC 3339: %w", t, err)
		}
		return tm.UnixMilli(), nil
	}
	return intTS(v)
}

// intTS handles the integer types msgpack decodes into.
func intTS(v any) (int64, error) {
	switch t := v.(type) {
	case int8:
		return int64(t), nil
	case int16:
		return int64(t), nil
	case int32:
		return int64(t), nil
	case int64:
		return t, nil
	case uint8:
		return int64(t), nil
	case uint16:
		return int64(t), nil
	case uint32:
		return int64(t), nil
	case uint64:
		if t > math.MaxInt64 {
			return 0, fmt.Errorf("ts %d is out of range", t)
		}
		return int64(t), nil
	case float32:
		return parseTS(float64(t), 0)
	}
	return 0, fmt.Errorf("ts has unsupported type %T", v)
}
