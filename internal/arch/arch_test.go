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
				if strings.HasPrefix(p, module+b) {
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
