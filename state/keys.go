// Package state owns Cairn's persistent state: the Pebble key layout, value
// encodings and the Store used by the engine's partition workers.
//
// Key layout (design §4). Every key starts with the big-endian partition
// number and a one-byte keyspace tag. Variable-length fields (user ids,
// operator names, timer ids) are length-prefixed with a uvarint, so any byte
// string is a valid id and a prefix of fields is a valid scan prefix.
//
//	meta      p | 0x01 | name
//	user      p | 0x02 | lp(user) | lp(operator) | sub
//	shared    p | 0x03 | lp(operator) | sub
//	timer     p | 0x04 | due (8 bytes BE, biased) | lp(operator) | lp(user) | lp(id)
//	timer idx p | 0x05 | lp(user) | lp(operator) | lp(id)          -> due
package state

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Tag is the keyspace tag that follows the partition number in every key.
type Tag byte

// Keyspace tags. Their values are part of the on-disk and changelog format:
// never renumber them.
const (
	TagMeta     Tag = 0x01
	TagUser     Tag = 0x02
	TagShared   Tag = 0x03
	TagTimer    Tag = 0x04
	TagTimerIdx Tag = 0x05
)

// ErrBadKey is returned by DecodeKey when a key does not follow the layout.
var ErrBadKey = errors.New("malformed state key")

// Key is a decoded state key. Fields that the key's tag does not carry are
// zero.
type Key struct {
	Partition int32
	Tag       Tag
	Name      string // meta name
	User      string
	Operator  string
	ID        string // timer id
	Due       int64  // timer due time, ms since the epoch
	Sub       []byte // operator-defined suffix (user and shared keys)
}

// PartitionPrefix returns the 4-byte prefix shared by every key of p.
func PartitionPrefix(p int32) []byte {
	return binary.BigEndian.AppendUint32(make([]byte, 0, 16), uint32(p))
}

func appendLP(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func tagged(p int32, t Tag, extra int) []byte {
	b := make([]byte, 0, 5+extra)
	b = binary.BigEndian.AppendUint32(b, uint32(p))
	return append(b, byte(t))
}

// MetaKey returns the key of partition-level metadata such as the marker.
func MetaKey(p int32, name string) []byte {
	return append(tagged(p, TagMeta, len(name)), name...)
}

// UserPrefix returns the prefix of all keys of user (op == "") or of one
// operator's keys for user.
func UserPrefix(p int32, user, op string) []byte {
	b := appendLP(tagged(p, TagUser, len(user)+len(op)+4), user)
	if op == "" {
		return b
	}
	return appendLP(b, op)
}

// UserKey returns the key of sub in op's state for user.
func UserKey(p int32, user, op string, sub []byte) []byte {
	b := appendLP(tagged(p, TagUser, len(user)+len(op)+len(sub)+4), user)
	return append(appendLP(b, op), sub...)
}

// SharedKey returns the key of sub in op's partition-wide state.
func SharedKey(p int32, op string, sub []byte) []byte {
	return append(appendLP(tagged(p, TagShared, len(op)+len(sub)+2), op), sub...)
}

// TimerPrefix returns the prefix of all timers of p; timers sort by due time.
func TimerPrefix(p int32) []byte { return tagged(p, TagTimer, 0) }

// TimerKey returns the due-ordered key of a timer.
func TimerKey(p int32, due int64, op, user, id string) []byte {
	b := tagged(p, TagTimer, 8+len(op)+len(user)+len(id)+6)
	b = binary.BigEndian.AppendUint64(b, uint64(due)^dueBias)
	return appendLP(appendLP(appendLP(b, op), user), id)
}

// dueBias flips the sign bit of a due time, so that negative times sort
// before positive ones in big-endian byte order.
const dueBias = 1 << 63

// TimerIdentityAt is where a timer key's identity, lp(operator) | lp(user)
// | lp(id), starts: after the partition, the tag and the due time. The keys
// of one timer at different due times share everything from there on.
const TimerIdentityAt = 4 + 1 + 8

// TimerKeyDue returns the due time of a timer key, which must be at least
// TimerIdentityAt bytes long. It is DecodeKey's Due without the rest.
func TimerKeyDue[K ~string | ~[]byte](key K) int64 {
	var due uint64
	for i := 5; i < TimerIdentityAt; i++ {
		due = due<<8 | uint64(key[i])
	}
	return int64(due ^ dueBias)
}

// TimerIndexKey returns the per-user reverse-index key of a timer.
func TimerIndexKey(p int32, user, op, id string) []byte {
	b := tagged(p, TagTimerIdx, len(op)+len(user)+len(id)+6)
	return appendLP(appendLP(appendLP(b, user), op), id)
}

// TimerIndexPrefix returns the prefix of user's timer index entries.
func TimerIndexPrefix(p int32, user string) []byte {
	return appendLP(tagged(p, TagTimerIdx, len(user)+2), user)
}

// PrefixEnd returns the smallest key greater than every key with prefix, or
// nil if there is none (prefix is all 0xff).
func PrefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

func readLP(b []byte) (string, []byte, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n || w != len(binary.AppendUvarint(nil, n)) {
		return "", nil, ErrBadKey // truncated, or a non-minimal length
	}
	return string(b[w : w+int(n)]), b[w+int(n):], nil
}

// DecodeKey parses a key produced by this package. It never panics.
func DecodeKey(b []byte) (Key, error) {
	if len(b) < 5 {
		return Key{}, fmt.Errorf("decoding key %x: too short: %w", b, ErrBadKey)
	}
	k := Key{Partition: int32(binary.BigEndian.Uint32(b)), Tag: Tag(b[4])}
	rest := b[5:]
	var err error
	switch k.Tag {
	case TagMeta:
		k.Name = string(rest)
	case TagUser:
		if k.User, rest, err = readLP(rest); err == nil {
			k.Operator, rest, err = readLP(rest)
			k.Sub = rest
		}
	case TagShared:
		k.Operator, rest, err = readLP(rest)
		k.Sub = rest
	case TagTimer:
		if len(rest) < 8 {
			return Key{}, fmt.Errorf("decoding timer key %x: %w", b, ErrBadKey)
		}
		k.Due = TimerKeyDue(b)
		rest = rest[8:]
		err = readFields(rest, &k.Operator, &k.User, &k.ID)
	case TagTimerIdx:
		err = readFields(rest, &k.User, &k.Operator, &k.ID)
	default:
		return Key{}, fmt.Errorf("decoding key %x: unknown tag %#x: %w", b, b[4], ErrBadKey)
	}
	if err != nil {
		return Key{}, fmt.Errorf("decoding key %x: %w", b, err)
	}
	return k, nil
}

func readFields(b []byte, dst ...*string) error {
	var err error
	for _, d := range dst {
		if *d, b, err = readLP(b); err != nil {
			return err
		}
	}
	if len(b) != 0 {
		return ErrBadKey
	}
	return nil
}

// Encode re-encodes k; Encode(DecodeKey(b)) == b for every valid b.
func (k Key) Encode() []byte {
	switch k.Tag {
	case TagMeta:
		return MetaKey(k.Partition, k.Name)
	case TagUser:
		return UserKey(k.Partition, k.User, k.Operator, k.Sub)
	case TagShared:
		return SharedKey(k.Partition, k.Operator, k.Sub)
	case TagTimer:
		return TimerKey(k.Partition, k.Due, k.Operator, k.User, k.ID)
	case TagTimerIdx:
		return TimerIndexKey(k.Partition, k.User, k.Operator, k.ID)
	}
	return nil
}
