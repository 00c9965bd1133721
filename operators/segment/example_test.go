package segment

import (
	"os"
	"reflect"
	"testing"

	"github.com/cairn-cjo/cairn/operators/defs"
)

// TestExampleFile keeps examples/segments.yaml valid and equal in meaning
// to the definitions the tests use.
func TestExampleFile(t *testing.T) {
	b, err := os.ReadFile("../../examples/segments.yaml")
	if err != nil {
		t.Skipf("no example file: %v", err)
	}
	docs, err := defs.Parse("examples/segments.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	op, err := New(docs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := op.IDs(), mustNew(t, exampleDefs).IDs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("example segments = %v, want %v", got, want)
	}
}
