package funnel

import (
	"math/bits"
	"slices"
	"sort"
)

// userState is the state of one user in one funnel, stored under the sub key
// "u/<funnel id>". Its size is bounded: the step events of the last
// retention() ms before Latest, plus one entry per (bucket, group) whose
// attempts may still deepen.
//
// Invariants:
//   - Events is sorted by TS; events with equal TS are in arrival order,
//     which is log order: so Events is in the order of the semantics, (ts,
//     position in the log), without keeping the position. (Events of one
//     user are processed in log order; an internal event has the position of
//     the record that caused it, so it comes after it.)
//   - Every event in Events matches at least one step (Steps != 0).
//   - For each (bucket, group) in Counted, Depth is the largest attempt
//     depth of the user there ever added to the partition's counts.
//
// It is stored in a binary layout (binary.go): it is decoded and encoded on
// every matching event. Records of earlier versions hold it as the msgpack
// array [Latest, [[TS, Off, Steps, Group]...], [[Bucket, Group, Depth,
// End]...]] (codec.go), which is still read.
type userState struct {
	Latest  int64 // largest TS of an accepted event, ms
	Events  []stepEvent
	Counted []counted
}

// stepEvent is an accepted event that matched at least one step.
type stepEvent struct {
	TS    int64
	Steps uint32 // bit i set: the event matched step i+1 when it arrived
	Group string // group_by on the event, if it matched step 1
}

// counted is the depth of a user already added to the counts of a bucket
// and group.
type counted struct {
	Bucket string
	Group  string
	Depth  int
	End    int64 // upper bound of the bucket's end, ms; see bucketOf
}

// change is a raise of a user's depth in one bucket and group: the counts of
// levels From+1..To each gain one user.
type change struct {
	Bucket, Group string
	From, To      int
}

// add inserts e (which matched at least one step) and recomputes every
// attempt e can deepen: those that start at or before e in log order and no
// more than one window before it, including e's own. It appends the raises
// to changes, at most one per (bucket, group). Cost: O(a·n) for a attempts in
// the window and n stored events.
func (st *userState) add(d *Definition, e stepEvent, changes []change, bc *bucketCache) []change {
	p := len(st.Events)
	if p > 0 && st.Events[p-1].TS > e.TS { // out of order; in order is the common case
		p = sort.Search(p, func(i int) bool {
			return st.Events[i].TS > e.TS // e comes after the stored events of equal TS
		})
	}
	st.Events = slices.Insert(st.Events, p, e)
	st.Latest = max(st.Latest, e.TS)

	lo := len(changes)
	from := e.TS - d.windowMs()
	stop := -1
	if later := e.Steps &^ 1; later == 0 || p == len(st.Events)-1 && st.settled(from, bits.Len32(later)) {
		// e fills no step after the first of any attempt, or it comes
		// last and no attempt it could extend is counted below the
		// deepest step it matches: only its own attempt can change.
		stop = p - 1
	}
	for i := p; i > stop && st.Events[i].TS >= from; i-- {
		s := &st.Events[i]
		if s.Steps&1 == 0 {
			continue
		}
		depth := st.depth(d, i)
		if depth == 1 && i != p {
			// Counted already holds depth ≥ 1 for the attempt's bucket:
			// it was raised when the attempt started, and is not pruned
			// while an event may still deepen the attempt.
			continue
		}
		label, end := bc.of(d, s.TS)
		changes = st.raise(label, s.Group, depth, end, changes, lo)
	}
	return changes
}

// settled reports whether every counted (bucket, group) that may hold an
// attempt starting at or after from has a depth of at least k. Then an
// event that comes after every stored event and matches no step beyond k
// raises no attempt but its own: appended last, it extends an attempt's
// chain by one step at most, to a depth of at most k, and every attempt
// starting at or after from is counted in an entry whose End is past from
// (an attempt's bucket is counted when it starts, at depth 1, and kept
// while an event may deepen it). Cost: O(len(Counted)), about one entry,
// instead of scanning the window's events and recomputing their depths.
func (st *userState) settled(from int64, k int) bool {
	for i := range st.Counted {
		if c := &st.Counted[i]; c.End > from && c.Depth < k {
			return false
		}
	}
	return true
}

// depth is the depth of the attempt started by Events[i]: matching the
// steps greedily, each by the earliest following event that matches it,
// finds the longest chain (an exchange argument: any chain can be rewritten
// to use the earliest candidate for each step).
func (st *userState) depth(d *Definition, i int) int {
	n, depth := len(d.Steps), 1
	limit := st.Events[i].TS + d.windowMs()
	for k := i + 1; k < len(st.Events) && depth < n; k++ {
		e := &st.Events[k]
		if e.TS > limit {
			break
		}
		if e.Steps&(1<<depth) != 0 {
			depth++
		}
	}
	return depth
}

// raise records that the user has an attempt of depth in (bucket, group)
// and appends the change to changes if it raises the counted depth; the
// changes of this update are changes[lo:].
func (st *userState) raise(bucket, group string, depth int, end int64, changes []change, lo int) []change {
	var c *counted
	for i := range st.Counted {
		if st.Counted[i].Bucket == bucket && st.Counted[i].Group == group {
			c = &st.Counted[i]
			break
		}
	}
	if c == nil {
		st.Counted = append(st.Counted, counted{Bucket: bucket, Group: group, End: end})
		c = &st.Counted[len(st.Counted)-1]
	}
	if depth <= c.Depth {
		return changes
	}
	old := c.Depth
	c.Depth = depth
	for i := lo; i < len(changes); i++ {
		if changes[i].Bucket == bucket && changes[i].Group == group {
			changes[i].To = depth
			return changes
		}
	}
	return append(changes, change{Bucket: bucket, Group: group, From: old, To: depth})
}

// prune drops what no accepted event can affect any more: events older than
// Latest - retention, and counted entries of buckets that ended before that.
// Any later accepted event is at least Latest - horizon, so the attempts it
// can deepen start at or after Latest - horizon - window = the cutoff.
func (st *userState) prune(d *Definition) {
	cutoff := st.Latest - d.retention()
	k := sort.Search(len(st.Events), func(i int) bool { return st.Events[i].TS >= cutoff })
	if k > 0 {
		st.Events = append(st.Events[:0], st.Events[k:]...)
	}
	kept := st.Counted[:0]
	for _, c := range st.Counted {
		if c.End > cutoff {
			kept = append(kept, c)
		}
	}
	st.Counted = kept
}
