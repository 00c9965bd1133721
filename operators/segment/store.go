package segment

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/cairn-cjo/cairn/state"
)

// State layout under operator name "segment" (see docs/segments.md).
//
// Partition-wide (shared) sub keys:
//
//	d/<user>                 -> v | dense id (4 bytes BE)       dictionary
//	r/<dense id, 4 bytes BE> -> v | user id                     reverse dictionary
//	n                        -> v | next dense id (4 bytes BE)
//	b/<segment>\x00<hi, 2 BE>-> chunk (see chunk.go)           bitmap chunks
//	s/<segment>              -> v | size (8 bytes BE)           partition size
//
// Per-user sub keys:
//
//	u                   -> EncodeValue(userRec)   memberships and lists
//	c/<segment>/<fp>    -> EncodeValue(counter)   one per event rule
//
// v is state.ValueVersion. The fixed-width values are not msgpack: they are
// on the hot path and their width is their validation.
var (
	prefixDict    = []byte("d/")
	prefixReverse = []byte("r/")
	keyNext       = []byte("n")
	prefixChunk   = []byte("b/")
	prefixSize    = []byte("s/")
	keyUser       = []byte("u")
)

// errBadDict is wrapped by the dictionary and size decoders.
var errBadDict = errors.New("malformed segment dictionary value")

// GetFunc reads one sub key of the segment operator's state (partition-wide
// or of one user, depending on the helper), returning nil when it is absent.
// engine.Context.GetShared and Get have this shape.
type GetFunc func(sub []byte) ([]byte, error)

// ScanFunc calls fn, in key order, for each sub key of the segment
// operator's partition-wide state that starts with prefix.
type ScanFunc func(prefix []byte, fn func(sub, value []byte) error) error

func dictKey(user string) []byte { return append(append([]byte(nil), prefixDict...), user...) }

func reverseKey(dense uint32) []byte {
	return binary.BigEndian.AppendUint32(append([]byte(nil), prefixReverse...), dense)
}

// chunkPrefix is the prefix of every chunk key of segment; ids contain no
// NUL, so no other segment's keys share it.
func chunkPrefix(segment string) []byte {
	b := append(append([]byte(nil), prefixChunk...), segment...)
	return append(b, 0)
}

func chunkKey(segment string, hi uint16) []byte {
	return binary.BigEndian.AppendUint16(chunkPrefix(segment), hi)
}

func sizeKey(segment string) []byte { return append(append([]byte(nil), prefixSize...), segment...) }

func encodeU32(v uint32) []byte { return binary.BigEndian.AppendUint32([]byte{state.ValueVersion}, v) }

func encodeU64(v uint64) []byte { return binary.BigEndian.AppendUint64([]byte{state.ValueVersion}, v) }

// decodeU32 reads a dense id or the next-id counter.
func decodeU32(b []byte) (uint32, error) {
	if len(b) != 5 || b[0] != state.ValueVersion {
		return 0, fmt.Errorf("decoding dense id: %d bytes: %w", len(b), errBadDict)
	}
	return binary.BigEndian.Uint32(b[1:]), nil
}

// decodeU64 reads a size.
func decodeU64(b []byte) (uint64, error) {
	if len(b) != 9 || b[0] != state.ValueVersion {
		return 0, fmt.Errorf("decoding size: %d bytes: %w", len(b), errBadDict)
	}
	return binary.BigEndian.Uint64(b[1:]), nil
}

// decodeReverse reads a reverse dictionary value: the user id.
func decodeReverse(b []byte) (string, error) {
	if len(b) < 2 || b[0] != state.ValueVersion {
		return "", fmt.Errorf("decoding reverse dictionary entry: %d bytes: %w", len(b), errBadDict)
	}
	return string(b[1:]), nil
}

// lookupDense returns the dense id of user, if the dictionary has one.
func lookupDense(get GetFunc, user string) (uint32, bool, error) {
	v, err := get(dictKey(user))
	if err != nil || v == nil {
		return 0, false, err
	}
	d, err := decodeU32(v)
	return d, err == nil, err
}

// loadChunk returns the chunk of segment holding dense, empty if absent.
func loadChunk(get GetFunc, segment string, dense uint32) (*chunk, error) {
	hi := uint16(dense >> 16)
	v, err := get(chunkKey(segment, hi))
	if err != nil {
		return nil, err
	}
	if v == nil {
		return &chunk{hi: hi}, nil
	}
	c, err := decodeChunk(v)
	if err != nil {
		return nil, fmt.Errorf("reading chunk %d of segment %s: %w", hi, segment, err)
	}
	if c.hi != hi {
		return nil, fmt.Errorf("reading chunk %d of segment %s: holds chunk %d: %w", hi, segment, c.hi, errBadChunk)
	}
	return c, nil
}

