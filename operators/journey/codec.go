package journey

import (
	"fmt"
	"maps"
	"slices"

	"github.com/vmihailenco/msgpack/v5"
)

// Hand-written msgpack codecs of the records every event reads and writes
// (userRec, storedEvent, histEvent, capState). They write exactly the bytes
// msgpack's reflection writes for the tagged structs (a map of the fields
// not omitted, in declaration order; int as the smallest integer, int64
// and uint32 at full width), so records written before and after them are
// the same; codec_test.go checks that on random values. They read what
// reflection reads, skipping unknown keys. Decoding a user's records was
// about 11% of the CPU of the example definitions (`processor bench
// --definitions examples --cpuprofile`), most of it reflection.

// decodeFields reads a msgpack map of n string keys, calling field for
// each key (valid during the call only) with the decoder positioned at its
// value; field must read the value or skip it. A nil map is no fields.
func decodeFields(d *msgpack.Decoder, field func(key string) error) error {
	n, err := d.DecodeMapLen()
	if err != nil {
		return err
	}
	var buf [16]byte
	for i := 0; i < n; i++ {
		k, err := d.DecodeBytesLen()
		if err != nil {
			return err
		}
		if k < 0 || k > len(buf) {
			// Not one of ours (every key is a few bytes): skip its value.
			if k > 0 {
				if err := d.ReadFull(make([]byte, k)); err != nil {
					return err
				}
			}
			if err := d.Skip(); err != nil {
				return err
			}
			continue
		}
		if err := d.ReadFull(buf[:k]); err != nil {
			return err
		}
		if err := field(string(buf[:k])); err != nil {
			return fmt.Errorf("field %q: %w", buf[:k], err)
		}
	}
	return nil
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r *userRec) EncodeMsgpack(e *msgpack.Encoder) error {
	n := 3 + count(r.Holdout, r.Active, r.Node != "", r.NodeTS != 0, r.Due != 0,
		r.LastExit != 0, r.GoalOpen, r.GoalDeadline != 0)
	w := fieldWriter{e: e}
	w.mapLen(n)
	w.key("q")
	w.err1(e.EncodeUint32(r.Seq))
	w.key("v")
	w.err1(e.EncodeInt(int64(r.Version)))
	w.key("e")
	w.err1(r.Entry.EncodeMsgpack(e))
	w.boolIf("h", r.Holdout)
	w.boolIf("a", r.Active)
	w.stringIf("n", r.Node)
	w.int64If("nt", r.NodeTS)
	w.int64If("d", r.Due)
	w.int64If("x", r.LastExit)
	w.boolIf("g", r.GoalOpen)
	w.int64If("gd", r.GoalDeadline)
	return w.err
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (r *userRec) DecodeMsgpack(d *msgpack.Decoder) error {
	*r = userRec{}
	return decodeFields(d, func(key string) (err error) {
		switch key {
		case "q":
			r.Seq, err = d.DecodeUint32()
		case "v":
			r.Version, err = d.DecodeInt()
		case "e":
			err = r.Entry.DecodeMsgpack(d)
		case "h":
			r.Holdout, err = d.DecodeBool()
		case "a":
			r.Active, err = d.DecodeBool()
		case "n":
			r.Node, err = d.DecodeString()
		case "nt":
			r.NodeTS, err = d.DecodeInt64()
		case "d":
			r.Due, err = d.DecodeInt64()
		case "x":
			r.LastExit, err = d.DecodeInt64()
		case "g":
			r.GoalOpen, err = d.DecodeBool()
		case "gd":
			r.GoalDeadline, err = d.DecodeInt64()
		default:
			err = d.Skip()
		}
		return err
	})
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (s *storedEvent) EncodeMsgpack(e *msgpack.Encoder) error {
	w := fieldWriter{e: e}
	w.mapLen(2 + count(s.ID != "", len(s.Props) > 0 || s.rawProps != nil))
	w.key("n")
	w.err1(e.EncodeString(s.Name))
	w.key("t")
	w.err1(e.EncodeInt64(s.TS))
	w.stringIf("i", s.ID)
	w.propsIf("p", s.Props, s.rawProps)
	return w.err
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (s *storedEvent) DecodeMsgpack(d *msgpack.Decoder) error {
	*s = storedEvent{}
	return decodeFields(d, func(key string) (err error) {
		switch key {
		case "n":
			s.Name, err = d.DecodeString()
		case "t":
			s.TS, err = d.DecodeInt64()
		case "i":
			s.ID, err = d.DecodeString()
		case "p":
			s.rawProps, err = d.DecodeRaw()
		default:
			err = d.Skip()
		}
		return err
	})
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (h *histEvent) EncodeMsgpack(e *msgpack.Encoder) error {
	w := fieldWriter{e: e}
	w.mapLen(1 + count(len(h.Props) > 0))
	w.key("t")
	w.err1(e.EncodeInt64(h.TS))
	w.propsIf("p", h.Props, nil)
	return w.err
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (h *histEvent) DecodeMsgpack(d *msgpack.Decoder) error {
	*h = histEvent{}
	return decodeFields(d, func(key string) (err error) {
		switch key {
		case "t":
			h.TS, err = d.DecodeInt64()
		case "p":
			h.Props, err = d.DecodeMap()
		default:
			err = d.Skip()
		}
		return err
	})
}

// EncodeMsgpack implements msgpack.CustomEncoder. It sorts the channels,
// which reflection does not do for a map[string][]int64: state.EncodeValue
// then encoded, decoded and re-encoded such values to make them canonical,
// three times the work, with the bytes written here as the result.
func (c *capState) EncodeMsgpack(e *msgpack.Encoder) error {
	w := fieldWriter{e: e}
	w.mapLen(1)
	w.key("s")
	if c.Sent == nil {
		w.err1(e.EncodeNil())
		return w.err
	}
	channels := slices.Sorted(maps.Keys(c.Sent))
	w.mapLen(len(channels))
	for _, ch := range channels {
		w.key(ch)
		times := c.Sent[ch]
		if times == nil {
			w.err1(e.EncodeNil())
			continue
		}
		w.err1(e.EncodeArrayLen(len(times)))
		for _, t := range times {
			w.err1(e.EncodeInt64(t))
		}
	}
	return w.err
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (c *capState) DecodeMsgpack(d *msgpack.Decoder) error {
	*c = capState{}
	return decodeFields(d, func(key string) error {
		if key != "s" {
			return d.Skip()
		}
		n, err := d.DecodeMapLen()
		if err != nil || n < 0 {
			return err
		}
		c.Sent = make(map[string][]int64, n)
		for i := 0; i < n; i++ {
			ch, err := d.DecodeString()
			if err != nil {
				return err
			}
			if c.Sent[ch], err = decodeInt64s(d); err != nil {
				return fmt.Errorf("channel %q: %w", ch, err)
			}
		}
		return nil
	})
}

// decodeInt64s reads an array of integers; nil for a nil array.
func decodeInt64s(d *msgpack.Decoder) ([]int64, error) {
	n, err := d.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	out := make([]int64, n)
	for i := range out {
		if out[i], err = d.DecodeInt64(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fieldWriter writes a struct's map, keeping the first error.
type fieldWriter struct {
	e   *msgpack.Encoder
	err error
}

func (w *fieldWriter) err1(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *fieldWriter) mapLen(n int) { w.err1(w.e.EncodeMapLen(n)) }

func (w *fieldWriter) key(k string) { w.err1(w.e.EncodeString(k)) }

func (w *fieldWriter) boolIf(k string, v bool) {
	if v {
		w.key(k)
		w.err1(w.e.EncodeBool(true))
	}
}

func (w *fieldWriter) stringIf(k, v string) {
	if v != "" {
		w.key(k)
		w.err1(w.e.EncodeString(v))
	}
}

func (w *fieldWriter) int64If(k string, v int64) {
	if v != 0 {
		w.key(k)
		w.err1(w.e.EncodeInt64(v))
	}
}

// propsIf writes props kept undecoded (raw, as read) or else a non-empty
// map[string]any as reflection does: through Encode, which sorts its keys
// if the encoder is set to (state.EncodeValue's is). EncodeMap would not
// sort them.
func (w *fieldWriter) propsIf(k string, v map[string]any, raw msgpack.RawMessage) {
	switch {
	case raw != nil:
		w.key(k)
		w.err1(w.e.Encode(raw))
	case len(v) > 0:
		w.key(k)
		w.err1(w.e.Encode(v))
	}
}

// count returns how many of bs are true.
func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
