package segment

import (
	"hash/fnv"
	"sort"
	"strconv"
)

// counter is the per-user state of one event rule. For an all-time rule it
// is a count capped at need(); for a windowed rule it is the need() largest
// timestamps of matching events still inside the window, newest first.
//
// Why exact timestamps rather than time buckets: with buckets of W/32 a user
// would leave a window up to W/32 late (almost a day for 30d), and the
// segment would no longer be exact. The threshold bounds the state instead:
// a rule "count OP n" is decided by min(count, n+1), and the n+1 largest
// in-window timestamps give exactly that count at every later clock (any
// event older than them leaves the window first). So the state is at most
// n+1 timestamps (n ≤ MaxCount), an insert is O(n) on a tiny slice (O(1) for
// the usual n ≤ 10), and expiry is exact to the millisecond.
type counter struct {
	N  int     `msgpack:"n,omitempty"`
	TS []int64 `msgpack:"ts,omitempty"`
}

// counterKey names the counter of e in segment: the fingerprint covers what
// changes the meaning of the stored data (name, where, window, cap), so an
// edited rule starts from an empty counter instead of misreading old state.
func counterKey(segment string, e *eventRule) []byte {
	h := fnv.New32a()
	where := ""
	if e.where != nil {
		where = e.where.String()
	}
	for _, s := range []string{e.name, where, strconv.FormatInt(e.within, 10), strconv.Itoa(e.need())} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return []byte("c/" + segment + "/" + strconv.FormatUint(uint64(h.Sum32()), 16))
}

// add records a matching event at ts, evaluated at clock. It reports
// whether the counter changed.
func (c *counter) add(e *eventRule, ts, clock int64) bool {
	if e.within == 0 {
		if c.N >= e.need() {
			return false
		}
		c.N++
		return true
	}
	if ts <= clock-e.within {
		return false // arrived after it left the window
	}
	i := sort.Search(len(c.TS), func(i int) bool { return c.TS[i] < ts })
	if i >= e.need() {
		return false
	}
	c.TS = append(c.TS, 0)
	copy(c.TS[i+1:], c.TS[i:])
	c.TS[i] = ts
	if len(c.TS) > e.need() {
		c.TS = c.TS[:e.need()]
	}
	return true
}

// prune drops the timestamps that left the window at clock and reports
// whether any did.
func (c *counter) prune(e *eventRule, clock int64) bool {
	n := c.inWindow(e, clock)
	if n == len(c.TS) {
		return false
	}
	c.TS = c.TS[:n]
	return true
}

// inWindow counts the timestamps inside the window at clock: ts > clock-W.
func (c *counter) inWindow(e *eventRule, clock int64) int {
	return sort.Search(len(c.TS), func(i int) bool { return c.TS[i] <= clock-e.within })
}

// count is the rule's count at clock, capped at need().
func (c *counter) count(e *eventRule, clock int64) int {
	if e.within == 0 {
		return c.N
	}
	return c.inWindow(e, clock)
}

// nextFlip returns the first time after clock at which e's result changes
// with no further event, if any. The count drops to k when the (k+1)-th
// newest timestamp leaves, at TS[k]+W.
func (c *counter) nextFlip(e *eventRule, clock int64) (int64, bool) {
	if e.within == 0 {
		return 0, false
	}
	m := c.inWindow(e, clock)
	now := e.test(m)
	for k := m - 1; k >= 0; k-- {
		if e.test(k) != now {
			return c.TS[k] + e.within, true
		}
	}
	return 0, false
}

// userRec is the per-user record: the segments the user is in and the
// uploaded lists the user is on, both sorted. It is the source of truth
// for membership; the bitmaps are an index kept equal to it in the same
// transaction (invariant: id ∈ In ⇔ dense(user) ∈ bitmap(id)).
type userRec struct {
	In    []string `msgpack:"in,omitempty"`
	Lists []string `msgpack:"lists,omitempty"`
	Dense uint32   `msgpack:"d,omitempty"` // dense id + 1; 0: none yet
	Z     uint32   `msgpack:"z,omitempty"` // Operator.defsFP when last evaluated
}

func has(set []string, id string) bool {
	i := sort.SearchStrings(set, id)
	return i < len(set) && set[i] == id
}

// setIn adds or removes id in the sorted set and reports whether it changed.
func setIn(set *[]string, id string, in bool) bool {
	s := *set
	i := sort.SearchStrings(s, id)
	found := i < len(s) && s[i] == id
	switch {
	case in && !found:
		s = append(s, "")
		copy(s[i+1:], s[i:])
		s[i] = id
	case !in && found:
		s = append(s[:i], s[i+1:]...)
	default:
		return false
	}
	*set = s
	return true
}