// IsMember reports whether user is a member of segment on one partition,
// reading the partition-wide state through get (e.g. engine.Context's
// GetShared of operator "segment", or a read-only store view for HTTP).
// Cost: two point reads and the decoding of one chunk (≤ 8 KiB). It is as
// safe for concurrent use as get is. A user the partition never saw, or an
// unknown segment, is simply not a member.
func IsMember(get GetFunc, user, segment string) (bool, error) {
	dense, ok, err := lookupDense(get, user)
	if err != nil || !ok {
		return false, err
	}
	c, err := loadChunk(get, segment, dense)
	if err != nil {
		return false, err
	}
	return c.contains(uint16(dense)), nil
}

// Size returns the number of members of segment on one partition.
func Size(get GetFunc, segment string) (uint64, error) {
	v, err := get(sizeKey(segment))
	if err != nil || v == nil {
		return 0, err
	}
	return decodeU64(v)
}

// Members calls fn with every member of segment on one partition, in
// increasing dense id order (the order users were first admitted to any
// segment), until fn returns an error, which Members returns. It scans the
// segment's chunks and does one reverse dictionary read per member: cost
// O(size) reads, memory O(one chunk). It is meant for export and batch
// sends; it sees a consistent view only if scan and get read one snapshot.
func Members(get GetFunc, scan ScanFunc, segment string, fn func(user string) error) error {
	return scan(chunkPrefix(segment), func(sub, value []byte) error {
		c, err := decodeChunk(value)
		if err != nil {
			return fmt.Errorf("exporting segment %s: chunk %x: %w", segment, sub, err)
		}
		var ferr error
		c.each(func(lo uint16) bool {
			ferr = memberUser(get, uint32(c.hi)<<16|uint32(lo), fn)
			return ferr == nil
		})
		return ferr
	})
}

func memberUser(get GetFunc, dense uint32, fn func(string) error) error {
	v, err := get(reverseKey(dense))
	if err != nil {
		return err
	}
	if v == nil {
		return fmt.Errorf("exporting member %d: not in the reverse dictionary: %w", dense, errBadDict)
	}
	user, err := decodeReverse(v)
	if err != nil {
		return err
	}
	return fn(user)
}

// SizeRow is the value of a segment size record on the aggregates topic:
// the number of members of one segment on one partition. The total size of
// a segment is the sum of its rows over all partitions.
type SizeRow struct {
	Segment   string `json:"segment"`
	Partition int32  `json:"partition"`
	Size      uint64 `json:"size"`
}

// SizeKey returns the aggregates topic key of segment on partition:
// "segment/<id>/<partition>".
func SizeKey(segment string, partition int32) string {
	return "segment/" + segment + "/" + strconv.Itoa(int(partition))
}

// ErrNotSizeRow is returned by DecodeSize for an aggregates record that is
// not a segment size (funnel and journey rows share the topic). Callers
// reading the whole topic skip such records.
var ErrNotSizeRow = errors.New("not a segment size record")

// DecodeSize decodes one aggregates record. It returns ErrNotSizeRow for a
// key that does not start with "segment/", and an error for a malformed
// row or a value that disagrees with its key. A nil value (tombstone) gives
// a row of size 0.
func DecodeSize(key, value []byte) (SizeRow, error) {
	rest, ok := strings.CutPrefix(string(key), "segment/")
	if !ok {
		return SizeRow{}, ErrNotSizeRow
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return SizeRow{}, fmt.Errorf("decoding segment size key %q: no partition", key)
	}
	p, err := strconv.ParseInt(rest[i+1:], 10, 32)
	if err != nil || p < 0 || !idPattern.MatchString(rest[:i]) {
		return SizeRow{}, fmt.Errorf("decoding segment size key %q: bad segment or partition", key)
	}
	row := SizeRow{Segment: rest[:i], Partition: int32(p)}
	if value == nil {
		return row, nil
	}
	var got SizeRow
	if err := json.Unmarshal(value, &got); err != nil {
		return SizeRow{}, fmt.Errorf("decoding segment size %q: %w", key, err)
	}
	if got.Segment != row.Segment || got.Partition != row.Partition {
		return SizeRow{}, fmt.Errorf("decoding segment size %q: value is for %s/%d", key, got.Segment, got.Partition)
	}
	return got, nil
}

func encodeSizeRow(r SizeRow) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("encoding size row: %v", err)) // three plain fields cannot fail
	}
	return b
}

// nextDense allocates a dense id. Ids are never reused: the dictionary only
// grows, by one entry per user ever admitted to a segment on the partition.
func nextDense(get GetFunc) (uint32, error) {
	v, err := get(keyNext)
	if err != nil || v == nil {
		return 0, err
	}
	n, err := decodeU32(v)
	if err == nil && n == math.MaxUint32 {
		err = errors.New("allocating dense id: dictionary full")
	}
	return n, err
}

// InSegment answers the condition {in_segment: X} for one user, from the
// user's own segment record: getUser must read the segment operator's
// per-user keys of that user on the user's partition (for example
// engine.Context.GetOf(OperatorName, sub), or engine.Local.ScanUser in
// tests). Cost: one point read of a small msgpack value, no chunk decoding;
// prefer it to IsMember inside operators. It sees the membership as of the
// segment operator's last call for the user: within one transaction, an
// operator dispatched after "segment" for the same event sees the update.
func InSegment(getUser GetFunc, segment string) (bool, error) {
	ids, err := UserSegments(getUser)
	if err != nil {
		return false, err
	}
	return has(ids, segment), nil
}

