package bench

import (
	"os"
	"path/filepath"

	"github.com/cairn-cjo/cairn/operators/funnel"
)

// GenerateFunnels writes n generated funnel definitions
// (funnel.GenerateDefinitions) to a file in dir.
func GenerateFunnels(dir string, n int) error {
	return os.WriteFile(filepath.Join(dir, "generated-funnels.yaml"), []byte(funnel.GenerateDefinitions(n)), 0o644)
}
