package state

import (
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
func EncodeValue(v any) ([]byte, error) {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding state value: %w", err)
	}
	return append([]byte{ValueVersion}, b...), nil
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