// ValidID reports whether id is a well-formed segment id (1–64 characters
// of A-Z a-z 0-9 _ . -, starting with a letter or digit). Other operators
// check their references to segments with it when the defined ids are not
// known; it says nothing about whether the segment exists.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// UserSegments returns the sorted ids of the segments the user is in, read
// as InSegment does. The slice is the caller's.
func UserSegments(getUser GetFunc) ([]string, error) {
	v, err := getUser(keyUser)
	if err != nil || v == nil {
		return nil, err
	}
	var rec userRec
	if err := state.DecodeValue(v, &rec); err != nil {
		return nil, fmt.Errorf("reading segments of user: %w", err)
	}
	return rec.In, nil
}

// Reader is the read side of a state.Store (or of a state.Batch), which is
// all the HTTP read path needs. Reads see committed state only when r is a
// Store.
type Reader interface {
	Get(key []byte) ([]byte, error)
	Scan(lower, upper []byte, fn func(key, value []byte) error) error
}

// SharedReaders returns the GetFunc and ScanFunc of the segment operator's
// partition-wide state of partition p in r, for IsMember, Size and Members.
// They are as safe for concurrent use as r is (a state.Store is).
func SharedReaders(r Reader, p int32) (GetFunc, ScanFunc) {
	base := state.SharedKey(p, OperatorName, nil)
	get := func(sub []byte) ([]byte, error) { return r.Get(state.SharedKey(p, OperatorName, sub)) }
	scan := func(prefix []byte, fn func(sub, value []byte) error) error {
		lo := append(append([]byte(nil), base...), prefix...)
		return r.Scan(lo, state.PrefixEnd(lo), func(k, v []byte) error { return fn(k[len(base):], v) })
	}
	return get, scan
}

// UserReader returns the GetFunc of the segment operator's keys of user on
// partition p in r, for InSegment and UserSegments.
func UserReader(r Reader, p int32, user string) GetFunc {
	return func(sub []byte) ([]byte, error) { return r.Get(state.UserKey(p, user, OperatorName, sub)) }
}

// PartitionReader is the read side of *engine.Engine that the HTTP handlers
// use: committed state of owned partitions, engine.ErrNotOwned otherwise.
type PartitionReader interface {
	GetShared(p int32, op string, sub []byte) ([]byte, error)
	ReadShared(p int32, op string, prefix []byte, fn func(sub, value []byte) error) error
}

// EngineReaders returns the GetFunc and ScanFunc of the segment operator's
// partition-wide state of partition p through e (an *engine.Engine), for
// IsMember, Size and Members. Errors of e, such as engine.ErrNotOwned, are
// returned unwrapped so that callers can forward the request.
func EngineReaders(e PartitionReader, p int32) (GetFunc, ScanFunc) {
	get := func(sub []byte) ([]byte, error) { return e.GetShared(p, OperatorName, sub) }
	scan := func(prefix []byte, fn func(sub, value []byte) error) error {
		return e.ReadShared(p, OperatorName, prefix, fn)
	}
	return get, scan
}

// errSliceFull stops MembersFrom's scan once limit members were visited.
var errSliceFull = errors.New("slice full")

// MembersFrom calls fn with at most limit members of segment whose dense
// id is at least from, in dense id order, and returns the cursor to resume
// from and whether members may remain. It is the primitive for processing a
// large segment in bounded slices across transactions (scheduled
// broadcasts, exports that resume), with the cursor kept in state: a member
// is visited at most once per pass, and one that joins or leaves during the
// pass is visited if it is a member when its slice runs. Cost per call: one
// key comparison per chunk before the cursor, one chunk decode per chunk
// visited and one reverse dictionary read per member.
func MembersFrom(get GetFunc, scan ScanFunc, segment string, from uint32, limit int, fn func(user string) error) (next uint32, more bool, err error) {
	if limit <= 0 {
		return from, true, nil
	}
	pre := chunkPrefix(segment)
	n := 0
	next = from
	err = scan(pre, func(sub, value []byte) error {
		if len(sub) != len(pre)+2 || uint32(binary.BigEndian.Uint16(sub[len(pre):])) < from>>16 {
			return nil
		}
		c, err := decodeChunk(value)
		if err != nil {
			return fmt.Errorf("reading segment %s: chunk %x: %w", segment, sub, err)
		}
		var ferr error
		c.each(func(lo uint16) bool {
			dense := uint32(c.hi)<<16 | uint32(lo)
			if dense < from {
				return true
			}
			if n == limit {
				ferr = errSliceFull
				return false
			}
			if ferr = memberUser(get, dense, fn); ferr != nil {
				return false
			}
			n, next = n+1, dense+1
			return true
		})
		return ferr
	})
	switch {
	case errors.Is(err, errSliceFull):
		return next, true, nil
	case err != nil:
		return from, false, err
	}
	return next, false, nil
}
