package workload

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/cairn-cjo/cairn/engine"
)

func gen(t *testing.T, o Options) *Generator {
	t.Helper()
	g, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestSameSeedSameRecords(t *testing.T) {
	a, b := gen(t, Options{Seed: 42}), gen(t, Options{Seed: 42})
	c := gen(t, Options{Seed: 43})
	differ := 0
	for i := 0; i < 5000; i++ {
		ra, rb, rc := a.Next(int64(i)), b.Next(int64(i)), c.Next(int64(i))
		if !bytes.Equal(ra.Key, rb.Key) || !bytes.Equal(ra.Value, rb.Value) || ra.TS != rb.TS {
			t.Fatalf("record %d differs with the same seed:\n%s\n%s", i, ra.Value, rb.Value)
		}
		if !bytes.Equal(ra.Value, rc.Value) {
			differ++
		}
	}
	if differ < 4000 {
		t.Errorf("only %d of 5000 records differ between seeds 42 and 43", differ)
	}
}

// TestFractions checks the profile, malformed and late fractions, and that
// exactly the malformed records are the ones the engine's decoder sends to
// the DLQ.
func TestFractions(t *testing.T) {
	const n = 200_000
	g := gen(t, Options{Seed: 7})
	var c Counts
	for i := 0; i < n; i++ {
		r := g.Next(10_000_000)
		c.Add(r)
		_, err := engine.DecodeEvent(r.Key, r.Value, 0)
		var de *engine.DecodeError
		if (r.Kind == Malformed) != errors.As(err, &de) {
			t.Fatalf("record %d (kind %d) decodes with error %v", i, r.Kind, err)
		}
		if r.Late != (r.TS < 10_000_000) || r.TS < 10_000_000-3_600_000 {
			t.Fatalf("record %d: late %v, ts %d", i, r.Late, r.TS)
		}
	}
	for _, tc := range []struct {
		name string
		got  int64
		want float64
	}{
		{"profile", c.Profile, 0.01},
		{"malformed", c.Malformed, 0.001},
		{"late", c.Late, 0.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			within(t, float64(tc.got)/n, tc.want, n)
		})
	}
}

// within fails unless got is within five standard deviations of a
// binomial proportion want over n trials.
func within(t *testing.T, got, want float64, n int) {
	t.Helper()
	sd := math.Sqrt(want * (1 - want) / float64(n))
	if math.Abs(got-want) > 5*sd {
		t.Errorf("fraction %.5f, want %.5f ± %.5f", got, want, 5*sd)
	}
}

// TestSessionSteps checks the funnel's step-to-step conversion and that
// every session starts with app_open.
func TestSessionSteps(t *testing.T) {
	const n = 300_000
	g := gen(t, Options{Seed: 3, Steps: [3]float64{0.6, 0.4, 0.25}, ProfileRate: -1, MalformedRate: -1})
	counts := map[string]int{}
	last := map[int]string{}
	for i := 0; i < n; i++ {
		r := g.Next(0)
		counts[r.Event]++
		if r.Event != "app_open" {
			if prev := last[r.User]; prev == "" {
				t.Fatalf("user %d's first event is %s", r.User, r.Event)
			}
		}
		last[r.User] = r.Event
	}
	for _, tc := range []struct {
		from, to string
		p        float64
	}{
		{"app_open", "view_item", 0.6},
		{"view_item", "add_to_cart", 0.4},
		{"add_to_cart", "purchase", 0.25},
	} {
		t.Run(tc.to, func(t *testing.T) {
			within(t, float64(counts[tc.to])/float64(counts[tc.from]), tc.p, counts[tc.from])
		})
	}
}

// TestZipfActivity checks activity by user rank against the law's weights
// (v+k)^-s: the share of rank 0 and of the top 1% of users.
func TestZipfActivity(t *testing.T) {
	const n, users = 400_000, 1000
	for _, tc := range []struct {
		name string
		s, v float64
	}{
		{"pure zipf", 1.2, 1},
		{"defaults", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := gen(t, Options{Seed: 9, Users: users, ZipfS: tc.s, ZipfV: tc.v})
			o := g.Options()
			byRank := make([]int, users)
			for i := 0; i < n; i++ {
				byRank[g.Next(0).User]++
			}
			var total, top float64
			for k := 0; k < users; k++ {
				w := math.Pow(o.ZipfV+float64(k), -o.ZipfS)
				total += w
				if k < users/100 {
					top += w
				}
			}
			got := 0
			for _, c := range byRank[:users/100] {
				got += c
			}
			// A session's records share a user: count sessions (about
			// 2.2 records each, so n/4 is conservative) as the trials.
			within(t, float64(byRank[0])/n, math.Pow(o.ZipfV, -o.ZipfS)/total, n/4)
			within(t, float64(got)/n, top/total, n/4)
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"zipf exponent at 1", Options{ZipfS: 1}},
		{"zipf v below 1", Options{ZipfV: 0.5}},
		{"step above 1", Options{Steps: [3]float64{1.5, 0.5, 0.5}}},
		{"negative users", Options{Users: -1}},
		{"rates add above 1", Options{ProfileRate: 0.7, MalformedRate: 0.6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.o); err == nil {
				t.Errorf("New accepted %+v", tc.o)
			}
		})
	}
}
