package segment

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
)

// The reference check: random event logs (with late events, profile
// changes, list uploads and idle periods during which windows expire) are
// run through the operator, and at checkpoints the membership of every
// user in every segment must equal a brute-force evaluation of the
// definitions over the user's whole history, written here independently of
// the operator's counters, timers and bitmaps.

const refDefs = `kind: segment
id: rb
rule: {event: {name: purchase, where: 'event.props.amount > 20', count: ">= 2", within: 3d}}
---
kind: segment
id: active
rule: {event: {name: app_open, count: ">= 3", within: 2d}}
---
kind: segment
id: few
rule: {event: {name: view_item, count: "< 2", within: 1d}}
---
kind: segment
id: cart2
rule: {event: {name: add_to_cart, count: "== 2", within: 4d}}
---
kind: segment
id: ever
rule: {event: {name: purchase, count: 3}}
---
kind: segment
id: gold
rule: {profile: 'profile.tier == "gold"'}
---
kind: segment
id: vip
rule: {list: true}
---
kind: segment
id: combo
rule: {all: [{segment: gold}, {not: {segment: rb}}]}
---
kind: segment
id: combo2
rule: {any: [{segment: vip}, {all: [{segment: active}, {not: {segment: few}}]}]}
---
kind: segment
id: nested
rule:
  all:
    - {segment: combo2}
    - {not: {segment: combo}}
    - {event: {name: purchase, count: "!= 1", within: 2d}}
---
kind: segment
id: two-windows
rule: {any: [{event: {name: app_open, count: 2, within: 1d}}, {event: {name: view_item, count: "== 1", within: 3d}}]}
`

type refEvent struct {
	name   string
	ts     int64
	amount any
}

type refUser struct {
	events []refEvent
	tier   any
	vip    bool
}

// refCount counts u's events named name matching where with ts > T-within
// (all of them if within is 0).
func (u *refUser) count(name string, within, T int64, where func(refEvent) bool) int {
	n := 0
	for _, e := range u.events {
		if e.name == name && (within == 0 || e.ts > T-within) && (where == nil || where(e)) {
			n++
		}
	}
	return n
}

func bigPurchase(e refEvent) bool { a, ok := e.amount.(int); return ok && a > 20 }

// refMembers evaluates every segment of refDefs for u at time T.
func (u *refUser) members(T int64) map[string]bool {
	m := map[string]bool{}
	m["rb"] = u.count("purchase", 3*day, T, bigPurchase) >= 2
	m["active"] = u.count("app_open", 2*day, T, nil) >= 3
	m["few"] = u.count("view_item", day, T, nil) < 2
	m["cart2"] = u.count("add_to_cart", 4*day, T, nil) == 2
	m["ever"] = u.count("purchase", 0, T, nil) >= 3
	m["gold"] = u.tier == "gold"
	m["vip"] = u.vip
	m["combo"] = m["gold"] && !m["rb"]
	m["combo2"] = m["vip"] || m["active"] && !m["few"]
	m["nested"] = m["combo2"] && !m["combo"] && u.count("purchase", 2*day, T, nil) != 1
	m["two-windows"] = u.count("app_open", day, T, nil) >= 2 || u.count("view_item", 3*day, T, nil) == 1
	return m
}

func TestReference(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	for seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runReference(t, uint64(seed)) })
	}
}

// quarter is the time grain of the random logs: coarse, so that events,
// window edges and checkpoints often fall on the same millisecond.
const quarter = day / 4

func runReference(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	h := newHarness(t, refDefs)
	users := map[string]*refUser{}
	names := []string{"app_open", "view_item", "add_to_cart", "purchase", "purchase", "$profile_set", "$profile_unset", "$segment_add", "$segment_remove", "other"}
	clock := int64(1_700_000_000_000)
	for i := range 600 {
		if rng.IntN(25) == 0 {
			clock += rng.Int64N(20) * quarter
			h.advance(clock)
			checkReference(t, h, users, i)
			continue
		}
		clock += rng.Int64N(2) * quarter
		ts := clock
		if rng.IntN(6) == 0 {
			ts -= rng.Int64N(17) * quarter // late event
		}
		uid := fmt.Sprintf("u%02d", rng.IntN(6))
		u := users[uid]
		if u == nil {
			u = &refUser{}
			users[uid] = u
		}
		name := names[rng.IntN(len(names))]
		props := refApply(rng, u, name, ts)
		h.send(uid, name, ts, props)
		if i%50 == 0 {
			checkReference(t, h, users, i)
		}
	}
	checkReference(t, h, users, -1)
}

// refApply updates the reference user for one event and returns its props.
func refApply(rng *rand.Rand, u *refUser, name string, ts int64) map[string]any {
	switch name {
	case "$profile_set":
		tier := []string{"gold", "silver"}[rng.IntN(2)]
		u.tier = tier
		return map[string]any{"tier": tier}
	case "$profile_unset":
		u.tier = nil
		return map[string]any{"tier": nil}
	case "$segment_add", "$segment_remove":
		u.vip = name == "$segment_add"
		return map[string]any{"segment": "vip"}
	}
	e := refEvent{name: name, ts: ts}
	if rng.IntN(5) > 0 {
		e.amount = rng.IntN(50)
	}
	u.events = append(u.events, e)
	if e.amount == nil {
		return nil
	}
	return map[string]any{"amount": e.amount}
}

func checkReference(t *testing.T, h *harness, users map[string]*refUser, step int) {
	t.Helper()
	T := h.l.Clock()
	want := map[string][]string{}
	for uid, u := range users {
		for seg, in := range u.members(T) {
			if in {
				want[seg] = append(want[seg], uid)
			}
		}
	}
	fromEvents := replayRecorder(h.rec.got)
	for _, seg := range h.op.IDs() {
		sort.Strings(want[seg])
		got := h.members(seg)
		if !reflect.DeepEqual(got, want[seg]) {
			t.Fatalf("step %d, clock %d: members of %s = %v, reference %v", step, T, seg, got, want[seg])
		}
		if ev := fromEvents[seg]; !reflect.DeepEqual(ev, want[seg]) {
			t.Fatalf("step %d: enter/exit events give %s = %v, reference %v", step, seg, ev, want[seg])
		}
	}
}

// replayRecorder folds the recorded $segment_enter/exit events into sets,
// failing on an enter of a member or an exit of a non-member.
func replayRecorder(got []string) map[string][]string {
	in := map[string]map[string]bool{}
	for _, g := range got {
		var name, user, seg string
		fmt.Sscan(g, &name, &user, &seg)
		if in[seg] == nil {
			in[seg] = map[string]bool{}
		}
		if in[seg][user] == (name == EventEnter) {
			panic("duplicate " + g)
		}
		in[seg][user] = name == EventEnter
	}
	out := map[string][]string{}
	for seg, m := range in {
		for u, ok := range m {
			if ok {
				out[seg] = append(out[seg], u)
			}
		}
		sort.Strings(out[seg])
	}
	return out
}
