package funnel

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/cairn-cjo/cairn/engine"
)

// redefined is the funnel operator whose definitions change while the
// partition runs, as after a restart with another definitions directory:
// ops[i] runs events from switches[i-1] on.
type redefined struct {
	ops      []*Operator
	switches []int
	seen     int       // events processed
	last     *Operator // the operator of the current event
}

func (r *redefined) cur() *Operator {
	i := 0
	for i < len(r.switches) && r.seen >= r.switches[i] {
		i++
	}
	return r.ops[i]
}

func (r *redefined) Name() string           { return OperatorName }
func (r *redefined) Events() []string       { return nil } // every event
func (r *redefined) OutputTopics() []string { return r.ops[0].OutputTopics() }
func (r *redefined) OnTimer(*engine.Context, *engine.Timer) error {
	return nil
}

func (r *redefined) OnEvent(ctx *engine.Context, ev *engine.Event) error {
	r.last = r.cur()
	r.seen++
	return r.last.OnEvent(ctx, ev)
}

func (r *redefined) Flush(ctx *engine.Context, b any) error { return r.last.Flush(ctx, b) }

// TestRedefinedFunnelsMatchReference changes the definitions between
// events: funnel B is added after a third of the events and must count only
// the events from then on; funnel A is removed after two thirds, and its
// parts are dropped from the records of the users who go on.
func TestRedefinedFunnelsMatchReference(t *testing.T) {
	trials := 0
	for seed := 0; trials < 40; seed++ {
		fs, evs := randomCase(rand.New(rand.NewPCG(uint64(seed), 13)))
		if len(fs) < 2 {
			continue
		}
		trials++
		a, b := fs[0], fs[1]
		n := len(evs)
		r := &redefined{ops: []*Operator{mustNew(t, a.yaml()), mustNew(t, a.yaml()+"---\n"+b.yaml()),
			mustNew(t, b.yaml())}, switches: []int{n / 3, 2 * n / 3}}
		l, err := engine.NewLocal(0, r)
		if err != nil {
			t.Fatal(err)
		}
		rows := processAll(t, seed, l, evs)
		want, _ := reference([]refFunnel{a}, evs[:2*n/3])
		wantB, _ := reference([]refFunnel{b}, evs[n/3:])
		for k, v := range wantB {
			want[k] = v
		}
		if got := countsOf(rows); !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d:\n got  %v\n want %v\nfunnels %+v %+v", seed, got, want, a, b)
		}
		checkNoPartOf(t, l, a.id, evs[2*n/3:], b)
		l.Close()
	}
}

// checkNoPartOf fails if a user with an event matching a step of b in evs
// (so whose record was rewritten) still has a part of funnel id.
func checkNoPartOf(t *testing.T, l *engine.Local, id string, evs []engine.Event, b refFunnel) {
	t.Helper()
	for _, e := range evs {
		if !slices.Contains(b.matches(e), true) {
			continue
		}
		err := l.ScanUser(e.UserID, OperatorName, func(_, v []byte) error {
			var rec userRecord
			if err := rec.decode(v, nil); err != nil {
				return err
			}
			if _, ok := rec.find(id); ok {
				t.Errorf("user %s still has a part of removed funnel %s", e.UserID, id)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
