package bench

// Plots are drawn with gonum.org/v1/plot: pure Go (no cgo, no browser, no
// Python), maintained with the rest of gonum, and able to write SVG, which
// diffs as text next to RESULTS.md. It brings a font package and an image
// library; it is imported only by this harness, never by the engine.

import (
	"fmt"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// WritePlots writes r's plots as SVG files in dir, named after prefix, and
// returns their base names: the latency CDFs, the throughput of each mode's
// median run over time, and the scaling bars. A plot with no data is not
// written.
func WritePlots(dir, prefix string, r *Result) ([]string, error) {
	var written []string
	for _, p := range []struct {
		name string
		make func(*Result) (*plot.Plot, error)
	}{
		{"latency-cdf", latencyPlot},
		{"throughput", throughputPlot},
		{"scaling", scalingPlot},
	} {
		pl, err := p.make(r)
		if err != nil {
			return written, fmt.Errorf("drawing %s: %w", p.name, err)
		}
		if pl == nil {
			continue
		}
		name := prefix + "-" + p.name + ".svg"
		if err := pl.Save(16*vg.Centimeter, 10*vg.Centimeter, filepath.Join(dir, name)); err != nil {
			return written, fmt.Errorf("writing %s: %w", name, err)
		}
		written = append(written, name)
	}
	return written, nil
}

func latencyPlot(r *Result) (*plot.Plot, error) {
	if len(r.Latency) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "End-to-end latency (produce due time → read_committed output)"
	p.X.Label.Text, p.Y.Label.Text = "latency (ms, log scale)", "fraction of events"
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{}
	p.Legend.Top, p.Legend.Left = true, true
	var lines []any
	for _, l := range r.Latency {
		pts := make(plotter.XYs, 0, len(l.CDF))
		for _, c := range l.CDF {
			pts = append(pts, plotter.XY{X: max(c[0], 0.1), Y: c[1]})
		}
		lines = append(lines, fmt.Sprintf("%.0f%% load (%.0f ev/s)", 100*l.Load, l.OfferedRate), pts)
	}
	return p, plotutil.AddLines(p, lines...)
}

func throughputPlot(r *Result) (*plot.Plot, error) {
	modes := make([]string, 0, len(r.Medians))
	for m, run := range r.Medians {
		if len(run.Series) > 0 {
			modes = append(modes, m)
		}
	}
	if len(modes) == 0 {
		return nil, nil
	}
	sort.Strings(modes)
	p := plot.New()
	p.Title.Text = "Throughput over time, pre-filled backlog (median run of each mode)"
	p.X.Label.Text, p.Y.Label.Text = "seconds since the first record consumed", "events/s (250 ms samples)"
	p.Legend.Top = true
	var lines []any
	for _, m := range modes {
		pts := make(plotter.XYs, 0, len(r.Medians[m].Series))
		for _, s := range r.Medians[m].Series {
			pts = append(pts, plotter.XY{X: s.T, Y: s.EventsPerS})
		}
		lines = append(lines, m, pts)
	}
	return p, plotutil.AddLines(p, lines...)
}

func scalingPlot(r *Result) (*plot.Plot, error) {
	if len(r.Scaling) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "Exactly-once throughput by instance count (one machine)"
	p.Y.Label.Text = "events/s"
	vals := make(plotter.Values, len(r.Scaling))
	names := make([]string, len(r.Scaling))
	for i, s := range r.Scaling {
		vals[i], names[i] = s.EventsPerS, fmt.Sprintf("%d instance(s)", s.Instances)
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(40))
	if err != nil {
		return nil, err
	}
	p.Add(bars)
	p.NominalX(names...)
	return p, nil
}
