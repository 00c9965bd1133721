package funnel

import (
	"strings"
	"testing"
	"time"

	"github.com/cairn-cjo/cairn/operators/defs"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // substrings of the error, all required
	}{
		{"missing everything", "kind: funnel\n", []string{"test.yaml:1: id: missing", "window: missing", "steps: missing"}},
		{"bad id", "kind: funnel\nid: Check_Out\nwindow: 1h\nsteps: [{event: a}, {event: b}]\n",
			[]string{"test.yaml:2: id: \"Check_Out\" must match"}},
		{"one step", "kind: funnel\nid: x\nwindow: 1h\nsteps: [{event: a}]\n", []string{"test.yaml:4: steps: a funnel has 2 to 32 steps, not 1"}},
		{"bad window", "kind: funnel\nid: x\nwindow: soon\nsteps: [{event: a}, {event: b}]\n", []string{"test.yaml:3: window: parsing window \"soon\""}},
		{"negative window", "kind: funnel\nid: x\nwindow: -1h\nsteps: [{event: a}, {event: b}]\n", []string{"window: parsing window \"-1h\": must be positive"}},
		{"bad bucket", "kind: funnel\nid: x\nwindow: 1h\nbucket: week\nsteps: [{event: a}, {event: b}]\n", []string{"test.yaml:4: bucket: \"week\" must be day or hour"}},
		{"bad timezone", "kind: funnel\nid: x\nwindow: 1h\ntimezone: Mars/Olympus\nsteps: [{event: a}, {event: b}]\n", []string{"test.yaml:4: timezone: unknown time zone Mars/Olympus"}},
		{"bad when", "kind: funnel\nid: x\nwindow: 1h\nsteps:\n  - {event: a}\n  - {event: b, when: 'event.props.x >'}\n", []string{"test.yaml:6: steps[1].when: compiling expression"}},
		{"bad group_by", "kind: funnel\nid: x\nwindow: 1h\ngroup_by: '(('\nsteps: [{event: a}, {event: b}]\n", []string{"test.yaml:4: group_by:"}},
		{"step without event", "kind: funnel\nid: x\nwindow: 1h\nsteps: [{event: a}, {when: 'true'}]\n", []string{"steps[1].event: missing"}},
		{"unknown field", "kind: funnel\nid: x\nwindow: 1h\nwindows: 2h\nsteps: [{event: a}, {event: b}]\n", []string{"test.yaml:4: windows: unknown field"}},
		{"duplicate id", "kind: funnel\nid: x\nwindow: 1h\nsteps: [{event: a}, {event: b}]\n---\nkind: funnel\nid: x\nwindow: 1h\nsteps: [{event: a}, {event: b}]\n",
			[]string{"test.yaml:7: id: duplicate funnel \"x\""}},
		{"steps not a list", "kind: funnel\nid: x\nwindow: 1h\nsteps: {event: a}\n", []string{"test.yaml:4: steps: must be a list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := defs.Parse("test.yaml", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			_, err = New(docs, Options{})
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseValid(t *testing.T) {
	docs, err := defs.Parse("test.yaml", []byte(checkoutYAML+"---\nkind: segment\nid: other\n"))
	if err != nil {
		t.Fatal(err)
	}
	op, err := New(docs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ds := op.Definitions()
	if len(ds) != 1 {
		t.Fatalf("got %d definitions, want 1", len(ds))
	}
	d := ds[0]
	if d.ID != "checkout" || d.Window != 24*time.Hour || d.Bucket != BucketDay || d.Timezone != "UTC" ||
		strings.Join(d.StepNames(), ",") != "view_item,add_to_cart,purchase" || d.GroupBy != "event.props.channel" {
		t.Fatalf("unexpected definition %+v", d)
	}
	if got := strings.Join(op.Events(), ","); got != "add_to_cart,purchase,view_item" {
		t.Fatalf("Events() = %s", got)
	}
	if got := op.OutputTopics(); len(got) != 1 || got[0] != DefaultAggregatesTopic {
		t.Fatalf("OutputTopics() = %v", got)
	}
}

func TestParseWindow(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"24h", 24 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"7d", 7 * 24 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"0d", 0, true},
		{"0s", 0, true},
		{"d", 0, true},
		{"1.5d", 0, true},
		{"-1d", 0, true},
		{"99999999d", 0, true},
		{"1d-25h", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseWindow(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("ParseWindow(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}
