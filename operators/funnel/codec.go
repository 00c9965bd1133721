package funnel

import (
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// errBadState is returned when a stored funnel state does not have the
// layout of userState.
var errBadState = errors.New("malformed funnel state")

var (
	_ msgpack.CustomEncoder = (*userState)(nil)
	_ msgpack.CustomDecoder = (*userState)(nil)
)

// EncodeMsgpack writes st as [Latest, events, counted] (see userState).
func (st *userState) EncodeMsgpack(enc *msgpack.Encoder) error {
	w := &writer{enc: enc}
	w.arrayLen(3)
	w.int(st.Latest)
	w.arrayLen(len(st.Events))
	for _, e := range st.Events {
		w.arrayLen(4)
		w.int(e.TS)
		w.int(0) // Off, no longer kept
		w.int(int64(e.Steps))
		w.string(e.Group)
	}
	w.arrayLen(len(st.Counted))
	for _, c := range st.Counted {
		w.arrayLen(4)
		w.string(c.Bucket)
		w.string(c.Group)
		w.int(int64(c.Depth))
		w.int(c.End)
	}
	return w.err
}

// writer keeps the first error of a sequence of encoder calls.
type writer struct {
	enc *msgpack.Encoder
	err error
}

func (w *writer) arrayLen(n int) {
	if w.err == nil {
		w.err = w.enc.EncodeArrayLen(n)
	}
}

func (w *writer) int(n int64) {
	if w.err == nil {
		w.err = w.enc.EncodeInt(n)
	}
}

func (w *writer) string(s string) {
	if w.err == nil {
		w.err = w.enc.EncodeString(s)
	}
}

// DecodeMsgpack reads what EncodeMsgpack writes.
func (st *userState) DecodeMsgpack(dec *msgpack.Decoder) error {
	r := &reader{dec: dec}
	r.expectLen(3)
	st.Latest = r.int()
	n := r.arrayLen()
	st.Events = make([]stepEvent, 0, min(n, 256))
	for i := 0; i < n && r.err == nil; i++ {
		r.expectLen(4)
		e := stepEvent{TS: r.int()}
		_ = r.int() // Off: the order of Events is enough
		steps := r.int()
		if steps <= 0 || steps >= 1<<MaxSteps {
			r.fail("step mask %d", steps)
		}
		e.Steps, e.Group = uint32(steps), r.string()
		st.Events = append(st.Events, e)
	}
	n = r.arrayLen()
	st.Counted = make([]counted, 0, min(n, 64))
	for i := 0; i < n && r.err == nil; i++ {
		r.expectLen(4)
		c := counted{Bucket: r.string(), Group: r.string()}
		depth := r.int()
		if depth < 0 || depth > MaxSteps {
			r.fail("depth %d", depth)
		}
		c.Depth, c.End = int(depth), r.int()
		st.Counted = append(st.Counted, c)
	}
	return r.err
}

// reader keeps the first error of a sequence of decoder calls; after an
// error every call returns a zero value.
type reader struct {
	dec *msgpack.Decoder
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errBadState, fmt.Sprintf(format, args...))
	}
}

func (r *reader) arrayLen() int {
	if r.err != nil {
		return 0
	}
	n, err := r.dec.DecodeArrayLen()
	if err != nil {
		r.err = err
	} else if n < 0 {
		r.fail("nil array")
	}
	return max(n, 0)
}

func (r *reader) expectLen(want int) {
	if n := r.arrayLen(); r.err == nil && n != want {
		r.fail("array of %d, want %d", n, want)
	}
}

func (r *reader) int() int64 {
	if r.err != nil {
		return 0
	}
	n, err := r.dec.DecodeInt64()
	r.err = err
	return n
}

func (r *reader) string() string {
	if r.err != nil {
		return ""
	}
	s, err := r.dec.DecodeString()
	r.err = err
	return s
}
