package journey

import (
	"fmt"
	"sort"
)

// verdict is what the policies decide for one non-transactional action:
// deferTo > 0 defers it, a reason suppresses it, neither sends it.
type verdict struct {
	deferTo              int64
	reason, policy, rule string
}

// checkPolicy applies quiet hours, then frequency caps. A quiet-hours rule
// that drops wins over one that defers; of several deferring rules the
// latest end wins.
func (r *run) checkPolicy(channel string) (verdict, error) {
	ps := &r.o.policy
	var v verdict
	if len(ps.quiet) > 0 {
		prof, err := r.ctx.Profile()
		if err != nil {
			return v, err
		}
		tz, _ := prof["tz"].(string)
		loc := r.o.location(tz)
		m := minuteOfDay(r.now, loc)
		for i := range ps.quiet {
			q := &ps.quiet[i]
			if !q.applies(channel) || !q.covers(m) {
				continue
			}
			rule := fmt.Sprintf("quiet %02d:%02d-%02d:%02d", q.start/60, q.start%60, q.end/60, q.end%60)
			if q.drop {
				return verdict{reason: "quiet_hours", policy: q.policy, rule: rule + " drop"}, nil
			}
			v.deferTo = max(v.deferTo, nextClock(r.now, loc, q.end))
		}
		if v.deferTo > 0 {
			return v, nil
		}
	}
	if len(ps.caps) == 0 {
		return v, nil
	}
	cs, err := r.capState()
	if err != nil {
		return v, err
	}
	for i := range ps.caps {
		c := &ps.caps[i]
		if c.channel == "*" || c.channel == channel {
			if r.countSends(cs, c) >= c.max {
				return verdict{reason: "frequency_cap", policy: c.policy,
					rule: fmt.Sprintf("%s max %d per %s", c.channel, c.max, c.perText)}, nil
			}
		}
	}
	return v, nil
}

// countSends counts the sends c limits in the window (now-per, now].
func (r *run) countSends(cs *capState, c *capRule) int {
	n := 0
	for ch, times := range cs.Sent { // a sum: the map order does not matter
		if c.channel != "*" && ch != c.channel {
			continue
		}
		for _, t := range times {
			if t > r.now-c.per && t <= r.now {
				n++
			}
		}
	}
	return n
}

func (r *run) capState() (*capState, error) {
	if r.caps != nil {
		return r.caps, nil
	}
	r.caps = &capState{}
	b, err := r.read(capsKey)
	if err != nil {
		return nil, err
	}
	if b != nil {
		if err := decode(b, r.caps); err != nil {
			return nil, fmt.Errorf("reading frequency caps: %w", err)
		}
	}
	if r.caps.Sent == nil {
		r.caps.Sent = map[string][]int64{}
	}
	return r.caps, nil
}

// noteSend remembers a send for the caps, keeping the state bounded: no
// time older than the longest window and at most the largest max per
// channel, which is all countSends can ever need.
func (r *run) noteSend(channel string) error {
	ps := &r.o.policy
	if len(ps.caps) == 0 {
		return nil
	}
	cs, err := r.capState()
	if err != nil {
		return err
	}
	times := cs.Sent[channel]
	i := sort.Search(len(times), func(i int) bool { return times[i] > r.now })
	cs.Sent[channel] = append(times[:i], append([]int64{r.now}, times[i:]...)...)
	for ch, times := range cs.Sent { // each key is pruned alone: order does not matter
		lo := 0
		for lo < len(times) && times[lo] <= r.now-ps.maxPer {
			lo++
		}
		lo = max(lo, len(times)-ps.maxMax)
		if lo == len(times) {
			delete(cs.Sent, ch)
			continue
		}
		cs.Sent[ch] = append([]int64(nil), times[lo:]...)
	}
	r.capsMod = true
	return nil
}

func (r *run) flushCaps() error {
	if !r.capsMod {
		return nil
	}
	b, err := encode(r.caps)
	if err != nil {
		return err
	}
	return r.ctx.Set([]byte(capsKey), b)
}
