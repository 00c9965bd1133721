package funnel_test

import (
	"os"

	"github.com/cairn-cjo/cairn/operators/funnel"
)

// The rows of the worked example in docs/funnels.md, as read from the
// aggregates topic (one partition).
func ExampleQuery() {
	rows := []funnel.Row{
		{Funnel: "checkout", Bucket: "2026-11-22", Group: "web", Partition: 3, Steps: []int64{1, 1, 1}},
		{Funnel: "checkout", Bucket: "2026-11-22", Group: "app", Partition: 3, Steps: []int64{1, 1, 1}},
		{Funnel: "checkout", Bucket: "2026-11-24", Group: "web", Partition: 3, Steps: []int64{1, 0, 0}},
	}
	res := funnel.Query(rows, "checkout", "2026-11-22", "2026-11-24", "")
	res.StepNames = []string{"view_item", "add_to_cart", "purchase"}
	_ = res.WriteTable(os.Stdout)
	// Output:
	// funnel checkout  2026-11-22..2026-11-24
	// BUCKET      GROUP  STEP 1 view_item  STEP 2 add_to_cart  STEP 3 purchase
	// 2026-11-22  app    1                 1 (100.0%, 100.0%)  1 (100.0%, 100.0%)
	// 2026-11-22  web    1                 1 (100.0%, 100.0%)  1 (100.0%, 100.0%)
	// 2026-11-24  web    1                 0 (0.0%, 0.0%)      0 (0.0%, 0.0%)
	// total              3                 2 (66.7%, 66.7%)    2 (66.7%, 100.0%)
	// total sums distinct users per bucket (by first-step date): a user counted in several buckets counts once in each
}
