package funnel

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeRow(t *testing.T) {
	tests := []struct {
		name  string
		key   string
		value string
		want  Row
		err   bool
	}{
		{name: "plain", key: "funnel/checkout/2026-11-22/web/3",
			value: `{"funnel":"checkout","bucket":"2026-11-22","group":"web","partition":3,"steps":[4,2,1]}`,
			want:  Row{Funnel: "checkout", Bucket: "2026-11-22", Group: "web", Partition: 3, Steps: []int64{4, 2, 1}}},
		{name: "escaped group", key: "funnel/f/2026-11-22T13/a%2Fb/0",
			value: `{"funnel":"f","bucket":"2026-11-22T13","group":"a/b","partition":0,"steps":[1,0]}`,
			want:  Row{Funnel: "f", Bucket: "2026-11-22T13", Group: "a/b", Steps: []int64{1, 0}}},
		{name: "key mismatch", key: "funnel/f/2026-11-22//1",
			value: `{"funnel":"f","bucket":"2026-11-22","group":"","partition":0,"steps":[1,0]}`, err: true},
		{name: "tombstone", key: "funnel/f/2026-11-22//0", err: true},
		{name: "not json", key: "funnel/f/2026-11-22//0", value: "{", err: true},
		{name: "no steps", key: "funnel/f/2026-11-22//0", value: `{"funnel":"f","bucket":"2026-11-22"}`, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeRow([]byte(tt.key), []byte(tt.value))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if !tt.err && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestQuery(t *testing.T) {
	rows := []Row{
		{Funnel: "c", Bucket: "2026-11-21", Group: "web", Partition: 0, Steps: []int64{1, 1, 0}},
		{Funnel: "c", Bucket: "2026-11-21", Group: "web", Partition: 0, Steps: []int64{4, 2, 1}}, // replaces the above
		{Funnel: "c", Bucket: "2026-11-21", Group: "web", Partition: 1, Steps: []int64{6, 3, 1}},
		{Funnel: "c", Bucket: "2026-11-21", Group: "app", Partition: 1, Steps: []int64{10, 0, 0}},
		{Funnel: "c", Bucket: "2026-11-22", Group: "web", Partition: 2, Steps: []int64{0, 0, 0}},
		{Funnel: "c", Bucket: "2026-11-30", Group: "web", Partition: 2, Steps: []int64{5, 5, 5}}, // out of range
		{Funnel: "d", Bucket: "2026-11-21", Group: "web", Partition: 0, Steps: []int64{9, 9}},    // other funnel
	}
	tests := []struct {
		name     string
		group    string
		wantRows []string // "bucket/group:counts"
		total    []int64
	}{
		{"all groups", "", []string{"2026-11-21/app:[10 0 0]", "2026-11-21/web:[10 5 2]", "2026-11-22/web:[0 0 0]"}, []int64{20, 5, 2}},
		{"one group", "web", []string{"2026-11-21/web:[10 5 2]", "2026-11-22/web:[0 0 0]"}, []int64{10, 5, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Query(rows, "c", "2026-11-01", "2026-11-22", tt.group)
			var got []string
			for _, r := range res.Rows {
				got = append(got, r.Bucket+"/"+r.Group+":"+countsString(r.Steps))
			}
			if !reflect.DeepEqual(got, tt.wantRows) {
				t.Fatalf("rows = %v, want %v", got, tt.wantRows)
			}
			if g := countsString(res.Total.Steps); g != countsString(stepCounts(tt.total)) {
				t.Fatalf("total = %s, want %v", g, tt.total)
			}
			if res.Note != TotalNote {
				t.Fatalf("note = %q", res.Note)
			}
		})
	}
}

func TestQueryConversions(t *testing.T) {
	res := Query([]Row{{Funnel: "c", Bucket: "2026-11-21", Steps: []int64{10, 5, 2}}}, "c", "", "", "")
	got := res.Total.Steps
	want := []StepCount{{10, 1, 1}, {5, 0.5, 0.5}, {2, 0.2, 0.4}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("steps = %+v, want %+v", got, want)
	}
	empty := Query(nil, "c", "", "", "")
	if len(empty.Rows) != 0 || len(empty.Total.Steps) != 0 {
		t.Fatalf("empty query = %+v", empty)
	}
	if _, err := json.Marshal(res); err != nil {
		t.Fatal(err)
	}
}

func TestWriteTable(t *testing.T) {
	rows := []Row{
		{Funnel: "c", Bucket: "2026-11-21", Group: "web", Steps: []int64{10, 5, 2}},
		{Funnel: "c", Bucket: "2026-11-22", Group: "app", Steps: []int64{4, 0, 0}},
	}
	res := Query(rows, "c", "2026-11-21", "2026-11-22", "")
	res.StepNames = []string{"view_item", "add_to_cart", "purchase"}
	var b bytes.Buffer
	if err := res.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	want := `funnel c  2026-11-21..2026-11-22
BUCKET      GROUP  STEP 1 view_item  STEP 2 add_to_cart  STEP 3 purchase
2026-11-21  web    10                5 (50.0%, 50.0%)    2 (20.0%, 40.0%)
2026-11-22  app    4                 0 (0.0%, 0.0%)      0 (0.0%, 0.0%)
total              14                5 (35.7%, 35.7%)    2 (14.3%, 40.0%)
` + TotalNote + "\n"
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func countsString(s []StepCount) string {
	var parts []string
	for _, c := range s {
		parts = append(parts, itoa(c.Count))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func stepCounts(c []int64) []StepCount {
	out := make([]StepCount, len(c))
	for i, n := range c {
		out[i].Count = n
	}
	return out
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
