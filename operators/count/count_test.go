package count

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/defs"
)

func TestLoadValidates(t *testing.T) {
	docs, err := defs.Parse("c.yaml", []byte("kind: counter\nid: Bad_Id\n---\nkind: counter\nid: ok\ntopic: t\nevents: [purchase]\n---\nkind: journey\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(docs)
	if err == nil || !strings.Contains(err.Error(), "c.yaml:2: id: must match") || !strings.Contains(err.Error(), "c.yaml:1: topic: required") {
		t.Fatalf("err = %v", err)
	}
	cs, err := Load(docs[1:])
	if err != nil || len(cs) != 1 || cs[0].Events()[0] != "purchase" || cs[0].OutputTopics()[0] != "t" {
		t.Fatalf("Load = %+v, %v", cs, err)
	}
}

func TestCountsPerUserAndSkipsInternalEvents(t *testing.T) {
	l, err := engine.NewLocal(0, &Counter{ID: "c", Topic: "counts"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var ns []uint64
	for _, ev := range []engine.Event{
		{UserID: "a", Name: "x", TS: 1, EventID: "e1"},
		{UserID: "b", Name: "x", TS: 2},
		{UserID: "a", Name: "$profile_set", TS: 3},
		{UserID: "a", Name: "y", TS: 4, EventID: "e4"},
	} {
		outs, err := l.Process(ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range outs {
			var r Record
			if err := json.Unmarshal(o.Value, &r); err != nil {
				t.Fatal(err)
			}
			ns = append(ns, r.N)
			if r.UserID == "a" && r.N == 2 && r.Cause != "e4" {
				t.Fatalf("cause = %q", r.Cause)
			}
		}
	}
	if len(ns) != 3 || ns[0] != 1 || ns[1] != 1 || ns[2] != 2 {
		t.Fatalf("counts = %v, want [1 1 2]", ns)
	}
}
