package defs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name    string
		src     string
		kinds   []string
		wantErr string
	}{
		{"two docs", "kind: journey\nid: a\n---\nkind: segment\nid: b\n", []string{"journey", "segment"}, ""},
		{"empty docs skipped", "---\n---\nkind: funnel\n", []string{"funnel"}, ""},
		{"missing kind", "id: a\n", nil, "f.yaml:1: kind: missing"},
		{"not a mapping", "- a\n- b\n", nil, "f.yaml:1: a definition must be a mapping"},
		{"bad yaml", "kind: [\n", nil, "f.yaml: parsing yaml"},
		{"second doc missing kind names its line", "kind: a\n---\n\nid: x\n", []string{"a"}, "f.yaml:4: kind: missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := Parse("f.yaml", []byte(tc.src))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, d := range docs {
				kinds = append(kinds, d.Kind)
			}
			if strings.Join(kinds, ",") != strings.Join(tc.kinds, ",") {
				t.Fatalf("kinds = %v, want %v", kinds, tc.kinds)
			}
		})
	}
}

func TestLoadDirReadsYAMLInNameOrder(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{"b.yml": "kind: b\n", "a.yaml": "kind: a\n", "c.txt": "kind: c\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	docs, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].Kind != "a" || docs[1].Kind != "b" || !strings.HasSuffix(docs[0].File, "a.yaml") {
		t.Fatalf("docs = %+v", docs)
	}
	if _, err := LoadDir(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("LoadDir of a missing dir succeeded")
	}
}

func TestErrorfAndField(t *testing.T) {
	docs, err := Parse("j.yaml", []byte("kind: journey\nnodes:\n  a: {wait: 1h}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := &docs[0]
	n := Field(d.Node, "nodes")
	if n == nil || Field(d.Node, "absent") != nil {
		t.Fatal("Field lookup failed")
	}
	if got := d.Errorf(Field(n, "a"), "nodes.a", "bad %s", "node").Error(); got != "j.yaml:3: nodes.a: bad node" {
		t.Fatalf("Errorf = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("kind: journey\nid: a\nnodes: {a: {wait: 1h}}\n---\nkind: x\n")
	f.Add("- [\n")
	f.Fuzz(func(t *testing.T, src string) {
		docs, _ := Parse("fuzz.yaml", []byte(src))
		for _, d := range docs {
			if d.Kind == "" || d.Node == nil {
				t.Fatalf("doc without kind or node: %+v", d)
			}
		}
	})
}
