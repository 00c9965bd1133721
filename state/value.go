package state

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// ValueVersion is the version byte that starts every value written with
// EncodeValue. A future encoding bumps it and DecodeValue migrates.
const ValueVersion byte = 1

// ErrBadValue is returned by DecodeValue for a value it cannot read.
var ErrBadValue = errors.New("malformed state value")

// EncodeValue encodes v as a version byte followed by msgpack (design §4).
// Map keys are sorted, so equal values always encode to equal bytes and a
// replay writes byte-identical state and changelog records.
//
// msgpack's SetSortMapKeys only sorts map[string]any, map[string]string
// and map[string]bool. A value whose type holds any other map (say
// map[string]int64) is encoded, decoded into generic values and encoded
// again, sorted: the same layout, canonical, at about three times the cost.
// Which types need it is worked out once per type.
func EncodeValue(v any) ([]byte, error) {
	if needsCanonical(reflect.TypeOf(v)) {
		b, err := msgpack.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encoding state value: %w", err)
		}
		var generic any
		if err := msgpack.Unmarshal(b, &generic); err != nil {
			return nil, fmt.Errorf("encoding state value: %w", err)
		}
		v = generic
	}
	e := encoders.Get().(*valueEncoder)
	defer encoders.Put(e)
	e.buf.Reset()
	e.buf.WriteByte(ValueVersion)
	if err := e.enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding state value: %w", err)
	}
	return bytes.Clone(e.buf.Bytes()), nil
}

// valueEncoder is a msgpack encoder writing into its own buffer, pooled:
// a new encoder per value cost more than the encoding of a small record.
type valueEncoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := &valueEncoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	e.enc.SetSortMapKeys(true)
	return e
}}

var canonicalCache sync.Map // reflect.Type -> bool

// needsCanonical reports whether values of type t may hold a map that
// msgpack does not sort. Types with their own encoder are trusted.
func needsCanonical(t reflect.Type) bool {
	if t == nil {
		return false
	}
	if v, ok := canonicalCache.Load(t); ok {
		return v.(bool)
	}
	r := walkMaps(t, map[reflect.Type]bool{})
	canonicalCache.Store(t, r)
	return r
}

// sortedMaps are the map types msgpack's SetSortMapKeys sorts.
var sortedMaps = map[reflect.Type]bool{
	reflect.TypeFor[map[string]any]():    true,
	reflect.TypeFor[map[string]string](): true,
	reflect.TypeFor[map[string]bool]():   true,
}

var (
	customEncoder = reflect.TypeFor[msgpack.CustomEncoder]()
	marshaler     = reflect.TypeFor[msgpack.Marshaler]()
)

func walkMaps(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	if t.Implements(customEncoder) || reflect.PointerTo(t).Implements(customEncoder) ||
		t.Implements(marshaler) || reflect.PointerTo(t).Implements(marshaler) {
		return false
	}
	switch t.Kind() {
	case reflect.Map:
		return !sortedMaps[t]
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return walkMaps(t.Elem(), seen)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if f := t.Field(i); f.IsExported() && walkMaps(f.Type, seen) {
				return true
			}
		}
	}
	return false
}

// DecodeValue decodes a value written by EncodeValue into v.
func DecodeValue(b []byte, v any) error {
	if len(b) == 0 || b[0] != ValueVersion {
		return fmt.Errorf("decoding state value: unknown version: %w", ErrBadValue)
	}
	if err := msgpack.Unmarshal(b[1:], v); err != nil {
		return fmt.Errorf("decoding state value: %w", err)
	}
	return nil
}
