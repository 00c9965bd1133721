package funnel

import "sort"

// userState is the state of one user in one funnel: one part of the
// user's record (record.go). Its events are the shared log's entries it
// sees merged with its own Events (log.go, userRecord.view). Its size is
// bounded: the own events of the last retention() ms before Latest, plus
// one entry per (bucket, group) whose attempts may still deepen.
//
// Invariants:
//   - Events is sorted by TS; events with equal TS are in arrival order,
//     which is log order: so Events is in the order of the semantics, (ts,
//     position in the log), without keeping the position. (Events of one
//     user are processed in log order; an internal event has the position of
//     the record that caused it, so it comes after it.) At equal TS they
//     precede the log entries the funnel sees.
//   - Every event in Events matches at least one step (Steps != 0).
//   - For each (bucket, group) in Counted, Depth is the largest attempt
//     depth of the user there ever added to the partition's counts.
//
// A part is stored as Since, Except, then the binary layout of Latest,
// Events and Counted (binary.go). Records of the layout before the shared
// log hold every event of the funnel in Events (its Since is 0); those of
// the earliest versions hold it as the msgpack array [Latest, [[TS, Off,
// Steps, Group]...], [[Bucket, Group, Depth, End]...]] (codec.go). Both
// are still read.
type userState struct {
	Latest  int64 // largest TS of an accepted event, ms
	Events  []stepEvent
	Counted []counted
	Since   int64   // the seq of the log entry that created the part
	Except  []int64 // seqs of log entries too late for this funnel

	changed bool // since decoded, in more than Latest
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

// recount recomputes the attempts that event evs[p], just added, can
// deepen: those that start at or before it in log order and no more than
// one window before it, including its own, or only its own if onlyOwn (it
// fills no step after the first). evs are the funnel's events in order
// (userRecord.view). No attempt reaches past maxDepth: len(d.Steps), or
// the event's last step if it came after every other event (it extends a
// chain by one step at most), so an attempt whose (bucket, group) is
// counted at maxDepth already is skipped. It appends the raises to
// changes, at most one per (bucket, group). Cost: O(a·n) for a attempts
// in the window and n events.
func (st *userState) recount(d *Definition, evs []stepEvent, p int, onlyOwn bool, maxDepth int, changes []change, bc *bucketCache) []change {
	lo := len(changes)
	from, _ := d.around(evs[p].TS)
	stop := -1
	if onlyOwn {
		stop = p - 1
	}
	for i := p; i > stop && evs[i].TS >= from; i-- {
		s := &evs[i]
		if s.Steps&1 == 0 {
			continue
		}
		label, end := bc.of(d, s.TS)
		c := st.counted(label, s.Group)
		if c >= 0 && st.Counted[c].Depth >= maxDepth {
			continue
		}
		depth := depthOf(d, evs, i)
		if depth == 1 && i != p {
			// Counted already holds depth ≥ 1 for the attempt's bucket:
			// it was raised when the attempt started, and is not pruned
			// while an event may still deepen the attempt.
			continue
		}
		changes = st.raiseAt(c, label, s.Group, depth, end, changes, lo)
	}
	return changes
}

// openFrom returns the later of from and the earliest time an attempt may
// have started at in a (bucket, group) whose bucket ends after from and
// that is counted below depth k: an event that comes after every other and
// fills no step past k can raise no attempt that started before it, so
// recount needs no event before it. It is at most ts, the event's time
// (st.Latest), as every counted attempt started at or before it. Cost:
// O(len(Counted)).
func (st *userState) openFrom(d *Definition, from, ts int64, k int) int64 {
	open := ts
	for i := range st.Counted {
		if c := &st.Counted[i]; c.End > from && c.Depth < k {
			open = min(open, d.bucketStartBound(c.End))
		}
	}
	return max(from, open)
}

// settled reports whether every counted (bucket, group) that may hold an
// attempt starting at or after from has a depth of at least k. Then an
// event that comes after every event of the funnel and matches no step beyond k
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

// depthOf is the depth of the attempt started by evs[i]: matching the
// steps greedily, each by the earliest following event that matches it,
// finds the longest chain (an exchange argument: any chain can be rewritten
// to use the earliest candidate for each step).
func depthOf(d *Definition, evs []stepEvent, i int) int {
	n, depth := len(d.Steps), 1
	limit := evs[i].TS + d.windowMs()
	for k := i + 1; k < len(evs) && depth < n; k++ {
		e := &evs[k]
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
	return st.raiseAt(st.counted(bucket, group), bucket, group, depth, end, changes, lo)
}

// counted returns the index of (bucket, group) in st.Counted, or -1.
// It looks from the end: entries are appended as buckets start, so the
// bucket of an event in order is the last or close to it.
func (st *userState) counted(bucket, group string) int {
	for i := len(st.Counted) - 1; i >= 0; i-- {
		if st.Counted[i].Bucket == bucket && st.Counted[i].Group == group {
			return i
		}
	}
	return -1
}

// raiseAt is raise with the index of (bucket, group) in st.Counted, -1 if
// absent.
func (st *userState) raiseAt(at int, bucket, group string, depth int, end int64, changes []change, lo int) []change {
	if at < 0 {
		st.Counted = append(st.Counted, counted{Bucket: bucket, Group: group, End: end})
		at = len(st.Counted) - 1
	}
	c := &st.Counted[at]
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

// prune drops what no accepted event can affect any more: own events older
// than Latest - retention, and counted entries of buckets that ended before that.
// Any later accepted event is at least Latest - horizon, so the attempts it
// can deepen start at or after Latest - horizon - window = the cutoff.
func (st *userState) prune(d *Definition) {
	cutoff := st.Latest - d.retention()
	if len(st.Events) > 0 && st.Events[0].TS < cutoff {
		k := sort.Search(len(st.Events), func(i int) bool { return st.Events[i].TS >= cutoff })
		st.Events = append(st.Events[:0], st.Events[k:]...)
		st.changed = true
	}
	// Most events prune nothing: look before compacting, which would
	// rewrite every entry.
	first := 0
	for first < len(st.Counted) && st.Counted[first].End > cutoff {
		first++
	}
	if first == len(st.Counted) {
		return
	}
	kept := st.Counted[:first]
	for _, c := range st.Counted[first+1:] {
		if c.End > cutoff {
			kept = append(kept, c)
		}
	}
	clear(st.Counted[len(kept):])
	st.Counted, st.changed = kept, true
}
