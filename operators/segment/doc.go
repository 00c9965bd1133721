// Package segment maintains audience segments: exact, per-partition sets of
// users defined by event counts in rolling windows, profile conditions,
// uploaded lists and boolean combinations of other segments. Membership is
// updated on every event and on window expiry (an event-time timer), never
// by polling. See docs/segments.md for the definition reference.
//
// # Model
//
// The per-user record (sub key "u") is the source of truth for a user's
// memberships. The partition-wide index is one roaring bitmap per segment,
// over dense uint32 user ids from a per-partition dictionary, stored in
// chunks of one roaring container each (sub key "b/<segment>\x00<hi16>"), so
// a change of membership rewrites one chunk of at most 8 KiB. Both are
// written in the same transaction, so for every segment S and user U:
//
//	S ∈ record(U).In  ⇔  dense(U) ∈ bitmap(S)  ⇔  U counted in size(S)
//
// A change also emits an internal $segment_enter or $segment_exit event for
// the user and upserts the partition size to the aggregates topic.
//
// # Evaluation order
//
// Segments are sorted so that each comes after the segments it refers to
// (definitions with cycles are rejected). An event marks the segments it can
// change; they are evaluated in that order, and a change marks the segments
// that refer to the changed one, which come later. One event therefore costs
// one pass over at most every segment, and usually a handful.
//
// # Time
//
// Windows are evaluated at the partition clock (design §3): an event at ts
// counts while ts > clock - within. A late event is counted if it is still
// inside the window when it arrives. Each segment with windows has at most
// one timer per user, at the next instant one of its rules changes result.
//
// # Thread safety
//
// An Operator is immutable after New and may be shared by all partitions.
// The read helpers (IsMember, Members, Size, InSegment, DecodeSize) are pure
// functions of the reads they are given.
package segment
