package funnel

import (
	"sort"
)

// userState is the state of one user in one funnel, stored under the sub key
// "u/<funnel id>". Its size is bounded: the step events of the last
// retention() ms before Latest, plus one entry per (bucket, group) whose
// attempts may still deepen.
//
// Invariants:
//   - Events is sorted by (TS, Off); events with equal (TS, Off) keep their
//     arrival order.
//   - Every event in Events matches at least one step (Steps != 0).
//   - For each (bucket, group) in Counted, Depth is the largest attempt
//     depth of the user there ever added to the partition's counts.
//
// It is encoded by hand (codec.go) as the msgpack array
// [Latest, [[TS, Off, Steps, Group]...], [[Bucket, Group, Depth, End]...]]:
// it is decoded and encoded on every matching event, and reflection cost
// more than the rest of the update.
type userState struct {
	Latest  int64 // largest TS of an accepted event, ms
	Events  []stepEvent
	Counted []counted
}

// stepEvent is an accepted event that matched at least one step.
type stepEvent struct {
	TS    int64
	Off   int64  // position in the partition's log, breaks TS ties
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
// more than one window before it, including e's own. It returns the raises,
// at most one per (bucket, group). Cost: O(a·n) for a attempts in the window
// and n stored events.
func (st *userState) add(d *Definition, e stepEvent) []change {
	p := sort.Search(len(st.Events), func(i int) bool {
		x := st.Events[i]
		return x.TS > e.TS || x.TS == e.TS && x.Off > e.Off
	})
	st.Events = append(st.Events, stepEvent{})
	copy(st.Events[p+1:], st.Events[p:])
	st.Events[p] = e
	st.Latest = max(st.Latest, e.TS)

	var changes []change
	from := e.TS - d.windowMs()
	for i := p; i >= 0 && st.Events[i].TS >= from; i-- {
		s := &st.Events[i]
		if s.Steps&1 == 0 {
			continue
		}
		label, end := d.bucketOf(s.TS)
		changes = st.raise(label, s.Group, st.depth(d, i), end, changes)
	}
	return changes
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
// and appends the change to changes if it raises the counted depth.
func (st *userState) raise(bucket, group string, depth int, end int64, changes []change) []change {
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
	for i := range changes {
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
