package journey

import (
	"fmt"
	"sort"

	"github.com/cairn-cjo/cairn/engine"
)

// history returns the user's did-history of name, sorted by time, reading
// it once per call.
func (r *run) history(name string) ([]histEvent, error) {
	if h, ok := r.hist[name]; ok {
		return h, nil
	}
	var h []histEvent
	b, err := r.read(histPrefix + name)
	if err != nil {
		return nil, err
	}
	if b != nil {
		if err := decode(b, &h); err != nil {
			return nil, fmt.Errorf("reading history of %s: %w", name, err)
		}
	}
	r.hist[name] = h
	return h, nil
}

// recordHistory appends ev to its name's did-history if a did condition
// counts that name, and prunes the history to what a condition can still
// count: events no older than the longest within on the name, or than the
// entry of an active instance of a journey with a "since: entry" did on it,
// and at most Options.MaxHistory events.
func (r *run) recordHistory(ev *engine.Event) error {
	spec := r.o.hist[ev.Name]
	if spec == nil {
		return nil
	}
	h, err := r.history(ev.Name)
	if err != nil {
		return err
	}
	e := histEvent{TS: ev.TS}
	if spec.props {
		e.Props = ev.Props
	}
	i := sort.Search(len(h), func(i int) bool { return h[i].TS > ev.TS })
	h = append(h[:i], append([]histEvent{e}, h[i:]...)...)
	lo := r.now - spec.maxWithin
	for _, id := range spec.since {
		rec, err := r.rec(id)
		if err != nil {
			return err
		}
		if rec.Active {
			lo = min(lo, rec.Entry.TS)
		}
	}
	cut := sort.Search(len(h), func(i int) bool { return h[i].TS >= lo })
	cut = max(cut, len(h)-r.o.opts.MaxHistory)
	h = append([]histEvent(nil), h[cut:]...)
	r.hist[ev.Name] = h
	b, err := encode(h)
	if err != nil {
		return err
	}
	return r.ctx.Set([]byte(histPrefix+ev.Name), b)
}
