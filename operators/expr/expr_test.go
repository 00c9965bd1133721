package expr

import (
	"testing"

	"github.com/cairn-cjo/cairn/engine"
)

func TestCompileAndEval(t *testing.T) {
	ev := &engine.Event{Name: "add_to_cart", TS: 1000, Props: map[string]any{"price": 12.0, "sku": "x"}}
	entry := &engine.Event{Name: "view_item", Props: map[string]any{"sku": "y"}}
	env := Env(ev, entry, map[string]any{"tier": "gold"})
	cases := []struct {
		src     string
		want    bool
		wantErr bool
	}{
		{`event.props.price >= 10`, true, false},
		{`event.props.price >= 20`, false, false},
		{`profile.tier == "gold" && entry.props.sku == "y"`, true, false},
		{`event.name == "add_to_cart" && event.ts == 1000`, true, false},
		{`event.props.missing == nil`, true, false},
		{`event.props.missing >= 10`, false, true},
		{`profile.nope == "x"`, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.src, func(t *testing.T) {
			p, err := Compile(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Eval(env)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("Eval = %v, %v; want %v (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestCompileRejects(t *testing.T) {
	for _, src := range []string{`event.props.price >=`, `1 + 1`, `"str"`} {
		if _, err := Compile(src); err == nil {
			t.Errorf("Compile(%q) succeeded, want an error", src)
		}
	}
}

func TestTemplate(t *testing.T) {
	env := Env(&engine.Event{Props: map[string]any{"n": 3}}, &engine.Event{Props: map[string]any{"sku": "tent"}}, nil)
	cases := map[string]string{
		"plain":                 "plain",
		"{{ entry.props.sku }}": "tent",
		"a {{entry.props.sku}} b {{ event.props.n * 2 }}": "a tent b 6",
		"{{ entry.props.none }}!":                         "!",
	}
	for src, want := range cases {
		tp, err := CompileTemplate(src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tp.Render(env)
		if err != nil || got != want {
			t.Errorf("Render(%q) = %q, %v; want %q", src, got, err, want)
		}
	}
	if _, err := CompileTemplate("{{ ( }}"); err == nil {
		t.Error("CompileTemplate accepted a bad expression")
	}
}
