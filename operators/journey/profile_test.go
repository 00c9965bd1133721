package journey

import (
	"encoding/json"
	"testing"

	"github.com/cairn-cjo/cairn/engine"
)

// TestProfileSeenWhereNamed checks that skipping the profile read for an
// expression that does not name it never hides the profile from one that
// does, however it names it.
func TestProfileSeenWhereNamed(t *testing.T) {
	for name, tc := range map[string]struct{ when, param string }{
		"plain":     {`'profile.tier == "gold"'`, `{{ profile.tier }}`},
		"env field": {`'$env.profile.tier == "gold"'`, `{{ $env.profile.tier }}`},
		"env index": {`'$env["profile"]["tier"] == "gold"'`, `{{ $env["profile"].tier }}`},
		// The first condition builds the variables without the profile;
		// the second, in the same environment, must still see it.
		"after one without": {`{all: ['event.props.v == 1', 'profile.tier == "gold"']}`, `{{ entry.props.v }}-{{ profile.tier }}`},
	} {
		t.Run(name, func(t *testing.T) {
			src := `kind: journey
id: j
entry: {event: e, when: ` + tc.when + `}
nodes:
  a: {action: {channel: push, template: t, params: {p: '` + tc.param + `'}}}
`
			l, err := engine.NewLocal(0, loadDefs(t, "p.yaml", src, Options{}))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if _, err := l.Process(engine.Event{UserID: "u", Name: engine.EventProfileSet, TS: 1, Props: map[string]any{"tier": "gold"}}); err != nil {
				t.Fatal(err)
			}
			outs, err := l.Process(engine.Event{UserID: "u", Name: "e", TS: 2, Props: map[string]any{"v": 1}})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range outs {
				if o.Topic == "actions.push" {
					var a Action
					if err := json.Unmarshal(o.Value, &a); err != nil {
						t.Fatal(err)
					}
					got = append(got, a.Params["p"])
				}
			}
			if len(got) != 1 || got[0] != "gold" && got[0] != "1-gold" {
				t.Fatalf("actions' param p = %q, want one with the profile's tier", got)
			}
		})
	}
}

func TestReadsProfile(t *testing.T) {
	for src, want := range map[string]bool{
		`event.props.v > 1`:           false,
		`{{ entry.props.sku }}`:       false,
		`profile.tier == "gold"`:      true,
		`$env.profile.tier == "gold"`: true,
		`get($env, "pro" + "file")`:   true,
		`event.props.profile_id > 0`:  true, // a false positive only costs a read
	} {
		if got := readsProfile(src); got != want {
			t.Errorf("readsProfile(%q) = %v, want %v", src, got, want)
		}
	}
}
