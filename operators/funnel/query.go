package funnel

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// ErrBadRow is returned by DecodeRow for a record that is not a funnel row.
var ErrBadRow = errors.New("malformed funnel row")

// TotalNote states how Result.Total counts users.
const TotalNote = "total sums distinct users per bucket (by first-step date): a user counted in several buckets counts once in each"

// Row is one partition's counts of one (funnel, bucket, group), as upserted
// to the aggregates topic. Steps[j-1] is the number of distinct users of the
// partition with an attempt of depth >= j there.
type Row struct {
	Funnel    string  `json:"funnel"`
	Bucket    string  `json:"bucket"`
	Group     string  `json:"group"`
	Partition int32   `json:"partition"`
	Steps     []int64 `json:"steps"`
}

// DecodeRow decodes an aggregates record written by the operator. The value
// is authoritative; the key must be the one the value's row has. A
// tombstone (empty value) is an error.
func DecodeRow(key, value []byte) (Row, error) {
	var r Row
	if len(value) == 0 {
		return r, fmt.Errorf("decoding funnel row %q: empty value: %w", key, ErrBadRow)
	}
	if err := json.Unmarshal(value, &r); err != nil {
		return Row{}, fmt.Errorf("decoding funnel row %q: %w: %w", key, ErrBadRow, err)
	}
	if r.Funnel == "" || r.Bucket == "" || len(r.Steps) == 0 {
		return Row{}, fmt.Errorf("decoding funnel row %q: missing funnel, bucket or steps: %w", key, ErrBadRow)
	}
	if r.Key() != string(key) {
		return Row{}, fmt.Errorf("decoding funnel row %q: key does not match value (want %q): %w", key, r.Key(), ErrBadRow)
	}
	return r, nil
}

// Result is the answer to a funnel query. It is plain data, ready for JSON.
type Result struct {
	Funnel string `json:"funnel"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Group  string `json:"group,omitempty"` // filter; "" for all groups
	// StepNames labels the steps in WriteTable; Query leaves it empty and
	// callers that know the definition may fill it.
	StepNames []string    `json:"step_names,omitempty"`
	Rows      []ResultRow `json:"rows"` // by bucket, then group
	Total     ResultRow   `json:"total"`
	Note      string      `json:"note"` // TotalNote
}

// ResultRow holds the counts of one bucket and group (or the total).
type ResultRow struct {
	Bucket string      `json:"bucket"`
	Group  string      `json:"group"`
	Steps  []StepCount `json:"steps"`
}

// StepCount is one step's figures in a ResultRow. Conversions are fractions in
// [0, 1]; they are 0 when the reference count is 0.
type StepCount struct {
	Count     int64   `json:"count"`
	FromFirst float64 `json:"from_first"`
	FromPrev  float64 `json:"from_prev"`
}

// Query sums the rows of funnel id over partitions, keeping only the last
// row of each key (rows are in log order), for the buckets whose date
// ("2026-11-22", the first 10 bytes of the label) lies in [from, to] (an
// empty bound is open) and, if group is not "", for that group only. Total
// sums every selected bucket and group: see TotalNote. Cost: O(r log r) for
// r rows; it does not modify rows.
func Query(rows []Row, id, from, to, group string) Result {
	latest := map[string]Row{}
	for _, r := range rows {
		if r.Funnel == id && inRange(r.Bucket, from, to) && (group == "" || r.Group == group) {
			latest[r.Key()] = r
		}
	}
	type bg struct{ bucket, group string }
	sums := map[bg][]int64{}
	var total []int64
	for _, r := range latest {
		k := bg{r.Bucket, r.Group}
		sums[k] = addCounts(sums[k], r.Steps)
		total = addCounts(total, r.Steps)
	}
	res := Result{Funnel: id, From: from, To: to, Group: group, Rows: []ResultRow{}, Note: TotalNote}
	for k, c := range sums {
		res.Rows = append(res.Rows, ResultRow{Bucket: k.bucket, Group: k.group, Steps: conversions(c)})
	}
	slices.SortFunc(res.Rows, func(a, b ResultRow) int {
		if c := cmp.Compare(a.Bucket, b.Bucket); c != 0 {
			return c
		}
		return cmp.Compare(a.Group, b.Group)
	})
	res.Total = ResultRow{Bucket: "total", Group: group, Steps: conversions(total)}
	return res
}

func inRange(bucket, from, to string) bool {
	day := bucket
	if len(day) > 10 {
		day = day[:10]
	}
	return (from == "" || day >= from) && (to == "" || day <= to)
}

// addCounts adds b to a element-wise, growing a as needed.
func addCounts(a, b []int64) []int64 {
	for len(a) < len(b) {
		a = append(a, 0)
	}
	for i, v := range b {
		a[i] += v
	}
	return a
}

func conversions(c []int64) []StepCount {
	out := make([]StepCount, len(c))
	for j, n := range c {
		out[j] = StepCount{Count: n, FromFirst: ratio(n, c[0]), FromPrev: 1}
		if j == 0 {
			out[j].FromFirst = ratio(n, n)
			out[j].FromPrev = out[j].FromFirst
			continue
		}
		out[j].FromPrev = ratio(n, c[j-1])
	}
	return out
}

func ratio(n, d int64) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// WriteTable prints r as an aligned table: one line per bucket and group,
// then the total and the note. A step cell reads "count" for step 1 and
// "count (from first%, from previous%)" for the others.
func (r Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "funnel %s", r.Funnel)
	if r.From != "" || r.To != "" {
		fmt.Fprintf(tw, "  %s..%s", r.From, r.To)
	}
	if r.Group != "" {
		fmt.Fprintf(tw, "  group=%s", r.Group)
	}
	fmt.Fprintln(tw)
	n := len(r.Total.Steps)
	head := []string{"BUCKET", "GROUP"}
	for j := 0; j < n; j++ {
		label := "STEP " + strconv.Itoa(j+1)
		if j < len(r.StepNames) {
			label += " " + r.StepNames[j]
		}
		head = append(head, label)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, row := range r.Rows {
		writeRow(tw, row, n)
	}
	writeRow(tw, r.Total, n)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing funnel table: %w", err)
	}
	_, err := fmt.Fprintln(w, r.Note)
	return err
}

func writeRow(w io.Writer, row ResultRow, n int) {
	cells := []string{row.Bucket, row.Group}
	for j := 0; j < n; j++ {
		var s StepCount
		if j < len(row.Steps) {
			s = row.Steps[j]
		}
		cell := strconv.FormatInt(s.Count, 10)
		if j > 0 {
			cell += fmt.Sprintf(" (%.1f%%, %.1f%%)", 100*s.FromFirst, 100*s.FromPrev)
		}
		cells = append(cells, cell)
	}
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}
