package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
)

// Delta compares one figure of two results.
type Delta struct {
	Name     string
	Old, New float64
	// Ratio is New / Old (0 when Old is 0).
	Ratio float64
	// LowerIsBetter is true for costs: CPU, memory, bytes, latency.
	LowerIsBetter bool
}

// ReadResult reads a Result written by WriteJSON.
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading results: %w", err)
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding results %s: %w", path, err)
	}
	return &r, nil
}

// Compare returns the figures found in both results, in a fixed order:
// each mode's medians, the ratios, latency percentiles by load and the
// scaling rates by instance count.
func Compare(old, cur *Result) []Delta {
	var ds []Delta
	add := func(name string, o, n float64, lower bool) {
		if o == 0 && n == 0 {
			return
		}
		ds = append(ds, Delta{Name: name, Old: o, New: n, Ratio: ratio(n, o), LowerIsBetter: lower})
	}
	for _, mt := range modeTitles {
		o, ok1 := old.Medians[mt.mode]
		n, ok2 := cur.Medians[mt.mode]
		if !ok1 || !ok2 {
			continue
		}
		add(mt.mode+" events/s", o.EventsPerS, n.EventsPerS, false)
		add(mt.mode+" MB/s", o.MBPerS, n.MBPerS, false)
		add(mt.mode+" CPU s per M events", o.CPUSecPerMEvents, n.CPUSecPerMEvents, true)
		add(mt.mode+" broker CPU s per M events", o.BrokerCPUSecPerMEvents, n.BrokerCPUSecPerMEvents, true)
		add(mt.mode+" RSS peak MB", o.RSSPeakMB, n.RSSPeakMB, true)
		add(mt.mode+" state B/user", o.StateBytesPerUser, n.StateBytesPerUser, true)
		add(mt.mode+" changelog B/event", o.ChangelogBytesPerEvent, n.ChangelogBytesPerEvent, true)
	}
	add("cairn / ceiling", old.Ratio, cur.Ratio, false)
	add("exactly-once / at-least-once", old.EOSvsALO, cur.EOSvsALO, false)
	for _, l := range cur.Latency {
		for _, ol := range old.Latency {
			if ol.Load == l.Load {
				add(fmt.Sprintf("p50 ms at %.0f%% load", 100*l.Load), ol.P50ms, l.P50ms, true)
				add(fmt.Sprintf("p99 ms at %.0f%% load", 100*l.Load), ol.P99ms, l.P99ms, true)
			}
		}
	}
	for _, s := range cur.Scaling {
		for _, os := range old.Scaling {
			if os.Instances == s.Instances {
				add(fmt.Sprintf("%d instances events/s", s.Instances), os.EventsPerS, s.EventsPerS, false)
			}
		}
	}
	return ds
}

// PrintDeltas writes ds as an aligned table with the ratio new/old and
// whether it is better or worse by more than 5%.
func PrintDeltas(w io.Writer, ds []Delta) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "figure\told\tnew\tnew/old\t\t")
	for _, d := range ds {
		verdict := ""
		switch better := (d.Ratio > 1) != d.LowerIsBetter; {
		case d.Old == 0 || (d.Ratio > 0.95 && d.Ratio < 1.05):
		case better:
			verdict = "better"
		default:
			verdict = "worse"
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.3f\t%s\t\n", d.Name, d.Old, d.New, d.Ratio, verdict)
	}
	return tw.Flush()
}
