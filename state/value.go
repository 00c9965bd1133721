package state

import (
	"bytes"
	"errors"
	"fmt"

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
func EncodeValue(v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(ValueVersion)
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding state value: %w", err)
	}
	return buf.Bytes(), nil
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
