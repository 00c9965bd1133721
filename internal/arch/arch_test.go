// Package arch holds the test that keeps the direction of imports in
// shared/style.md: cmd → engine, operators, state; operators → engine (public
// API); engine → state; nothing imports cmd, bench or deploy.
package arch

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/cairn-cjo/cairn/"

// forbidden maps a directory prefix to the import prefixes its non-test
// files must not use.
var forbidden = map[string][]string{
	"state":     {"engine", "operators", "cmd", "bench", "deploy", "internal"},
	"engine":    {"operators", "cmd", "bench", "deploy", "internal"},
	"operators": {"cmd", "bench", "deploy", "internal", "state/statetest"},
	"internal":  {"cmd", "bench", "deploy"},
	"bench":     {"cmd", "deploy"},
}

// allowed are the exceptions to forbidden: internal/failpoint is a leaf
// (TestFailpointIsLeaf) whose one-line Inject calls mark the crash points
// of the engine and the operators.
var allowed = []string{"internal/failpoint"}

func isAllowed(imp string) bool {
	for _, a := range allowed {
		if imp == module+a {
			return true
		}
	}
	return false
}

func TestImportDirection(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		top := strings.Split(filepath.ToSlash(rel), "/")[0]
		bad, ok := forbidden[top]
		if !ok {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			for _, b := range bad {
				if strings.HasPrefix(p, module+b) && !isAllowed(p) {
					t.Errorf("%s imports %s: %s must not depend on %s", rel, p, top, b)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Fatalf("only %d files checked: the walk is broken", checked)
	}
}

// TestFailpointIsLeaf keeps internal/failpoint free of Cairn imports, which
// is what lets engine and operators import it.
func TestFailpointIsLeaf(t *testing.T) {
	files, err := filepath.Glob("../failpoint/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("listing internal/failpoint: %v (%d files)", err, len(files))
	}
	for _, path := range files {
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p := strings.Trim(imp.Path.Value, `"`); strings.HasPrefix(p, module) {
				t.Errorf("%s imports %s: internal/failpoint must import nothing of Cairn", path, p)
			}
		}
	}
}
